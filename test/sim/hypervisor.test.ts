/**
 * The simulated hypervisor through the HypervisorPort: domains and images, starting mirrors
 * (events before the reply, idempotence, QEMU's start-up errors), progress, speed, guest writes,
 * pivot, cancel, pause/resume and dismiss, on a VirtualClock.
 */
import { describe, expect, it } from 'vitest';
import { GiB, MiB, QCOW2_EMPTY_FILE_BYTES, SimulatedHypervisor } from '../../adapters/sim/index.js';
import { VirtualClock } from '../../src/core/clock.js';
import { DEST, DIR, createDest, fixture, spec, startJob, status, until } from './helpers.js';

describe('domains and disks', () => {
  it('has the default demo domain with vda on base <- snap1 <- snap2', async () => {
    const { sim } = fixture();
    expect((await sim.getDomain('demo'))._unsafeUnwrap()).toEqual({
      name: 'demo',
      running: true,
      persistent: false,
      disks: ['vda'],
    });
    const disk = (await sim.describeDisk('demo', 'vda'))._unsafeUnwrap();
    expect(disk?.chain).toEqual([
      {
        path: `${DIR}/snap2.qcow2`,
        format: 'qcow2',
        virtualSize: GiB,
        backing: { path: `${DIR}/snap1.qcow2`, format: 'qcow2' },
      },
      {
        path: `${DIR}/snap1.qcow2`,
        format: 'qcow2',
        virtualSize: GiB,
        backing: { path: `${DIR}/base.qcow2`, format: 'qcow2' },
      },
      { path: `${DIR}/base.qcow2`, format: 'qcow2', virtualSize: GiB, backing: null },
    ]);
    expect((await sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(`${DIR}/snap2.qcow2`);
    expect((await sim.getDomain('nope'))._unsafeUnwrap()).toBeNull();
    expect((await sim.describeDisk('demo', 'vdz'))._unsafeUnwrap()).toBeNull();
    expect((await sim.activeImage('demo', 'vdz'))._unsafeUnwrapErr().kind).toBe('qmp');
  });

  it('takes several domains and disks, including a raw source', async () => {
    const { sim } = fixture({
      domains: [
        { name: 'a', disks: [{ name: 'vda', virtualSize: GiB, chain: [{ path: '/a/vda.raw', format: 'raw' }] }] },
        {
          name: 'b',
          persistent: true,
          disks: [
            {
              name: 'vda',
              virtualSize: GiB,
              chain: [
                { path: '/b/top.qcow2', allocated: MiB },
                { path: '/b/base.raw', format: 'raw' },
              ],
            },
            { name: 'vdb', virtualSize: 2 * GiB, chain: [{ path: '/b/data.qcow2', allocated: GiB }] },
          ],
        },
      ],
    });
    expect((await sim.getDomain('b'))._unsafeUnwrap()?.disks).toEqual(['vda', 'vdb']);
    const chain = (await sim.describeDisk('b', 'vda'))._unsafeUnwrap()?.chain;
    expect(chain?.[0]?.backing).toEqual({ path: '/b/base.raw', format: 'raw' });
    expect(chain?.[1]).toEqual({ path: '/b/base.raw', format: 'raw', virtualSize: GiB, backing: null });
    expect((await sim.probeDestination('/a/vda.raw'))._unsafeUnwrap()).toMatchObject({
      exists: true,
      size: GiB,
      empty: false,
    });
  });
});

describe('images', () => {
  it('probes missing, fresh qcow2 and fresh raw destinations', async () => {
    const { sim } = fixture({ directories: ['/x'] });
    expect((await sim.probeDestination('/x/none.qcow2'))._unsafeUnwrap()).toEqual({ exists: false });
    await createDest(sim);
    expect((await sim.probeDestination(DEST))._unsafeUnwrap()).toEqual({
      exists: true,
      kind: 'file',
      size: QCOW2_EMPTY_FILE_BYTES,
      image: { path: DEST, format: 'qcow2', virtualSize: GiB, backing: null },
      empty: true,
    });
    (await sim.createDestination({ path: '/x/c.raw', format: 'raw', virtualSize: GiB, backing: null }))._unsafeUnwrap();
    // A fresh raw file is sparse: as long as the disk, holding no data.
    expect((await sim.probeDestination('/x/c.raw'))._unsafeUnwrap()).toMatchObject({ size: GiB, empty: true });
  });

  it('reports block devices and unprobeable files given at construction', async () => {
    const { sim } = fixture({
      images: [
        { path: '/dev/vg/lv', format: 'raw', virtualSize: GiB, allocated: 0, kind: 'block' },
        { path: '/x/dir', virtualSize: 0, kind: 'other' },
      ],
    });
    expect((await sim.probeDestination('/dev/vg/lv'))._unsafeUnwrap()).toMatchObject({ kind: 'block', empty: true });
    expect((await sim.probeDestination('/x/dir'))._unsafeUnwrap()).toMatchObject({ kind: 'other', image: null });
  });

  it('createDestination is idempotent for an identical image and refuses to overwrite another', async () => {
    const { sim } = fixture();
    const shallow = {
      path: DEST,
      format: 'qcow2' as const,
      virtualSize: GiB,
      backing: { path: `${DIR}/snap1.qcow2`, format: 'qcow2' as const },
    };
    expect((await sim.createDestination(shallow)).isOk()).toBe(true);
    expect((await sim.createDestination(shallow)).isOk()).toBe(true);
    const other = await sim.createDestination({ ...shallow, backing: null });
    expect(other._unsafeUnwrapErr()).toMatchObject({ kind: 'io', command: 'createDestination' });
    const onChain = await sim.createDestination({ ...shallow, path: `${DIR}/snap2.qcow2` });
    expect(onChain._unsafeUnwrapErr().kind).toBe('io');
    const noBacking = await sim.createDestination({
      ...shallow,
      path: '/x/y.qcow2',
      backing: { path: '/x/missing', format: 'qcow2' },
    });
    expect(noBacking._unsafeUnwrapErr().kind).toBe('io');
  });

  it('a retried createDestination does not wipe data the mirror already copied', async () => {
    const f = fixture();
    await startJob(f);
    await until(f, 'ready');
    await createDest(f.sim);
    expect((await f.sim.probeDestination(DEST))._unsafeUnwrap()).toMatchObject({
      empty: false,
      size: QCOW2_EMPTY_FILE_BYTES + GiB,
    });
  });

  it('removeDestination is idempotent and refuses files in use', async () => {
    const f = fixture();
    await createDest(f.sim);
    expect((await f.sim.removeDestination(DEST)).isOk()).toBe(true);
    expect((await f.sim.removeDestination(DEST)).isOk()).toBe(true);
    expect((await f.sim.probeDestination(DEST))._unsafeUnwrap().exists).toBe(false);
    expect((await f.sim.removeDestination(`${DIR}/snap2.qcow2`))._unsafeUnwrapErr()).toMatchObject({
      kind: 'qmp',
      command: 'blockdev-del',
      desc: `Node ${DIR}/snap2.qcow2 is in use`,
    });
    await startJob(f);
    expect((await f.sim.removeDestination(DEST))._unsafeUnwrapErr()).toMatchObject({
      kind: 'qmp',
      desc: `Node ${DEST} is in use`,
    });
  });
});

describe('startMirror', () => {
  it('emits created and running before the reply', async () => {
    const f = fixture();
    await createDest(f.sim);
    const order: string[] = [];
    f.sim.events$.subscribe((e) => order.push(e.kind === 'job-status' ? e.status : e.kind));
    const reply = f.sim.startMirror(spec()).then((r) => order.push(r.isOk() ? 'reply' : 'error'));
    await reply;
    expect(order).toEqual(['created', 'running', 'reply']);
  });

  it('is idempotent for the same spec and refuses a different spec under the same id', async () => {
    const f = fixture();
    const s = await startJob(f);
    const before = f.events.length;
    expect((await f.sim.startMirror(s)).isOk()).toBe(true);
    expect(f.events.length).toBe(before);
    expect((await f.sim.startMirror({ ...s, speed: 1 }))._unsafeUnwrapErr()).toMatchObject({
      kind: 'qmp',
      errorClass: 'GenericError',
      command: 'blockdev-mirror',
      desc: 'Need a root block node',
    });
    // With the first job concluded (source no longer under a filter), the id conflict shows.
    (await f.sim.cancelJob('copy-vda', true))._unsafeUnwrap();
    await until(f, 'concluded');
    expect((await f.sim.startMirror(s)).isOk()).toBe(true);
    expect((await f.sim.startMirror({ ...s, speed: 1 }))._unsafeUnwrapErr().desc).toBe(
      "Job ID 'copy-vda' already in use",
    );
  });

  it('refuses a second job on the same disk with "Need a root block node"', async () => {
    const f = fixture();
    await startJob(f);
    await createDest(f.sim, `${DIR}/other.qcow2`);
    const r = await f.sim.startMirror(
      spec({ jobId: 'second', destination: { path: `${DIR}/other.qcow2`, format: 'qcow2' } }),
    );
    expect(r._unsafeUnwrapErr()).toMatchObject({ errorClass: 'GenericError', desc: 'Need a root block node' });
  });

  it('reports QEMU start-up errors: missing target, bad job id, negative speed, unknown disk', async () => {
    const f = fixture();
    expect((await f.sim.startMirror(spec()))._unsafeUnwrapErr().desc).toBe(
      `Could not open '${DEST}': No such file or directory`,
    );
    await createDest(f.sim);
    expect((await f.sim.startMirror(spec({ jobId: '' })))._unsafeUnwrapErr().desc).toBe("Invalid job ID ''");
    expect((await f.sim.startMirror(spec({ speed: -1 })))._unsafeUnwrapErr().desc).toBe(
      "Parameter 'speed' expects a non-negative value",
    );
    expect((await f.sim.startMirror(spec({ disk: 'vdz' })))._unsafeUnwrapErr().desc).toBe(
      "Cannot find device='vdz' nor node-name='vdz'",
    );
    expect((await f.sim.startMirror(spec({ domain: 'nope' })))._unsafeUnwrapErr().kind).toBe('invalid');
    expect(
      (
        await f.sim.startMirror(spec({ destination: { path: `${DIR}/snap2.qcow2`, format: 'qcow2' } }))
      )._unsafeUnwrapErr().desc,
    ).toBe("Can't mirror node into itself");
    // Only the negative speed got as far as job_create (v: created, then null at once).
    expect(f.trail('copy-vda')).toEqual(['created', 'null']);
    expect(f.events).toHaveLength(2);
  });

  it('accepts a target of the wrong size, then fails at once (aborting, error, concluded)', async () => {
    const f = fixture();
    (
      await f.sim.createDestination({ path: DEST, format: 'qcow2', virtualSize: GiB / 2, backing: null })
    )._unsafeUnwrap();
    expect((await f.sim.startMirror(spec())).isOk()).toBe(true);
    expect(f.trail('copy-vda')).toEqual(['created', 'running']);
    await f.clock.advance(0);
    expect(f.trail('copy-vda')).toEqual(['created', 'running', 'aborting', 'job-completed', 'concluded']);
    expect(f.events.find((e) => e.kind === 'job-completed')).toEqual({
      kind: 'job-completed',
      jobId: 'copy-vda',
      len: 0,
      offset: 0,
      speed: 0,
      error: 'Source and target image have different sizes',
    });
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()).toMatchObject({
      status: 'concluded',
      error: 'Source and target image have different sizes',
    });
  });
});

describe('copy progress', () => {
  it('copies the whole chain (1 GiB) at copyRate, becomes ready, in well under 50 ms of real time', async () => {
    const f = fixture();
    const t0 = performance.now();
    await startJob(f);
    await f.clock.advance(1000);
    const mid = (await f.sim.queryJob('copy-vda'))._unsafeUnwrap()!;
    expect(mid).toMatchObject({ status: 'running', len: GiB, ready: false });
    expect(mid.offset).toBeGreaterThan(400 * MiB);
    expect(mid.offset).toBeLessThan(600 * MiB);
    await f.clock.advance(1100);
    const real = performance.now() - t0;
    expect(await status(f)).toBe('ready');
    expect(f.trail('copy-vda')).toEqual(['created', 'running', 'ready', 'job-ready']);
    expect(f.events.find((e) => e.kind === 'job-ready')).toEqual({
      kind: 'job-ready',
      jobId: 'copy-vda',
      len: GiB,
      offset: GiB,
      speed: 0,
    });
    expect(real).toBeLessThan(50);
  });

  it('sync=top copies only the top layer and the pivot keeps the source backing', async () => {
    const f = fixture();
    const backing = { path: `${DIR}/snap1.qcow2`, format: 'qcow2' as const };
    (await f.sim.createDestination({ path: DEST, format: 'qcow2', virtualSize: GiB, backing }))._unsafeUnwrap();
    (await f.sim.startMirror(spec({ sync: 'top', destinationBacking: backing })))._unsafeUnwrap();
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()?.len).toBe(128 * MiB);
    await until(f, 'ready');
    (await f.sim.completeJob('copy-vda'))._unsafeUnwrap();
    await until(f, 'concluded');
    const chain = (await f.sim.describeDisk('demo', 'vda'))._unsafeUnwrap()?.chain.map((i) => i.path);
    expect(chain).toEqual([DEST, `${DIR}/snap1.qcow2`, `${DIR}/base.qcow2`]);
  });

  it('sync=top on a disk without backing copies everything (= full)', async () => {
    const f = fixture({
      domains: [
        { name: 'demo', disks: [{ name: 'vda', virtualSize: GiB, chain: [{ path: '/r/vda.raw', format: 'raw' }] }] },
      ],
    });
    await createDest(f.sim);
    (await f.sim.startMirror(spec({ sync: 'top' })))._unsafeUnwrap();
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()?.len).toBe(GiB);
  });

  it('a zero-length job becomes ready at once (after the reply)', async () => {
    const f = fixture({
      domains: [
        {
          name: 'demo',
          disks: [
            {
              name: 'vda',
              virtualSize: GiB,
              chain: [
                { path: '/e/top.qcow2', allocated: 0 },
                { path: '/e/base.qcow2', allocated: GiB },
              ],
            },
          ],
        },
      ],
    });
    await startJob(f, { sync: 'top' });
    expect(f.trail('copy-vda')).toEqual(['created', 'running']);
    await f.clock.advance(0);
    expect(f.trail('copy-vda')).toEqual(['created', 'running', 'ready', 'job-ready']);
  });

  it('honours speed before READY (in 16 MiB chunks) and ignores it after READY', async () => {
    const f = fixture();
    await startJob(f, { speed: 8 * MiB });
    await f.clock.advance(10_000);
    const slow = (await f.sim.queryJob('copy-vda'))._unsafeUnwrap()!;
    // 10 s at 8 MiB/s = 80 MiB, copied a 16 MiB chunk ahead.
    expect(slow.offset).toBeGreaterThanOrEqual(80 * MiB);
    expect(slow.offset).toBeLessThanOrEqual(96 * MiB);
    expect(slow.speed).toBe(8 * MiB);
    (await f.sim.setJobSpeed('copy-vda', 0))._unsafeUnwrap();
    await until(f, 'ready');
    (await f.sim.setJobSpeed('copy-vda', MiB))._unsafeUnwrap();
    f.sim.guestWrite('demo', 'vda', 200 * MiB)._unsafeUnwrap();
    await f.clock.advance(1000); // 1 MiB/s would need 200 s; the copy rate needs < 0.5 s
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()).toMatchObject({
      status: 'ready',
      len: GiB + 200 * MiB,
      offset: GiB + 200 * MiB,
      speed: MiB,
    });
    expect(f.trail('copy-vda').filter((e) => e === 'job-ready')).toHaveLength(1);
  });

  it('setJobSpeed refuses a negative speed with QEMU text', async () => {
    const f = fixture();
    await startJob(f);
    expect((await f.sim.setJobSpeed('copy-vda', -1))._unsafeUnwrapErr()).toMatchObject({
      errorClass: 'GenericError',
      desc: "Parameter 'speed' expects a non-negative value",
    });
  });
});

