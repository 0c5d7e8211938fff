/**
 * The seed's eight blockRebase(COPY …) flag combinations and the three copy-only flags refused
 * without COPY, on real TCG VMs: one with -blockdev + -device id=vda, one with a legacy
 * -drive id=drive0. Every accepted copy is pivoted and verified (verify.ts).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RebaseFlags } from '../../src/core/flags.js';
import { run } from '../../adapters/qmp/lab.js';
import { CHAIN_SIZE, useVm } from './harness.js';
import { pivotAndVerify } from './verify.js';

const vm = useVm();
const { COPY, SHALLOW, REUSE_EXT, COPY_RAW } = RebaseFlags;

describe.each(['blockdev', 'drive'] as const)('VM (%s): blockRebase flag combinations', (style) => {
  it('COPY, COPY|COPY_RAW, COPY|SHALLOW, COPY|REUSE_EXT: pivoted and identical', async () => {
    for (const [flags, format, shallow, pre] of [
      [COPY, 'qcow2', false, null],
      [COPY | COPY_RAW, 'raw', false, null],
      [COPY | SHALLOW, 'qcow2', true, null],
      [COPY | REUSE_EXT, 'qcow2', false, 'qcow2'],
    ] as const) {
      const fx = await vm(style);
      const dest = pre ? await fx.createImage(`pre.${pre}`, pre) : join(fx.dir, `copy.${format}`);
      const job = (await fx.engine.blockRebase('qemu', fx.device, dest, 0, flags))._unsafeUnwrap();
      expect(job.plan).toMatchObject({ sync: shallow ? 'top' : 'full', destination: { path: dest, format } });
      await pivotAndVerify(fx, job, fx.device, dest, format, shallow);
      if (shallow) expect((await fx.imageInfo(dest))['full-backing-filename']).toBe(fx.paths.snap1);
    }
  });

  it('COPY|REUSE_EXT|SHALLOW, COPY|REUSE_EXT|SHALLOW|COPY_RAW, COPY|REUSE_EXT|COPY_RAW: pivoted and identical', async () => {
    {
      const fx = await vm(style);
      const dest = await fx.createImage('pre.qcow2', 'qcow2', CHAIN_SIZE, fx.paths.snap1);
      const job = (await fx.engine.blockRebase('qemu', fx.device, dest, 0, COPY | REUSE_EXT | SHALLOW))._unsafeUnwrap();
      expect(job.plan).toMatchObject({ sync: 'top', destinationAction: 'reuse' });
      await pivotAndVerify(fx, job, fx.device, dest, 'qcow2', true);
    }
    {
      // The seed: a raw volume already holding snap1's contents gets only snap2's layer.
      const fx = await vm(style);
      const dest = join(fx.dir, 'vol.raw');
      expect((await run('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'raw', fx.paths.snap1, dest])).code).toBe(0);
      const job = (
        await fx.engine.blockRebase('qemu', fx.device, dest, 0, COPY | REUSE_EXT | SHALLOW | COPY_RAW)
      )._unsafeUnwrap();
      expect(job.plan).toMatchObject({ sync: 'top', destinationAction: 'reuse', backing: null });
      await pivotAndVerify(fx, job, fx.device, dest, 'raw', false);
    }
    {
      const fx = await vm(style);
      const dest = await fx.createImage('pre.raw', 'raw');
      const job = (
        await fx.engine.blockRebase('qemu', fx.device, dest, 0, COPY | REUSE_EXT | COPY_RAW)
      )._unsafeUnwrap();
      await pivotAndVerify(fx, job, fx.device, dest, 'raw', false);
    }
  });

  it('COPY|SHALLOW|COPY_RAW refused (CONFIG_UNSUPPORTED); SHALLOW, REUSE_EXT, COPY_RAW without COPY refused; nothing created', async () => {
    const fx = await vm(style);
    const dest = join(fx.dir, 'copy.raw');
    const r = await fx.engine.blockRebase('qemu', fx.device, dest, 0, COPY | SHALLOW | COPY_RAW);
    expect(r._unsafeUnwrapErr().code).toBe('VIR_ERR_CONFIG_UNSUPPORTED');
    for (const flag of [SHALLOW, REUSE_EXT, COPY_RAW]) {
      const before = new Map(fx.calls);
      const refused = await fx.engine.blockRebase('qemu', fx.device, dest, 0, flag);
      expect(refused._unsafeUnwrapErr()).toMatchObject({
        code: 'VIR_ERR_INVALID_ARG',
        detail: 'use of flags requires a copy job',
      });
      expect(fx.calls).toEqual(before);
    }
    expect(existsSync(dest)).toBe(false);
    expect(fx.calls.get('startMirror')).toBeUndefined();
    expect(fx.calls.get('createDestination')).toBeUndefined();
    expect(await fx.cmd('query-jobs')).toEqual([]);
  });
});
