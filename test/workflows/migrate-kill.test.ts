/**
 * kill -9 of the engine during a whole-chain migration on a real TCG VM: a child process runs
 * the migration with a SQLite store and SIGKILLs itself at a step (after its record, before its
 * effect), when its copy is ready, or right after QEMU accepted the pivot; a new engine on the
 * same store recovers. Before the first pivot it rolls back (the guest on its old chain, DEST-DIR
 * empty, the old files byte-identical); once a pivot may have happened it carries the migration
 * through (the guest on the new chain). One VM for all points: the rollbacks leave it as it was,
 * the forward points move its chain on to the next DEST-DIR.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectQemu } from '../../adapters/qmp/qemu-adapter.js';
import { openSqliteStore } from '../../adapters/store/sqlite.js';
import { createEngine } from '../../src/engine/engine.js';
import { recoverMigrations } from '../../src/workflows/migrate-storage.js';
import { childFailure, runChild } from '../durability/run-child.js';
import { MigrationVm, sha256 } from './vm-harness.js';

const child = new URL('./migrate-kill-child.ts', import.meta.url).pathname;

let vm: MigrationVm;
beforeAll(async () => {
  vm = await MigrationVm.start();
}, 120_000);
afterAll(async () => {
  await vm?.dispose();
});

const points: [string, 'migrated' | 'rolled-back'][] = [
  ['step:copy:DEST/snap1.qcow2', 'rolled-back'],
  ['step:verify', 'rolled-back'],
  ['job:ready.synced', 'rolled-back'],
  ['step:pivot:vda', 'migrated'],
  ['after:completeJob', 'migrated'],
];

// Real VMs and a child process on a loaded 2-core machine: generous deadlines.
describe('kill -9 during a whole-chain migration (QEMU)', { timeout: 180_000 }, () => {
  let n = 0;
  for (const [point, expected] of points) {
    it(`killed at ${point} → ${expected} after recovery`, async () => {
      n++;
      const dest = join(vm.lab.dir, `dest${n}`);
      await fs.mkdir(dest);
      const storePath = join(vm.lab.dir, `store${n}.db`);
      const oldChain = await vm.guestChain();
      const digests = async () => Promise.all(oldChain.map(sha256));
      const before = await digests();
      const died = await runChild(child, [vm.lab.socket('qmp'), storePath, dest, point.replace('DEST', dest)]);
      expect(died.signal, childFailure(died, vm.lab.alive)).toBe('SIGKILL');

      // A new process on the same store: the engine recovers the copy, the workflow its chart.
      const hv = (await connectQemu({ socket: vm.lab.socket('qmp'), reconnect: false }))._unsafeUnwrap();
      const s = openSqliteStore(storePath)._unsafeUnwrap();
      const engine = createEngine({ hypervisor: hv, store: s, pollIntervalMs: 100 });
      try {
        const recovered = (await recoverMigrations({ engine, hypervisor: hv, files: vm.files }))._unsafeUnwrap();
        expect(recovered).toHaveLength(1);
        const result = await recovered[0]!.result;
        expect(result.outcome, JSON.stringify(result.error)).toBe(expected);
        const newChain = ['snap2', 'snap1', 'base'].map((f) => join(dest, `${f}.qcow2`));
        expect(await vm.guestChain()).toEqual(expected === 'migrated' ? newChain : oldChain);
        expect(await vm.guestReadsSeed()).toBe(true);
        expect((await fs.readdir(dest)).sort()).toEqual(
          expected === 'migrated' ? ['base.qcow2', 'snap1.qcow2', 'snap2.qcow2'] : [],
        );
        expect((await vm.harness.execute('query-jobs'))._unsafeUnwrap()).toEqual([]);
        expect((await s.listWorkflows())._unsafeUnwrap()).toEqual([]);
        expect((await s.list())._unsafeUnwrap()).toEqual([]);
      } finally {
        await engine.shutdown();
        await hv.close();
        s.close();
      }
      // The chain the guest read before: byte-identical, whatever happened.
      expect(await digests()).toEqual(before);
    });
  }
});
