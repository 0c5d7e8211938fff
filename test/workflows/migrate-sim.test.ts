/**
 * Whole-chain live storage migration on the simulator: the chain moves and the guest reads it;
 * a failure injected at every step (fault hooks of the simulator's chain files: ENOSPC while
 * copying, a bad copy that fails verification, a failing rebase or create, a mirror I/O error,
 * a pivot QEMU refuses, a cancel) leaves the guest on its old chain and nothing of the user's
 * touched; two disks pivot together or not at all before the first pivot; a failure after a
 * pivot is reported disk by disk; a "crash" at every recorded step resumes or rolls back.
 */
import { describe, expect, it } from 'vitest';
import { copyChildId } from '../../machines/migrate-storage.js';
import type { MigrateStorageRequest, StorageMigration } from '../../src/workflows/migrate-storage.js';
import { migrateStorage, recoverMigrations } from '../../src/workflows/migrate-storage.js';
import { DEST_DIR, SRC, refusingPivot, seedDisk, simMigrationLab } from './sim-harness.js';

const one: MigrateStorageRequest = { domain: 'demo', disks: ['vda'], destDir: DEST_DIR };
const NEW_CHAIN = [`${DEST_DIR}/vda-snap2.qcow2`, `${DEST_DIR}/vda-snap1.qcow2`, `${DEST_DIR}/vda-base.qcow2`];
const OLD_CHAIN = [`${SRC}/vda-snap2.qcow2`, `${SRC}/vda-snap1.qcow2`, `${SRC}/vda-base.qcow2`];

