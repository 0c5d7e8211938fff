/**
 * The in-process simulated hypervisor (QEMU 7.2 mirror jobs, in memory, on an injectable clock).
 * Explicit named re-exports; see hypervisor.ts for the behaviour and the control methods.
 */
export { SimulatedHypervisor, type SimulatedHypervisorOptions, type CommandFlavour } from './hypervisor.js';
export { SimQmp, type QmpErrorReply } from './qmp.js';
export {
  DEFAULT_IMAGE_DIR,
  GiB,
  KiB,
  MiB,
  defaultDomains,
  demoDisk,
  vmDisk,
  type SimDiskSpec,
  type SimDomainSpec,
  type SimLayerSpec,
} from './default-domain.js';
export { ERRNO_TEXT, seededRandom, type Errno, type EventPredicate, type IoFaultSpec } from './faults.js';
export { QCOW2_EMPTY_FILE_BYTES, type SimImage, type SimImageSpec } from './images.js';
export { canTransition, verbAllowed, verbErrorText, JOB_STATUSES, type JobVerb } from './jobstt.js';
export { SimChainFiles, type ChainFileOperation } from './chain-files.js';
