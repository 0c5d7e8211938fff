/**
 * What the hypervisor says about one job, as the job machine hears it: derived from QEMU events
 * *and* from polled job info (observe.ts), so a lost event is made up by the next poll. Every
 * observation is idempotent: seeing it twice changes nothing. Plain data, in the core so that
 * the observation mapping and the machines share it without importing each other.
 */
/** What the hypervisor says about the job (one job's view). */
export type ObservationEvent =
  /** The job runs (created/running, or resumed). */
  | { readonly type: 'HV.RUNNING' }
  /** QEMU says ready (BLOCK_JOB_READY, JOB_STATUS_CHANGE ready, or query ready:true). Never cur == end alone. */
  | { readonly type: 'HV.READY' }
  /** Paused: by the user, by an I/O error (stop/enospc policy), or internally (drain). */
  | { readonly type: 'HV.PAUSED'; readonly reason: 'user' | 'io-error' | 'internal' }
  /** An I/O error decision (BLOCK_JOB_ERROR). */
  | {
      readonly type: 'HV.IO_ERROR';
      readonly action: 'ignore' | 'report' | 'stop';
      readonly operation: 'read' | 'write';
    }
  /**
   * The job concluded. error: QEMU's error text, if any. cancelled: it ended with
   * BLOCK_JOB_CANCELLED (force-cancel) rather than BLOCK_JOB_COMPLETED.
   */
  | { readonly type: 'HV.CONCLUDED'; readonly error: string | null; readonly cancelled: boolean }
  /** The hypervisor no longer knows the job, and no conclusion was seen: outcome unknown. */
  | { readonly type: 'HV.VANISHED' }
  /** The hypervisor process is gone, and every job with it. */
  | { readonly type: 'HV.GONE'; readonly reason: string };
