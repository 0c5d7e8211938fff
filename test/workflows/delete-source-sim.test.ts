/**
 * `deleteSource` of the whole-chain migration on the simulator: the old chain is deleted only
 * after every disk pivoted onto its verified new chain; kept when a pivot is refused (one disk or
 * one of two); a file another disk still uses is kept (the block graph); a file that replaced an
 * old one meanwhile is kept; a crash before or in the middle of the deletion resumes it.
 */
import { describe, expect, it } from 'vitest';
import { makeImage } from '../../adapters/sim/images.js';
import type { MigrateStorageRequest } from '../../src/workflows/migrate-storage.js';
import { checkMigrationRequest, migrateStorage, recoverMigrations } from '../../src/workflows/migrate-storage.js';
import { DEST_DIR, SRC, refusingPivot, seedDisk, simMigrationLab } from './sim-harness.js';

const one: MigrateStorageRequest = { domain: 'demo', disks: ['vda'], destDir: DEST_DIR, deleteSource: true };
const NEW_CHAIN = [`${DEST_DIR}/vda-snap2.qcow2`, `${DEST_DIR}/vda-snap1.qcow2`, `${DEST_DIR}/vda-base.qcow2`];
const OLD_CHAIN = [`${SRC}/vda-snap2.qcow2`, `${SRC}/vda-snap1.qcow2`, `${SRC}/vda-base.qcow2`];

