/**
 * blockcopy on a real libvirtd with real TCG guests (transient, paused, base <- snap1 <- snap2):
 * the seed's flag combinations, pivot and abort (sync and async), refusals (libvirt's own passed
 * through, blockcopy's earlier ones), domain operations libvirt refuses while copying, interop
 * with virsh both ways, keepalive over a 40 s idle period. Guest data is compared with the chain
 * (qemu-img compare) after every pivot, and the live domain XML must name the copy as the disk's
 * source. (The libvirtd restart is in restart.test.ts, which runs after every other file.)
 *
 * libvirtd and virtlogd are started here when not running, and stopped only if started here.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { firstValueFrom, filter, timeout } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectLibvirt, type LibvirtHypervisor } from '../../adapters/libvirt/adapter.js';
import { LibvirtClient } from '../../adapters/libvirt/rpc/client.js';
import { args, Proc, rets } from '../../adapters/libvirt/rpc/protocol.js';
import { resolveDisk } from '../../src/core/disk-identity.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import type { HypervisorEvent } from '../../src/core/hypervisor-port.js';
import { createEngine, type BlockCopyEngine, type BlockCopyJob } from '../../src/engine/engine.js';
import { main } from '../../src/cli/main.js';
import { captureOutput } from '../cli/capture.js';
import { whenReady, whenState } from '../qemu-engine/helpers.js';
import { ensureLibvirtd, stopStarted, SOCKET } from '../../adapters/libvirt/lab-daemon.js';
import { CHAIN_SIZE, LibvirtLab, MiB, run, virsh, type Guest } from '../../adapters/libvirt/lab.js';
import { describePull } from './pull-suite.js';

const { COPY, SHALLOW, REUSE_EXT, COPY_RAW } = RebaseFlags;
const KEEPALIVE_IDLE_MS = 40_000;

let started: string[] = [];
let lab: LibvirtLab;
let engine: BlockCopyEngine;
let idle: LibvirtClient;
let idleSince = 0;
const idleLifecycle: string[] = [];

beforeAll(async () => {
  started = await ensureLibvirtd();
  lab = await LibvirtLab.open();
  engine = createEngine({ hypervisor: lab.hv, pollIntervalMs: 200 });
  // The keepalive client: connected now, never used until the keepalive test, 40 s later.
  idle = (await LibvirtClient.connect({ socket: SOCKET, uri: 'qemu:///system', reconnect: false }))._unsafeUnwrap();
  idle.lifecycle$.subscribe((e) => idleLifecycle.push(e.kind));
  idleSince = Date.now();
}, 120_000);

afterAll(async () => {
  engine?.close();
  await idle?.close();
  await lab?.cleanup();
  await stopStarted(started);
}, 120_000);

async function pivotAndVerify(guest: Guest, job: BlockCopyJob, dest: string, format: 'qcow2' | 'raw', flags = 0) {
  await whenReady(job);
  expect((await engine.blockJobAbort(guest.name, 'vda', AbortFlags.PIVOT | flags)).isOk()).toBe(true);
  const result = await job.result;
  expect(result).toMatchObject({ outcome: 'completed', pivoted: true, error: null });
  await verifyPivot(guest, dest, format);
}

/** The live XML names the copy as vda's source and the guest sees the chain's data in it. */
async function verifyPivot(guest: Guest, dest: string, format: 'qcow2' | 'raw') {
  expect(await lab.source(guest)).toBe(dest);
  const cmp = await lab.sameAsChain(guest, dest, format);
  expect(cmp.stdout + cmp.stderr).toMatch(/Images are identical/);
  expect(cmp.code).toBe(0);
}

async function jobInfo(g: Guest) {
  const jobs = (await lab.hv.listBlockJobs(g.name))._unsafeUnwrap();
  if (jobs === null) throw new Error(`no domain ${g.name}`);
  return jobs;
}

