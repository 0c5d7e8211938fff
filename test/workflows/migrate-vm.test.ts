/**
 * Whole-chain live storage migration on a real TCG VM (qemu-system-x86_64, -blockdev chain
 * base <- snap1 <- snap2 under virtio-blk vda): the chain moves to DEST-DIR while the VM runs;
 * then every layer is compared with `qemu-img compare`, the guest reads the seed's data through
 * the new chain (query-block shows it), and every old file is byte-identical (sha256). Failures
 * at each step leave the guest on its old chain with nothing of the user's touched: ENOSPC from
 * a real 1 MiB tmpfs as DEST-DIR, a damaged backing copy (verification), a pivot QEMU refuses
 * (the port's block-job-complete fails), and a two-disk VM where one disk fails.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { errAsync } from 'neverthrow';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { must } from '../../adapters/qmp/lab.js';
import type { HypervisorPort } from '../../src/core/hypervisor-port.js';
import { migrateStorage } from '../../src/workflows/migrate-storage.js';
import { join } from 'node:path';
import { MiB, MigrationVm, tempDir } from './vm-harness.js';

// One VM per describe: the failure tests leave it on its old chain, the migrating test runs last.
const mounts: string[] = [];
afterEach(async () => {
  for (const m of mounts.splice(0)) {
    const mounted = !m.startsWith('unmounted:');
    const path = m.replace(/^unmounted:/, '');
    if (mounted) execFileSync('umount', [path]);
    await fs.rm(path, { recursive: true, force: true });
  }
});

function sharedVm(options: { secondDisk?: boolean } = {}): () => MigrationVm {
  let v: MigrationVm | null = null;
  beforeAll(async () => {
    v = await MigrationVm.start(options);
  }, 120_000);
  afterEach(async () => {
    await v?.closeEngines();
    // Each test gets an empty DEST-DIR of its own (a failure test must leave it empty).
    if (v) await fs.rm(join(v.lab.dir, 'store'), { recursive: true, force: true });
  });
  afterAll(async () => {
    await v?.dispose();
  });
  return () => v!;
}

async function freshDest(v: MigrationVm, name: string): Promise<string> {
  const dir = join(v.lab.dir, name);
  await fs.mkdir(dir);
  return dir;
}

// Real VMs on a loaded 2-core machine: generous deadlines, no timing assertion.
describe('whole-chain migration of a running VM (QEMU)', { timeout: 180_000 }, () => {
  const vm = sharedVm();

  it('ENOSPC in DEST-DIR (a real 1 MiB tmpfs): rolled back, DEST-DIR empty, the guest on its old chain', async () => {
    const v = vm();
    const dest = await tempDir('blockcopy-tmpfs-');
    let setup = await v.engine();
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1M', 'tmpfs', dest], { stdio: 'pipe' });
      mounts.push(dest);
    } catch (e) {
      // Without mount privileges: the copy of the base fails as cp does on a full disk (a fault
      // hook), after writing part of the file under its claim. Said, so a reader knows which ran.
      console.log(`tmpfs mount refused (${String(e).slice(0, 80)}): ENOSPC through a fault hook`);
      mounts.push(`unmounted:${dest}`);
      const files = v.files;
      setup = {
        ...setup,
        files: new Proxy(files, {
          get(target, prop, receiver) {
            const value: unknown = Reflect.get(target, prop, receiver);
            if (prop !== 'copyImage') return typeof value === 'function' ? value.bind(target) : value;
            return (from: string, to: string, claim: string) =>
              to.endsWith('base.qcow2')
                ? errAsync({ kind: 'io', command: 'cp', desc: `cp: error writing '${to}': No space left on device` })
                : files.copyImage(from, to, claim);
          },
        }),
      };
    }
    const before = await v.oldDigests();
    const m = (await migrateStorage(setup, { domain: 'qemu', disks: ['vda'], destDir: dest }))._unsafeUnwrap();
    const result = await m.result;
    expect(result.outcome).toBe('rolled-back');
    expect(result.error?.message).toMatch(/No space left on device/);
    expect(await v.destEntries(dest)).toEqual([]);
    expect(await v.guestChain()).toEqual(v.oldChain());
    expect(await v.guestReadsSeed()).toBe(true);
    await v.closeEngines();
    expect(await v.oldDigests()).toEqual(before);
  });

  it('a backing copy that fails verification: rolled back, never pivoted', async () => {
    const v = vm();
    const dest = await freshDest(v, 'verify');
    const setup = await v.engine();
    const before = await v.oldDigests();
    const [, snap1] = v.newChain('vda', dest);
    const m = (
      await migrateStorage(
        {
          ...setup,
          // The copy of snap1 goes bad between the copy and its verification.
          beforeEffect: async (step) => {
            if (step === 'verify')
              await must('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5a ${20 * MiB} 4096`, snap1!]);
          },
        },
        { domain: 'qemu', disks: ['vda'], destDir: dest },
      )
    )._unsafeUnwrap();
    const result = await m.result;
    expect(result.outcome).toBe('rolled-back');
    expect(result.error?.message).toMatch(/differs from/);
    expect(result.states.filter((st) => st.startsWith('pivoting'))).toEqual([]);
    expect(await v.destEntries(dest)).toEqual([]);
    expect(await v.guestChain()).toEqual(v.oldChain());
    await v.closeEngines();
    expect(await v.oldDigests()).toEqual(before);
  });

  it('a pivot QEMU refuses: the copy is aborted, the guest stays on its old chain', async () => {
    const v = vm();
    const dest = await freshDest(v, 'refused');
    const refuse = (hv: HypervisorPort): HypervisorPort =>
      new Proxy(hv, {
        get(target, prop, receiver) {
          const value: unknown = Reflect.get(target, prop, receiver);
          if (prop === 'completeJob')
            return () =>
              errAsync({ kind: 'qmp', errorClass: 'GenericError', command: 'block-job-complete', desc: 'refused' });
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
    const setup = await v.engine(refuse);
    const before = await v.oldDigests();
    const m = (await migrateStorage(setup, { domain: 'qemu', disks: ['vda'], destDir: dest }))._unsafeUnwrap();
    const result = await m.result;
    expect(result).toMatchObject({ outcome: 'rolled-back', status: { vda: { state: 'failed' } } });
    expect(await v.destEntries(dest)).toEqual([]);
    expect(await v.guestChain()).toEqual(v.oldChain());
    expect(await v.guestReadsSeed()).toBe(true);
    expect((await v.harness.execute('query-jobs'))._unsafeUnwrap()).toEqual([]);
    await v.closeEngines();
    expect(await v.oldDigests()).toEqual(before);
  });

  it('moves base, snap1 and snap2 to DEST-DIR; the guest reads the new chain; the old files are untouched', async () => {
    const v = vm();
    const dest = await freshDest(v, 'moved');
    const setup = await v.engine();
    const before = await v.oldDigests();
    const m = (await migrateStorage(setup, { domain: 'qemu', disks: ['vda'], destDir: dest }))._unsafeUnwrap();
    const result = await m.result;
    expect(result, JSON.stringify(result.error)).toMatchObject({ outcome: 'migrated', error: null });
    const [top, snap1, base] = v.newChain('vda', dest);
    expect(await v.guestChain()).toEqual([top, snap1, base]);
    expect(result.status['vda']?.observedChain).toEqual([top, snap1, base]);
    // Relative backing names in the new place.
    expect(await v.backingName(top!)).toBe('snap1.qcow2');
    expect(await v.backingName(snap1!)).toBe('base.qcow2');
    expect(await v.backingName(base!)).toBeNull();
    // Every layer, through its chain, as the original.
    const [oldTop, oldSnap1, oldBase] = v.oldChain();
    expect(await v.compare(base!, oldBase!)).toBe(true);
    expect(await v.compare(snap1!, oldSnap1!)).toBe(true);
    expect(await v.compare(top!, oldTop!)).toBe(true);
    expect(await v.guestReadsSeed()).toBe(true);
    // The guest writes into the new top now, not the old one.
    expect(await v.guestIo('vda', `write -P 0x77 ${24 * MiB} ${MiB}`)).not.toMatch(/error|fail/i);
    await v.closeEngines();
    expect(await v.oldDigests()).toEqual(before);
    // Only the new chain in DEST-DIR: no claim or temporary file left.
    expect(await v.destEntries(dest)).toEqual(['base.qcow2', 'snap1.qcow2', 'snap2.qcow2']);
    const nodes = (await v.harness.execute<{ file: string }[]>('query-named-block-nodes', { flat: true }))
      ._unsafeUnwrap()
      .map((n) => n.file);
    for (const old of v.oldChain()) expect(nodes.filter((f) => f.includes(old))).toEqual([]);
  });
});

describe('two-disk VM (QEMU)', { timeout: 180_000 }, () => {
  const vm = sharedVm({ secondDisk: true });

  it('one disk failing before its pivot: both stay on their sources, nothing of the user touched', async () => {
    const v = vm();
    const dest = await freshDest(v, 'fail');
    const setup = await v.engine();
    const before = await v.oldDigests();
    const [vdbTop] = v.newChain('vdb', dest);
    const m = (
      await migrateStorage(
        {
          ...setup,
          // vdb's new top is damaged just before its copy starts: its copy fails to start.
          beforeEffect: async (step) => {
            if (step === 'start:vdb') await fs.writeFile(vdbTop!, Buffer.alloc(4096, 0x41), { flag: 'r+' });
          },
        },
        { domain: 'qemu', disks: 'all', destDir: dest },
      )
    )._unsafeUnwrap();
    const result = await m.result;
    expect(result.outcome).toBe('rolled-back');
    expect(result.status['vdb']?.state).toBe('failed');
    expect(['aborted', 'failed']).toContain(result.status['vda']?.state);
    expect(await v.guestChain('vda')).toEqual(v.oldChain('vda'));
    expect(await v.guestChain('vdb')).toEqual(v.oldChain('vdb'));
    expect(await v.destEntries(dest)).toEqual([]);
    expect((await v.harness.execute('query-jobs'))._unsafeUnwrap()).toEqual([]);
    await v.closeEngines();
    expect(await v.oldDigests()).toEqual(before);
  });

  it('both disks move, pivoting together once both are ready', async () => {
    const v = vm();
    const dest = await freshDest(v, 'moved');
    const setup = await v.engine();
    const m = (await migrateStorage(setup, { domain: 'qemu', disks: 'all', destDir: dest }))._unsafeUnwrap();
    const result = await m.result;
    expect(result, JSON.stringify(result.error)).toMatchObject({ outcome: 'migrated' });
    expect(await v.guestChain('vda')).toEqual(v.newChain('vda', dest));
    expect(await v.guestChain('vdb')).toEqual(v.newChain('vdb', dest));
    expect(await v.guestReadsSeed('vda')).toBe(true);
    expect(await v.guestReadsSeed('vdb')).toBe(true);
  });
});
