/**
 * Fault injection: target/source I/O errors under each on-*-error policy (qemu-mirror.md §3 h),
 * event loss and duplication, monitor disconnects, QEMU being killed or quitting.
 */
import { describe, expect, it } from 'vitest';
import { GiB, MiB, QCOW2_EMPTY_FILE_BYTES } from '../../adapters/sim/index.js';
import type { HypervisorEvent } from '../../src/core/hypervisor-port.js';
import { DEST, DIR, fixture, startJob, status, until } from './helpers.js';

describe('target I/O errors', () => {
  it('report: job-error{write,report}, aborting, completed with strerror, concluded (h1)', async () => {
    for (const [errno, text] of [
      ['EIO', 'Input/output error'],
      ['ENOSPC', 'No space left on device'],
    ] as const) {
      const f = fixture();
      f.sim.injectTargetError({ errno, once: true, atOffset: 15 * MiB });
      await startJob(f);
      await until(f, 'concluded');
      expect(f.trail('copy-vda')).toEqual([
        'created',
        'running',
        'job-error:report',
        'aborting',
        'job-completed',
        'concluded',
      ]);
      expect(f.events.find((e) => e.kind === 'job-error')).toEqual({
        kind: 'job-error',
        jobId: 'copy-vda',
        operation: 'write',
        action: 'report',
      });
      expect(f.events.find((e) => e.kind === 'job-completed')).toEqual({
        kind: 'job-completed',
        jobId: 'copy-vda',
        len: GiB,
        offset: 15 * MiB,
        speed: 0,
        error: text,
      });
      // auto-dismiss=false: the error stays readable until job-dismiss (h1b).
      expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()).toMatchObject({
        status: 'concluded',
        error: text,
        ioStatus: 'ok',
      });
      expect((await f.sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(`${DIR}/snap2.qcow2`);
    }
  });

  it('stop, once: paused with io-status failed; resume retries and the job goes on (h2)', async () => {
    const f = fixture();
    f.sim.injectTargetError({ errno: 'EIO', once: true });
    await startJob(f, { onTargetError: 'stop' });
    await until(f, 'paused');
    expect(f.trail('copy-vda')).toEqual(['created', 'running', 'job-error:stop', 'paused']);
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()).toMatchObject({ paused: true, ioStatus: 'failed' });
    expect((await f.sim.cancelJob('copy-vda', false))._unsafeUnwrapErr().desc).toBe(
      "The block job for device 'copy-vda' is currently paused",
    );
    (await f.sim.resumeJob('copy-vda'))._unsafeUnwrap();
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()?.ioStatus).toBe('ok');
    await until(f, 'ready');
    expect(f.trail('copy-vda')).toEqual([
      'created',
      'running',
      'job-error:stop',
      'paused',
      'running',
      'ready',
      'job-ready',
    ]);
  });

  it('stop, every time: each resume errors again; force cancel ends it (h4)', async () => {
    const f = fixture();
    f.sim.injectTargetError({ errno: 'EIO', once: false, atOffset: MiB });
    await startJob(f, { onTargetError: 'stop' });
    await until(f, 'paused');
    (await f.sim.resumeJob('copy-vda'))._unsafeUnwrap();
    await f.clock.advance(500);
    expect(await status(f)).toBe('paused');
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()?.offset).toBe(MiB);
    expect((await f.sim.completeJob('copy-vda'))._unsafeUnwrapErr().desc).toBe(
      "Job 'copy-vda' in state 'paused' cannot accept command verb 'complete'",
    );
    (await f.sim.cancelJob('copy-vda', true))._unsafeUnwrap();
    await until(f, 'concluded');
    expect(f.trail('copy-vda')).toEqual([
      'created',
      'running',
      'job-error:stop',
      'paused',
      'running',
      'job-error:stop',
      'paused',
      'running',
      'aborting',
      'job-cancelled',
      'concluded',
    ]);
  });

  it('enospc: stop with io-status nospace on ENOSPC (h5), report on EIO', async () => {
    const full = fixture();
    full.sim.injectTargetError({ errno: 'ENOSPC', once: true });
    await startJob(full, { onTargetError: 'enospc' });
    await until(full, 'paused');
    expect((await full.sim.queryJob('copy-vda'))._unsafeUnwrap()?.ioStatus).toBe('nospace');
    (await full.sim.resumeJob('copy-vda'))._unsafeUnwrap();
    await until(full, 'ready');

    const eio = fixture();
    eio.sim.injectTargetError({ errno: 'EIO', once: true });
    await startJob(eio, { onTargetError: 'enospc' });
    await until(eio, 'concluded');
    expect(eio.trail('copy-vda')).toContain('job-error:report');
  });

  it('ignore: job-error{ignore}, the region is retried and the copy completes (h3)', async () => {
    const f = fixture();
    f.sim.injectTargetError({ errno: 'EIO', once: true, atOffset: 100 * MiB });
    await startJob(f, { onTargetError: 'ignore' });
    await until(f, 'ready');
    expect(f.trail('copy-vda')).toEqual(['created', 'running', 'job-error:ignore', 'ready', 'job-ready']);
    expect(f.events.find((e) => e.kind === 'job-ready')).toMatchObject({ len: GiB, offset: GiB });
  });

  it('an error after READY stops into standby', async () => {
    const f = fixture();
    await startJob(f, { onTargetError: 'stop' });
    await until(f, 'ready');
    f.sim.injectTargetError({ errno: 'ENOSPC', once: true });
    f.sim.guestWrite('demo', 'vda', MiB)._unsafeUnwrap();
    await until(f, 'standby');
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()).toMatchObject({
      ready: true,
      paused: true,
      ioStatus: 'nospace',
    });
  });

  it('faults can be scoped to a job or target path, and cleared', async () => {
    const f = fixture();
    f.sim.injectTargetError({ errno: 'EIO', once: false, path: '/elsewhere.qcow2' });
    f.sim.injectTargetError({ errno: 'EIO', once: false, jobId: 'other-job' });
    await startJob(f);
    await until(f, 'ready');
    expect(f.trail('copy-vda')).not.toContain('job-error:report');
    f.sim.injectTargetError({ errno: 'EIO', once: false });
    f.sim.clearFaults();
    f.sim.guestWrite('demo', 'vda', MiB)._unsafeUnwrap();
    await f.clock.advance(500);
    expect(await status(f)).toBe('ready');
  });

  it('source read errors use on-source-error and report operation read', async () => {
    const f = fixture();
    f.sim.injectSourceError({ errno: 'EIO', once: true, path: `${DIR}/base.qcow2` });
    await startJob(f, { onSourceError: 'stop' });
    await until(f, 'paused');
    expect(f.events.find((e) => e.kind === 'job-error')).toMatchObject({ operation: 'read', action: 'stop' });
  });
});

