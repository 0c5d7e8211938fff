/**
 * Block pull on the real libvirtd (9.0 here), run from libvirt.test.ts (which owns the daemon: its
 * restart test must not run beside another libvirt file). `virsh blockpull` / `virsh blockjob`
 * give libvirt's own answers; the engine must give the same code and message for the same
 * request, and a pull through the engine must leave the chain as libvirt's does: whole chain and
 * down to base, guest data checked against a flattened copy taken before, the chain's shape from
 * `qemu-img info --backing-chain`; ASYNC and synchronous abort; pivot refused; busy refusals.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import type { BlockCopyEngine } from '../../src/engine/engine.js';
import type { BlockPullJob } from '../../src/engine/pull-jobs.js';
import { run, virsh, type Guest, type LibvirtLab } from '../../adapters/libvirt/lab.js';

/** libvirt's answer to a virsh command: its error line without "error: ". */
async function libvirtSays(...argv: string[]): Promise<string> {
  const r = await virsh(...argv);
  expect(r.code, `virsh ${argv.join(' ')} should fail`).not.toBe(0);
  const line = r.stderr.split('\n').find((l) => l.startsWith('error: ') && !l.startsWith('error: Failed'));
  return (line ?? r.stderr).replace(/^error: /, '').trim();
}

async function chainShape(path: string): Promise<[string, string | null][]> {
  const r = await run('qemu-img', ['info', '-U', '--backing-chain', '--output=json', path]);
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as Record<string, unknown>[]).map((i) => [
    String(i['filename']),
    typeof i['backing-filename'] === 'string' ? i['backing-filename'] : null,
  ]);
}

/** A flattened raw copy of what the guest reads now (taken before the pull). */
async function flatten(guest: Guest): Promise<string> {
  const ref = join(guest.dir, 'before.raw');
  const r = await run('qemu-img', ['convert', '-U', '-O', 'raw', guest.paths.snap2, ref]);
  expect(r.code).toBe(0);
  return ref;
}

async function sameAs(ref: string, path: string): Promise<void> {
  const r = await run('qemu-img', ['compare', '-U', '-f', 'raw', '-F', 'qcow2', ref, path]);
  expect(r.stdout + r.stderr).toMatch(/Images are identical/);
}

