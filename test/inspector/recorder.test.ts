// The inspection recorder on a real engine run (simulator, virtual time): records are keyed by job,
// carry the chart's states in order, progress with estimates, and block-job events.
import { describe, expect, it } from 'vitest';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { VirtualClock } from '../../src/core/clock.js';
import { createEngine } from '../../src/engine/engine.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import type { JobResult } from '../../src/engine/job-runner.js';
import { InspectionRecorder } from '../../src/inspector/recorder.js';
import type { InspectionRecord, InspectorRecord, ProgressRecord } from '../../src/inspector/records.js';
import { parseJsonl, toJsonLine } from '../../src/inspector/records.js';

const MiB = 1024 * 1024;

async function recordedRun(): Promise<{ records: readonly InspectorRecord[]; results: JobResult[] }> {
  const clock = new VirtualClock();
  let time = 1_000_000;
  const recorder = new InspectionRecorder({ now: () => time++ });
  const hypervisor = new SimulatedHypervisor({ clock, copyRate: 256 * MiB });
  const engine = createEngine({ hypervisor, clock, pollIntervalMs: 200, inspect: recorder.inspect });
  recorder.attach(engine);
  // Two jobs one after the other on the same disk: a pivot, then an abort after ready.
  const first = (
    await engine.blockRebase('demo', 'vda', '/var/lib/blockcopy/copy.qcow2', 0, RebaseFlags.COPY)
  )._unsafeUnwrap();
  // Too early: refused by the chart (an emit action in the records).
  expect((await engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT))._unsafeUnwrapErr().code).toBe(
    'VIR_ERR_BLOCK_COPY_ACTIVE',
  );
  await clock.runUntil(() => first.state().startsWith('ready'));
  const pivoted = engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT);
  await clock.runUntil(() => first.state() === 'completed');
  (await pivoted)._unsafeUnwrap();
  const second = (
    await engine.blockRebase('demo', 'vda', '/var/lib/blockcopy/copy2.qcow2', 0, RebaseFlags.COPY)
  )._unsafeUnwrap();
  await clock.runUntil(() => second.state().startsWith('ready'));
  const aborted = engine.blockJobAbort('demo', 'vda', 0);
  await clock.runUntil(() => second.state() === 'canceled');
  (await aborted)._unsafeUnwrap();
  const results = [await first.result, await second.result];
  engine.close();
  await hypervisor.close();
  return { records: recorder.records(), results };
}

const rootStates = (records: readonly InspectorRecord[], jobId: string) => {
  const states: string[] = [];
  for (const r of records) {
    if (r.kind !== 'inspection' || r.jobId !== jobId || !r.root || r.type !== '@xstate.snapshot') continue;
    const state = r.snapshot?.state;
    if (state && states[states.length - 1] !== state) states.push(state);
  }
  return states;
};