describe('migrate-storage --delete-source (simulator)', () => {
  it('deletes the old chain after the verified pivot, records the decision first, keeps everything else', async () => {
    const lab = simMigrationLab([seedDisk('vda'), seedDisk('vdb')]);
    const { setup } = lab.engine();
    const vdbBefore = lab
      .userFiles()
      .split('\n')
      .filter((l) => l.includes('/vdb-'));
    let recorded: string[] | undefined;
    const m = (
      await lab.settle(
        migrateStorage(
          {
            ...setup,
            beforeEffect: async (step) => {
              if (step !== 'delete-source') return;
              const r = (await lab.store.loadWorkflow(m0))._unsafeUnwrap()!;
              recorded = (r.data as { ledger: { deleting?: string[] } }).ledger.deleting;
              expect(r.state).toBe('deletingSource');
              // Nothing is deleted before the decision is durable.
              for (const p of OLD_CHAIN) expect(lab.sim.images.get(p)).toBeDefined();
            },
          },
          { ...one, workflowId: 'del-1' },
        ),
      )
    )._unsafeUnwrap();
    const m0 = m.workflowId;
    const result = await lab.settle(m.result);
    expect(result).toMatchObject({ outcome: 'migrated', error: null });
    expect(result.states.slice(-3)).toEqual(['releasing', 'deletingSource', 'migrated']);
    expect(recorded).toEqual(OLD_CHAIN);
    expect(result.sourceDeletion).toEqual({ deleted: OLD_CHAIN, kept: [] });
    for (const p of OLD_CHAIN) expect(lab.sim.images.get(p)).toBeUndefined();
    expect(await lab.chainOf('vda')).toEqual(NEW_CHAIN);
    expect(lab.destFiles()).toEqual([...NEW_CHAIN].sort());
    // The other disk's files are untouched.
    expect(
      lab
        .userFiles()
        .split('\n')
        .filter((l) => l.includes('/vdb-')),
    ).toEqual(vdbBefore);
  });

  it('without deleteSource nothing is deleted (the default)', async () => {
    const lab = simMigrationLab();
    const { setup } = lab.engine();
    const before = lab.userFiles();
    const m = (await lab.settle(migrateStorage(setup, { ...one, deleteSource: false })))._unsafeUnwrap();
    const result = await lab.settle(m.result);
    expect(result).toMatchObject({ outcome: 'migrated', sourceDeletion: null });
    expect(result.states).not.toContain('deletingSource');
    expect(lab.userFiles()).toBe(before);
  });

  it('a refused pivot: rolled back, nothing deleted', async () => {
    const lab = simMigrationLab();
    const { setup } = lab.engine({ port: refusingPivot(lab.sim, 'vda') });
    const before = lab.userFiles();
    const m = (await lab.settle(migrateStorage(setup, one)))._unsafeUnwrap();
    const result = await lab.settle(m.result);
    expect(result).toMatchObject({ outcome: 'rolled-back', sourceDeletion: null });
    expect(lab.userFiles()).toBe(before);
    expect(lab.files.log.filter((l) => l.startsWith('removeSource'))).toEqual([]);
  });

  it('one disk pivoted, the other refused: the pivoted disk keeps its old chain too', async () => {
    const lab = simMigrationLab([seedDisk('vda'), seedDisk('vdb')]);
    const { setup } = lab.engine({ port: refusingPivot(lab.sim, 'vdb') });
    const before = lab.userFiles();
    const m = (await lab.settle(migrateStorage(setup, { ...one, disks: 'all' })))._unsafeUnwrap();
    const result = await lab.settle(m.result);
    expect(result).toMatchObject({ outcome: 'partial', sourceDeletion: null, status: { vda: { state: 'pivoted' } } });
    expect(result.states).not.toContain('deletingSource');
    expect(lab.userFiles()).toBe(before);
  });

  it('a base another disk still reads is kept (the block graph), the rest of the chain goes', async () => {
    const shared = `${SRC}/shared-base.qcow2`;
    const disk = (name: string) => {
      const d = seedDisk(name);
      return { ...d, chain: [...d.chain.slice(0, 2), { path: shared, allocated: 512 * 1024 * 1024 }] };
    };
    const lab = simMigrationLab([disk('vda'), disk('vdb')]);
    const { setup } = lab.engine();
    const m = (await lab.settle(migrateStorage(setup, one)))._unsafeUnwrap();
    const result = await lab.settle(m.result);
    expect(result.outcome).toBe('migrated');
    expect(result.sourceDeletion).toEqual({
      deleted: [`${SRC}/vda-snap2.qcow2`, `${SRC}/vda-snap1.qcow2`],
      kept: [{ path: shared, reason: 'a node of the domain still uses it' }],
    });
    expect(lab.sim.images.get(shared)).toBeDefined();
    expect(await lab.chainOf('vdb')).toEqual([`${SRC}/vdb-snap2.qcow2`, `${SRC}/vdb-snap1.qcow2`, shared]);
  });

  it('a file put in an old file’s place after planning is kept', async () => {
    const lab = simMigrationLab();
    const { setup } = lab.engine();
    const snap1 = OLD_CHAIN[1]!;
    const m = (
      await lab.settle(
        migrateStorage(
          {
            ...setup,
            beforeEffect: (step) => {
              // The user puts a file of their own in snap1's place once the guest left it.
              if (step === 'release') lab.sim.images.put(makeImage({ path: snap1, virtualSize: 1024 * 1024 }));
            },
          },
          one,
        ),
      )
    )._unsafeUnwrap();
    const result = await lab.settle(m.result);
    expect(result.outcome).toBe('migrated');
    expect(result.sourceDeletion?.kept).toEqual([
      { path: snap1, reason: 'another file has taken its place since the migration began' },
    ]);
    expect(result.sourceDeletion?.deleted).toEqual([OLD_CHAIN[0], OLD_CHAIN[2]]);
    expect(lab.sim.images.get(snap1)?.virtualSize).toBe(1024 * 1024);
  });

  it('refuses a deleteSource that is not a boolean', () => {
    expect(checkMigrationRequest({ ...one, deleteSource: 'yes' as unknown as boolean })).toMatchObject({
      code: 'VIR_ERR_INVALID_ARG',
    });
  });

  for (const point of ['delete-source', `delete:${OLD_CHAIN[1]}`]) {
    it(`a crash at ${point} resumes the deletion at recovery`, async () => {
      const lab = simMigrationLab();
      const first = lab.engine();
      let crashed = false;
      const never = new Promise<void>(() => undefined);
      void migrateStorage(
        {
          ...first.setup,
          beforeEffect: (step) => {
            if (step !== point) return;
            crashed = true;
            return never;
          },
        },
        one,
      );
      await lab.clock.runUntil(() => crashed, 600_000, 50);
      expect(crashed).toBe(true);
      // At the second point the first file is gone already.
      expect(lab.sim.images.get(OLD_CHAIN[0]!) === undefined).toBe(point !== 'delete-source');
      first.engine.close();
      const second = lab.engine();
      const recovered = (await lab.settle(recoverMigrations(second.setup)))._unsafeUnwrap();
      expect(recovered).toHaveLength(1);
      const result = await lab.settle(recovered[0]!.result);
      expect(result).toMatchObject({ outcome: 'migrated', error: null });
      expect(result.states.slice(-2)).toEqual(['deletingSource', 'migrated']);
      // Every planned file is gone, the one deleted before the crash counted as deleted.
      expect(result.sourceDeletion).toEqual({ deleted: OLD_CHAIN, kept: [] });
      for (const p of OLD_CHAIN) expect(lab.sim.images.get(p)).toBeUndefined();
      expect(await lab.chainOf('vda')).toEqual(NEW_CHAIN);
      expect(lab.destFiles()).toEqual([...NEW_CHAIN].sort());
      expect((await lab.store.listWorkflows())._unsafeUnwrap()).toEqual([]);
    });
  }
});
