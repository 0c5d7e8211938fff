/** Block pull through the public API on the simulator: outcomes, chain shape, events, refusals. */
import { hostname } from 'node:os';
import type { ResultAsync } from 'neverthrow';
import { describe, expect, it } from 'vitest';
import type { BlockCopyError } from '../../src/core/errors.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import type { BlockPullJob } from '../../src/engine/pull-jobs.js';
import { MemoryJobStore } from '../../adapters/store/memory.js';
import { createEngine } from '../../src/engine/engine.js';
import { DEST, engineOnSim } from './harness.js';

const DIR = '/var/lib/blockcopy';
const BASE = `${DIR}/base.qcow2`;
const SNAP1 = `${DIR}/snap1.qcow2`;
const SNAP2 = `${DIR}/snap2.qcow2`;
const MiB = 1024 * 1024;

function pullHarness(copyRate = 512 * MiB) {
  const h = engineOnSim({ copyRate });
  const settlePull = async (job: BlockPullJob) => {
    let done = false;
    void job.result.then(() => (done = true));
    await h.clock.runUntil(() => done, 600_000, 50);
    return job.result;
  };
  const chain = async () => (await h.sim.listDisks('demo'))._unsafeUnwrap()![0]!.chain.map((i) => i.path);
  return { ...h, settlePull, chain };
}

