/**
 * Whole-chain migrations on the simulator in virtual time: a domain with one or two disks on
 * seed chains, a memory store (durable records), the simulator's chain files, and helpers that
 * snapshot what the user owns (every image header outside DEST-DIR) to prove nothing was touched.
 */
import { hostname } from 'node:os';
import { errAsync } from 'neverthrow';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { SimChainFiles } from '../../adapters/sim/chain-files.js';
import { GiB, MiB, type SimDiskSpec } from '../../adapters/sim/default-domain.js';
import { MemoryJobStore } from '../../adapters/store/memory.js';
import { VirtualClock } from '../../src/core/clock.js';
import type { HypervisorPort } from '../../src/core/hypervisor-port.js';
import type { LeaseOwner } from '../../src/core/job-store.js';
import { createEngine, type BlockCopyEngine } from '../../src/engine/engine.js';
import type { MigrationSetup } from '../../src/workflows/migrate-storage.js';

export const SRC = '/var/lib/blockcopy';
export const DEST_DIR = '/mnt/new';

export function seedDisk(name: string, dir = SRC): SimDiskSpec {
  return {
    name,
    virtualSize: GiB,
    chain: [
      { path: `${dir}/${name}-snap2.qcow2`, allocated: 64 * MiB },
      { path: `${dir}/${name}-snap1.qcow2`, allocated: 128 * MiB },
      { path: `${dir}/${name}-base.qcow2`, allocated: 512 * MiB },
    ],
  };
}

/**
 * Owners of earlier "processes": processes of this host that no longer run (pids above Linux's
 * pid_max), so their leases die with them, as a killed engine's do. (A holder on another host
 * keeps its jobs until its lease, renewed on every save, runs out.)
 */
let owners = 0;
export function goneOwner(): LeaseOwner {
  owners++;
  return { id: `${hostname()}:${4194304 + owners}:0` };
}

export interface SimMigrationLab {
  readonly clock: VirtualClock;
  readonly sim: SimulatedHypervisor;
  readonly files: SimChainFiles;
  readonly store: MemoryJobStore;
  /** A new engine (a new "process") on the same simulator and store. */
  engine(options?: { port?: HypervisorPort }): { engine: BlockCopyEngine; setup: MigrationSetup };
  /** Runs virtual time until the promise settles (10 virtual minutes at most). */
  settle<T>(p: PromiseLike<T>): Promise<T>;
  /** Every image outside DEST-DIR with its header and data size, to compare before and after. */
  userFiles(): string;
  /** Images in DEST-DIR. */
  destFiles(): string[];
  chainOf(disk: string): Promise<string[]>;
}

export function simMigrationLab(disks: readonly SimDiskSpec[] = [seedDisk('vda')]): SimMigrationLab {
  const clock = new VirtualClock();
  const sim = new SimulatedHypervisor({
    clock,
    directories: [SRC, DEST_DIR, '/tmp'],
    domains: [{ name: 'demo', running: true, persistent: false, disks }],
  });
  const files = new SimChainFiles(sim);
  const store = new MemoryJobStore();
  const lab: SimMigrationLab = {
    clock,
    sim,
    files,
    store,
    engine(options = {}) {
      const owner = goneOwner();
      const port = options.port ?? sim;
      const engine = createEngine({ hypervisor: port, clock, pollIntervalMs: 500, store, owner });
      return { engine, setup: { engine, hypervisor: port, files, owner, now: () => clock.now() } };
    },
    async settle<T>(like: PromiseLike<T>): Promise<T> {
      const p = Promise.resolve(like);
      let done = false;
      void p.then(
        () => (done = true),
        () => (done = true),
      );
      const reached = await clock.runUntil(() => done, 600_000, 50);
      if (!reached) throw new Error('did not settle within 10 virtual minutes');
      return p;
    },
    userFiles() {
      return sim.images
        .paths()
        .filter((p) => !p.startsWith(`${DEST_DIR}/`))
        .sort()
        .map((p) => {
          const i = sim.images.get(p)!;
          return `${p} ${i.format} ${i.virtualSize} ${i.backing?.path ?? '-'} ${i.allocated}`;
        })
        .join('\n');
    },
    destFiles() {
      return sim.images
        .paths()
        .filter((p) => p.startsWith(`${DEST_DIR}/`))
        .sort();
    },
    async chainOf(disk) {
      const listed = (await sim.listDisks('demo'))._unsafeUnwrap()!;
      return listed.find((d) => d.disk === disk)!.chain.map((i) => i.path);
    },
  };
  return lab;
}

/** The simulator with block-job-complete refused for jobs on `disk` (a pivot QEMU refuses). */
export function refusingPivot(sim: SimulatedHypervisor, disk: string): HypervisorPort {
  const jobsOfDisk = new Set<string>();
  return new Proxy(sim, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      if (prop === 'startMirror')
        return (spec: { jobId: string; disk: string }) => {
          if (spec.disk === disk) jobsOfDisk.add(spec.jobId);
          return (value as (s: unknown) => unknown).call(target, spec);
        };
      if (prop === 'completeJob')
        return (jobId: string) =>
          jobsOfDisk.has(jobId)
            ? errAsync({
                kind: 'qmp',
                errorClass: 'GenericError',
                command: 'block-job-complete',
                desc: `The active block job '${jobId}' cannot be completed`,
              })
            : (value as (id: string) => unknown).call(target, jobId);
      return (...args: unknown[]) => (value as (...a: unknown[]) => unknown).apply(target, args);
    },
  });
}
