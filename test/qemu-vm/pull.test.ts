/**
 * Block pull on a real TCG VM (-blockdev nodes, device vda) over QMP: block-stream of the seed
 * chain base <- snap1 <- snap2 (written with relative backing names) with and without base, the
 * guest's data after the pull, the chain's shape in the image headers (qemu-img info
 * --backing-chain), the pulled-out nodes released; abort synchronous and ASYNC, pivot refused,
 * one job per disk. One VM per test (each pull rewrites the chain).
 */
import { describe, expect, it } from 'vitest';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import type { BlockPullJob } from '../../src/engine/pull-jobs.js';
import { must } from '../../adapters/qmp/lab.js';
import { main } from '../../src/cli/main.js';
import { captureOutput } from '../cli/capture.js';
import { useVm, type VmFixture } from './harness.js';

const vm = useVm();

/** The chain as the image headers say, top first: [file, backing name as written]. */
async function chainShape(fx: VmFixture): Promise<[string, string | null][]> {
  const out = await must('qemu-img', ['info', '-U', '--backing-chain', '--output=json', fx.paths.snap2]);
  return (JSON.parse(out) as Record<string, unknown>[]).map((i) => [
    String(i['filename']),
    typeof i['backing-filename'] === 'string' ? i['backing-filename'] : null,
  ]);
}

/** The guest reads the seed chain's data through its device, region by region. */
async function guestReadsSeed(fx: VmFixture): Promise<void> {
  for (const r of fx.lab.expected()) {
    const out = await fx.guestIo(`read -P ${r.pattern} ${r.offset} ${r.len}`);
    expect(out, `guest read of ${r.len} bytes at ${r.offset}`).not.toMatch(/fail|error|mismatch/i);
  }
}

const nodeNames = async (fx: VmFixture) => (await fx.nodes()).map((n) => n['node-name']).sort();

