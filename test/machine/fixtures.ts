/**
 * Deterministic IO actors for testing the job machine alone: each resolves at once with a
 * configurable answer and records its calls, so tests see exactly which side effects the chart
 * asked for and in which state.
 */
import { createActor, fromPromise } from 'xstate';
import type { DestinationProbe } from '../../src/core/hypervisor-port.js';
import type { FinishInput } from '../../machines/block-copy-job.js';
import { blockCopyJobMachine } from '../../machines/block-copy-job.js';
import type { BlockCopyError } from '../../src/core/errors.js';
import { RebaseFlags } from '../../src/core/flags.js';
import type { CopyFacts, CopyPlan, CopyRequest } from '../../src/core/plan.js';
import { validateRebase } from '../../src/core/validate.js';

const GiB = 1024 ** 3;

export function seedFacts(destination: DestinationProbe = { exists: false }): CopyFacts {
  return {
    domain: { name: 'demo', running: true, persistent: false, disks: ['vda'] },
    disk: {
      domain: 'demo',
      disk: 'vda',
      chain: [
        {
          path: '/images/snap2.qcow2',
          format: 'qcow2',
          virtualSize: GiB,
          backing: { path: '/images/snap1.qcow2', format: 'qcow2' },
        },
        {
          path: '/images/snap1.qcow2',
          format: 'qcow2',
          virtualSize: GiB,
          backing: { path: '/images/base.qcow2', format: 'qcow2' },
        },
        { path: '/images/base.qcow2', format: 'qcow2', virtualSize: GiB, backing: null },
      ],
    },
    diskBusy: false,
    destination,
  };
}

export function request(flags: number = RebaseFlags.COPY, destination = '/images/copy.qcow2'): CopyRequest {
  return validateRebase({ domain: 'demo', disk: 'vda', base: destination, bandwidth: 0, flags })._unsafeUnwrap();
}

export interface Calls {
  prepare: CopyPlan[];
  start: string[];
  complete: string[];
  cancel: { jobId: string; force: boolean }[];
  confirm: string[];
  finish: FinishInput[];
  /** State the actor was in when completeJob was invoked. */
  completeFrom: string[];
}

export interface FakeIo {
  facts?: CopyFacts;
  failPrepare?: BlockCopyError;
  failStart?: BlockCopyError;
  failComplete?: BlockCopyError;
  failCancel?: BlockCopyError;
  pivotLands?: boolean;
}

export function startJob(io: FakeIo = {}, req: CopyRequest = request()) {
  const calls: Calls = { prepare: [], start: [], complete: [], cancel: [], confirm: [], finish: [], completeFrom: [] };
  const states: string[] = [];
  const machine = blockCopyJobMachine.provide({
    actors: {
      inspectFacts: fromPromise(async () => io.facts ?? seedFacts()),
      prepareDestination: fromPromise(async ({ input }) => {
        calls.prepare.push(input.plan);
        if (io.failPrepare) throw io.failPrepare;
        return { created: input.plan.destinationAction === 'create' };
      }),
      startMirror: fromPromise(async ({ input }) => {
        calls.start.push(input.jobId);
        if (io.failStart) throw io.failStart;
        return undefined;
      }),
      completeJob: fromPromise(async ({ input }) => {
        calls.complete.push(input.jobId);
        // Observers may not have seen 'pivoting' yet when the invoke starts.
        calls.completeFrom.push(states.filter((st) => st !== '"pivoting"').at(-1) ?? '');
        if (io.failComplete) throw io.failComplete;
        return undefined;
      }),
      cancelJob: fromPromise(async ({ input }) => {
        calls.cancel.push(input);
        if (io.failCancel) throw io.failCancel;
        return undefined;
      }),
      confirmPivot: fromPromise(async ({ input }) => {
        calls.confirm.push(input.jobId);
        return io.pivotLands ?? true;
      }),
      finishJob: fromPromise(async ({ input }) => {
        calls.finish.push(input);
        return undefined;
      }),
    },
  });
  const actor = createActor(machine, { input: { jobId: 'job-1', request: req } });
  actor.subscribe((s) => {
    const name = JSON.stringify(s.value);
    if (states[states.length - 1] !== name) states.push(name);
  });
  actor.start();
  return { actor, calls, states };
}

/** Lets the promise actors settle. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}
