/** The conformance table on the QMP adapter against real qemu-system-x86_64 VMs (TCG, not booted). */
import { afterAll } from 'vitest';
import { runConformance } from './table.js';
import { disposeVmTemplate, vmDriver } from './vm-driver.js';

runConformance(vmDriver('device'));
runConformance(vmDriver('drive'));
afterAll(disposeVmTemplate);
