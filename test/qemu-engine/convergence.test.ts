/**
 * Convergence on a real qemu-storage-daemon: a guest writer (qemu-io over the NBD export,
 * rewriting the whole disk in a loop) outruns a mirror throttled to 1 MiB/s. The policy raises
 * the bandwidth (still outrun), restarts the copy in write-blocking mode, and the copy becomes
 * ready and pivots, verified with qemu-img compare; with write-blocking off, it gives up at the
 * deadline and the guest stays on its source.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hex, nbdRead, nbdWrite } from '../../adapters/qmp/lab.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { CHAIN_SIZE, MiB, useQemu } from '../qemu/harness.js';
import { engineOn, whenReady } from './helpers.js';

const qemu = useQemu();

/** Rewrites the whole disk through NBD, a new pattern each pass, until stopped. */
function guestWriter(nbdUri: string) {
  let stopped = false;
  let passes = 0;
  let pattern = 0x40;
  let failure: Error | null = null;
  const done = (async () => {
    while (!stopped) {
      pattern = 0x40 + (passes % 0x3f);
      try {
        await nbdWrite(nbdUri, pattern, 0, CHAIN_SIZE);
      } catch (e) {
        failure = e instanceof Error ? e : new Error(JSON.stringify(e));
        return;
      }
      passes++;
    }
  })();
  return {
    passes: () => passes,
    /** Stops after the pass under way; returns the pattern the disk holds now. */
    async stop(): Promise<number> {
      stopped = true;
      await done;
      if (failure) throw failure;
      return pattern;
    },
  };
}

describe('engine on QEMU: a guest that outruns a throttled mirror', () => {
  it('escalates to write-blocking, becomes ready and pivots; qemu-img compare is identical', async () => {
    const fx = qemu();
    const e = await engineOn(fx);
    const dest = join(fx.dir, 'copy.qcow2');
    const writer = guestWriter(fx.nbdUri);
    try {
      const job = (
        await e.engine.blockRebase('qemu', 'vda', dest, 1, RebaseFlags.COPY, {
          convergence: { timeoutMs: 240_000, windowMs: 3_000, raiseBandwidthTo: 16 * MiB },
        })
      )._unsafeUnwrap();
      const speeds: number[] = [];
      job.progress$.subscribe((p) => {
        if (speeds[speeds.length - 1] !== p.speed) speeds.push(p.speed);
      });
      await whenReady(job, 200_000);
      expect(writer.passes()).toBeGreaterThan(0);
      expect(job.states()).toEqual([
        'validating',
        'preparingDestination',
        'starting',
        'mirroring.running',
        'restarting.cancelling',
        'restarting.dismissing',
        'starting',
        'mirroring.running',
        'ready.synced',
      ]);
      expect(job.plan).toMatchObject({ copyMode: 'write-blocking', speed: 16 * MiB });
      // block-job-set-speed raised the limit before the restart, which kept it.
      expect(speeds.slice(0, 2)).toEqual([MiB, 16 * MiB]);
      expect(e.calls.get('setJobSpeed')).toBe(1);
      expect(e.calls.get('startMirror')).toBe(2);
      const last = await writer.stop();
      expect((await e.engine.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
      const result = await job.result;
      expect(result).toMatchObject({ outcome: 'completed', pivoted: true, error: null });
      expect((await e.hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(dest);
      // The guest reads its last pass from the copy.
      expect(await nbdRead(fx.nbdUri, last, 0, CHAIN_SIZE)).toBe(true);
      await fx.stop();
      expect(await fx.compareWithChain(dest, 'qcow2')).toMatchObject({ identical: true });
    } finally {
      await writer.stop().catch(() => undefined);
    }
  }, 300_000);

  it('gives up at its deadline: VIR_ERR_OPERATION_TIMEOUT, the guest still on its source, the copy removed', async () => {
    const fx = qemu();
    const e = await engineOn(fx);
    const dest = join(fx.dir, 'copy.qcow2');
    const writer = guestWriter(fx.nbdUri);
    try {
      const job = (
        await e.engine.blockRebase('qemu', 'vda', dest, 1, RebaseFlags.COPY, {
          convergence: { timeoutMs: 10_000, windowMs: 3_000, raiseBandwidthTo: 2 * MiB, writeBlocking: false },
        })
      )._unsafeUnwrap();
      const result = await job.result;
      expect(result).toMatchObject({ outcome: 'failed', pivoted: false, destinationConsistent: false });
      expect(result.error).toMatchObject({ code: 'VIR_ERR_OPERATION_TIMEOUT', number: 68 });
      expect(result.error?.message).toMatch(
        /^Timed out during operation: block copy of disk 'vda' did not converge within 10000 ms \((bandwidth raised to 2 MiB\/s|no escalation step applied)(, \d+ bytes still to copy)?\); the copy was cancelled and the guest stays on its source$/,
      );
      expect(result.states.some((s) => s.startsWith('ready'))).toBe(false);
      expect(e.calls.get('completeJob')).toBeUndefined();
      const last = await writer.stop();
      expect((await e.hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(fx.paths.snap2);
      expect(await fx.exportNode()).toBe('snap2');
      expect(await fx.cmd('query-jobs')).toEqual([]);
      expect(existsSync(dest)).toBe(false);
      // The guest's writes are all on its source.
      await fx.stop();
      expect(await fx.verifyImage(fx.paths.snap2, 'qcow2', [{ pattern: last, offset: 0, len: CHAIN_SIZE }])).toEqual(
        [],
      );
      expect(hex(last)).toMatch(/^0x[4-7]/);
    } finally {
      await writer.stop().catch(() => undefined);
    }
  }, 120_000);
});