describe('migrate-storage on the simulator', () => {
  it('moves the whole chain: copies, relative backing names, verified layers, pivot, the guest reads the new chain', async () => {
    const lab = simMigrationLab();
    const { setup } = lab.engine();
    const before = lab.userFiles();
    const m: StorageMigration = (await lab.settle(migrateStorage(setup, one)))._unsafeUnwrap();
    const progress: number[] = [];
    m.progress$.subscribe((p) => progress.push(p.done / p.total));
    const result = await lab.settle(m.result);
    expect(result).toMatchObject({ outcome: 'migrated', error: null });
    expect(result.status['vda']).toMatchObject({ state: 'pivoted', observedChain: NEW_CHAIN });
    // `starting` and `pivoting.next` are left by eventless transitions: never observed.
    expect(result.states).toEqual([
      'planning',
      'copyingBacking',
      'rebasingBacking',
      'creatingTops',
      'mirroring',
      'pivoting.recording',
      'pivoting.waiting',
      'confirming',
      'releasing',
      'migrated',
    ]);
    expect(await lab.chainOf('vda')).toEqual(NEW_CHAIN);
    // Relative names in the new place; the old files exactly as they were.
    expect(lab.files.backingNameOf(`${DEST_DIR}/vda-snap1.qcow2`)).toBe('vda-base.qcow2');
    expect(lab.files.backingNameOf(`${DEST_DIR}/vda-snap2.qcow2`)).toBe('vda-snap1.qcow2');
    expect(lab.userFiles()).toBe(before);
    // Each layer was verified against its original.
    expect(lab.files.log.filter((l) => l.startsWith('compare'))).toEqual([
      `compareLayer ${DEST_DIR}/vda-snap1.qcow2 ${SRC}/vda-snap1.qcow2`,
      `compareLayer ${DEST_DIR}/vda-base.qcow2 ${SRC}/vda-base.qcow2`,
    ]);
    // Progress covers every step and ends at 100 %, never going back.
    expect(progress.at(-1)).toBe(1);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    const record = (await lab.store.loadWorkflow(m.workflowId))._unsafeUnwrap()!;
    expect(record).toMatchObject({ ended: true, state: 'migrated', kind: 'migrate-storage', owner: null });
  });

  it('refuses bad requests up front and touches nothing', async () => {
    const lab = simMigrationLab();
    const { setup } = lab.engine();
    const before = lab.userFiles();
    const refused = async (req: MigrateStorageRequest) =>
      (await lab.settle(migrateStorage(setup, req)))._unsafeUnwrapErr();
    expect(await refused({ ...one, destDir: 'relative/dir' })).toMatchObject({ code: 'VIR_ERR_INVALID_ARG' });
    expect(await refused({ ...one, destDir: '/no/such/dir' })).toMatchObject({
      code: 'VIR_ERR_INVALID_ARG',
      message: "invalid argument: destination directory '/no/such/dir' does not exist",
    });
    expect(await refused({ ...one, disks: ['vdz'] })).toMatchObject({ code: 'VIR_ERR_INVALID_ARG' });
    expect(await refused({ ...one, disks: [] })).toMatchObject({ code: 'VIR_ERR_INVALID_ARG' });
    expect(await refused({ ...one, domain: 'nope' })).toMatchObject({ code: 'VIR_ERR_NO_DOMAIN' });
    expect(await refused({ ...one, destDir: SRC })).toMatchObject({ code: 'VIR_ERR_INVALID_ARG' });
    // A file already in DEST-DIR under a target name: never overwritten.
    lab.sim.images.put({ ...lab.sim.images.get(`${SRC}/vda-base.qcow2`)!, path: `${DEST_DIR}/vda-base.qcow2` });
    expect(await refused(one)).toMatchObject({ code: 'VIR_ERR_CONFIG_UNSUPPORTED' });
    expect(lab.destFiles()).toEqual([`${DEST_DIR}/vda-base.qcow2`]);
    expect(lab.userFiles()).toBe(before);
  });

  type Fault = (lab: ReturnType<typeof simMigrationLab>) => void;
  const faults: [string, Fault, string][] = [
    [
      'no space left in DEST-DIR while copying the second layer',
      (lab) =>
        lab.files.failNext(
          'copyImage',
          `cp: error writing '${DEST_DIR}/vda-base.qcow2': No space left on device`,
          'vda-base',
        ),
      'No space left on device',
    ],
    ['a backing copy that fails verification', (lab) => lab.files.corruptCopyOf(`${SRC}/vda-base.qcow2`), 'differs'],
    [
      'qemu-img rebase failing',
      (lab) => lab.files.failNext('rebaseUnsafe', 'Could not open: Permission denied'),
      'Permission denied',
    ],
    [
      'no space left for the new top',
      (lab) => lab.files.failNext('createOverlay', 'qemu-img: No space left on device'),
      'No space left on device',
    ],
    [
      'an I/O error in the mirror (no space while mirroring)',
      (lab) => lab.sim.injectTargetError({ errno: 'ENOSPC', once: false, path: `${DEST_DIR}/vda-snap2.qcow2` }),
      'No space left on device',
    ],
  ];
  for (const [name, arm, message] of faults) {
    it(`rolls back after ${name}: the guest stays on its old chain, only the migration's files are removed`, async () => {
      const lab = simMigrationLab();
      const { setup } = lab.engine();
      const before = lab.userFiles();
      arm(lab);
      const m = (await lab.settle(migrateStorage(setup, one)))._unsafeUnwrap();
      const result = await lab.settle(m.result);
      expect(result.outcome).toBe('rolled-back');
      expect(result.error?.message).toContain(message);
      expect(result.states.at(-1)).toBe('rolledBack');
      expect(await lab.chainOf('vda')).toEqual(OLD_CHAIN);
      expect(lab.destFiles()).toEqual([]);
      expect(lab.userFiles()).toBe(before);
      expect(lab.sim.listJobs()).toEqual([]);
    });
  }

  it('rolls back a pivot QEMU refuses', async () => {
    const lab = simMigrationLab();
    const { setup } = lab.engine({ port: refusingPivot(lab.sim, 'vda') });
    const before = lab.userFiles();
    const m = (await lab.settle(migrateStorage(setup, one)))._unsafeUnwrap();
    const result = await lab.settle(m.result);
    expect(result).toMatchObject({ outcome: 'rolled-back', status: { vda: { state: 'failed' } } });
    expect(result.error?.message).toContain('cannot be completed');
    expect(await lab.chainOf('vda')).toEqual(OLD_CHAIN);
    expect(lab.destFiles()).toEqual([]);
    expect(lab.userFiles()).toBe(before);
  });

  it('rolls back on cancel while mirroring', async () => {
    const lab = simMigrationLab();
    lab.sim.setCopyRate(1024 * 1024); // slow enough to cancel mid-copy
    const { setup } = lab.engine();
    const before = lab.userFiles();
    const m = (await lab.settle(migrateStorage(setup, one)))._unsafeUnwrap();
    await lab.clock.runUntil(() => m.state() === 'mirroring' && m.progress()?.copies['vda'] !== undefined, 600_000, 50);
    m.cancel();
    const result = await lab.settle(m.result);
    expect(result).toMatchObject({ outcome: 'rolled-back', error: { code: 'VIR_ERR_OPERATION_ABORTED' } });
    expect(await lab.chainOf('vda')).toEqual(OLD_CHAIN);
    expect(lab.destFiles()).toEqual([]);
    expect(lab.userFiles()).toBe(before);
  });
});

