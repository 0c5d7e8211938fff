/**
 * Benchmark part 1: the job statechart (XState actors) against the plain transition function of
 * bench/lifecycle-baseline.ts, with N concurrent jobs, in the same run. Reports events per second
 * through each and heap bytes per live job, and the ratios.
 */
import { createActor, fromPromise } from 'xstate';
import { blockCopyJobMachine } from '../machines/block-copy-job.js';
import type { BlockCopyJobEvent } from '../machines/events.js';
import { RebaseFlags } from '../src/core/flags.js';
import type { CopyFacts } from '../src/core/plan.js';
import { validateRebase } from '../src/core/validate.js';
import { createBaselineJob, step } from './lifecycle-baseline.js';
import { heapUsed } from './heap.js';

const GiB = 1024 ** 3;
const facts: CopyFacts = {
  domain: { name: 'demo', running: true, persistent: false, disks: ['vda'] },
  disk: {
    domain: 'demo',
    disk: 'vda',
    chain: [{ path: '/images/vda.qcow2', format: 'qcow2', virtualSize: GiB, backing: null }],
  },
  diskBusy: false,
  destination: { exists: false },
};
const request = validateRebase({
  domain: 'demo',
  disk: 'vda',
  base: '/images/copy.qcow2',
  bandwidth: 0,
  flags: RebaseFlags.COPY,
})._unsafeUnwrap();

/** Instant IO, so that only the chart is measured. */
const machine = blockCopyJobMachine.provide({
  actors: {
    inspectFacts: fromPromise(async () => facts),
    prepareDestination: fromPromise(async () => ({ created: true as boolean })),
    startMirror: fromPromise(async () => undefined),
    completeJob: fromPromise(async () => undefined),
    cancelJob: fromPromise(async () => undefined),
    confirmPivot: fromPromise(async () => true),
    finishJob: fromPromise(async () => undefined),
  },
});

/** What a polling engine feeds a job between start and pivot: mostly repeats. */
export const LIFECYCLE: readonly BlockCopyJobEvent[] = [
  { type: 'HV.RUNNING' },
  { type: 'HV.RUNNING' },
  { type: 'PIVOT' },
  { type: 'HV.PAUSED', reason: 'internal' },
  { type: 'HV.RUNNING' },
  { type: 'HV.RUNNING' },
  { type: 'HV.READY' },
  { type: 'HV.READY' },
];

/** What every later poll of a ready job repeats: nothing new. */
export const POLL_REPEAT: readonly BlockCopyJobEvent[] = [{ type: 'HV.READY' }, { type: 'HV.RUNNING' }];

/** Per job: the lifecycle once, then `rounds` polls that repeat what is already known. */
export function feed(rounds: number): BlockCopyJobEvent[] {
  const events = [...LIFECYCLE];
  for (let r = 0; r < rounds; r++) events.push(...POLL_REPEAT);
  return events;
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

export interface Row {
  readonly jobs: number;
  readonly chartEventsPerSecond: number;
  readonly baselineEventsPerSecond: number;
  readonly chartHeapBytesPerJob: number;
  readonly baselineHeapBytesPerJob: number;
}

export async function measure(jobs: number, rounds: number): Promise<Row> {
  // Chart: N live actors, each brought to mirroring, then fed the lifecycle `rounds` times.
  const before = heapUsed();
  const actors = Array.from({ length: jobs }, (_, i) =>
    createActor(machine, { input: { jobId: `job-${i}`, request } }).start(),
  );
  for (let i = 0; i < 1000 && !actors.every((a) => a.getSnapshot().matches('mirroring')); i++) await settle();
  const chartHeap = (heapUsed() - before) / jobs;
  const events = feed(rounds);
  let sent = 0;
  const t0 = performance.now();
  for (const actor of actors) {
    for (const event of events) {
      actor.send(event);
      sent++;
    }
  }
  const chartSeconds = (performance.now() - t0) / 1000;
  const notReady = actors.find((a) => !a.getSnapshot().matches('ready'));
  if (notReady)
    throw new Error(
      `chart job in ${JSON.stringify(notReady.getSnapshot().value)}, not ready: ${JSON.stringify(notReady.getSnapshot().context.error)}`,
    );
  for (const a of actors) a.stop();

  const beforeBaseline = heapUsed();
  const baseline = Array.from({ length: jobs }, createBaselineJob);
  const baselineHeap = (heapUsed() - beforeBaseline) / jobs;
  let baselineSent = 0;
  const t1 = performance.now();
  for (const job of baseline) {
    for (const event of events) {
      step(job, event);
      baselineSent++;
    }
  }
  const baselineSeconds = (performance.now() - t1) / 1000;
  if (!baseline.every((j) => j.state === 'ready')) throw new Error('baseline jobs did not reach ready');
  return {
    jobs,
    chartEventsPerSecond: sent / chartSeconds,
    baselineEventsPerSecond: baselineSent / baselineSeconds,
    chartHeapBytesPerJob: chartHeap,
    baselineHeapBytesPerJob: Math.max(baselineHeap, 1),
  };
}