describe('blockRebase flag combinations on libvirt (the seed list)', () => {
  const guests = new Map<string, Guest>();
  beforeAll(async () => {
    const names = ['plain', 'raw', 'shallow', 'reuse', 'reuse-shallow', 'reuse-shallow-raw', 'reuse-raw', 'refused'];
    // Two at a time: libvirtd starts guests one by one anyway, and the machine has 2 cores.
    for (let i = 0; i < names.length; i += 2) {
      const pair = names.slice(i, i + 2);
      const made = await Promise.all(pair.map((n) => lab.guest(n)));
      pair.forEach((n, k) => guests.set(n, made[k]!));
    }
  }, 600_000);
  const g = (n: string) => guests.get(n)!;

  it('COPY: libvirt creates a qcow2 with the whole chain flattened', async () => {
    const guest = g('plain');
    const dest = join(guest.dir, 'copy.qcow2');
    const job = (await engine.blockRebase(guest.name, 'vda', dest, 0, COPY))._unsafeUnwrap();
    expect(job.plan).toMatchObject({ sync: 'full', destinationAction: 'create' });
    await pivotAndVerify(guest, job, dest, 'qcow2');
    const info = JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', dest])).stdout);
    expect(info['backing-filename']).toBeUndefined();
  });

  it('COPY|COPY_RAW: a new raw image', async () => {
    const guest = g('raw');
    const dest = join(guest.dir, 'copy.raw');
    const job = (await engine.blockRebase(guest.name, 'vda', dest, 0, COPY | COPY_RAW))._unsafeUnwrap();
    await pivotAndVerify(guest, job, dest, 'raw');
  });

  it('COPY|SHALLOW: a new qcow2 backed by snap1, only snap2 copied', async () => {
    const guest = g('shallow');
    const dest = join(guest.dir, 'copy.qcow2');
    const job = (await engine.blockRebase(guest.name, 'vda', dest, 0, COPY | SHALLOW))._unsafeUnwrap();
    expect(job.plan).toMatchObject({ sync: 'top', backing: { path: guest.paths.snap1 } });
    await pivotAndVerify(guest, job, dest, 'qcow2');
    const info = JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', dest])).stdout);
    expect(info['full-backing-filename']).toBe(guest.paths.snap1);
  });

  it('COPY|REUSE_EXT: a pre-created empty qcow2', async () => {
    const guest = g('reuse');
    const dest = join(guest.dir, 'pre.qcow2');
    expect((await run('qemu-img', ['create', '-q', '-f', 'qcow2', dest, String(CHAIN_SIZE)])).code).toBe(0);
    const job = (await engine.blockRebase(guest.name, 'vda', dest, 0, COPY | REUSE_EXT))._unsafeUnwrap();
    expect(job.plan.destinationAction).toBe('reuse');
    await pivotAndVerify(guest, job, dest, 'qcow2');
  });

  it('COPY|REUSE_EXT|SHALLOW: a pre-created qcow2 backed by snap1', async () => {
    const guest = g('reuse-shallow');
    const dest = join(guest.dir, 'pre.qcow2');
    const made = await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', guest.paths.snap1, '-F', 'qcow2', dest]);
    expect(made.code).toBe(0);
    const job = (await engine.blockRebase(guest.name, 'vda', dest, 0, COPY | REUSE_EXT | SHALLOW))._unsafeUnwrap();
    expect(job.plan).toMatchObject({ sync: 'top', destinationAction: 'reuse' });
    await pivotAndVerify(guest, job, dest, 'qcow2');
  });

  it('COPY|REUSE_EXT|SHALLOW|COPY_RAW: a raw volume holding snap1 receives only snap2', async () => {
    const guest = g('reuse-shallow-raw');
    const dest = join(guest.dir, 'vol.raw');
    expect((await run('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'raw', guest.paths.snap1, dest])).code).toBe(
      0,
    );
    const job = (
      await engine.blockRebase(guest.name, 'vda', dest, 0, COPY | REUSE_EXT | SHALLOW | COPY_RAW)
    )._unsafeUnwrap();
    expect(job.plan).toMatchObject({ sync: 'top', destination: { format: 'raw' }, backing: null });
    await pivotAndVerify(guest, job, dest, 'raw');
  });

  it('COPY|REUSE_EXT|COPY_RAW: an empty raw file of the right size', async () => {
    const guest = g('reuse-raw');
    const dest = join(guest.dir, 'pre.raw');
    expect((await run('qemu-img', ['create', '-q', '-f', 'raw', dest, String(CHAIN_SIZE)])).code).toBe(0);
    const job = (await engine.blockRebase(guest.name, 'vda', dest, 0, COPY | REUSE_EXT | COPY_RAW))._unsafeUnwrap();
    await pivotAndVerify(guest, job, dest, 'raw');
  });

  it('COPY|SHALLOW|COPY_RAW: refused as libvirt refuses it (CONFIG_UNSUPPORTED), nothing created', async () => {
    const guest = g('refused');
    const dest = join(guest.dir, 'copy.raw');
    const ours = (await engine.blockRebase(guest.name, 'vda', dest, 0, COPY | SHALLOW | COPY_RAW))._unsafeUnwrapErr();
    // libvirt itself, asked directly, refuses the same way.
    const theirs = await lab.hv.client.call(
      Proc.DOMAIN_BLOCK_REBASE,
      args.blockRebase(guest.dom, 'vda', dest, 0n, COPY | SHALLOW | COPY_RAW),
      rets.void,
    );
    const e = theirs._unsafeUnwrapErr();
    expect(e.kind === 'libvirt' && e.error.code).toBe(ours.number);
    expect(e.kind === 'libvirt' && e.error.message).toBe(ours.message);
    expect(existsSync(dest)).toBe(false);
    expect(await jobInfo(guest)).toEqual([]);
  });

  it('COPY|REUSE_EXT|SHALLOW into a qcow2 backed by base (not snap1): refused before libvirt, which would accept it', async () => {
    const guest = g('refused');
    const dest = join(guest.dir, 'wrong-backing.qcow2');
    expect(
      (await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', guest.paths.base, '-F', 'qcow2', dest])).code,
    ).toBe(0);
    const before = await run('sha256sum', [dest]);
    const r = (await engine.blockRebase(guest.name, 'vda', dest, 0, COPY | REUSE_EXT | SHALLOW))._unsafeUnwrapErr();
    expect(r).toMatchObject({ code: 'VIR_ERR_CONFIG_UNSUPPORTED', number: 67 });
    expect(r.message).toContain(`must have ${guest.paths.snap1} (qcow2) as its backing image`);
    expect(await jobInfo(guest)).toEqual([]);
    expect((await run('sha256sum', [dest])).stdout).toBe(before.stdout);
  });

  it.each([
    ['SHALLOW', SHALLOW],
    ['REUSE_EXT', REUSE_EXT],
    ['COPY_RAW', COPY_RAW],
  ])('%s without COPY: refused with the code and message libvirt gives', async (_name, flag) => {
    const guest = g('refused');
    const dest = join(guest.dir, 'copy.qcow2');
    const ours = (await engine.blockRebase(guest.name, 'vda', dest, 0, flag))._unsafeUnwrapErr();
    const theirs = (
      await lab.hv.client.call(Proc.DOMAIN_BLOCK_REBASE, args.blockRebase(guest.dom, 'vda', dest, 0n, flag), rets.void)
    )._unsafeUnwrapErr();
    expect(ours).toMatchObject({
      code: 'VIR_ERR_INVALID_ARG',
      number: 8,
      message: 'invalid argument: use of flags requires a copy job',
    });
    expect(theirs.kind === 'libvirt' && theirs.error.code).toBe(8);
    // libvirtd words this library-level check without virErrorMsg's template.
    expect(theirs.kind === 'libvirt' && theirs.error.message).toBe(ours.detail);
    expect(existsSync(dest)).toBe(false);
    expect(await jobInfo(guest)).toEqual([]);
  });
});

describe('pivot, abort and refusals on libvirt', () => {
  it('asynchronous pivot: returns once libvirt accepted, then COMPLETED and pivoted, observed', async () => {
    const guest = await lab.guest('pivot-async');
    const dest = join(guest.dir, 'copy.qcow2');
    const job = (await engine.blockCopy(guest.name, 'vda', { path: dest, format: 'qcow2' }, {}, 0))._unsafeUnwrap();
    await pivotAndVerify(guest, job, dest, 'qcow2', AbortFlags.ASYNC);
    await lab.destroy(guest);
  });

  it('a slow copy: pivot before ready → 83, a second copy → 83, job info, set speed, save/snapshot/detach refused by libvirt; then a synchronous abort', async () => {
    const guest = await lab.guest('slow');
    const dest = join(guest.dir, 'copy.qcow2');
    // 64 KiB/s: the 3.5 MiB of data take about a minute, far longer than this test.
    const job = (
      await engine.blockCopy(guest.name, 'vda', { path: dest, format: 'qcow2' }, { bandwidth: 64 * 1024 }, 0)
    )._unsafeUnwrap();
    await whenState(job, 'mirroring');

    const early = (await engine.blockJobAbort(guest.name, 'vda', AbortFlags.PIVOT))._unsafeUnwrapErr();
    expect(early).toMatchObject({ code: 'VIR_ERR_BLOCK_COPY_ACTIVE', number: 83 });
    const second = (
      await engine.blockCopy(guest.name, 'vda', { path: join(guest.dir, 'b.qcow2'), format: 'qcow2' }, {}, 0)
    )._unsafeUnwrapErr();
    expect(second).toMatchObject({
      code: 'VIR_ERR_BLOCK_COPY_ACTIVE',
      number: 83,
      message: "block copy still active: disk 'vda' already in active block job",
    });
    // libvirt's own answer to both, straight from the daemon, has the same code.
    const lvPivot = (
      await lab.hv.client.call(Proc.DOMAIN_BLOCK_JOB_ABORT, args.diskFlags(guest.dom, 'vda', 2), rets.void)
    )._unsafeUnwrapErr();
    expect(lvPivot.kind === 'libvirt' && lvPivot.error.code).toBe(83);

    const info = (await engine.getBlockJobInfo(guest.name, 'vda', 1))._unsafeUnwrap();
    expect(info).toMatchObject({ type: 2, bandwidth: 64 * 1024, end: CHAIN_SIZE });
    expect((await engine.blockJobSetSpeed(guest.name, 'vda', 1, 0)).isOk()).toBe(true); // 1 MiB/s
    expect((await jobInfo(guest))[0]).toMatchObject({
      disk: 'vda',
      type: 2,
      bandwidth: MiB,
      destination: dest,
      ready: false,
    });

    // What libvirt refuses while a copy runs (libvirt-api.md §1.9), and the engine's own guard.
    const save = await virsh('save', guest.name, join(guest.dir, 'save.img'));
    expect(save.stderr).toMatch(/Requested operation is not valid: domain has active block job/);
    const snap = await virsh(
      'snapshot-create-as',
      guest.name,
      's1',
      '--disk-only',
      '--no-metadata',
      '--diskspec',
      `vda,file=${join(guest.dir, 'ov.qcow2')}`,
    );
    expect(snap.stderr).toMatch(/block copy still active: disk 'vda' already in active block job/);
    const detach = await virsh('detach-disk', guest.name, 'vda', '--live');
    expect(detach.stderr).toMatch(/block copy still active: disk 'vda' already in active block job/);
    for (const op of ['save', 'snapshot-create'] as const)
      expect((await engine.checkDomainOperation(guest.name, op))._unsafeUnwrapErr().number).toBe(83);
    expect((await engine.checkDomainOperation(guest.name, 'detach', 'vda'))._unsafeUnwrapErr().number).toBe(83);
    expect(existsSync(join(guest.dir, 'save.img'))).toBe(false);

    expect((await engine.blockJobAbort(guest.name, 'vda', 0)).isOk()).toBe(true);
    const result = await job.result;
    expect(result).toMatchObject({ outcome: 'canceled', pivoted: false, destinationConsistent: false });
    expect(await lab.source(guest)).toBe(guest.paths.snap2);
    expect(await jobInfo(guest)).toEqual([]);
    // libvirt created the destination for this job, and the aborted copy is not kept.
    expect(existsSync(dest)).toBe(false);
    await lab.destroy(guest);
  });

  it('abort after ready (async): CANCELED with a consistent point-in-time copy, kept; the disk stays on its source', async () => {
    const guest = await lab.guest('abort-ready');
    const dest = join(guest.dir, 'copy.qcow2');
    const job = (await engine.blockRebase(guest.name, 'vda', dest, 0, COPY))._unsafeUnwrap();
    await whenReady(job);
    expect((await engine.blockJobAbort(guest.name, 'vda', AbortFlags.ASYNC)).isOk()).toBe(true);
    const result = await job.result;
    expect(result).toMatchObject({ outcome: 'canceled', pivoted: false, destinationConsistent: true });
    expect(await lab.source(guest)).toBe(guest.paths.snap2);
    const cmp = await lab.sameAsChain(guest, dest, 'qcow2');
    expect(cmp.code).toBe(0);
    await lab.destroy(guest);
  });

  it("libvirt's own refusals pass through unchanged: a copy on a disk virsh is already copying", async () => {
    const guest = await lab.guest('busy');
    const theirs = await virsh(
      'blockcopy',
      guest.name,
      'vda',
      join(guest.dir, 'virsh.qcow2'),
      '--bytes',
      '--bandwidth',
      '65536',
    );
    expect(theirs.code).toBe(0);
    const r = (await engine.blockRebase(guest.name, 'vda', join(guest.dir, 'ours.qcow2'), 0, COPY))._unsafeUnwrapErr();
    expect(r).toEqual({
      code: 'VIR_ERR_BLOCK_COPY_ACTIVE',
      number: 83,
      message: "block copy still active: disk 'vda' already in active block job",
      detail: "disk 'vda' already in active block job",
    });
    expect(existsSync(join(guest.dir, 'ours.qcow2'))).toBe(false);
    expect((await virsh('blockjob', guest.name, 'vda', '--abort')).code).toBe(0);
    await lab.destroy(guest);
  });
});

describePull(() => ({ lab, engine }));

describe('interoperation with virsh', () => {
  it('a copy started by virsh blockcopy is visible, adopted and pivoted by blockcopy', async () => {
    const guest = await lab.guest('virsh-started');
    const dest = join(guest.dir, 'virsh.qcow2');
    const before = (await lab.hv.listDisks(guest.name))._unsafeUnwrap()!;
    expect(before).toHaveLength(1);
    expect(before[0]).toMatchObject({
      domain: guest.name,
      disk: 'vda',
      device: 'vda',
      source: guest.paths.snap2,
      job: null,
    });
    expect(before[0]!.chain.map((c) => c.path)).toEqual([guest.paths.snap2, guest.paths.snap1, guest.paths.base]);
    expect(resolveDisk(before, guest.paths.snap2)._unsafeUnwrap().disk).toBe('vda');
    expect((await lab.hv.listDisks('no-such-guest'))._unsafeUnwrap()).toBeNull();
    expect((await virsh('blockcopy', guest.name, 'vda', dest, '--shallow')).code).toBe(0);
    const during = (await lab.hv.listDisks(guest.name))._unsafeUnwrap()!;
    expect(during[0]!.job).toMatchObject({ jobId: `libvirt:${guest.name}/vda`, type: 'mirror' });
    const listed = await jobInfo(guest);
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({
      disk: 'vda',
      type: 2,
      destination: dest,
      source: guest.paths.snap2,
      jobId: null,
    });
    const adopted = (await lab.hv.adoptJob('adopted-1', guest.name, 'vda'))._unsafeUnwrap();
    expect(adopted).toMatchObject({ jobId: 'adopted-1', destination: dest });
    // READY from libvirt's own word (the live XML), then the pivot, observed by its event.
    for (let i = 0; i < 300 && (await lab.hv.queryJob('adopted-1'))._unsafeUnwrap()?.status !== 'ready'; i++)
      await new Promise((r) => setTimeout(r, 100));
    const ended = firstValueFrom(
      lab.hv.events$.pipe(
        filter(
          (e): e is Extract<HypervisorEvent, { kind: 'job-completed' }> =>
            e.kind === 'job-completed' && e.jobId === 'adopted-1',
        ),
        timeout(60_000),
      ),
    );
    expect((await lab.hv.completeJob('adopted-1')).isOk()).toBe(true);
    expect((await ended).error).toBeUndefined();
    await verifyPivot(guest, dest, 'qcow2');
    expect((await lab.hv.dismissJob('adopted-1')).isOk()).toBe(true);
    await lab.destroy(guest);
  });

  it('a copy started by virsh is aborted by blockcopy: CANCELED, disk on its source', async () => {
    const guest = await lab.guest('virsh-abort');
    const dest = join(guest.dir, 'virsh.qcow2');
    expect((await virsh('blockcopy', guest.name, 'vda', dest, '--bytes', '--bandwidth', '65536')).code).toBe(0);
    (await lab.hv.adoptJob('adopted-2', guest.name, 'vda'))._unsafeUnwrap();
    const ended = firstValueFrom(
      lab.hv.events$.pipe(
        filter((e) => 'jobId' in e && e.jobId === 'adopted-2' && e.kind === 'job-cancelled'),
        timeout(60_000),
      ),
    );
    expect((await lab.hv.cancelJob('adopted-2', false)).isOk()).toBe(true);
    await ended;
    expect(await lab.source(guest)).toBe(guest.paths.snap2);
    expect(await jobInfo(guest)).toEqual([]);
    await lab.destroy(guest);
  });

  it('a copy started by blockcopy and pivoted by `virsh blockjob --pivot` ends COMPLETED and pivoted, observed', async () => {
    const guest = await lab.guest('virsh-pivot');
    const dest = join(guest.dir, 'copy.qcow2');
    const job = (await engine.blockRebase(guest.name, 'vda', dest, 0, COPY | SHALLOW))._unsafeUnwrap();
    await whenReady(job);
    const pivot = await virsh('blockjob', guest.name, 'vda', '--pivot');
    expect(pivot.code).toBe(0);
    const result = await job.result;
    expect(result).toMatchObject({ outcome: 'completed', pivoted: true, destinationConsistent: true, error: null });
    expect(result.states).toContain('confirmingPivot');
    expect(existsSync(dest)).toBe(true);
    await verifyPivot(guest, dest, 'qcow2');
    await lab.destroy(guest);
  });
});

describe('the CLI on libvirt', () => {
  // The run's own job store and no daemon: never the host's /var/lib/blockcopy or /run/blockcopy.
  const store = () => join(lab.root, 'cli-jobs.db');
  beforeAll(() => {
    process.env['BLOCKCOPY_SOCKET'] = join(lab.root, 'no-daemon.sock');
  });
  it('blockcopy copy --connect qemu+unix:///system?socket=… --domain NAME --pivot: pivoted, data intact', async () => {
    const guest = await lab.guest('cli');
    const dest = join(guest.dir, 'cli.qcow2');
    const out = captureOutput();
    const code = await main(
      [
        'copy',
        'vda',
        dest,
        '--shallow',
        '--connect',
        `qemu+unix:///system?socket=${SOCKET}`,
        '--domain',
        guest.name,
        '--pivot',
        '--json',
        '--store',
        store(),
      ],
      out,
    );
    expect(out.errors).toEqual([]);
    expect(code).toBe(0);
    expect(JSON.parse(out.lines[out.lines.length - 1]!)).toMatchObject({ status: 'completed', pivoted: true });
    await verifyPivot(guest, dest, 'qcow2');
    await lab.destroy(guest);
  });

  it('an unknown domain is libvirt-style NO_DOMAIN, nothing created', async () => {
    const out = captureOutput();
    const dest = join(lab.root, 'never.qcow2');
    const code = await main(
      ['copy', 'vda', dest, '--connect', 'qemu:///system', '--domain', 'no-such-guest', '--store', store()],
      out,
    );
    expect(code).toBe(1);
    expect(out.errors.join('\n')).toMatch(/Domain not found: no domain with matching name 'no-such-guest'/);
    expect(existsSync(dest)).toBe(false);
  });
});

describe('keepalive', () => {
  it('a connection idle for 40 s answers libvirtd’s keepalive and stays open', async () => {
    const left = KEEPALIVE_IDLE_MS - (Date.now() - idleSince);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
    expect(Date.now() - idleSince).toBeGreaterThanOrEqual(KEEPALIVE_IDLE_MS);
    // libvirtd pings every 5 s and drops a client that has not answered after ~30 s.
    expect(idle.keepaliveStats.pingsReceived).toBeGreaterThanOrEqual(5);
    expect(idle.keepaliveStats.pongsSent).toBe(idle.keepaliveStats.pingsReceived);
    expect(idleLifecycle).toEqual([]);
    expect(idle.state).toBe('connected');
    expect((await idle.call(Proc.CONNECT_GET_LIB_VERSION, args.none(), rets.uhyper))._unsafeUnwrap()).toBeGreaterThan(
      0n,
    );
  }, 90_000);
});

describe('engine restart without a store, and access', () => {
  it('a fresh adapter (as after an engine restart) finds a running copy, its READY, and pivots it', async () => {
    const guest = await lab.guest('engine-restart');
    const dest = join(guest.dir, 'copy.qcow2');
    const job = (await engine.blockRebase(guest.name, 'vda', dest, 0, COPY))._unsafeUnwrap();
    await whenReady(job);
    engine.close(); // the engine process "dies"; the libvirt job goes on
    engine = createEngine({ hypervisor: lab.hv, pollIntervalMs: 200 });
    const fresh: LibvirtHypervisor = (await connectLibvirt({ uri: 'qemu:///system' }))._unsafeUnwrap();
    try {
      const adopted = (await fresh.adoptJob(job.jobId, guest.name, 'vda'))._unsafeUnwrap();
      expect(adopted).toMatchObject({ ready: true, destination: dest });
      expect((await fresh.queryJob(job.jobId))._unsafeUnwrap()).toMatchObject({ status: 'ready', ready: true });
      expect((await fresh.completeJob(job.jobId)).isOk()).toBe(true);
      for (let i = 0; i < 300 && (await lab.source(guest)) !== dest; i++) await new Promise((r) => setTimeout(r, 100));
      await verifyPivot(guest, dest, 'qcow2');
    } finally {
      await fresh.close();
    }
    await lab.destroy(guest);
  });

  it('names the fix when the socket refuses a user (not root, not in group libvirt)', async () => {
    const script = `import { LibvirtClient } from ${JSON.stringify(join(process.cwd(), 'adapters/libvirt/rpc/client.ts'))};
const r = await LibvirtClient.connect({ socket: ${JSON.stringify(SOCKET)}, uri: 'qemu:///system', reconnect: false });
console.log(JSON.stringify(r.isErr() ? r.error : { ok: true }));
await (r.isOk() ? r.value.close() : null);`;
    const r = await run('runuser', [
      '-u',
      'nobody',
      '--',
      process.execPath,
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      script,
    ]);
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}');
    expect(out.kind).toBe('access-denied');
    expect(out.message).toMatch(/run blockcopy as root, or add the user to group 'libvirt'/);
  });
});