describe('multi-disk migration with a coordinated pivot (simulator)', () => {
  const two: MigrateStorageRequest = { domain: 'demo', disks: 'all', destDir: DEST_DIR };

  it('pivots both disks only once both copies are ready, back to back', async () => {
    const lab = simMigrationLab([seedDisk('vda'), seedDisk('vdb')]);
    // vdb copies more slowly: vda must wait for it, ready, without pivoting alone.
    const { setup, engine } = lab.engine();
    const order: string[] = [];
    engine.jobStates$.subscribe((s) => {
      if (s.state === 'ready.synced' || s.state === 'pivoting') order.push(`${s.disk}:${s.state}`);
    });
    const m = (await lab.settle(migrateStorage(setup, two)))._unsafeUnwrap();
    const result = await lab.settle(m.result);
    expect(result.outcome).toBe('migrated');
    expect(Object.keys(result.status)).toEqual(['vda', 'vdb']);
    // Both ready before the first pivot; then vda, then vdb.
    const firstPivot = order.findIndex((o) => o.endsWith(':pivoting'));
    expect(order.slice(0, firstPivot).sort()).toEqual(['vda:ready.synced', 'vdb:ready.synced']);
    expect(order.slice(firstPivot)).toEqual(['vda:pivoting', 'vdb:pivoting']);
    expect(await lab.chainOf('vdb')).toEqual(NEW_CHAIN.map((p) => p.replace(/vda/g, 'vdb')));
    expect(await lab.chainOf('vda')).toEqual(NEW_CHAIN);
  });

  it('one disk failing before its pivot: every other copy is aborted, both stay on their sources', async () => {
    const lab = simMigrationLab([seedDisk('vda'), seedDisk('vdb')]);
    const { setup } = lab.engine();
    const before = lab.userFiles();
    lab.sim.injectTargetError({ errno: 'EIO', once: false, path: `${DEST_DIR}/vdb-snap2.qcow2` });
    const m = (await lab.settle(migrateStorage(setup, two)))._unsafeUnwrap();
    const result = await lab.settle(m.result);
    expect(result.outcome).toBe('rolled-back');
    expect(result.status['vdb']?.state).toBe('failed');
    expect(result.status['vda']?.state).toBe('aborted');
    expect(await lab.chainOf('vda')).toEqual(OLD_CHAIN);
    expect(await lab.chainOf('vdb')).toEqual(OLD_CHAIN.map((p) => p.replace(/vda/g, 'vdb')));
    expect(lab.destFiles()).toEqual([]);
    expect(lab.userFiles()).toBe(before);
    expect(lab.sim.listJobs()).toEqual([]);
  });

  it('a pivot refused after another disk pivoted: reported disk by disk, as observed', async () => {
    const lab = simMigrationLab([seedDisk('vda'), seedDisk('vdb')]);
    const { setup } = lab.engine({ port: refusingPivot(lab.sim, 'vdb') });
    const m = (await lab.settle(migrateStorage(setup, two)))._unsafeUnwrap();
    const result = await lab.settle(m.result);
    expect(result.outcome).toBe('partial');
    expect(result.status['vda']).toMatchObject({ state: 'pivoted', observedChain: NEW_CHAIN });
    expect(result.status['vdb']).toMatchObject({ state: 'failed' });
    expect(result.status['vdb']?.error?.message).toContain('cannot be completed');
    expect(await lab.chainOf('vda')).toEqual(NEW_CHAIN);
    expect(await lab.chainOf('vdb')).toEqual(OLD_CHAIN.map((p) => p.replace(/vda/g, 'vdb')));
    // vdb's new files are gone; vda's are the disk now.
    expect(lab.destFiles()).toEqual([...NEW_CHAIN].sort());
  });

  it('the copies are child actors of the migration chart', async () => {
    const lab = simMigrationLab([seedDisk('vda'), seedDisk('vdb')]);
    const seen = new Set<string>();
    const { setup } = lab.engine();
    const m = (
      await lab.settle(
        migrateStorage(
          {
            ...setup,
            inspect: (e) => {
              const id = (e.actorRef as { id?: string }).id ?? '';
              if (e.type === '@xstate.actor' && id.startsWith('copy:')) seen.add(id);
            },
          },
          two,
        ),
      )
    )._unsafeUnwrap();
    await lab.settle(m.result);
    expect([...seen].sort()).toEqual([copyChildId('vda'), copyChildId('vdb')]);
  });
});

