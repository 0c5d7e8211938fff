/** The conformance table on the simulator (virtual clock). */
import { runConformance } from './table.js';
import { simDriver } from './sim-driver.js';

runConformance(simDriver);
