/**
 * QEMU 7.2's job state transition table (JobSTT) and verb table (JobVerbTable), verbatim from
 * job.c (qemu-mirror.md §4). The simulated mirror job checks every transition and every verb
 * against these tables, so the simulator cannot drift from what real QEMU allows.
 */
import type { JobStatus } from '../../src/core/hypervisor-port.js';
import { JOB_STATUSES } from '../../src/core/hypervisor-port.js';

/** Column order of the C tables: U, C, R, P, Y, S, W, D, X, E, N. */
export { JOB_STATUSES };

/* prettier-ignore */
const STT: readonly (readonly number[])[] = [
  /*            U, C, R, P, Y, S, W, D, X, E, N */
  /* U */      [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
  /* C */      [0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1],
  /* R */      [0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0],
  /* P */      [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
  /* Y */      [0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0],
  /* S */      [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
  /* W */      [0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0],
  /* D */      [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0],
  /* X */      [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0],
  /* E */      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
  /* N */      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
];

/** QMP spelling of the verbs (JobVerb_str), as it appears in the error text. */
export type JobVerb = 'cancel' | 'pause' | 'resume' | 'set-speed' | 'complete' | 'finalize' | 'dismiss';

/* prettier-ignore */
const VERBS: Readonly<Record<JobVerb, readonly number[]>> = {
  /*            U, C, R, P, Y, S, W, D, X, E, N */
  'cancel':    [0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
  'pause':     [0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
  'resume':    [0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
  'set-speed': [0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
  'complete':  [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
  'finalize':  [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
  'dismiss':   [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
};

const index = (s: JobStatus): number => JOB_STATUSES.indexOf(s);

/** JobSTT[from][to]. A "transition" to the same state is not one (no event, job.c `s1 != s0`). */
export function canTransition(from: JobStatus, to: JobStatus): boolean {
  return STT[index(from)]?.[index(to)] === 1;
}

/** JobVerbTable[verb][status]. */
export function verbAllowed(verb: JobVerb, status: JobStatus): boolean {
  return VERBS[verb][index(status)] === 1;
}

/** The GenericError text of job_apply_verb_locked(). */
export function verbErrorText(jobId: string, status: JobStatus, verb: JobVerb): string {
  return `Job '${jobId}' in state '${status}' cannot accept command verb '${verb}'`;
}

/** QEMU's job_is_ready(): only READY and STANDBY count (query-block-jobs `ready`). */
export function isReadyStatus(status: JobStatus): boolean {
  return status === 'ready' || status === 'standby';
}
