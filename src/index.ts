/**
 * blockcopy's public API. Create an engine on a hypervisor adapter, then use libvirt's block-job
 * calls; every fallible call returns a neverthrow Result and nothing throws.
 *
 * @example
 * const engine = createEngine({ hypervisor: new SimulatedHypervisor() });
 * const job = await engine.blockRebase('demo', 'vda', '/var/lib/blockcopy/copy.qcow2', 0, RebaseFlags.COPY);
 */
export { createEngine, tryCreateEngine } from './engine/engine.js';
export type {
  AbortOptions,
  BlockCopyEngine,
  BlockCopyJob,
  BlockJobEvent,
  DomainOperation,
  RebaseCall,
  EngineOptions,
  JobStateChange,
} from './engine/engine.js';
export type { JobProgress, JobResult } from './engine/job-runner.js';
export type { BlockPullJob } from './engine/pull-jobs.js';
export type { PullPlan, PullRequest } from './core/pull.js';
export { JobSlots } from './engine/job-slots.js';
export type { JobSlotLimits } from './engine/job-slots.js';
export type { ConvergencePolicy } from './core/convergence.js';
export { AbortFlags, BandwidthFlags, BlockJobStatus, BlockJobType, CopyFlags, RebaseFlags } from './core/flags.js';
export type { BlockJobStatusName } from './core/flags.js';
export { ErrorNumber, blockCopyError, errors } from './core/errors.js';
export type { BlockCopyError, ErrorCode } from './core/errors.js';
export type { CopyPlan, CopyRequest } from './core/plan.js';
export type { BlockJobInfo, CopyOptions } from './core/validate.js';
export { VirtualClock, systemClock } from './core/clock.js';
export type { Clock } from './core/clock.js';
export { blockCopyJobMachine } from '../machines/block-copy-job.js';
export type { BlockCopyJobContext, BlockCopyJobOutput, JobOutcome } from '../machines/block-copy-job.js';
export type { BlockCopyJobEvent, ObservationEvent, UserEvent } from '../machines/events.js';
export type { HypervisorEvent, HypervisorJobInfo, HypervisorPort, IoErrorPolicy } from './core/hypervisor-port.js';
// What an embedding service needs to write its own HypervisorPort (and to name the adapters' errors).
export type {
  BackingRef,
  CopyMode,
  CreateDestinationSpec,
  DestinationProbe,
  DiskInfo,
  DomainInfo,
  HypervisorError,
  ImageFormat,
  ImageInfo,
  JobStatus,
  MirrorSpec,
  StreamSpec,
} from './core/hypervisor-port.js';
// The whole-chain live storage migration (the seed's closing use case), on the engine's public API.
export { migrateStorage, recoverMigrations } from './workflows/migrate-storage.js';
export type {
  MigrateStorageRequest,
  MigrationProgress,
  MigrationResult,
  MigrationSetup,
  StorageMigration,
} from './workflows/migrate-storage.js';
export { migrateStorageMachine } from '../machines/migrate-storage.js';
export type {
  DiskPlan,
  DiskState,
  DiskStatus,
  LayerPlan,
  MigrationOutcome,
  SourceDeletion,
} from '../machines/migrate-storage.js';
export type { ChainFiles, CompareResult, ImageHeader } from './core/chain-files.js';
export type { WorkflowRecord, WorkflowStore } from './core/workflow-store.js';