describe('guest writes', () => {
  it('raise len while running (background mode) and the job catches up', async () => {
    const f = fixture();
    await startJob(f, { speed: 16 * MiB });
    await f.clock.advance(500);
    f.sim.guestWrite('demo', 'vda', 64 * MiB)._unsafeUnwrap();
    const info = (await f.sim.queryJob('copy-vda'))._unsafeUnwrap()!;
    expect(info.len).toBe(GiB + 64 * MiB);
    expect(info.offset).toBeLessThan(64 * MiB);
    (await f.sim.setJobSpeed('copy-vda', 0))._unsafeUnwrap();
    await until(f, 'ready');
    expect(f.events.find((e) => e.kind === 'job-ready')).toMatchObject({ len: GiB + 64 * MiB, offset: GiB + 64 * MiB });
  });

  it('in background mode a paused job does not see writes until resumed (g)', async () => {
    const f = fixture();
    await startJob(f);
    await until(f, 'ready');
    (await f.sim.pauseJob('copy-vda'))._unsafeUnwrap();
    f.sim.guestWrite('demo', 'vda', 16 * MiB)._unsafeUnwrap();
    await f.clock.advance(500);
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()).toMatchObject({
      status: 'standby',
      len: GiB,
      offset: GiB,
    });
    (await f.sim.resumeJob('copy-vda'))._unsafeUnwrap();
    await f.clock.advance(200);
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()).toMatchObject({
      status: 'ready',
      len: GiB + 16 * MiB,
      offset: GiB + 16 * MiB,
    });
  });

  it('with write-blocking the write is mirrored at once, even in standby (g2)', async () => {
    const f = fixture();
    await startJob(f, { copyMode: 'write-blocking' });
    await until(f, 'ready');
    (await f.sim.pauseJob('copy-vda'))._unsafeUnwrap();
    f.sim.guestWrite('demo', 'vda', 16 * MiB)._unsafeUnwrap();
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()).toMatchObject({
      status: 'standby',
      len: GiB + 16 * MiB,
      offset: GiB + 16 * MiB,
    });
  });

  it('a steady write rate above the copy rate keeps the job from ever converging', async () => {
    const f = fixture({ copyRate: 100 * MiB });
    f.sim.setGuestWriteRate('demo', 'vda', 150 * MiB)._unsafeUnwrap();
    await startJob(f);
    await f.clock.advance(60_000);
    const info = (await f.sim.queryJob('copy-vda'))._unsafeUnwrap()!;
    expect(info.status).toBe('running');
    expect(info.len - info.offset).toBeGreaterThan(GiB);
    f.sim.setGuestWriteRate('demo', 'vda', 0)._unsafeUnwrap();
    await until(f, 'ready');
  });

  it('after the pivot, writes land in the new image', async () => {
    const f = fixture();
    await startJob(f);
    await until(f, 'ready');
    (await f.sim.completeJob('copy-vda'))._unsafeUnwrap();
    await until(f, 'concluded');
    const before = f.sim.images.get(DEST)!.allocated;
    const oldTop = f.sim.images.get(`${DIR}/snap2.qcow2`)!.allocated;
    (await f.sim.dismissJob('copy-vda'))._unsafeUnwrap();
    f.sim.guestWrite('demo', 'vda', MiB)._unsafeUnwrap();
    expect(f.sim.images.get(`${DIR}/snap2.qcow2`)!.allocated).toBe(oldTop);
    expect(f.sim.images.get(DEST)!.allocated).toBe(Math.min(GiB, before + MiB));
  });
});

