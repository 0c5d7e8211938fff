/** The conformance table on the QMP adapter against a real qemu-storage-daemon. */
import { useQemu } from '../qemu/harness.js';
import { qsdDriver } from './qsd-driver.js';
import { runConformance } from './table.js';

runConformance(qsdDriver(useQemu()));
