/**
 * The baseline for the benchmark: the same block-copy lifecycle as a plain hand-written
 * transition function over a plain object, the way peers write it (a switch in a polling loop).
 * It has the same states and guards for the events the benchmark sends, and nothing else.
 */
import type { BlockCopyJobEvent } from '../machines/events.js';

export type BaselineState =
  | 'validating'
  | 'preparingDestination'
  | 'starting'
  | 'mirroring'
  | 'ready'
  | 'pivoting'
  | 'confirmingPivot'
  | 'finishing'
  | 'completed'
  | 'canceled'
  | 'failed';

export interface BaselineJob {
  state: BaselineState;
  readySeen: boolean;
  endRequest: 'pivot' | 'abort' | null;
  refusals: number;
  error: string | null;
}

export function createBaselineJob(): BaselineJob {
  return { state: 'mirroring', readySeen: false, endRequest: null, refusals: 0, error: null };
}

export function step(job: BaselineJob, event: BlockCopyJobEvent): void {
  switch (job.state) {
    case 'mirroring':
      if (event.type === 'HV.READY') {
        job.state = 'ready';
        job.readySeen = true;
      } else if (event.type === 'PIVOT') job.refusals++;
      else if (event.type === 'ABORT') {
        job.state = 'finishing';
        job.endRequest = 'abort';
      } else if (event.type === 'HV.CONCLUDED') {
        job.state = 'failed';
        job.error = event.error;
      }
      return;
    case 'ready':
      if (event.type === 'PIVOT') {
        job.state = 'pivoting';
        job.endRequest = 'pivot';
      } else if (event.type === 'ABORT') {
        job.state = 'finishing';
        job.endRequest = 'abort';
      }
      return;
    case 'pivoting':
      if (event.type === 'HV.CONCLUDED') job.state = event.error === null ? 'completed' : 'failed';
      else if (event.type === 'PIVOT' || event.type === 'ABORT') job.refusals++;
      return;
    default:
      return;
  }
}