describe('engine on the simulator: block pull', () => {
  it('pulls the whole chain: the top stands alone, COMPLETED once, job type PULL', async () => {
    const { engine, events, settlePull, chain, sim } = pullHarness();
    const job = (await engine.blockPull('demo', 'vda', 0, 0))._unsafeUnwrap();
    expect(job.type).toBe('PULL');
    expect(job.plan).toMatchObject({ top: SNAP2, base: null, speed: 0, chainBefore: [SNAP2, SNAP1, BASE] });
    const result = await settlePull(job);
    expect(result).toMatchObject({ outcome: 'completed', pivoted: false, error: null });
    expect(result.states).toEqual(['validating', 'starting', 'streaming.running', 'finishing', 'completed']);
    expect(await chain()).toEqual([SNAP2]);
    expect(sim.images.get(SNAP2)?.backing).toBeNull();
    expect(events).toEqual([expect.objectContaining({ type: 'PULL', status: 'COMPLETED', disk: 'vda' })]);
    expect((await engine.getBlockJobInfo('demo', 'vda', 0))._unsafeUnwrap()).toBeNull();
    expect(sim.listJobs()).toEqual([]);
  });

  it('pulls down to base: the top keeps base as its backing (rebase without COPY)', async () => {
    const { engine, settlePull, chain, sim } = pullHarness();
    const job = (await engine.blockPullRebase('demo', 'vda', BASE, 0, 0))._unsafeUnwrap();
    expect(job.plan?.base).toEqual({ path: BASE, format: 'qcow2' });
    expect((await settlePull(job)).outcome).toBe('completed');
    expect(await chain()).toEqual([SNAP2, BASE]);
    expect(sim.images.get(SNAP2)?.backing).toEqual({ path: BASE, format: 'qcow2' });
  });

  it('blockRebase without COPY is a pull, with RELATIVE writing the relative name', async () => {
    const { engine, settlePull, sim } = pullHarness();
    // The default demo chain is written with absolute names: RELATIVE is refused as libvirt does.
    const absolute = await engine.blockRebase('demo', 'vda', BASE, 0, RebaseFlags.RELATIVE);
    expect(absolute._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_OPERATION_INVALID',
      message: "Requested operation is not valid: can't keep relative backing relationship",
    });
    const job = (await engine.blockRebase<BlockPullJob>('demo', 'vda', BASE, 0, 0))._unsafeUnwrap();
    expect(job.type).toBe('PULL');
    await settlePull(job);
    expect(sim.images.get(SNAP2)?.backing?.path).toBe(BASE);
  });

  it('is info type 1, takes a new speed, refuses a pivot with libvirt code and message', async () => {
    const { engine, settlePull, clock } = pullHarness(4 * MiB);
    const job = (await engine.blockPull('demo', 'vda', 1, 0))._unsafeUnwrap();
    await clock.advance(2000);
    const info = (await engine.getBlockJobInfo('demo', 'vda', 0))._unsafeUnwrap();
    expect(info).toMatchObject({ type: 1, bandwidth: 1, end: 1024 * MiB });
    expect((await engine.blockJobSetSpeed('demo', 'vda', 2, 0)).isOk()).toBe(true);
    expect((await engine.getBlockJobInfo('demo', 'vda', 0))._unsafeUnwrap()?.bandwidth).toBe(2);
    const pivot = await engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT);
    expect(pivot._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_BLOCK_COPY_ACTIVE',
      number: 83,
      message: `block copy still active: block job '${job.jobId}' not ready for pivot yet`,
    });
    expect(job.state()).toBe('streaming.running');
    const abort = engine.blockJobAbort('demo', 'vda', AbortFlags.ASYNC);
    expect((await abort).isOk()).toBe(true);
    expect((await settlePull(job)).outcome).toBe('canceled');
  });

  it('aborts synchronously by default: returns once the job ended CANCELED, chain unchanged', async () => {
    const { engine, clock, events, chain } = pullHarness(4 * MiB);
    const job = (await engine.blockPull('demo', 'vda', 1, 0))._unsafeUnwrap();
    await clock.advance(1000);
    let returned = false;
    const abort = engine.blockJobAbort('demo', 'vda', 0);
    void abort.then(() => {
      returned = true;
    });
    await clock.advance(1);
    await clock.runUntil(() => returned, 60_000, 10);
    expect((await abort).isOk()).toBe(true);
    // Synchronous: by the time it returned, the job had ended and its event was out.
    expect(job.state()).toBe('canceled');
    expect(events.map((e) => `${e.type} ${e.status}`)).toEqual(['PULL CANCELED']);
    expect(await chain()).toEqual([SNAP2, SNAP1, BASE]);
    const again = await engine.blockJobAbort('demo', 'vda', 0);
    expect(again._unsafeUnwrapErr().message).toBe('invalid argument: disk vda does not have an active block job');
  });

  it('one job per disk across copy and pull, with libvirt 9.0 codes', async () => {
    const { engine, clock, settle } = pullHarness(4 * MiB);
    const pull = (await engine.blockPull('demo', 'vda', 1, 0))._unsafeUnwrap();
    const copy = await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY);
    expect(copy._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_OPERATION_UNSUPPORTED',
      message: "Operation not supported: disk 'vda' already in active block job",
    });
    const second = await engine.blockPull('demo', 'vda', 0, 0);
    expect(second._unsafeUnwrapErr().message).toBe("Operation not supported: disk 'vda' already in active block job");
    expect((await engine.checkDomainOperation('demo', 'save'))._unsafeUnwrapErr().message).toBe(
      'Requested operation is not valid: domain has active block job',
    );
    const abort = engine.blockJobAbort('demo', 'vda', 0);
    await clock.runUntil(() => pull.state() === 'canceled', 60_000, 10);
    expect((await abort).isOk()).toBe(true);
    // A copy holds the disk: a pull is refused with BLOCK_COPY_ACTIVE.
    const job = (await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
    const refused = await engine.blockPull('demo', 'vda', 0, 0);
    expect(refused._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_BLOCK_COPY_ACTIVE',
      message: "block copy still active: disk 'vda' already in active block job",
    });
    void engine.blockJobAbort('demo', 'vda', 0);
    await settle(job);
  });

  it('refuses bad arguments in libvirt order and changes nothing', async () => {
    const { engine, sim } = pullHarness();
    const e = async (p: ResultAsync<BlockPullJob, BlockCopyError>) => (await p)._unsafeUnwrapErr().message;
    expect(await e(engine.blockPullRebase('demo', 'vda', null, 0, RebaseFlags.RELATIVE))).toBe(
      'invalid argument: flag VIR_DOMAIN_BLOCK_REBASE_RELATIVE is valid only with non-null base',
    );
    expect(await e(engine.blockPullRebase('demo', 'vda', null, 0, RebaseFlags.SHALLOW))).toBe(
      'invalid argument: use of flags requires a copy job',
    );
    // The engine adds the names that would work (as for copies).
    expect(await e(engine.blockPullRebase('demo', 'vdz', '/nope', 8796093022208, 0))).toMatch(
      /^invalid argument: disk 'vdz' not found in domain/,
    );
    expect(await e(engine.blockPullRebase('demo', 'vda', '/nope', 8796093022208, 0))).toBe(
      `invalid argument: could not find image '/nope' beneath '${SNAP2}' in chain for 'vda'`,
    );
    expect(await e(engine.blockPullRebase('demo', 'vda', SNAP2, 0, 0))).toBe(
      `invalid argument: could not find image '${SNAP2}' beneath '${SNAP2}' in chain for 'vda'`,
    );
    expect(await e(engine.blockPull('demo', 'vda', 8796093022208, 0))).toBe(
      'numerical overflow: bandwidth must be less than 8796093022207',
    );
    expect(await e(engine.blockPull('demo', 'vda', 0, 1))).toBe(
      'invalid argument: unsupported flags (0x1) in function virDomainBlockPull',
    );
    expect(sim.listJobs()).toEqual([]);
  });

  it('records the pull in the store and a new engine recovers it to its end', async () => {
    const store = new MemoryJobStore();
    const { engine, clock, sim, chain } = pullHarness(64 * MiB);
    // The first engine's owner id names a process of this host that no longer runs (pid above
    // Linux's pid_max): its leases die with it, as a killed engine's do.
    const first = createEngine({
      hypervisor: sim,
      clock,
      pollIntervalMs: 500,
      store,
      owner: { id: `${hostname()}:4194305:0` },
    });
    engine.close();
    const job = (await first.blockPull('demo', 'vda', 0, 0))._unsafeUnwrap();
    await clock.advance(1000);
    const stored = (await store.load(job.jobId))._unsafeUnwrap();
    expect(stored).toMatchObject({ jobType: 'pull', state: 'streaming.running', end: null });
    expect(stored?.pull?.plan).toMatchObject({ top: SNAP2, base: null });
    first.close(); // the process goes away; the stream goes on in QEMU
    const second = createEngine({ hypervisor: sim, clock, pollIntervalMs: 500, store, owner: { id: 'second' } });
    const report = (await second.recover())._unsafeUnwrap();
    expect(report.resumed.map((r) => r.jobId)).toEqual([job.jobId]);
    const resumed = second.pullJobs()[0]!;
    expect(resumed.origin).toBe('recovered');
    let done = false;
    void resumed.result.then(() => (done = true));
    await clock.runUntil(() => done, 600_000, 50);
    expect((await resumed.result).outcome).toBe('completed');
    expect(await chain()).toEqual([SNAP2]);
    expect((await store.load(job.jobId))._unsafeUnwrap()?.end).toMatchObject({ outcome: 'completed' });
  });
});