describe('ending a job', () => {
  it('complete in READY: reply first, then waiting, pending, completed, concluded, and the pivot', async () => {
    const f = fixture();
    await startJob(f);
    await until(f, 'ready');
    const order: string[] = [];
    f.sim.events$.subscribe((e) => order.push(e.kind === 'job-status' ? e.status : e.kind));
    await f.sim.completeJob('copy-vda').then(() => order.push('reply'));
    expect((await f.sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(`${DIR}/snap2.qcow2`);
    await until(f, 'concluded');
    expect(order).toEqual(['reply', 'waiting', 'pending', 'job-completed', 'concluded']);
    expect((await f.sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(DEST);
    expect((await f.sim.describeDisk('demo', 'vda'))._unsafeUnwrap()?.chain.map((i) => i.path)).toEqual([DEST]);
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()).toMatchObject({
      status: 'concluded',
      ready: false,
      offset: GiB,
    });
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()?.error).toBeUndefined();
  });

  it('complete before READY is refused by the verb table', async () => {
    const f = fixture();
    await startJob(f);
    expect((await f.sim.completeJob('copy-vda'))._unsafeUnwrapErr()).toMatchObject({
      kind: 'qmp',
      errorClass: 'GenericError',
      command: 'block-job-complete',
      desc: "Job 'copy-vda' in state 'running' cannot accept command verb 'complete'",
    });
  });

  it('complete in standby is accepted but acts only after resume', async () => {
    const f = fixture();
    await startJob(f);
    await until(f, 'ready');
    (await f.sim.pauseJob('copy-vda'))._unsafeUnwrap();
    (await f.sim.completeJob('copy-vda'))._unsafeUnwrap();
    (await f.sim.completeJob('copy-vda'))._unsafeUnwrap();
    await f.clock.advance(5000);
    expect(await status(f)).toBe('standby');
    const order: string[] = [];
    f.sim.events$.subscribe((e) => order.push(e.kind === 'job-status' ? e.status : e.kind));
    await f.sim.resumeJob('copy-vda').then(() => order.push('reply'));
    await until(f, 'concluded');
    expect(order).toEqual(['ready', 'reply', 'waiting', 'pending', 'job-completed', 'concluded']);
    expect((await f.sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(DEST);
  });

  it('any cancel before READY is a force cancel (e1, e2)', async () => {
    for (const force of [false, true]) {
      const f = fixture();
      await startJob(f, { speed: 8 * MiB });
      await f.clock.advance(1000);
      (await f.sim.cancelJob('copy-vda', force))._unsafeUnwrap();
      await f.clock.advance(0);
      expect(f.trail('copy-vda')).toEqual(['created', 'running', 'aborting', 'job-cancelled', 'concluded']);
      expect(f.events.find((e) => e.kind === 'job-cancelled')).toMatchObject({
        len: GiB,
        offset: 16 * MiB,
        speed: 8 * MiB,
      });
      expect((await f.sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(`${DIR}/snap2.qcow2`);
    }
  });

  it('soft cancel after READY completes without a pivot (e3); force cancel cancels (e4)', async () => {
    const soft = fixture();
    await startJob(soft);
    await until(soft, 'ready');
    (await soft.sim.cancelJob('copy-vda', false))._unsafeUnwrap();
    await until(soft, 'concluded');
    expect(soft.trail('copy-vda')).toEqual([
      'created',
      'running',
      'ready',
      'job-ready',
      'waiting',
      'pending',
      'job-completed',
      'concluded',
    ]);
    expect((await soft.sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(`${DIR}/snap2.qcow2`);
    expect(soft.sim.images.get(DEST)?.allocated).toBe(GiB);

    const hard = fixture();
    await startJob(hard);
    await until(hard, 'ready');
    (await hard.sim.cancelJob('copy-vda', true))._unsafeUnwrap();
    await until(hard, 'concluded');
    expect(hard.trail('copy-vda')).toEqual([
      'created',
      'running',
      'ready',
      'job-ready',
      'aborting',
      'job-cancelled',
      'concluded',
    ]);
  });

  it('complete after a cancel request is refused', async () => {
    const f = fixture();
    await startJob(f);
    await until(f, 'ready');
    (await f.sim.cancelJob('copy-vda', false))._unsafeUnwrap();
    expect((await f.sim.completeJob('copy-vda'))._unsafeUnwrapErr().desc).toBe(
      "The active block job 'copy-vda' cannot be completed",
    );
  });
});

describe('verbs', () => {
  it('pause/resume: running <-> paused, ready <-> standby, with QEMU errors', async () => {
    const f = fixture();
    await startJob(f, { speed: MiB });
    // The port is idempotent like the QMP adapter: QEMU's "Can't resume a job that was not paused"
    // and "Job is already paused" mean the request is already satisfied (qmp.test.ts keeps the words).
    expect((await f.sim.resumeJob('copy-vda')).isOk()).toBe(true);
    (await f.sim.pauseJob('copy-vda'))._unsafeUnwrap();
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()).toMatchObject({ status: 'paused', paused: true });
    expect((await f.sim.pauseJob('copy-vda')).isOk()).toBe(true);
    expect(f.trail('copy-vda')).toEqual(['created', 'running', 'paused']);
    expect((await f.sim.completeJob('copy-vda'))._unsafeUnwrapErr().desc).toBe(
      "Job 'copy-vda' in state 'paused' cannot accept command verb 'complete'",
    );
    expect((await f.sim.cancelJob('copy-vda', false))._unsafeUnwrapErr().desc).toBe(
      "The block job for device 'copy-vda' is currently paused",
    );
    const frozen = (await f.sim.queryJob('copy-vda'))._unsafeUnwrap()!.offset;
    await f.clock.advance(10_000);
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()!.offset).toBe(frozen);
    (await f.sim.resumeJob('copy-vda'))._unsafeUnwrap();
    (await f.sim.setJobSpeed('copy-vda', 0))._unsafeUnwrap();
    await until(f, 'ready');
    (await f.sim.pauseJob('copy-vda'))._unsafeUnwrap();
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()).toMatchObject({
      status: 'standby',
      ready: true,
      paused: true,
    });
    (await f.sim.resumeJob('copy-vda'))._unsafeUnwrap();
    expect(f.trail('copy-vda')).toEqual([
      'created',
      'running',
      'paused',
      'running',
      'ready',
      'job-ready',
      'standby',
      'ready',
    ]);
  });

  it('force cancel of a paused job resumes it to die (h4: running, aborting, …)', async () => {
    const f = fixture();
    await startJob(f, { speed: MiB });
    (await f.sim.pauseJob('copy-vda'))._unsafeUnwrap();
    (await f.sim.cancelJob('copy-vda', true))._unsafeUnwrap();
    await f.clock.advance(0);
    expect(f.trail('copy-vda')).toEqual([
      'created',
      'running',
      'paused',
      'running',
      'aborting',
      'job-cancelled',
      'concluded',
    ]);
  });

  it('unknown jobs: block-job commands say DeviceNotActive; cancel and dismiss are idempotent', async () => {
    const f = fixture();
    expect((await f.sim.cancelJob('nope', true)).isOk()).toBe(true);
    for (const r of [
      await f.sim.completeJob('nope'),
      await f.sim.pauseJob('nope'),
      await f.sim.resumeJob('nope'),
      await f.sim.setJobSpeed('nope', 1),
    ])
      expect(r._unsafeUnwrapErr()).toMatchObject({
        kind: 'qmp',
        errorClass: 'DeviceNotActive',
        desc: "Block job 'nope' not found",
      });
    expect((await f.sim.dismissJob('nope')).isOk()).toBe(true);
    expect((await f.sim.queryJob('nope'))._unsafeUnwrap()).toBeNull();
  });

  it('dismiss only in concluded: null before the reply, then the job is gone', async () => {
    const f = fixture();
    await startJob(f);
    expect((await f.sim.dismissJob('copy-vda'))._unsafeUnwrapErr().desc).toBe(
      "Job 'copy-vda' in state 'running' cannot accept command verb 'dismiss'",
    );
    (await f.sim.cancelJob('copy-vda', true))._unsafeUnwrap();
    await until(f, 'concluded');
    // Nothing left to cancel: fine for the port (QEMU refuses the verb in 'concluded').
    expect((await f.sim.cancelJob('copy-vda', true)).isOk()).toBe(true);
    const order: string[] = [];
    f.sim.events$.subscribe((e) => order.push(e.kind === 'job-status' ? e.status : e.kind));
    await f.sim.dismissJob('copy-vda').then(() => order.push('reply'));
    expect(order).toEqual(['null', 'reply']);
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()).toBeNull();
    expect((await f.sim.dismissJob('copy-vda')).isOk()).toBe(true);
    // The disk is free again: a new job with the same id may start.
    expect((await f.sim.startMirror(spec())).isOk()).toBe(true);
  });
});

describe('determinism and cost', () => {
  it('two runs with the same inputs produce the same events', async () => {
    const run = async () => {
      const f = fixture({ random: () => 0.42 });
      f.sim.setEventLoss(0.3);
      f.sim.setGuestWriteRate('demo', 'vda', 20 * MiB)._unsafeUnwrap();
      await startJob(f, { speed: 64 * MiB });
      await f.clock.advance(30_000);
      return f.events;
    };
    expect(await run()).toEqual(await run());
  });

  it('runs 1,000 full 1 GiB copies to the pivot quickly and keeps no finished job', async () => {
    const clock = new VirtualClock();
    const domains = Array.from({ length: 1000 }, (_, i) => ({
      name: `vm${i}`,
      disks: [{ name: 'vda', virtualSize: GiB, chain: [{ path: `/p/vm${i}.qcow2`, allocated: GiB }] }],
    }));
    const sim = new SimulatedHypervisor({ clock, domains });
    let concluded = 0;
    sim.events$.subscribe((e) => {
      if (e.kind === 'job-status' && e.status === 'concluded') concluded++;
      if (e.kind === 'job-ready') void sim.completeJob(e.jobId);
    });
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) {
      const dest = `/p/vm${i}-copy.qcow2`;
      (await sim.createDestination({ path: dest, format: 'qcow2', virtualSize: GiB, backing: null }))._unsafeUnwrap();
      (
        await sim.startMirror(spec({ jobId: `j${i}`, domain: `vm${i}`, destination: { path: dest, format: 'qcow2' } }))
      )._unsafeUnwrap();
    }
    await clock.advance(3000);
    expect(concluded).toBe(1000);
    for (let i = 0; i < 1000; i++) (await sim.dismissJob(`j${i}`))._unsafeUnwrap();
    expect(sim.listJobs()).toHaveLength(0);
    expect(clock.pending).toBe(0);
    expect(performance.now() - t0).toBeLessThan(5000);
  });
});

describe('configured guest load', () => {
  it('a disk configured with guestWriteRate writes from the start', async () => {
    const f = fixture({
      domains: [
        {
          name: 'demo',
          disks: [
            {
              name: 'vda',
              virtualSize: GiB,
              chain: [{ path: '/w/top.qcow2', allocated: 0 }],
              guestWriteRate: 10 * MiB,
            },
          ],
        },
      ],
    });
    await f.clock.advance(1000);
    expect(f.sim.images.get('/w/top.qcow2')?.allocated).toBe(10 * MiB);
  });
});