describe('InspectionRecorder', () => {
  it('records each job under its job id, with the states the job went through', async () => {
    const { records, results } = await recordedRun();
    const [first, second] = results as [JobResult, JobResult];
    expect(first.outcome).toBe('completed');
    expect(second.outcome).toBe('canceled');
    for (const result of results) expect(rootStates(records, result.jobId)).toEqual(result.states);
    // Numbered in order, no gaps.
    expect(records.map((r) => (r.kind === 'header' ? 0 : r.seq))).toEqual(records.map((_, i) => i + 1));
    // The first records of a job (before its context existed) were held back, not lost.
    const firstOfJob = records.find((r) => r.kind === 'inspection' && r.jobId === first.jobId) as InspectionRecord;
    expect(firstOfJob).toMatchObject({ type: '@xstate.actor', root: true });
  });

  it('records invocations, events, transitions, actions and contexts', async () => {
    const { records, results } = await recordedRun();
    const jobId = results[0]!.jobId;
    const mine = records.filter((r): r is InspectionRecord => r.kind === 'inspection' && r.jobId === jobId);
    expect(mine.filter((r) => r.type === '@xstate.actor' && !r.root).map((r) => r.src)).toEqual([
      'inspectFacts',
      'prepareDestination',
      'startMirror',
      'completeJob',
      'confirmPivot',
      'finishJob',
    ]);
    const events = mine
      .filter((r) => r.type === '@xstate.event' && r.root)
      .map((r) => (r.event as { type: string }).type);
    expect(events).toContain('HV.READY');
    expect(events).toContain('PIVOT');
    const steps = mine.filter((r) => r.type === '@xstate.microstep' && r.transitions!.length > 0);
    expect(steps.flatMap((r) => r.transitions!.map((t) => `${t.source}->${t.targets.join(',')}`))).toEqual(
      expect.arrayContaining(['starting->mirroring', 'ready->pivoting', 'settled->completed']),
    );
    const emitted = mine.filter((r) => r.type === '@xstate.action' && r.action?.type === 'xstate.emit');
    expect(emitted.map((r) => r.action!.params)).toEqual([
      { event: expect.objectContaining({ type: 'refused', request: 'PIVOT' }) },
    ]);
    // Context goes out when it changed, not with every snapshot.
    const withContext = mine.filter((r) => r.snapshot?.context !== undefined && r.root);
    const rootSnapshots = mine.filter((r) => r.snapshot !== undefined && r.root);
    expect(withContext.length).toBeGreaterThan(2);
    expect(withContext.length).toBeLessThan(rootSnapshots.length);
    expect(withContext[0]!.snapshot!.context).toMatchObject({ jobId, request: { domain: 'demo', disk: 'vda' } });
    expect(withContext[withContext.length - 1]!.snapshot!.context).toMatchObject({
      outcome: 'completed',
      pivoted: true,
    });
  });

  it('records progress with estimates and the block-job events', async () => {
    const { records, results } = await recordedRun();
    const jobId = results[0]!.jobId;
    const progress = records.filter((r): r is ProgressRecord => r.kind === 'progress' && r.jobId === jobId);
    expect(progress.length).toBeGreaterThan(3);
    const last = progress[progress.length - 1]!;
    expect(last.cur).toBe(last.end);
    expect(last.end).toBeGreaterThan(0);
    expect(progress.some((p) => p.rate !== null && p.rate > 100 * MiB && p.rate < 400 * MiB)).toBe(true);
    expect(progress.some((p) => p.etaMs !== null && p.etaMs > 0)).toBe(true);
    const jobEvents = records.filter((r) => r.kind === 'job-event');
    expect(jobEvents.map((r) => r.kind === 'job-event' && [r.jobId === jobId, r.status])).toEqual([
      [true, 'READY'],
      [true, 'COMPLETED'],
      [false, 'READY'],
      [false, 'CANCELED'],
    ]);
  });

  it('exports as JSON Lines that load back into another recorder unchanged', async () => {
    const { records } = await recordedRun();
    const text = records.map(toJsonLine).join('');
    const parsed = parseJsonl(text)._unsafeUnwrap();
    expect(parsed).toEqual(JSON.parse(JSON.stringify(records)));
    const replay = new InspectionRecorder();
    const seen: InspectorRecord[] = [];
    replay.subscribe((r) => seen.push(r));
    replay.load(parsed);
    expect(seen).toEqual(parsed);
    expect(replay.recordsAfter(parsed.length - 2)).toEqual(parsed.slice(-2));
  });

  it('keeps only the newest records in memory', () => {
    const recorder = new InspectionRecorder({ capacity: 3 });
    recorder.load(
      [1, 2, 3, 4, 5].map((seq) => ({
        kind: 'progress' as const,
        seq,
        time: seq,
        jobId: 'j',
        cur: seq,
        end: 10,
        speed: 0,
        rate: null,
        etaMs: null,
      })),
    );
    expect(recorder.records().map((r) => (r.kind === 'progress' ? r.cur : 0))).toEqual([3, 4, 5]);
  });

  it('records a block pull: its chart states, progress and its PULL event', async () => {
    const clock = new VirtualClock();
    let time = 1_000_000;
    const recorder = new InspectionRecorder({ now: () => time++ });
    const hypervisor = new SimulatedHypervisor({ clock, copyRate: 256 * MiB });
    const engine = createEngine({ hypervisor, clock, pollIntervalMs: 200, inspect: recorder.inspect });
    recorder.attach(engine);
    const job = (await engine.blockPull('demo', 'vda', 0, 0))._unsafeUnwrap();
    await clock.runUntil(() => job.state() === 'completed');
    const result = await job.result;
    engine.close();
    await hypervisor.close();
    const records = recorder.records();
    expect(rootStates(records, job.jobId)).toEqual(result.states);
    expect(result.states).toContain('streaming.running');
    const context = records.find(
      (r) => r.kind === 'inspection' && r.jobId === job.jobId && r.root && r.snapshot?.context !== undefined,
    ) as InspectionRecord;
    expect(context.snapshot!.context).toMatchObject({ request: { api: 'virDomainBlockPull', base: null } });
    expect(records.some((r) => r.kind === 'progress' && r.jobId === job.jobId && r.cur > 0)).toBe(true);
    expect(records.filter((r) => r.kind === 'job-event').map((r) => r.kind === 'job-event' && r.status)).toEqual([
      'COMPLETED',
    ]);
  });
});