describe('event loss and duplication', () => {
  const kinds = (events: HypervisorEvent[]) => events.map((e) => (e.kind === 'job-status' ? e.status : e.kind));

  it('p=1 loses every job event; queries still tell the truth', async () => {
    const f = fixture();
    f.sim.setEventLoss(1);
    await startJob(f);
    await f.clock.advance(5000);
    expect(f.events).toEqual([]);
    expect(await status(f)).toBe('ready');
  });

  it('a predicate loses exactly the chosen events', async () => {
    const f = fixture();
    f.sim.setEventLoss((e) => e.kind === 'job-ready');
    await startJob(f);
    await until(f, 'ready');
    expect(kinds(f.events)).toEqual(['created', 'running', 'ready']);
  });

  it('duplication delivers events twice, in order', async () => {
    const f = fixture();
    f.sim.setEventDuplication(1);
    await startJob(f);
    await until(f, 'ready');
    expect(kinds(f.events)).toEqual([
      'created',
      'created',
      'running',
      'running',
      'ready',
      'ready',
      'job-ready',
      'job-ready',
    ]);
  });

  it('a probability is drawn from the seedable random source', async () => {
    const run = async (seed: number) => {
      let s = seed;
      const f = fixture({ random: () => (s = (s * 16807) % 2147483647) / 2147483647 });
      f.sim.setEventLoss(0.5);
      for (let i = 0; i < 20; i++) {
        await startJob(f, { jobId: `j${i}`, destination: { path: `/tmp/${i}.qcow2`, format: 'qcow2' } });
        (await f.sim.cancelJob(`j${i}`, true))._unsafeUnwrap();
        await f.clock.advance(0);
        (await f.sim.dismissJob(`j${i}`))._unsafeUnwrap();
      }
      return f.events.length;
    };
    const a = await run(7);
    expect(a).toBe(await run(7));
    expect(a).toBeGreaterThan(20);
    expect(a).toBeLessThan(100); // 20 jobs × 5 events, about half lost
  });
});

