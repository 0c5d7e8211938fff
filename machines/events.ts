/**
 * The events the block-copy job machine understands. User requests come from the public API;
 * hypervisor observations are derived by the engine from QEMU events *and* from polled job info
 * (src/core/hypervisor-port.ts), so a lost event is made up by the next poll. Every observation is
 * idempotent: seeing it twice changes nothing.
 */
import type { BlockCopyError } from '../src/core/errors.js';
import type { CopyMode } from '../src/core/hypervisor-port.js';

/** User requests. */
export type UserEvent =
  /** virDomainBlockJobAbort with PIVOT. */
  | { readonly type: 'PIVOT' }
  /** virDomainBlockJobAbort without PIVOT. force: QEMU force-cancel (no consistent copy). */
  | { readonly type: 'ABORT'; readonly force: boolean };
// Pause and resume are requests to the hypervisor; the chart sees their effect (HV.PAUSED,
// HV.RUNNING), which is what changes state.

export type { ObservationEvent } from '../src/core/observations.js';
import type { ObservationEvent } from '../src/core/observations.js';

/**
 * Requests of the convergence policy (src/engine/convergence.ts): restart the copy in another
 * mode (QEMU 7.2 cannot switch a running job), or give up with the policy's error.
 */
export type ConvergenceRequest =
  | { readonly type: 'CONVERGE.RESTART'; readonly copyMode: CopyMode; readonly speed: number }
  | { readonly type: 'CONVERGE.GIVE_UP'; readonly error: BlockCopyError };

export type BlockCopyJobEvent = UserEvent | ObservationEvent | ConvergenceRequest;

/** Emitted by the machine when it refuses a user request (the API returns this error). */
export interface RefusedEmitted {
  readonly type: 'refused';
  readonly request: UserEvent['type'];
  readonly error: BlockCopyError;
}