describe('durable migration: a crash at every recorded step, then recovery (simulator)', () => {
  const points: [string, 'migrated' | 'rolled-back'][] = [
    [`copy:${DEST_DIR}/vda-snap1.qcow2`, 'rolled-back'],
    [`copy:${DEST_DIR}/vda-base.qcow2`, 'rolled-back'],
    ['rebase', 'rolled-back'],
    ['verify', 'rolled-back'],
    [`create:${DEST_DIR}/vda-snap2.qcow2`, 'rolled-back'],
    ['start:vda', 'rolled-back'],
    ['pivot:vda', 'migrated'],
    ['release', 'migrated'],
  ];
  for (const [point, expected] of points) {
    it(`crash at ${point} → ${expected}`, async () => {
      const lab = simMigrationLab();
      const before = lab.userFiles();
      const first = lab.engine();
      let crashed = false;
      const never = new Promise<void>(() => undefined);
      const m = migrateStorage(
        {
          ...first.setup,
          beforeEffect: (step) => {
            if (step !== point) return;
            crashed = true;
            return never; // the process stops here: its record says what it was about to do
          },
        },
        one,
      );
      void m;
      await lab.clock.runUntil(() => crashed, 600_000, 50);
      expect(crashed).toBe(true);
      first.engine.close();
      // A new process on the same store and hypervisor.
      const second = lab.engine();
      const recovered = (await lab.settle(recoverMigrations(second.setup)))._unsafeUnwrap();
      expect(recovered).toHaveLength(1);
      const result = await lab.settle(recovered[0]!.result);
      expect(result.outcome).toBe(expected);
      expect(await lab.chainOf('vda')).toEqual(expected === 'migrated' ? NEW_CHAIN : OLD_CHAIN);
      expect(lab.destFiles()).toEqual(expected === 'migrated' ? [...NEW_CHAIN].sort() : []);
      expect(lab.userFiles()).toBe(before);
      expect(lab.sim.listJobs()).toEqual([]);
      // Nothing left to recover.
      expect((await lab.store.listWorkflows())._unsafeUnwrap()).toEqual([]);
    });
  }
});
