/**
 * The system under test for the model-based runs: the engine on a SimulatedHypervisor in virtual
 * time, behind a recording port that (a) notes every block-job-complete, every file created and
 * removed, and (b) can hold hypervisor events back and release them reordered. The invariants
 * of issue 4 are checked here after every command.
 */
import type { ResultAsync } from 'neverthrow';
import { Subject } from 'rxjs';
import { expect } from 'vitest';
import type { HypervisorError, HypervisorEvent, HypervisorPort } from '../../src/core/hypervisor-port.js';
import { MiB, SimulatedHypervisor } from '../../adapters/sim/index.js';
import type { SimDomainSpec } from '../../adapters/sim/index.js';
import { VirtualClock } from '../../src/core/clock.js';
import type { BlockCopyEngine, BlockJobEvent } from '../../src/engine/engine.js';
import { createEngine } from '../../src/engine/engine.js';
import { Model } from './model.js';

export const DISK_SIZE = 64 * MiB;
export const DISKS = ['d1/vda', 'd1/vdb', 'd2/vda'] as const;
export type DiskKey = (typeof DISKS)[number];

function chain(domain: string, disk: string) {
  const dir = `/img/${domain}/${disk}`;
  return [
    { path: `${dir}/snap2.qcow2`, allocated: 4 * MiB },
    { path: `${dir}/snap1.qcow2`, allocated: 8 * MiB },
    { path: `${dir}/base.qcow2`, allocated: DISK_SIZE },
  ];
}

export function domains(): SimDomainSpec[] {
  return [
    {
      name: 'd1',
      running: true,
      persistent: false,
      disks: [
        { name: 'vda', virtualSize: DISK_SIZE, chain: chain('d1', 'vda') },
        { name: 'vdb', virtualSize: DISK_SIZE, chain: chain('d1', 'vdb') },
      ],
    },
    {
      name: 'd2',
      running: true,
      persistent: false,
      disks: [{ name: 'vda', virtualSize: DISK_SIZE, chain: chain('d2', 'vda') }],
    },
  ];
}

export function split(key: string): [string, string] {
  const [domain, disk] = key.split('/') as [string, string];
  return [domain, disk];
}

/** The recorded facts the invariants are checked against. */
export interface Record {
  /** jobId → READY events seen. */
  readonly ready: Map<string, number>;
  /** jobId → final events seen. */
  readonly finals: Map<string, BlockJobEvent[]>;
  /** jobIds for which block-job-complete was sent, with whether READY preceded it. */
  readonly completes: { jobId: string; afterReady: boolean }[];
  /** jobIds whose pivot the hypervisor confirmed (the disk's top image is the destination). */
  readonly pivotConfirmed: Set<string>;
  readonly created: Set<string>;
  readonly removed: string[];
  /** Every job the engine started: jobId → destination. */
  readonly started: Map<string, string>;
  readonly events: BlockJobEvent[];
}

export class System {
  readonly clock = new VirtualClock();
  readonly sim: SimulatedHypervisor;
  readonly engine: BlockCopyEngine;
  readonly model = new Model(DISKS);
  readonly rec: Record = {
    ready: new Map(),
    finals: new Map(),
    completes: [],
    pivotConfirmed: new Set(),
    created: new Set(),
    removed: [],
    started: new Map(),
    events: [],
  };
  /** Events held back (reorder): released in reverse order. */
  holding = false;
  private held: HypervisorEvent[] = [];
  private readonly events$ = new Subject<HypervisorEvent>();
  commands = 0;
  private seq = 0;

