/**
 * The conformance table: scenarios written once against the HypervisorPort, each asserting what
 * an engine can observe (event order and kinds, job statuses, error classes and QEMU's exact
 * words, files created and removed, the image the guest reads after a pivot or an abort). Every
 * adapter runs the same table through its driver (driver.ts): the simulator on a virtual clock,
 * the QMP adapter on a qemu-storage-daemon and on qemu-system-x86_64 VMs. A scenario never asks
 * which adapter it runs on, so a difference is a failure on one of them.
 */
import { expect } from 'vitest';
import type { ResultAsync } from 'neverthrow';
import type {
  HypervisorError,
  HypervisorEvent,
  HypervisorJobInfo,
  ImageFormat,
  MirrorSpec,
  StreamSpec,
} from '../../src/core/hypervisor-port.js';
import { namesOf, resolveDisk } from '../../src/core/disk-identity.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { createEngine, type BlockCopyEngine } from '../../src/engine/engine.js';
import { PIVOTED_STATES } from '../states.js';
import type { ConformanceDomain } from './driver.js';

export const MiB = 1024 * 1024;

/** The largest double not above LLONG_MAX (QEMU's speed is an int64): the largest legal bandwidth. */
export const MAX_SPEED = 9223372036854774784;

/** st_size of an empty 64 MiB qcow2 made by `qemu-img create` (64 KiB clusters, one L1 entry). */
export const EMPTY_QCOW2_64M_BYTES = 196_616;

export interface Scenario {
  readonly name: string;
  run(d: ConformanceDomain): Promise<void>;
}

// ---------------------------------------------------------------- helpers

/** A job's events, compact: JSC statuses by name, errors as job-error:<action>, others by kind. */
export function trail(d: ConformanceDomain, jobId: string): string[] {
  return d.events.flatMap((e) => {
    if (!('jobId' in e) || e.jobId !== jobId) return [];
    return [e.kind === 'job-status' ? e.status : e.kind === 'job-error' ? `job-error:${e.action}` : e.kind];
  });
}

/** Events that are not about a job (connection, hypervisor). */
function others(d: ConformanceDomain): string[] {
  return d.events.filter((e) => !('jobId' in e)).map((e) => e.kind);
}

function eventOf<K extends HypervisorEvent['kind']>(
  d: ConformanceDomain,
  jobId: string,
  kind: K,
): Extract<HypervisorEvent, { kind: K }> | undefined {
  return d.events.find((e) => e.kind === kind && 'jobId' in e && e.jobId === jobId) as
    Extract<HypervisorEvent, { kind: K }> | undefined;
}

async function must<T>(what: string, r: ResultAsync<T, HypervisorError>): Promise<T> {
  const v = await r;
  if (v.isErr()) throw new Error(`${what}: ${v.error.kind} ${v.error.errorClass ?? ''} ${v.error.desc}`);
  return v.value;
}

async function refused(what: string, r: ResultAsync<unknown, HypervisorError>): Promise<HypervisorError> {
  const v = await r;
  if (v.isOk()) throw new Error(`${what}: accepted, expected a refusal`);
  return v.error;
}

/** A refusal as QEMU words it (GenericError unless said otherwise). */
function qmp(desc: string, errorClass = 'GenericError') {
  return { kind: 'qmp', errorClass, desc };
}

function spec(d: ConformanceDomain, jobId: string, path: string, o: Partial<MirrorSpec> = {}): MirrorSpec {
  return {
    jobId,
    domain: d.domain,
    disk: d.disk,
    destination: { path, format: 'qcow2' },
    destinationBacking: null,
    sync: 'full',
    speed: 0,
    onTargetError: 'report',
    onSourceError: 'report',
    copyMode: 'background',
    ...o,
  };
}

async function create(
  d: ConformanceDomain,
  name: string,
  format: ImageFormat = 'qcow2',
  o: { backing?: boolean; size?: number } = {},
): Promise<string> {
  const path = `${d.dir}/${name}`;
  await must(
    'createDestination',
    d.port.createDestination({
      path,
      format,
      virtualSize: o.size ?? d.size,
      backing: o.backing === true ? { path: d.paths.snap1, format: 'qcow2' } : null,
    }),
  );
  return path;
}

function untilTrail(d: ConformanceDomain, jobId: string, item: string): Promise<void> {
  return d.until(`${jobId} emits ${item}`, () => trail(d, jobId).includes(item));
}

function untilJob(d: ConformanceDomain, jobId: string, done: (j: HypervisorJobInfo) => boolean): Promise<void> {
  return d.until(`${jobId} reaches a state`, async () => {
    const j = await d.port.queryJob(jobId);
    return j.isOk() && j.value !== null && done(j.value);
  });
}

async function job(d: ConformanceDomain, jobId: string): Promise<HypervisorJobInfo | null> {
  return must('queryJob', d.port.queryJob(jobId));
}

async function chainPaths(d: ConformanceDomain): Promise<string[]> {
  const info = await must('describeDisk', d.port.describeDisk(d.domain, d.disk));
  return (info?.chain ?? []).map((i) => i.path);
}

async function guestReads(d: ConformanceDomain): Promise<string> {
  return must('activeImage', d.port.activeImage(d.domain, d.disk));
}

/** Force-cancels and dismisses a job so the domain is clean (scenario tail). */
async function discard(d: ConformanceDomain, jobId: string): Promise<void> {
  await must('cancelJob', d.port.cancelJob(jobId, true));
  await untilTrail(d, jobId, 'concluded');
  await must('dismissJob', d.port.dismissJob(jobId));
}

const HAPPY = ['created', 'running', 'ready', 'job-ready', 'waiting', 'pending', 'job-completed', 'concluded'];