export function describePull(ctx: () => { lab: LibvirtLab; engine: BlockCopyEngine }): void {
  describe('block pull on libvirt', () => {
    it('the whole chain: COMPLETED, snap2 stands alone in its header and in the live XML, data intact', async () => {
      const { lab, engine } = ctx();
      const guest = await lab.guest('pull-all');
      const ref = await flatten(guest);
      const job = (await engine.blockPull(guest.name, 'vda', 0, 0))._unsafeUnwrap();
      expect((await job.result).outcome).toBe('completed');
      expect(await chainShape(guest.paths.snap2)).toEqual([[guest.paths.snap2, null]]);
      const xml = (await lab.hv.domainXml(guest.name))._unsafeUnwrap();
      expect(xml?.disks.find((d) => d.target === 'vda')?.chain.map((c) => c.path)).toEqual([guest.paths.snap2]);
      expect((await engine.getBlockJobInfo(guest.name, 'vda', 0))._unsafeUnwrap()).toBeNull();
      // Read offline once QEMU quit (virDomainDestroy: SIGTERM first, so qcow2 metadata is flushed).
      await lab.destroy(guest);
      await sameAs(ref, guest.paths.snap2);
    });

    it('down to base (rebase without COPY): snap2 backed by base; RELATIVE on absolute links refused as libvirt does', async () => {
      const { lab, engine } = ctx();
      const guest = await lab.guest('pull-base');
      const ref = await flatten(guest);
      // The lab's chain is written with absolute backing names: libvirt cannot keep them relative.
      const said = await libvirtSays('blockpull', guest.name, 'vda', '--base', guest.paths.base, '--keep-relative');
      expect(said).toBe("Requested operation is not valid: can't keep relative backing relationship");
      const relative = await engine.blockPullRebase(guest.name, 'vda', guest.paths.base, 0, RebaseFlags.RELATIVE);
      expect(relative._unsafeUnwrapErr()).toMatchObject({
        code: 'VIR_ERR_OPERATION_INVALID',
        number: 55,
        message: said,
      });
      const job = (await engine.blockRebase<BlockPullJob>(guest.name, 'vda', guest.paths.base, 0, 0))._unsafeUnwrap();
      expect(job.type).toBe('PULL');
      expect((await job.result).outcome).toBe('completed');
      expect(await chainShape(guest.paths.snap2)).toEqual([
        [guest.paths.snap2, guest.paths.base],
        [guest.paths.base, null],
      ]);
      await lab.destroy(guest);
      await sameAs(ref, guest.paths.snap2);
    });

    it('argument refusals: the engine answers as libvirt 9.0 (virsh blockpull) answers', async () => {
      const { lab, engine } = ctx();
      const guest = await lab.guest('pull-args');
      const n = guest.name;
      const cases: [string[], () => ReturnType<BlockCopyEngine['blockPullRebase']>][] = [
        [['--base', '/nope.qcow2'], () => engine.blockPullRebase(n, 'vda', '/nope.qcow2', 0, 0)],
        [['--base', guest.paths.snap2], () => engine.blockPullRebase(n, 'vda', guest.paths.snap2, 0, 0)],
        [['--keep-relative'], () => engine.blockPullRebase(n, 'vda', null, 0, RebaseFlags.RELATIVE)],
        [['--bandwidth', '8796093022208'], () => engine.blockPull(n, 'vda', 8796093022208, 0)],
        // Order: the base is looked up before the bandwidth is checked.
        [
          ['--base', '/nope.qcow2', '--bandwidth', '8796093022208'],
          () => engine.blockPullRebase(n, 'vda', '/nope.qcow2', 8796093022208, 0),
        ],
      ];
      for (const [extra, call] of cases) {
        const said = await libvirtSays('blockpull', n, 'vda', ...extra);
        expect((await call())._unsafeUnwrapErr().message, `virsh blockpull ${extra.join(' ')}`).toBe(said);
      }
      expect(await virsh('blockjob', n, 'vda', '--info')).toMatchObject({ code: 0 });
      await lab.destroy(guest);
    });

    it('busy: pivot refused (83), another pull or a copy refused (84), info type 1; ASYNC then synchronous abort', async () => {
      const { lab, engine } = ctx();
      const guest = await lab.guest('pull-busy');
      const n = guest.name;
      // 1 MiB/s: the pull runs through every request below.
      const job = (await engine.blockPull(n, 'vda', 1, 0))._unsafeUnwrap();
      // libvirt's answers while our pull runs (its job name is libvirt's own, not ours).
      const pivotSaid = await libvirtSays('blockjob', n, 'vda', '--pivot');
      expect(pivotSaid).toMatch(/^block copy still active: block job '.+' not ready for pivot yet$/);
      const pivot = await engine.blockJobAbort(n, 'vda', AbortFlags.PIVOT);
      expect(pivot._unsafeUnwrapErr()).toMatchObject({ code: 'VIR_ERR_BLOCK_COPY_ACTIVE', number: 83 });
      expect(pivot._unsafeUnwrapErr().message).toBe(pivotSaid.replace(/block job '.+'/, `block job '${job.jobId}'`));
      const pullSaid = await libvirtSays('blockpull', n, 'vda');
      expect(pullSaid).toBe("Operation not supported: disk 'vda' already in active block job");
      expect((await engine.blockPull(n, 'vda', 0, 0))._unsafeUnwrapErr()).toMatchObject({
        code: 'VIR_ERR_OPERATION_UNSUPPORTED',
        number: 84,
        message: pullSaid,
      });
      const copyDest = join(guest.dir, 'copy.qcow2');
      const copySaid = await libvirtSays('blockcopy', n, 'vda', copyDest, '--transient-job');
      expect(copySaid).toBe(pullSaid);
      const copy = await engine.blockRebase(n, 'vda', copyDest, 0, RebaseFlags.COPY);
      expect(copy._unsafeUnwrapErr().message).toBe(copySaid);
      const info = (await engine.getBlockJobInfo(n, 'vda', 0))._unsafeUnwrap();
      expect(info).toMatchObject({ type: 1, bandwidth: 1 });
      const raw = await virsh('blockjob', n, 'vda', '--info', '--raw');
      expect(raw.stdout).toMatch(/type=Block Pull/);

      expect((await engine.blockJobAbort(n, 'vda', AbortFlags.ASYNC)).isOk()).toBe(true);
      expect((await job.result).outcome).toBe('canceled');
      const second = (await engine.blockPull(n, 'vda', 1, 0))._unsafeUnwrap();
      expect((await engine.blockJobAbort(n, 'vda', 0)).isOk()).toBe(true);
      expect(second.state()).toBe('canceled');
      expect((await engine.blockJobAbort(n, 'vda', 0))._unsafeUnwrapErr().message).toBe(
        await libvirtSays('blockjob', n, 'vda', '--abort'),
      );
      // Nothing was pulled: the chain is whole.
      expect((await chainShape(guest.paths.snap2)).map(([f]) => f)).toEqual([
        guest.paths.snap2,
        guest.paths.snap1,
        guest.paths.base,
      ]);
      await lab.destroy(guest);
    });
  });
}