  constructor(foreign: readonly { path: string; backing?: string; allocated?: number; format?: 'qcow2' | 'raw' }[]) {
    this.sim = new SimulatedHypervisor({
      clock: this.clock,
      domains: domains(),
      copyRate: 32 * MiB,
      // Destinations go to /dst (commands/start.ts): it must exist, as for qemu-img create.
      directories: ['/dst'],
      images: foreign.map((f) => ({
        path: f.path,
        format: f.format ?? 'qcow2',
        virtualSize: DISK_SIZE,
        allocated: f.allocated ?? 0,
        backing: f.backing ? { path: f.backing, format: 'qcow2' as const } : null,
      })),
    });
    for (const f of foreign) this.model.foreignFiles.add(f.path);
    this.sim.events$.subscribe((e) => {
      if (this.holding && 'jobId' in e) this.held.push(e);
      else this.events$.next(e);
    });
    const port = this.recordingPort();
    this.engine = createEngine({
      hypervisor: port,
      clock: this.clock,
      pollIntervalMs: 500,
      jobId: (domain, disk) => `job-${domain}-${disk}-${++this.seq}`,
    });
    this.engine.events$.subscribe((e) => {
      this.rec.events.push(e);
      if (e.status === 'READY') this.rec.ready.set(e.jobId, (this.rec.ready.get(e.jobId) ?? 0) + 1);
      else {
        const list = this.rec.finals.get(e.jobId) ?? [];
        list.push(e);
        this.rec.finals.set(e.jobId, list);
        // The model learns the end of the job here; the status is checked against it.
        const d = this.model.disk(`${e.domain}/${e.disk}`);
        if (d.job?.jobId === e.jobId) {
          const allowed = this.model.allowedFinal(d.job);
          expect(allowed, `final ${e.status} of ${e.jobId} (${e.error?.message ?? ''})`).toContain(e.status);
          d.job = null;
        }
      }
      if (e.status === 'READY') {
        const d = this.model.disk(`${e.domain}/${e.disk}`);
        if (d.job?.jobId === e.jobId) d.job.readySeen = true;
      }
    });
  }

  releaseHeld(): void {
    this.holding = false;
    const held = this.held.reverse();
    this.held = [];
    for (const e of held) this.events$.next(e);
  }

  private recordingPort(): HypervisorPort {
    const sim = this.sim;
    const rec = this.rec;
    const events$ = this.events$.asObservable();
    const jobDisk = new Map<string, { domain: string; disk: string; dest: string }>();
    return new Proxy<HypervisorPort>(sim, {
      get: (target, prop, receiver) => {
        if (prop === 'events$') return events$;
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        const fn = value as (...a: unknown[]) => ResultAsync<unknown, HypervisorError>;
        return (...args: unknown[]) => {
          switch (prop) {
            case 'startMirror': {
              const spec = args[0] as { jobId: string; domain: string; disk: string; destination: { path: string } };
              jobDisk.set(spec.jobId, { domain: spec.domain, disk: spec.disk, dest: spec.destination.path });
              break;
            }
            case 'completeJob': {
              const jobId = args[0] as string;
              rec.completes.push({ jobId, afterReady: (rec.ready.get(jobId) ?? 0) > 0 });
              break;
            }
            case 'createDestination':
              rec.created.add((args[0] as { path: string }).path);
              break;
            case 'removeDestination':
              rec.removed.push(args[0] as string);
              break;
            case 'activeImage': {
              const [domain, disk] = args as [string, string];
              return fn.apply(target, args).map((active) => {
                for (const [jobId, j] of jobDisk)
                  if (j.domain === domain && j.disk === disk && j.dest === active) rec.pivotConfirmed.add(jobId);
                return active;
              });
            }
          }
          return fn.apply(target, args);
        };
      },
    });
  }

  /** Runs virtual time until `p` settles (sync API calls wait for the job). */
  async await<T>(p: PromiseLike<T>, limitMs = 600_000): Promise<T> {
    let done = false;
    let value!: T;
    void Promise.resolve(p).then((v) => {
      value = v;
      done = true;
    });
    const ok = await this.clock.runUntil(() => done, limitMs, 100);
    if (!ok) throw new Error('call never returned within 10 virtual minutes');
    return value;
  }