/** Start → READY → complete → concluded → dismissed; returns the destination. */
async function pivot(d: ConformanceDomain, s: MirrorSpec, readyLen: number): Promise<void> {
  await must('startMirror', d.port.startMirror(s));
  // Events before the reply (§0.1): created and running are out by the time the call returns.
  expect(trail(d, s.jobId).slice(0, 2)).toEqual(['created', 'running']);
  await untilTrail(d, s.jobId, 'job-ready');
  expect(eventOf(d, s.jobId, 'job-ready')).toMatchObject({ len: readyLen, offset: readyLen });
  expect(await job(d, s.jobId)).toMatchObject({
    status: 'ready',
    ready: true,
    paused: false,
    offset: readyLen,
    len: readyLen,
    ioStatus: 'ok',
  });
  await must('completeJob', d.port.completeJob(s.jobId));
  await untilTrail(d, s.jobId, 'concluded');
  expect(trail(d, s.jobId)).toEqual(HAPPY);
  expect(eventOf(d, s.jobId, 'job-completed')?.error).toBeUndefined();
  const concluded = await job(d, s.jobId);
  expect(concluded).toMatchObject({ status: 'concluded' });
  expect(concluded?.error).toBeUndefined();
  expect(await guestReads(d)).toBe(s.destination.path);
  // Idempotent: completing a pivoted job again is fine; cancelling it is refused (it pivoted).
  await must('completeJob again', d.port.completeJob(s.jobId));
  expect(await refused('cancel a pivoted job', d.port.cancelJob(s.jobId, false))).toMatchObject(
    qmp(`Job '${s.jobId}' in state 'concluded' cannot accept command verb 'cancel'`),
  );
  await must('dismissJob', d.port.dismissJob(s.jobId));
  expect(trail(d, s.jobId)).toEqual([...HAPPY, 'null']);
  expect(await job(d, s.jobId)).toBeNull();
}

async function listed(d: ConformanceDomain) {
  const disks = await must('listDisks', d.port.listDisks(d.domain));
  expect(disks?.map((x) => x.disk)).toEqual([d.disk]);
  return disks![0]!;
}

/** The engine on top of the port, its job ids fixed so the scenario can query the port. */
function engineOn(d: ConformanceDomain, jobId: string): { engine: BlockCopyEngine; statuses: string[] } {
  const engine = createEngine({ hypervisor: d.port, clock: d.clock, pollIntervalMs: 100, jobId: () => jobId });
  const statuses: string[] = [];
  engine.events$.subscribe((e) => statuses.push(e.status));
  return { engine, statuses };
}

/** Runs an engine call that returns only once the job has ended, letting time pass meanwhile. */
async function whileTimePasses<T>(d: ConformanceDomain, what: string, call: PromiseLike<T>): Promise<T> {
  let done = false;
  const settled = Promise.resolve(call).then((v) => {
    done = true;
    return v;
  });
  await d.until(what, () => done);
  return settled;
}

