/**
 * Turns what the hypervisor says (QEMU events, polled job info) into the job machine's
 * observation events. Pure. Events and polls both end up here, so a lost event is made up by
 * the next poll, and the machine ignores what it has already seen.
 */
import type { HypervisorEvent, HypervisorJobInfo } from './hypervisor-port.js';
import type { ObservationEvent } from './observations.js';

/** What the engine remembers per job to interpret pauses (QEMU's events do not say why). */
export interface PauseContext {
  /** The user asked for a pause (blockJobPause) and has not resumed since. */
  readonly userPauseRequested: boolean;
  /** The last BLOCK_JOB_ERROR had action 'stop' and the job has not run since. */
  readonly stoppedOnError: boolean;
}

function pauseReason(pause: PauseContext, ioStatus?: HypervisorJobInfo['ioStatus']): 'user' | 'io-error' | 'internal' {
  if (pause.stoppedOnError || (ioStatus !== undefined && ioStatus !== 'ok')) return 'io-error';
  return pause.userPauseRequested ? 'user' : 'internal';
}

/**
 * One QEMU event → observations. `concluded` from JOB_STATUS_CHANGE carries no error, so it maps
 * to nothing here: the BLOCK_JOB_COMPLETED/CANCELLED that precedes it does, and if that was lost
 * the engine polls query-jobs at once (see `needsPoll`).
 */
export function observeEvent(event: HypervisorEvent, pause: PauseContext): ObservationEvent[] {
  switch (event.kind) {
    case 'job-status':
      switch (event.status) {
        case 'created':
        case 'running':
          return [{ type: 'HV.RUNNING' }];
        case 'ready':
          return [{ type: 'HV.READY' }];
        case 'paused':
        case 'standby':
          return [{ type: 'HV.PAUSED', reason: pauseReason(pause) }];
        default:
          return [];
      }
    case 'job-ready':
      return [{ type: 'HV.READY' }];
    case 'job-completed':
      return [{ type: 'HV.CONCLUDED', error: event.error ?? null, cancelled: false }];
    case 'job-cancelled':
      return [{ type: 'HV.CONCLUDED', error: null, cancelled: true }];
    case 'job-error':
      return [{ type: 'HV.IO_ERROR', action: event.action, operation: event.operation }];
    case 'hypervisor-gone':
      return [{ type: 'HV.GONE', reason: event.reason }];
    case 'connection-lost':
    case 'connection-restored':
      return [];
  }
}

/** Events after which the engine should poll at once rather than wait for the next tick. */
export function needsPoll(event: HypervisorEvent): boolean {
  return (event.kind === 'job-status' && event.status === 'concluded') || event.kind === 'connection-restored';
}

/**
 * Polled job info → observations. `ready` comes only from QEMU's ready flag or status, never from
 * offset == len (at the start of a job both are 0). `inReady` says whether the machine already
 * is in ready, so that a polled standby of a job whose READY event was lost first makes it ready.
 */
export function observeJobInfo(
  info: HypervisorJobInfo | null,
  pause: PauseContext,
  inReady: boolean,
): ObservationEvent[] {
  if (info === null) return [{ type: 'HV.VANISHED' }];
  switch (info.status) {
    case 'created':
    case 'running':
      return [{ type: 'HV.RUNNING' }];
    case 'ready':
      return [{ type: 'HV.READY' }];
    case 'standby':
      return [
        ...(inReady ? [] : [{ type: 'HV.READY' } as const]),
        { type: 'HV.PAUSED', reason: pauseReason(pause, info.ioStatus) },
      ];
    case 'paused':
      return [{ type: 'HV.PAUSED', reason: pauseReason(pause, info.ioStatus) }];
    case 'concluded':
      // query-jobs keeps the error of a concluded job (auto-dismiss=false); a force-cancelled
      // job reports ECANCELED's text.
      return [
        {
          type: 'HV.CONCLUDED',
          error: info.error ?? null,
          cancelled: info.error !== undefined && /operation canceled|cancelled/i.test(info.error),
        },
      ];
    default:
      // waiting, pending, aborting: the conclusion follows.
      return info.ready && !inReady ? [{ type: 'HV.READY' }] : [];
  }
}