  /** The invariants of issue 4, checked after every command. */
  checkInvariants(): void {
    const { rec, sim, engine, model } = this;
    // No pivot is ever sent before ready.
    for (const c of rec.completes) expect(c.afterReady, `block-job-complete for ${c.jobId} before READY`).toBe(true);
    expect(sim.sttViolations).toEqual([]);
    // At most one job per disk: in the engine and on the hypervisor.
    const perDisk = new Set<string>();
    for (const job of engine.jobs()) {
      const k = `${job.domain}/${job.disk}`;
      expect(perDisk.has(k), `two jobs on ${k}`).toBe(false);
      perDisk.add(k);
    }
    const live = new Set<string>();
    for (const job of sim.listJobs().filter((j) => j.live)) {
      const k = `${job.spec.domain}/${job.spec.disk}`;
      expect(live.has(k), `two live hypervisor jobs on ${k}`).toBe(false);
      live.add(k);
    }
    // Every job ends at most once, in exactly one final state; READY at most once.
    for (const [jobId, finals] of rec.finals) expect(finals.length, `${jobId} ended ${finals.length} times`).toBe(1);
    for (const [jobId, n] of rec.ready) expect(n, `READY ${n} times for ${jobId}`).toBe(1);
    // READY never after the final event of the same job.
    const seenFinal = new Set<string>();
    for (const e of rec.events) {
      if (e.status === 'READY') expect(seenFinal.has(e.jobId)).toBe(false);
      else seenFinal.add(e.jobId);
    }
    // COMPLETED only after a pivot that was sent and confirmed.
    for (const [jobId, finals] of rec.finals)
      if (finals[0]?.status === 'COMPLETED') {
        expect(rec.completes.some((c) => c.jobId === jobId)).toBe(true);
        expect(rec.pivotConfirmed.has(jobId), `COMPLETED ${jobId} without a confirmed pivot`).toBe(true);
        expect(finals[0].pivoted).toBe(true);
      }
    // A destination the engine did not create is never removed, and foreign files stay.
    for (const path of rec.removed) {
      expect(model.foreignFiles.has(path), `removed foreign file ${path}`).toBe(false);
      expect(rec.created.has(path), `removed ${path} it never created`).toBe(true);
    }
    for (const path of model.foreignFiles) expect(sim.images.get(path), `foreign ${path} is gone`).toBeDefined();
    // The model and the engine agree on which disks have an active job.
    for (const [k, d] of model.disks) {
      const [domain, disk] = split(k);
      const job = engine.job(domain, disk);
      expect(job?.jobId ?? null, `active job on ${k}`).toBe(d.job?.jobId ?? null);
      if (d.job?.readySeen) expect(job?.states().some((s) => s.startsWith('ready'))).toBe(true);
    }
  }

  /**
   * The end of every sequence: heal the hypervisor, end every job (pivot when ready, else
   * abort) and check every started job ended exactly once, as the model allows.
   */
  async drain(): Promise<void> {
    this.releaseHeld();
    this.sim.clearFaults();
    this.sim.setEventLoss(null);
    this.sim.setEventDuplication(null);
    if (!this.sim.isAlive) this.sim.restart();
    this.sim.reconnect();
    // A guest that writes faster than the mirror copies never lets a pivot finish (QEMU waits
    // for convergence after block-job-complete; see never-converging.test.ts): stop it.
    for (const k of DISKS) this.sim.setGuestWriteRate(...split(k), 0);
    this.model.alive = true;
    this.model.connected = true;
    for (const k of DISKS) {
      const [domain, disk] = split(k);
      const job = this.engine.job(domain, disk);
      if (!job) continue;
      await this.clock.advance(1_000);
      if (this.engine.job(domain, disk)?.jobId !== job.jobId) continue;
      void this.engine.blockJobResume(domain, disk);
      const m = this.model.disk(k).job;
      if (m && m.end === null) {
        m.hvTrouble = true;
        if (job.state().startsWith('ready')) {
          m.end = 'pivot';
          await this.engine.blockJobAbort(domain, disk, 2 /* PIVOT */ | 1);
        } else {
          m.end = 'abort';
          await this.engine.blockJobAbort(domain, disk, 1, { force: true });
        }
        // If the request was refused, the job is ending anyway or will fail.
      }
      let done = false;
      void job.result.then(() => (done = true));
      const ended = await this.clock.runUntil(() => done, 600_000, 200);
      expect(ended, `job ${job.jobId} never ended (${job.state()})`).toBe(true);
    }
    await this.clock.advance(1_000);
    for (const jobId of this.rec.started.keys()) {
      expect(
        this.rec.finals.get(jobId)?.length ?? 0,
        `${jobId} ended ${this.rec.finals.get(jobId)?.length ?? 0} times`,
      ).toBe(1);
    }
    for (const d of this.model.disks.values()) expect(d.job).toBeNull();
    // Every concluded job was dismissed: the hypervisor is left with no job (auto-dismiss=false).
    // A job lost with a killed QEMU is gone anyway.
    expect(this.sim.listJobs().map((j) => j.id)).toEqual([]);
    this.checkInvariants();
    this.engine.close();
  }
}