describe('connection and process', () => {
  it('disconnect: connection-lost, events in between are lost, commands fail; reconnect keeps jobs (j)', async () => {
    const f = fixture();
    await startJob(f);
    f.sim.disconnect('socket closed');
    expect(f.events.at(-1)).toEqual({ kind: 'connection-lost', reason: 'socket closed' });
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrapErr()).toMatchObject({ kind: 'connection' });
    await f.clock.advance(5000);
    f.sim.reconnect();
    expect(f.events.map((e) => e.kind)).toEqual(['job-status', 'job-status', 'connection-lost', 'connection-restored']);
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()).toMatchObject({ status: 'ready', ready: true });
    (await f.sim.completeJob('copy-vda'))._unsafeUnwrap();
    await until(f, 'concluded');
    expect((await f.sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(DEST);
  });

  it('probing and creating files still work while the monitor is down', async () => {
    const f = fixture();
    f.sim.disconnect();
    expect((await f.sim.probeDestination(DEST)).isOk()).toBe(true);
    expect((await f.sim.createDestination({ path: DEST, format: 'raw', virtualSize: GiB, backing: null })).isOk()).toBe(
      true,
    );
  });

  it('kill: hypervisor-gone, jobs vanish silently, queries fail; the qcow2 target is left empty (k2)', async () => {
    const f = fixture();
    await startJob(f);
    await f.clock.advance(1000);
    expect(f.sim.images.get(DEST)!.allocated).toBeGreaterThan(0);
    f.sim.kill();
    expect(f.events.at(-1)).toEqual({ kind: 'hypervisor-gone', reason: 'QEMU process killed' });
    for (const r of [
      await f.sim.queryJob('copy-vda'),
      await f.sim.getDomain('demo'),
      await f.sim.completeJob('copy-vda'),
    ])
      expect(r._unsafeUnwrapErr().kind).toBe('connection');
    expect(f.sim.guestWrite('demo', 'vda', 1)._unsafeUnwrapErr().kind).toBe('connection');
    expect((await f.sim.probeDestination(DEST))._unsafeUnwrap()).toMatchObject({
      size: QCOW2_EMPTY_FILE_BYTES,
      empty: true,
    });
    expect(f.clock.pending).toBe(0);
    f.sim.restart();
    expect(f.events.at(-1)).toEqual({ kind: 'connection-restored' });
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrap()).toBeNull();
    expect((await f.sim.removeDestination(DEST)).isOk()).toBe(true);
  });

  it('shutdown: running jobs flap paused/running three times, then are cancelled (k1)', async () => {
    const f = fixture();
    await startJob(f, { speed: MiB });
    f.sim.shutdown();
    expect(f.trail('copy-vda')).toEqual([
      'created',
      'running',
      'paused',
      'running',
      'paused',
      'running',
      'paused',
      'running',
      'aborting',
      'job-cancelled',
      'concluded',
      'null',
    ]);
    expect(f.events.at(-1)).toEqual({ kind: 'hypervisor-gone', reason: 'QEMU quit' });
    expect(f.sim.sttViolations).toEqual([]);
  });

  it('close: commands fail, timers are cleared, events$ completes', async () => {
    const f = fixture();
    await startJob(f);
    let completed = false;
    f.sim.events$.subscribe({ complete: () => (completed = true) });
    await f.sim.close();
    expect(completed).toBe(true);
    expect(f.clock.pending).toBe(0);
    expect((await f.sim.queryJob('copy-vda'))._unsafeUnwrapErr().kind).toBe('connection');
  });

  it('a subscriber reacting to an event sees one global order', async () => {
    const f = fixture();
    const seen: string[] = [];
    f.sim.events$.subscribe((e) => {
      if (e.kind === 'job-status' && e.status === 'ready') void f.sim.pauseJob(e.jobId);
    });
    f.sim.events$.subscribe((e) => seen.push(e.kind === 'job-status' ? e.status : e.kind));
    await startJob(f);
    await f.clock.advance(5000);
    // BLOCK_JOB_READY follows JSC(ready) for every subscriber, even though the first one paused.
    expect(seen).toEqual(['created', 'running', 'ready', 'job-ready', 'standby']);
    expect(await status(f)).toBe('standby');
  });
});
