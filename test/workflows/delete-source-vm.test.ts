/**
 * `deleteSource` of the whole-chain migration on a real TCG VM (one VM for the file, its chain
 * moving on from test to test): a pivot QEMU refuses leaves every old file byte-identical; a
 * kill -9 of the engine at the deletion (once the decision was recorded, before the first file
 * and between two files) is resumed by a new engine; a migration that succeeds deletes exactly the
 * old chain's files, and a user's own files in the same directory stay as they were.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { errAsync } from 'neverthrow';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { must } from '../../adapters/qmp/lab.js';
import { connectQemu } from '../../adapters/qmp/qemu-adapter.js';
import { openSqliteStore } from '../../adapters/store/sqlite.js';
import type { HypervisorPort } from '../../src/core/hypervisor-port.js';
import { createEngine } from '../../src/engine/engine.js';
import { migrateStorage, recoverMigrations } from '../../src/workflows/migrate-storage.js';
import { childFailure, runChild } from '../durability/run-child.js';
import { MiB, MigrationVm, sha256 } from './vm-harness.js';

const child = new URL('./migrate-kill-child.ts', import.meta.url).pathname;

let vm: MigrationVm;
beforeAll(async () => {
  vm = await MigrationVm.start();
}, 120_000);
afterEach(async () => {
  await vm?.closeEngines();
});
afterAll(async () => {
  await vm?.dispose();
});

/** sha256 of every file in `dir` but the given ones (sockets, directories and QEMU's log skipped). */
async function digestsOf(dir: string, except: readonly string[] = []): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await fs.readdir(dir)).sort()) {
    const path = join(dir, name);
    if (except.includes(path) || name === 'vm.log' || !(await fs.lstat(path)).isFile()) continue;
    out[name] = await sha256(path);
  }
  return out;
}