describe('VM: block pull', () => {
  it('pulls the whole chain into snap2: guest data intact, snap2 stands alone, old nodes released', async () => {
    const fx = await vm('blockdev');
    expect(await chainShape(fx)).toEqual([
      [fx.paths.snap2, 'snap1.qcow2'],
      [fx.paths.snap1, 'base.qcow2'],
      [fx.paths.base, null],
    ]);
    const job = (await fx.engine.blockPull('qemu', 'vda', 0, 0))._unsafeUnwrap();
    expect(job.type).toBe('PULL');
    const result = await job.result;
    expect(result).toMatchObject({ outcome: 'completed', pivoted: false, error: null });
    expect(result.states.slice(-2)).toEqual(['finishing', 'completed']);
    expect(await chainShape(fx)).toEqual([[fx.paths.snap2, null]]);
    await guestReadsSeed(fx);
    // libvirt-style: the pulled-out images are detached from QEMU once the job is dismissed.
    expect(await nodeNames(fx)).toEqual(['snap2', 'snap2-file']);
    expect(await fx.cmd('query-jobs')).toEqual([]);
    // The data is in snap2 itself now: read offline, without backing, once QEMU quit (flushed).
    await fx.lab.stop();
    expect(await fx.imageHas(fx.paths.snap2, 'qcow2', 0x22, 16 * 1024 * 1024, 1024 * 1024)).toBe(true);
  });

  it('pulls down to base (rebase without COPY): snap2 is backed by base, snap1 released', async () => {
    const fx = await vm('blockdev');
    const job = (await fx.engine.blockRebase<BlockPullJob>('qemu', 'vda', fx.paths.base, 0, 0))._unsafeUnwrap();
    expect(job.plan).toMatchObject({ base: { path: fx.paths.base }, backingFile: null });
    expect((await job.result).outcome).toBe('completed');
    // Without RELATIVE QEMU writes base's own (absolute) filename.
    expect(await chainShape(fx)).toEqual([
      [fx.paths.snap2, fx.paths.base],
      [fx.paths.base, null],
    ]);
    await guestReadsSeed(fx);
    expect(await nodeNames(fx)).toEqual(['base', 'base-file', 'snap2', 'snap2-file']);
  });

  it('RELATIVE keeps the relative backing name', async () => {
    const fx = await vm('blockdev');
    const job = (
      await fx.engine.blockRebase<BlockPullJob>('qemu', 'vda', fx.paths.base, 0, RebaseFlags.RELATIVE)
    )._unsafeUnwrap();
    expect(job.plan?.backingFile).toBe('base.qcow2');
    expect((await job.result).outcome).toBe('completed');
    expect(await chainShape(fx)).toEqual([
      [fx.paths.snap2, 'base.qcow2'],
      [fx.paths.base, null],
    ]);
    await guestReadsSeed(fx);
  });

  it('pivot refused, one job per disk, ASYNC and synchronous aborts; the chain stays whole', async () => {
    const fx = await vm('blockdev');
    // 1 MiB/s over a 64 MiB disk: the pull is still running for every request below.
    const job = (await fx.engine.blockPull('qemu', 'vda', 1, 0))._unsafeUnwrap();
    const pivot = await fx.engine.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT);
    expect(pivot._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_BLOCK_COPY_ACTIVE',
      message: `block copy still active: block job '${job.jobId}' not ready for pivot yet`,
    });
    const copy = await fx.engine.blockRebase('qemu', 'vda', `${fx.dir}/copy.qcow2`, 0, RebaseFlags.COPY);
    expect(copy._unsafeUnwrapErr().message).toBe("Operation not supported: disk 'vda' already in active block job");
    const again = await fx.engine.blockPull('qemu', 'vda', 0, 0);
    expect(again._unsafeUnwrapErr().message).toBe("Operation not supported: disk 'vda' already in active block job");
    const info = (await fx.engine.getBlockJobInfo('qemu', 'vda', 0))._unsafeUnwrap();
    expect(info).toMatchObject({ type: 1, bandwidth: 1, end: 64 * 1024 * 1024 });

    // ASYNC: returns once QEMU accepted the cancel; the job ends CANCELED afterwards.
    expect((await fx.engine.blockJobAbort('qemu', 'vda', AbortFlags.ASYNC)).isOk()).toBe(true);
    expect((await job.result).outcome).toBe('canceled');
    expect(await chainShape(fx)).toHaveLength(3);

    // Synchronous (no flag): by the time it returns, the job has ended.
    const second = (await fx.engine.blockPull('qemu', 'vda', 1, 0))._unsafeUnwrap();
    expect((await fx.engine.blockJobAbort('qemu', 'vda', 0)).isOk()).toBe(true);
    expect(second.state()).toBe('canceled');
    expect(await fx.cmd('query-jobs')).toEqual([]);
    expect(await chainShape(fx)).toHaveLength(3);
    await guestReadsSeed(fx);
    expect(await nodeNames(fx)).toEqual(['base', 'base-file', 'snap1', 'snap1-file', 'snap2', 'snap2-file']);
  });

  it('CLI: blockpull starts a recorded pull, blockjob --info/--pivot/--abort act on it, blockpull --wait completes', async () => {
    const fx = await vm('blockdev');
    // The CLI talks to QEMU on its own monitor.
    await fx.other.close();
    const hv = ['--hypervisor', `qmp:${fx.lab.socket('other')}`, '--store', `${fx.dir}/jobs.db`];
    const started = captureOutput();
    expect(await main(['blockpull', 'vda', ...hv, '--bandwidth', '1', '--json'], started)).toBe(0);
    const report = JSON.parse(started.lines[0]!) as { status: string; jobId: string };
    expect(report.status).toBe('started');

    const info = captureOutput();
    expect(await main(['blockjob', 'vda', ...hv, '--info'], info)).toBe(0);
    expect(info.lines[0]).toMatch(new RegExp(`^Block Pull: \\[ *\\d+ %\\] .*\\(job ${report.jobId}\\)$`));
    const pivot = captureOutput();
    expect(await main(['blockjob', 'vda', ...hv, '--pivot'], pivot)).toBe(1);
    expect(pivot.errors).toEqual([
      `error: block copy still active: block job '${report.jobId}' not ready for pivot yet`,
    ]);
    const abort = captureOutput();
    expect(await main(['blockjob', 'vda', ...hv, '--abort'], abort)).toBe(0);
    expect(abort.lines).toEqual(['Job aborted']);
    expect(await fx.cmd('query-jobs')).toEqual([]);
    expect(await chainShape(fx)).toHaveLength(3);

    const waited = captureOutput();
    expect(await main(['blockpull', 'vda', ...hv, '--base', fx.paths.base, '--wait', '--json'], waited)).toBe(0);
    expect(JSON.parse(waited.lines[0]!)).toMatchObject({ status: 'completed', error: null });
    expect(await chainShape(fx)).toEqual([
      [fx.paths.snap2, fx.paths.base],
      [fx.paths.base, null],
    ]);
    await guestReadsSeed(fx);
  });
});