// ---------------------------------------------------------------- the table

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'listDisks: the disk by every name, its chain and any job; after a pivot the destination is the source',
    async run(d) {
      const before = await listed(d);
      expect(before).toMatchObject({ domain: d.domain, ...d.names, source: d.paths.snap2, job: null });
      expect(before.chain.map((i) => [i.path, i.format, i.virtualSize])).toEqual([
        [d.paths.snap2, 'qcow2', d.size],
        [d.paths.snap1, 'qcow2', d.size],
        [d.paths.base, 'qcow2', d.size],
      ]);
      // Every name resolves to this one disk; a backing node is no disk.
      for (const name of namesOf(before)) expect(resolveDisk([before], name)._unsafeUnwrap().disk).toBe(d.disk);
      expect(resolveDisk([before], d.paths.snap1).isErr()).toBe(true);
      expect(await must('listDisks of no domain', d.port.listDisks('no-such-domain'))).toBeNull();

      const dest = await create(d, 'listed.qcow2');
      await must('startMirror', d.port.startMirror(spec(d, 'c-list', dest, { speed: MiB })));
      // With its progress, read in the same call (QEMU's query-block-jobs): at most the disk's size.
      const job = (await listed(d)).job;
      expect(job).toEqual({ jobId: 'c-list', type: 'mirror', status: 'running', len: d.size, offset: job?.offset });
      expect(job?.offset).toBeGreaterThanOrEqual(0);
      expect(job?.offset).toBeLessThanOrEqual(d.size);
      await must('setJobSpeed', d.port.setJobSpeed('c-list', 0));
      await untilTrail(d, 'c-list', 'job-ready');
      await must('completeJob', d.port.completeJob('c-list'));
      await untilTrail(d, 'c-list', 'concluded');
      const after = await listed(d);
      expect(after).toMatchObject({ disk: d.disk, source: dest });
      expect(after.chain.map((i) => i.path)).toEqual([dest]);
      await must('dismissJob', d.port.dismissJob('c-list'));
      expect((await listed(d)).job).toBeNull();
    },
  },
  {
    name: 'full copy to a new qcow2: start, ready (len = virtual size), pivot, dismiss',
    async run(d) {
      const dest = await create(d, 'full.qcow2');
      expect(await must('probe', d.port.probeDestination(dest))).toEqual({
        exists: true,
        kind: 'file',
        size: EMPTY_QCOW2_64M_BYTES,
        empty: true,
        image: { path: dest, format: 'qcow2', virtualSize: d.size, backing: null },
      });
      // Creating the same image again is a retry, not an overwrite.
      await must(
        'createDestination again',
        d.port.createDestination({ path: dest, format: 'qcow2', virtualSize: d.size, backing: null }),
      );
      await pivot(d, spec(d, 'c-full', dest), d.size);
      expect(await chainPaths(d)).toEqual([dest]);
      await must('dismissJob again', d.port.dismissJob('c-full'));
      expect(await refused('completeJob after dismiss', d.port.completeJob('c-full'))).toMatchObject(
        qmp("Block job 'c-full' not found", 'DeviceNotActive'),
      );
      expect(await d.fileExists(dest)).toBe(true);
    },
  },
  {
    name: 'shallow copy (sync=top): READY after the top layer only, the guest keeps snap1 <- base below',
    async run(d) {
      const dest = await create(d, 'top.qcow2', 'qcow2', { backing: true });
      const s = spec(d, 'c-top', dest, { sync: 'top', destinationBacking: { path: d.paths.snap1, format: 'qcow2' } });
      await pivot(d, s, d.topLayerBytes);
      expect(await chainPaths(d)).toEqual([dest, d.paths.snap1, d.paths.base]);
    },
  },
  {
    name: 'full copy to a sparse raw file (st_size = virtual size, no data yet)',
    async run(d) {
      const dest = await create(d, 'full.raw', 'raw');
      expect(await must('probe', d.port.probeDestination(dest))).toEqual({
        exists: true,
        kind: 'file',
        size: d.size,
        empty: true,
        image: { path: dest, format: 'raw', virtualSize: d.size, backing: null },
      });
      await pivot(d, spec(d, 'c-raw', dest, { destination: { path: dest, format: 'raw' } }), d.size);
      expect(await chainPaths(d)).toEqual([dest]);
    },
  },
  {
    name: 'soft abort after READY: completes without a pivot; the destination can be removed',
    async run(d) {
      const dest = await create(d, 'soft.qcow2');
      await must('startMirror', d.port.startMirror(spec(d, 'c-soft', dest)));
      await untilTrail(d, 'c-soft', 'job-ready');
      await must('cancelJob', d.port.cancelJob('c-soft', false));
      await untilTrail(d, 'c-soft', 'concluded');
      expect(trail(d, 'c-soft')).toEqual(HAPPY);
      expect(eventOf(d, 'c-soft', 'job-completed')?.error).toBeUndefined();
      expect(await guestReads(d)).toBe(d.paths.snap2);
      expect(await chainPaths(d)).toEqual([d.paths.snap2, d.paths.snap1, d.paths.base]);
      await must('dismissJob', d.port.dismissJob('c-soft'));
      await must('removeDestination', d.port.removeDestination(dest));
      expect(await d.fileExists(dest)).toBe(false);
      await must('removeDestination again', d.port.removeDestination(dest));
    },
  },
  {
    name: 'hard abort after READY: cancelled, no pivot, "Operation canceled" in the job',
    async run(d) {
      const dest = await create(d, 'hard.qcow2');
      await must('startMirror', d.port.startMirror(spec(d, 'c-hard', dest)));
      await untilTrail(d, 'c-hard', 'job-ready');
      await must('cancelJob', d.port.cancelJob('c-hard', true));
      await untilTrail(d, 'c-hard', 'concluded');
      expect(trail(d, 'c-hard')).toEqual([
        'created',
        'running',
        'ready',
        'job-ready',
        'aborting',
        'job-cancelled',
        'concluded',
      ]);
      expect(await job(d, 'c-hard')).toMatchObject({ status: 'concluded', error: 'Operation canceled' });
      expect(await guestReads(d)).toBe(d.paths.snap2);
      // Idempotent: cancelling a job that is already cancelled is fine.
      await must('cancelJob again', d.port.cancelJob('c-hard', true));
      await must('dismissJob', d.port.dismissJob('c-hard'));
    },
  },
  {
    name: 'any cancel before READY is a force cancel',
    async run(d) {
      const dest = await create(d, 'early.qcow2');
      await must('startMirror', d.port.startMirror(spec(d, 'c-early', dest, { speed: MiB })));
      expect(await job(d, 'c-early')).toMatchObject({ status: 'running', len: d.size, speed: MiB, ready: false });
      await must('cancelJob', d.port.cancelJob('c-early', false));
      await untilTrail(d, 'c-early', 'concluded');
      expect(trail(d, 'c-early')).toEqual(['created', 'running', 'aborting', 'job-cancelled', 'concluded']);
      expect(await job(d, 'c-early')).toMatchObject({ status: 'concluded', error: 'Operation canceled' });
      expect(await guestReads(d)).toBe(d.paths.snap2);
      await must('dismissJob', d.port.dismissJob('c-early'));
    },
  },
  {
    name: "verbs in the wrong state are refused with QEMU's words; pause and resume are idempotent",
    async run(d) {
      const dest = await create(d, 'verbs.qcow2');
      await must('startMirror', d.port.startMirror(spec(d, 'c-verbs', dest, { speed: MiB })));
      expect(await refused('complete while running', d.port.completeJob('c-verbs'))).toMatchObject(
        qmp("Job 'c-verbs' in state 'running' cannot accept command verb 'complete'"),
      );
      await must('pauseJob', d.port.pauseJob('c-verbs'));
      await untilTrail(d, 'c-verbs', 'paused');
      expect(await job(d, 'c-verbs')).toMatchObject({ status: 'paused', paused: true, ready: false });
      await must('pauseJob again', d.port.pauseJob('c-verbs'));
      expect(await refused('complete while paused', d.port.completeJob('c-verbs'))).toMatchObject(
        qmp("Job 'c-verbs' in state 'paused' cannot accept command verb 'complete'"),
      );
      expect(await refused('soft cancel while paused', d.port.cancelJob('c-verbs', false))).toMatchObject(
        qmp("The block job for device 'c-verbs' is currently paused"),
      );
      await must('resumeJob', d.port.resumeJob('c-verbs'));
      await must('resumeJob again', d.port.resumeJob('c-verbs'));
      expect(trail(d, 'c-verbs')).toEqual(['created', 'running', 'paused', 'running']);
      expect(await refused('negative speed', d.port.setJobSpeed('c-verbs', -1))).toMatchObject(
        qmp("Parameter 'speed' expects a non-negative value"),
      );
      for (const speed of [2 ** 63, 1.5])
        expect(await refused(`speed ${speed}`, d.port.setJobSpeed('c-verbs', speed))).toMatchObject(
          qmp("Invalid parameter type for 'speed', expected: integer"),
        );
      await must('largest legal speed', d.port.setJobSpeed('c-verbs', MAX_SPEED));
      expect(await job(d, 'c-verbs')).toMatchObject({ speed: MAX_SPEED });
      await must('setJobSpeed back', d.port.setJobSpeed('c-verbs', MiB));
      await discard(d, 'c-verbs');

      // A job nobody knows: block-job-* say DeviceNotActive; cancel and dismiss have nothing to do.
      for (const [what, call] of [
        ['completeJob', d.port.completeJob('nojob')],
        ['pauseJob', d.port.pauseJob('nojob')],
        ['resumeJob', d.port.resumeJob('nojob')],
        ['setJobSpeed', d.port.setJobSpeed('nojob', 0)],
      ] as const)
        expect(await refused(what, call)).toMatchObject(qmp("Block job 'nojob' not found", 'DeviceNotActive'));
      await must('cancel unknown', d.port.cancelJob('nojob', false));
      await must('dismiss unknown', d.port.dismissJob('nojob'));
      expect(await job(d, 'nojob')).toBeNull();
    },
  },
  {
    name: 'refusals at start (job id, speed, missing destination, busy disk) start nothing and change nothing',
    async run(d) {
      const dest = await create(d, 'refused.qcow2');
      const cases: [string, MirrorSpec, ReturnType<typeof qmp>][] = [
        ['job id with #', spec(d, 'copy#1', dest), qmp("Invalid job ID 'copy#1'")],
        [
          'negative speed',
          spec(d, 'c-neg', dest, { speed: -1 }),
          qmp("Parameter 'speed' expects a non-negative value"),
        ],
        [
          'speed 2^63',
          spec(d, 'c-big', dest, { speed: 2 ** 63 }),
          qmp("Invalid parameter type for 'speed', expected: integer"),
        ],
        [
          'fractional speed',
          spec(d, 'c-frac', dest, { speed: 1.5 }),
          qmp("Invalid parameter type for 'speed', expected: integer"),
        ],
        [
          'granularity 256',
          spec(d, 'c-g256', dest, { granularity: 256 }),
          qmp("Parameter 'granularity' expects a value in range [512B, 64MB]"),
        ],
        [
          'granularity 128 MiB',
          spec(d, 'c-g128m', dest, { granularity: 128 * MiB }),
          qmp("Parameter 'granularity' expects a value in range [512B, 64MB]"),
        ],
        [
          'granularity 1000',
          spec(d, 'c-g1000', dest, { granularity: 1000 }),
          qmp("Parameter 'granularity' expects a power of 2"),
        ],
        ['buf-size -1', spec(d, 'c-buf', dest, { bufSize: -1 }), qmp("Invalid parameter 'buf-size'")],
        [
          'destination never created',
          spec(d, 'c-nofile', `${d.dir}/never.qcow2`),
          qmp(`Could not open '${d.dir}/never.qcow2': No such file or directory`),
        ],
      ];
      for (const [what, s, want] of cases) {
        expect(await refused(what, d.port.startMirror(s)), what).toMatchObject(want);
        expect(await job(d, s.jobId)).toBeNull();
      }
      // QEMU creates the job before block_job_create's speed check fails: created, then null.
      expect(d.events.filter((e) => 'jobId' in e)).toEqual([
        { kind: 'job-status', jobId: 'c-neg', status: 'created' },
        { kind: 'job-status', jobId: 'c-neg', status: 'null' },
      ]);
      expect(await guestReads(d)).toBe(d.paths.snap2);

      // One job per disk: a second mirror of a busy disk is refused the way QEMU words it.
      await must('startMirror', d.port.startMirror(spec(d, 'c-first', dest, { speed: MiB })));
      const other = await create(d, 'second.qcow2');
      expect(await refused('second job', d.port.startMirror(spec(d, 'c-second', other)))).toMatchObject(
        qmp('Need a root block node'),
      );
      expect(await job(d, 'c-second')).toBeNull();
      // The refused job's destination is not held by anything: it can be removed.
      await must('removeDestination', d.port.removeDestination(other));
      expect(await d.fileExists(other)).toBe(false);
      await discard(d, 'c-first');
    },
  },
  {
    name: 'the largest legal bandwidth (LLONG_MAX as a double) is accepted and reported back, with granularity, buf-size and write-blocking',
    async run(d) {
      const dest = await create(d, 'fast.qcow2');
      const tuned = { speed: MAX_SPEED, granularity: 64 * MiB, bufSize: 1, copyMode: 'write-blocking' } as const;
      await must('startMirror', d.port.startMirror(spec(d, 'c-max', dest, tuned)));
      expect(await job(d, 'c-max')).toMatchObject({ speed: MAX_SPEED, len: d.size });
      await untilTrail(d, 'c-max', 'job-ready');
      expect(eventOf(d, 'c-max', 'job-ready')).toMatchObject({ speed: MAX_SPEED, len: d.size });
      await discard(d, 'c-max');
    },
  },
  {
    name: 'a target of another size is accepted, then the job fails at once',
    async run(d) {
      const dest = await create(d, 'small.qcow2', 'qcow2', { size: d.size / 2 });
      await must('startMirror', d.port.startMirror(spec(d, 'c-size', dest)));
      await untilTrail(d, 'c-size', 'concluded');
      expect(trail(d, 'c-size')).toEqual(['created', 'running', 'aborting', 'job-completed', 'concluded']);
      const error = 'Source and target image have different sizes';
      expect(eventOf(d, 'c-size', 'job-completed')).toMatchObject({ error });
      expect(await job(d, 'c-size')).toMatchObject({ status: 'concluded', error });
      expect(await guestReads(d)).toBe(d.paths.snap2);
      await must('dismissJob', d.port.dismissJob('c-size'));
    },
  },
  {
    name: 'I/O error policy report: the job fails with the errno text, no pivot',
    async run(d) {
      const dest = await create(d, 'eio.qcow2');
      await d.injectTargetError({ jobId: 'c-report', path: dest, format: 'qcow2', errno: 'EIO', once: true });
      await must('startMirror', d.port.startMirror(spec(d, 'c-report', dest)));
      await untilTrail(d, 'c-report', 'concluded');
      expect(trail(d, 'c-report')).toEqual([
        'created',
        'running',
        'job-error:report',
        'aborting',
        'job-completed',
        'concluded',
      ]);
      expect(eventOf(d, 'c-report', 'job-error')).toMatchObject({ operation: 'write' });
      expect(eventOf(d, 'c-report', 'job-completed')).toMatchObject({ error: 'Input/output error' });
      expect(await job(d, 'c-report')).toMatchObject({ status: 'concluded', error: 'Input/output error' });
      expect(await guestReads(d)).toBe(d.paths.snap2);
      await must('dismissJob', d.port.dismissJob('c-report'));
    },
  },
  {
    name: 'I/O error policy stop: paused with io-status failed, resume retries, then pivot',
    async run(d) {
      const dest = await create(d, 'stop.qcow2');
      await d.injectTargetError({ jobId: 'c-stop', path: dest, format: 'qcow2', errno: 'EIO', once: true });
      await must('startMirror', d.port.startMirror(spec(d, 'c-stop', dest, { onTargetError: 'stop' })));
      await untilTrail(d, 'c-stop', 'paused');
      expect(trail(d, 'c-stop')).toEqual(['created', 'running', 'job-error:stop', 'paused']);
      expect(await job(d, 'c-stop')).toMatchObject({ status: 'paused', paused: true, ioStatus: 'failed' });
      expect(await refused('soft cancel', d.port.cancelJob('c-stop', false))).toMatchObject(
        qmp("The block job for device 'c-stop' is currently paused"),
      );
      await must('resumeJob', d.port.resumeJob('c-stop'));
      await untilTrail(d, 'c-stop', 'job-ready');
      expect(await job(d, 'c-stop')).toMatchObject({ status: 'ready', ioStatus: 'ok', paused: false });
      await must('completeJob', d.port.completeJob('c-stop'));
      await untilTrail(d, 'c-stop', 'concluded');
      expect(trail(d, 'c-stop')).toEqual([
        'created',
        'running',
        'job-error:stop',
        'paused',
        'running',
        ...HAPPY.slice(2),
      ]);
      expect(await guestReads(d)).toBe(dest);
      await must('dismissJob', d.port.dismissJob('c-stop'));
    },
  },
  {
    name: 'I/O error policy enospc: stops on ENOSPC (io-status nospace), reports EIO',
    async run(d) {
      const full = await create(d, 'nospace.qcow2');
      await d.injectTargetError({ jobId: 'c-nospc', path: full, format: 'qcow2', errno: 'ENOSPC', once: true });
      await must('startMirror', d.port.startMirror(spec(d, 'c-nospc', full, { onTargetError: 'enospc' })));
      await untilTrail(d, 'c-nospc', 'paused');
      expect(trail(d, 'c-nospc')).toEqual(['created', 'running', 'job-error:stop', 'paused']);
      expect(await job(d, 'c-nospc')).toMatchObject({ status: 'paused', ioStatus: 'nospace' });
      await discard(d, 'c-nospc');
      // Force-cancelling an error-paused job resumes it to die (h4).
      expect(trail(d, 'c-nospc')).toEqual([
        'created',
        'running',
        'job-error:stop',
        'paused',
        'running',
        'aborting',
        'job-cancelled',
        'concluded',
        'null',
      ]);

      const eio = await create(d, 'eio.qcow2');
      await d.injectTargetError({ jobId: 'c-eio', path: eio, format: 'qcow2', errno: 'EIO', once: true });
      await must('startMirror', d.port.startMirror(spec(d, 'c-eio', eio, { onTargetError: 'enospc' })));
      await untilTrail(d, 'c-eio', 'concluded');
      expect(trail(d, 'c-eio')).toEqual([
        'created',
        'running',
        'job-error:report',
        'aborting',
        'job-completed',
        'concluded',
      ]);
      expect(await job(d, 'c-eio')).toMatchObject({ error: 'Input/output error' });
      await must('dismissJob', d.port.dismissJob('c-eio'));
    },
  },
  {
    name: 'I/O error policy ignore: the error is reported, the region retried, the copy goes on',
    async run(d) {
      const dest = await create(d, 'ignore.qcow2');
      await d.injectTargetError({ jobId: 'c-ign', path: dest, format: 'qcow2', errno: 'EIO', once: true });
      await must('startMirror', d.port.startMirror(spec(d, 'c-ign', dest, { onTargetError: 'ignore' })));
      await untilTrail(d, 'c-ign', 'job-ready');
      // QEMU's guarantees, exactly: created and running before the reply; blkdebug's `once` rule
      // fails one target write, whose BLOCK_JOB_ERROR (write, ignore) comes before READY, since
      // the mirror re-dirties the failed region and is ready only with none dirty and none in
      // flight; READY's two events last. The whole event list is printed if this ever differs.
      const seen = JSON.stringify(d.events);
      expect(trail(d, 'c-ign'), seen).toEqual(['created', 'running', 'job-error:ignore', 'ready', 'job-ready']);
      expect(eventOf(d, 'c-ign', 'job-error'), seen).toMatchObject({ operation: 'write', action: 'ignore' });
      await must('completeJob', d.port.completeJob('c-ign'));
      await untilTrail(d, 'c-ign', 'concluded');
      expect(await guestReads(d)).toBe(dest);
      await must('dismissJob', d.port.dismissJob('c-ign'));
    },
  },
  {
    name: 'guest writes after READY raise len and offset without an event; the pivot follows',
    async run(d) {
      const dest = await create(d, 'writes.qcow2');
      await must('startMirror', d.port.startMirror(spec(d, 'c-write', dest)));
      await untilTrail(d, 'c-write', 'job-ready');
      await d.guestWrite(0, 4 * MiB);
      const want = d.size + 4 * MiB;
      await untilJob(d, 'c-write', (j) => j.len === want && j.offset === want);
      expect(await job(d, 'c-write')).toMatchObject({ status: 'ready', ready: true });
      expect(trail(d, 'c-write')).toEqual(['created', 'running', 'ready', 'job-ready']);
      await must('completeJob', d.port.completeJob('c-write'));
      await untilTrail(d, 'c-write', 'concluded');
      expect(eventOf(d, 'c-write', 'job-completed')).toMatchObject({ len: want, offset: want });
      expect(await guestReads(d)).toBe(dest);
      await must('dismissJob', d.port.dismissJob('c-write'));
    },
  },
  {
    name: 'monitor connection lost and restored: calls fail meanwhile, the job survives',
    async run(d) {
      const dest = await create(d, 'reconnect.qcow2');
      await must('startMirror', d.port.startMirror(spec(d, 'c-conn', dest, { speed: MiB })));
      await d.disconnect();
      await d.until('connection-lost', () => others(d).includes('connection-lost'));
      expect(await refused('queryJob while disconnected', d.port.queryJob('c-conn'))).toMatchObject({
        kind: 'connection',
      });
      await d.reconnect();
      await d.until('connection-restored', () => others(d).includes('connection-restored'));
      expect(others(d)).toEqual(['connection-lost', 'connection-restored']);
      expect(await job(d, 'c-conn')).toMatchObject({ status: 'running', speed: MiB });
      // A retried start of the same job is a no-op.
      await must('startMirror retry', d.port.startMirror(spec(d, 'c-conn', dest, { speed: MiB })));
      await must('setJobSpeed', d.port.setJobSpeed('c-conn', 0));
      await untilJob(d, 'c-conn', (j) => j.ready);
      await must('completeJob', d.port.completeJob('c-conn'));
      await untilJob(d, 'c-conn', (j) => j.status === 'concluded');
      expect(await guestReads(d)).toBe(dest);
      await must('dismissJob', d.port.dismissJob('c-conn'));
    },
  },
  {
    name: 'the hypervisor is killed: connection lost, then gone; every call fails, local files stay',
    async run(d) {
      const dest = await create(d, 'killed.qcow2');
      await must('startMirror', d.port.startMirror(spec(d, 'c-kill', dest, { speed: MiB })));
      await d.kill();
      await d.until('hypervisor-gone', () => others(d).includes('hypervisor-gone'));
      expect(others(d)).toEqual(['connection-lost', 'hypervisor-gone']);
      expect(trail(d, 'c-kill')).toEqual(['created', 'running']);
      for (const [what, call] of [
        ['queryJob', d.port.queryJob('c-kill')],
        ['completeJob', d.port.completeJob('c-kill')],
        ['cancelJob', d.port.cancelJob('c-kill', true)],
        ['activeImage', d.port.activeImage(d.domain, d.disk)],
      ] as const)
        expect(await refused(what, call), what).toMatchObject({ kind: 'connection' });
      expect(await must('probe', d.port.probeDestination(dest))).toMatchObject({ exists: true, kind: 'file' });
      expect(await d.fileExists(dest)).toBe(true);
    },
  },
  {
    name: 'destination files: a missing directory is refused with nothing created; the disk image is never removed',
    async run(d) {
      const path = `${d.dir}/missing/dest.qcow2`;
      expect(
        await refused(
          'createDestination',
          d.port.createDestination({ path, format: 'qcow2', virtualSize: d.size, backing: null }),
        ),
      ).toEqual({
        kind: 'io',
        command: 'createDestination',
        desc: `Could not create '${path}': No such file or directory`,
      });
      expect(await d.fileExists(path)).toBe(false);
      expect(await d.fileExists(`${d.dir}/missing`)).toBe(false);
      // QEMU names the node (snap2, #block174, …) in its words: the class and the command are common.
      expect(await refused('remove the active image', d.port.removeDestination(d.paths.snap2))).toMatchObject({
        kind: 'qmp',
        command: 'blockdev-del',
        errorClass: 'GenericError',
      });
      expect(await d.fileExists(d.paths.snap2)).toBe(true);
      expect(await guestReads(d)).toBe(d.paths.snap2);
    },
  },
  {
    name: 'engine on top: blockRebase COPY, READY, synchronous pivot: COMPLETED, the guest reads the copy, no job left',
    async run(d) {
      const { engine, statuses } = engineOn(d, 'e-pivot');
      const dest = `${d.dir}/engine.qcow2`;
      const copy = (await engine.blockRebase(d.domain, d.disk, dest, 0, RebaseFlags.COPY))._unsafeUnwrap();
      expect(copy.plan).toMatchObject({ sync: 'full', destinationAction: 'create' });
      await d.until('the engine job is ready', () => copy.state().startsWith('ready'));
      const pivot = await whileTimePasses(d, 'the pivot', engine.blockJobAbort(d.domain, d.disk, AbortFlags.PIVOT));
      expect(pivot.isOk()).toBe(true);
      const result = await copy.result;
      expect(result).toMatchObject({ outcome: 'completed', pivoted: true, destinationConsistent: true, error: null });
      expect(result.states).toEqual([...PIVOTED_STATES]);
      expect(statuses).toEqual(['READY', 'COMPLETED']);
      expect(await guestReads(d)).toBe(dest);
      expect(await job(d, 'e-pivot')).toBeNull();
      expect((await engine.getBlockJobInfo(d.domain, d.disk, 0))._unsafeUnwrap()).toBeNull();
      engine.close();
    },
  },
  {
    name: 'engine on top: every name of the disk is the same disk (one job); a foreign job makes it busy with nothing created',
    async run(d) {
      const names = namesOf(await listed(d));
      const { engine } = engineOn(d, 'e-names');
      const dest = `${d.dir}/named.qcow2`;
      // Started by the source path: the job is the canonical disk's for every other spelling.
      const copy = (await engine.blockRebase(d.domain, d.paths.snap2, dest, 1, RebaseFlags.COPY))._unsafeUnwrap();
      expect(copy.disk).toBe(d.disk);
      const other = `${d.dir}/other.qcow2`;
      const busy = {
        code: 'VIR_ERR_BLOCK_COPY_ACTIVE',
        number: 83,
        detail: `disk '${d.disk}' already in active block job`,
      };
      for (const name of names) {
        expect(engine.job(d.domain, name)?.jobId, name).toBe('e-names');
        expect(
          (await engine.planRebase(d.domain, name, other, 0, RebaseFlags.COPY))._unsafeUnwrapErr(),
          name,
        ).toMatchObject(busy);
      }
      expect(await d.fileExists(other)).toBe(false);
      expect((await engine.blockJobAbort(d.domain, names.at(-1)!, AbortFlags.ASYNC)).isOk()).toBe(true);
      await whileTimePasses(d, 'the job ends', copy.result);
      engine.close();

      // A job another client started (here: through the port directly) is seen before anything is created.
      await create(d, 'foreign.qcow2');
      await must('startMirror', d.port.startMirror(spec(d, 'foreign', `${d.dir}/foreign.qcow2`, { speed: MiB })));
      const second = engineOn(d, 'e-second').engine;
      for (const call of [
        () => second.planRebase(d.domain, d.disk, other, 0, RebaseFlags.COPY),
        () => second.blockRebase(d.domain, d.disk, other, 0, RebaseFlags.COPY),
      ])
        expect((await call())._unsafeUnwrapErr()).toMatchObject(busy);
      expect(await d.fileExists(other)).toBe(false);
      second.close();
      await discard(d, 'foreign');
    },
  },
  {
    name: 'engine on top: abort after READY: CANCELED, a consistent copy kept, the guest stays on the source',
    async run(d) {
      const { engine, statuses } = engineOn(d, 'e-abort');
      const dest = `${d.dir}/kept.qcow2`;
      const job = (await engine.blockRebase(d.domain, d.disk, dest, 0, RebaseFlags.COPY))._unsafeUnwrap();
      await d.until('the engine job is ready', () => job.state().startsWith('ready'));
      expect((await whileTimePasses(d, 'the abort', engine.blockJobAbort(d.domain, d.disk, 0))).isOk()).toBe(true);
      expect(await job.result).toMatchObject({ outcome: 'canceled', pivoted: false, destinationConsistent: true });
      expect(statuses).toEqual(['READY', 'CANCELED']);
      expect(await guestReads(d)).toBe(d.paths.snap2);
      expect(await d.fileExists(dest)).toBe(true);
      engine.close();
    },
  },
  {
    name: 'engine on top: abort before READY: CANCELED, the partial destination it created is removed',
    async run(d) {
      const { engine, statuses } = engineOn(d, 'e-early');
      const dest = `${d.dir}/partial.qcow2`;
      const job = (await engine.blockRebase(d.domain, d.disk, dest, 1, RebaseFlags.COPY))._unsafeUnwrap();
      await d.until('the engine job is mirroring', () => job.state().startsWith('mirroring'));
      expect((await engine.blockJobAbort(d.domain, d.disk, AbortFlags.ASYNC)).isOk()).toBe(true);
      const result = await whileTimePasses(d, 'the job ends', job.result);
      expect(result).toMatchObject({ outcome: 'canceled', destinationConsistent: false });
      expect(statuses).toEqual(['CANCELED']);
      expect(await d.fileExists(dest)).toBe(false);
      expect(await guestReads(d)).toBe(d.paths.snap2);
      engine.close();
    },
  },
  {
    name: 'block-stream of the whole chain (block pull): no READY, ends by itself, the top stands alone',
    async run(d) {
      const stream = { jobId: 's-all', domain: d.domain, disk: d.disk, base: null, backingFile: null, speed: 0 };
      await must('startStream', d.port.startStream!(stream));
      // The same request again is a retry.
      await must('startStream again', d.port.startStream!(stream));
      await untilTrail(d, 's-all', 'concluded');
      expect(trail(d, 's-all')).toEqual(['created', 'running', 'waiting', 'pending', 'job-completed', 'concluded']);
      expect(await job(d, 's-all')).toMatchObject({ status: 'concluded', offset: d.size, len: d.size });
      expect((await job(d, 's-all'))?.error).toBeUndefined();
      await must('dismissJob', d.port.dismissJob('s-all'));
      expect(await job(d, 's-all')).toBeNull();
      expect(await chainPaths(d)).toEqual([d.paths.snap2]);
      expect(await guestReads(d)).toBe(d.paths.snap2);
    },
  },
  {
    name: "block-stream refusals in QEMU's words, a stream down to base cancelled: the chain stays whole",
    async run(d) {
      const base = { path: d.paths.base, format: 'qcow2' as const };
      const stream = (jobId: string, o: Partial<StreamSpec> = {}): StreamSpec => ({
        jobId,
        domain: d.domain,
        disk: d.disk,
        base,
        backingFile: null,
        speed: 0,
        ...o,
      });
      const nowhere = `${d.dir}/nowhere.qcow2`;
      expect(
        await refused('unknown base', d.port.startStream!(stream('s-x', { base: { path: nowhere, format: 'qcow2' } }))),
      ).toMatchObject(qmp(`Cannot find device='' nor node-name='${nowhere}'`));
      expect(await refused('negative speed', d.port.startStream!(stream('s-neg', { speed: -1 })))).toMatchObject(
        qmp("Parameter 'speed' expects a non-negative value"),
      );
      expect(await refused('job id with #', d.port.startStream!(stream('s#1')))).toMatchObject(
        qmp("Invalid job ID 's#1'"),
      );
      // 1 MiB/s: still streaming while the busy disk is refused and the cancel lands.
      await must('startStream', d.port.startStream!(stream('s-base', { speed: MiB })));
      const busy = await refused('busy disk', d.port.startStream!(stream('s-two', { base: null })));
      expect(busy).toMatchObject({ kind: 'qmp', errorClass: 'GenericError' });
      expect(busy.desc).toMatch(/^Node '.+' is busy: block device is in use by block job: stream$/);
      expect((await must('listDisks', d.port.listDisks(d.domain)))?.[0]?.job).toMatchObject({
        jobId: 's-base',
        type: 'stream',
      });
      expect(await refused('complete', d.port.completeJob('s-base'))).toMatchObject(
        qmp("Job 's-base' in state 'running' cannot accept command verb 'complete'"),
      );
      await must('cancelJob', d.port.cancelJob('s-base', false));
      await untilTrail(d, 's-base', 'concluded');
      expect(trail(d, 's-base')).toEqual(['created', 'running', 'aborting', 'job-cancelled', 'concluded']);
      expect(await job(d, 's-base')).toMatchObject({ status: 'concluded', error: 'Operation canceled' });
      await must('dismissJob', d.port.dismissJob('s-base'));
      expect(await chainPaths(d)).toEqual([d.paths.snap2, d.paths.snap1, d.paths.base]);
      expect(d.events.filter((e) => 'jobId' in e && e.jobId === 's-neg').map((e) => 'status' in e && e.status)).toEqual(
        ['created', 'null'],
      );
    },
  },
  {
    name: 'engine on top: COPY_DEV onto a block device: a device without the flag or a file with it is refused; raw in place, pivot onto the device; a qcow2 copy aborted leaves the device',
    async run(d) {
      const dev = await d.blockDevice('raw', d.size);
      const { engine, statuses } = engineOn(d, 'e-dev');
      // Without COPY_DEV QEMU's file driver would refuse the device: refused before anything.
      const plain = await engine.blockRebase(d.domain, d.disk, dev, 0, RebaseFlags.COPY | RebaseFlags.COPY_RAW);
      expect(plain._unsafeUnwrapErr()).toMatchObject({ code: 'VIR_ERR_CONFIG_UNSUPPORTED', number: 67 });
      // A regular file with COPY_DEV: libvirt's words (after its "already exists" rule).
      const file = await create(d, 'not-a-device.qcow2');
      const flags = RebaseFlags.COPY | RebaseFlags.COPY_DEV;
      expect(
        (await engine.blockRebase(d.domain, d.disk, file, 0, flags | RebaseFlags.REUSE_EXT))._unsafeUnwrapErr(),
      ).toMatchObject({
        code: 'VIR_ERR_INVALID_ARG',
        message: `invalid argument: blockdev flag requested for disk ${d.disk}, but file '${file}' is not a block device`,
      });
      expect(
        (await engine.blockRebase(d.domain, d.disk, `${d.dir}/no-device`, 0, flags))._unsafeUnwrapErr(),
      ).toMatchObject({ code: 'VIR_ERR_SYSTEM_ERROR' });
      expect(await d.fileExists(`${d.dir}/no-device`)).toBe(false);
      expect(await job(d, 'e-dev')).toBeNull();

      const copy = (await engine.blockRebase(d.domain, d.disk, dev, 0, flags | RebaseFlags.COPY_RAW))._unsafeUnwrap();
      expect(copy.plan).toMatchObject({
        destination: { path: dev, format: 'raw', type: 'block' },
        destinationAction: 'reuse',
        sync: 'full',
      });
      await d.until('the engine job is ready', () => copy.state().startsWith('ready'));
      expect(
        (await whileTimePasses(d, 'the pivot', engine.blockJobAbort(d.domain, d.disk, AbortFlags.PIVOT))).isOk(),
      ).toBe(true);
      expect(await copy.result).toMatchObject({ outcome: 'completed', pivoted: true, error: null });
      expect(statuses).toEqual(['READY', 'COMPLETED']);
      expect(await guestReads(d)).toBe(dev);
      expect(await job(d, 'e-dev')).toBeNull();
      engine.close();

      // A qcow2 header written onto a second device (the format libvirt would lay down), then an
      // abort before READY: the job's nodes go, the device stays, the guest stays on the first.
      const dev2 = await d.blockDevice('qcow2', d.size + 16 * MiB);
      const second = engineOn(d, 'e-dev2');
      const aborted = (
        await second.engine.blockCopy(
          d.domain,
          d.disk,
          { path: dev2, type: 'block', format: 'qcow2' },
          { bandwidth: MiB },
          0,
        )
      )._unsafeUnwrap();
      expect(aborted.plan).toMatchObject({ destinationAction: 'format', destination: { type: 'block' } });
      await d.until('the engine job is mirroring', () => aborted.state().startsWith('mirroring'));
      expect((await second.engine.blockJobAbort(d.domain, d.disk, AbortFlags.ASYNC)).isOk()).toBe(true);
      expect(await whileTimePasses(d, 'the job ends', aborted.result)).toMatchObject({
        outcome: 'canceled',
        pivoted: false,
      });
      expect(second.statuses).toEqual(['CANCELED']);
      expect(await job(d, 'e-dev2')).toBeNull();
      expect(await d.isBlockDevice(dev2)).toBe(true);
      expect(await d.isBlockDevice(dev)).toBe(true);
      expect(await guestReads(d)).toBe(dev);
      second.engine.close();
    },
  },
];