/** A user's own files beside the chain: an image that is no layer of it, and a text file. */
async function userFiles(dir: string): Promise<void> {
  await must('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'user-scratch.qcow2'), String(4 * MiB)]);
  await fs.writeFile(join(dir, 'notes.txt'), 'not part of any chain\n');
}

const exists = async (p: string) => (await fs.lstat(p).catch(() => null)) !== null;

async function backingChain(top: string): Promise<string[]> {
  const out = await must('qemu-img', ['info', '-U', '--backing-chain', '--output=json', top]);
  return (JSON.parse(out) as { filename: string }[]).map((i) => i.filename);
}

// Real VMs and a child process on a loaded 2-core machine: generous deadlines, no timing assertion.
describe('migrate-storage --delete-source on a running VM (QEMU)', { timeout: 240_000 }, () => {
  it('a pivot QEMU refuses: rolled back, every old file and the user’s files byte-identical', async () => {
    const dest = join(vm.lab.dir, 'refused');
    await fs.mkdir(dest);
    await userFiles(vm.lab.dir);
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
    const setup = await vm.engine(refuse);
    const before = await digestsOf(vm.lab.dir);
    const m = (
      await migrateStorage(setup, { domain: 'qemu', disks: ['vda'], destDir: dest, deleteSource: true })
    )._unsafeUnwrap();
    const result = await m.result;
    expect(result).toMatchObject({ outcome: 'rolled-back', sourceDeletion: null });
    expect(result.states).not.toContain('deletingSource');
    expect(await vm.guestChain()).toEqual(vm.oldChain());
    expect(await vm.guestReadsSeed()).toBe(true);
    await vm.closeEngines();
    expect(await digestsOf(vm.lab.dir)).toEqual(before);
    expect(await fs.readdir(dest)).toEqual([]);
  });

  // Before the first file (the decision recorded) and between two files: the chain moves on.
  const kills: [string, string, (old: readonly string[]) => string, number][] = [
    ['', 'dest1', (old) => `step:delete:${old[1]!}`, 1],
    ['dest1', 'dest2', () => 'step:delete-source', 0],
  ];
  for (const [fromName, destName, point, gone] of kills) {
    it(`kill -9 at ${point(['…/snap2', '…/snap1'])}: a new engine resumes the deletion; the user’s files stay`, async () => {
      const from = join(vm.lab.dir, fromName);
      const dest = join(vm.lab.dir, destName);
      await fs.mkdir(dest);
      if (fromName !== '') await userFiles(from);
      const storePath = join(vm.lab.dir, `kill-${destName}.db`);
      const old = fromName === '' ? vm.oldChain() : vm.newChain('vda', from);
      expect(await vm.guestChain()).toEqual(old);
      // Everything in the directory but the old chain (and the store the child writes) must stay.
      const others = await digestsOf(from, [...old, storePath]);
      const died = await runChild(child, [vm.lab.socket('qmp'), storePath, dest, point(old), 'delete-source']);
      expect(died.signal, childFailure(died, vm.lab.alive)).toBe('SIGKILL');
      // The decision was recorded; `gone` files were deleted before the kill.
      for (const [i, f] of old.entries()) expect(await exists(f), f).toBe(i >= gone);

      const hv = (await connectQemu({ socket: vm.lab.socket('qmp'), reconnect: false }))._unsafeUnwrap();
      const s = openSqliteStore(storePath)._unsafeUnwrap();
      const engine = createEngine({ hypervisor: hv, store: s, pollIntervalMs: 100 });
      try {
        const recovered = (await recoverMigrations({ engine, hypervisor: hv, files: vm.files }))._unsafeUnwrap();
        expect(recovered).toHaveLength(1);
        const result = await recovered[0]!.result;
        expect(result.outcome, JSON.stringify(result.error)).toBe('migrated');
        expect(result.states.slice(-2)).toEqual(['deletingSource', 'migrated']);
        expect(result.sourceDeletion).toEqual({ deleted: old, kept: [] });
        expect((await s.listWorkflows())._unsafeUnwrap()).toEqual([]);
      } finally {
        await engine.shutdown();
        await hv.close();
        s.close();
      }
      for (const f of old) expect(await exists(f)).toBe(false);
      const newChain = vm.newChain('vda', dest);
      expect(await vm.guestChain()).toEqual(newChain);
      expect(await backingChain(newChain[0]!)).toEqual(newChain);
      expect(await vm.guestReadsSeed()).toBe(true);
      expect(await digestsOf(from, [storePath])).toEqual(others);
    });
  }

  it('a migration that succeeds deletes exactly the old chain; the user’s files in its directory stay', async () => {
    const from = join(vm.lab.dir, 'dest2');
    const dest = join(vm.lab.dir, 'dest3');
    await fs.mkdir(dest);
    await userFiles(from);
    const old = vm.newChain('vda', from);
    expect(await vm.guestChain()).toEqual(old);
    const others = await digestsOf(from, old);
    expect(Object.keys(others)).toEqual(['notes.txt', 'user-scratch.qcow2']);
    const setup = await vm.engine();
    const m = (
      await migrateStorage(setup, { domain: 'qemu', disks: ['vda'], destDir: dest, deleteSource: true })
    )._unsafeUnwrap();
    const result = await m.result;
    expect(result, JSON.stringify(result.error)).toMatchObject({ outcome: 'migrated', error: null });
    expect(result.sourceDeletion).toEqual({ deleted: old, kept: [] });
    for (const f of old) expect(await exists(f)).toBe(false);
    expect(await digestsOf(from)).toEqual(others);
    const newChain = vm.newChain('vda', dest);
    expect(await vm.guestChain()).toEqual(newChain);
    expect(await backingChain(newChain[0]!)).toEqual(newChain);
    expect(await vm.guestReadsSeed()).toBe(true);
    expect(await vm.guestIo('vda', `write -P 0x66 ${24 * MiB} ${MiB}`)).not.toMatch(/error|fail/i);
    expect(await vm.destEntries(dest)).toEqual(['base.qcow2', 'snap1.qcow2', 'snap2.qcow2']);
  });
});
