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
import { MemoryJobStore } from '../../adapters/store/memory.js';
import type { SimDomainSpec } from '../../adapters/sim/index.js';
import { VirtualClock } from '../../src/core/clock.js';
import { AbortFlags } from '../../src/core/flags.js';
import { codeOf } from './commands/base.js';
import { reconnected, resumed, unfreeze } from './model.js';
import type { BlockCopyEngine, BlockJobEvent } from '../../src/engine/engine.js';
import { createEngine } from '../../src/engine/engine.js';
import { COPY_RATE, DISK_SIZE, LATENCY_MS, Model, TOP_ALLOCATED } from './model.js';

export { DISK_SIZE };
export const DISKS = ['d1/vda', 'd1/vdb', 'd2/vda'] as const;
export type DiskKey = (typeof DISKS)[number];

function chain(domain: string, disk: string) {
  const dir = `/img/${domain}/${disk}`;
  return [
    { path: `${dir}/snap2.qcow2`, allocated: TOP_ALLOCATED },
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
  /** The engine now running; a restart (commands/restart-engine.ts) replaces it. */
  engine: BlockCopyEngine;
  /** Every job's record: what a restarted engine recovers from. */
  readonly store = new MemoryJobStore();
  /** The port every engine of this system talks through (the same simulated hypervisor). */
  private readonly port: HypervisorPort;
  /** Engine restarts so far, and those with a job the model expects to be running. */
  restarts = 0;
  restartsWithJobs = 0;
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
  /** Files that existed before the engine ran: never to be removed. */
  readonly foreign: ReadonlySet<string>;
  private seq = 0;

  constructor(foreign: readonly { path: string; backing?: string; allocated?: number; format?: 'qcow2' | 'raw' }[]) {
    this.sim = new SimulatedHypervisor({
      clock: this.clock,
      domains: domains(),
      copyRate: COPY_RATE,
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
    for (const f of foreign)
      this.model.files.set(f.path, {
        format: f.format ?? 'qcow2',
        empty: (f.allocated ?? 0) === 0,
        backing: f.backing ?? null,
        created: false,
      });
    this.foreign = new Set(foreign.map((f) => f.path));
    this.sim.events$.subscribe((e) => {
      if (this.holding && 'jobId' in e) this.held.push(e);
      else this.events$.next(e);
    });
    this.port = this.recordingPort();
    this.engine = this.newEngine();
  }

  /** An engine on this system's store and port, its events recorded. */
  private newEngine(): BlockCopyEngine {
    const engine = createEngine({
      hypervisor: this.port,
      clock: this.clock,
      pollIntervalMs: 500,
      store: this.store,
      jobId: (domain, disk) => `job-${domain}-${disk}-${++this.seq}`,
    });
    engine.events$.subscribe((e) => {
      this.rec.events.push(e);
      if (e.status === 'READY') this.rec.ready.set(e.jobId, (this.rec.ready.get(e.jobId) ?? 0) + 1);
      else {
        const list = this.rec.finals.get(e.jobId) ?? [];
        list.push(e);
        this.rec.finals.set(e.jobId, list);
      }
    });
    return engine;
  }

  /**
   * The engine process dies (as a kill would: no shutdown, nothing awaited) and a new one starts
   * on the same store and the same hypervisor, and recovers every unfinished job.
   */
  async restartEngine(): Promise<void> {
    this.engine.close();
    this.restarts++;
    if (this.model.jobs().length > 0) this.restartsWithJobs++;
    this.engine = this.newEngine();
    const report = await this.await(this.engine.recover());
    expect(report.isOk(), 'recover() after an engine restart').toBe(true);
    expect(report._unsafeUnwrap().skipped, 'jobs recovery left alone').toEqual([]);
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
    const { rec, sim, engine } = this;
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
      expect(this.foreign.has(path), `removed foreign file ${path}`).toBe(false);
      expect(rec.created.has(path), `removed ${path} it never created`).toBe(true);
    }
    for (const path of this.foreign) expect(sim.images.get(path), `foreign ${path} is gone`).toBeDefined();
  }

  /** The engine against the model's exact predictions, after every command. */
  verify(): void {
    const { model, engine, rec } = this;
    this.checkInvariants();
    // Every job the model ended ended in the engine exactly so.
    for (const [jobId, status] of model.finals) {
      const finals = rec.finals.get(jobId) ?? [];
      expect(
        finals.map((e) => e.status),
        `final events of ${jobId}`,
      ).toEqual([status]);
    }
    for (const [k, d] of model.disks) {
      const [domain, disk] = split(k);
      const job = d.job;
      const actual = engine.job(domain, disk);
      if (job === null) {
        expect(actual?.jobId ?? null, `no job on ${k}`).toBeNull();
        continue;
      }
      if (job.ending !== null) continue; // ending: either side of its deadline
      expect(actual?.jobId ?? null, `job on ${k}`).toBe(job.jobId);
      expect(rec.finals.get(job.jobId) ?? [], `${job.jobId} ended unexpectedly`).toEqual([]);
      if (!model.settled(job)) continue;
      const view = model.view(job);
      const state = actual!.state();
      if (view === 'ready') expect(state, `${job.jobId} should be ready`).toMatch(/^ready/);
      if (view === 'copying') expect(state, `${job.jobId} should be mirroring`).toMatch(/^mirroring/);
      if (view === 'ready') expect(rec.ready.get(job.jobId), `READY of ${job.jobId}`).toBe(1);
    }
    // Files: what the model says exists exists, and nothing else the engine created.
    const inFlight = new Set(model.jobs().flatMap((j) => (j.ending ? [j.dest] : [])));
    for (const [path, file] of model.files) {
      if (inFlight.has(path)) continue; // its job is ending: either side of the removal
      const image = this.sim.images.get(path);
      expect(image, `${path} should exist`).toBeDefined();
      if (file.empty !== 'unknown' && image) expect(image.allocated === 0, `${path} empty`).toBe(file.empty);
    }
    for (const path of rec.created)
      if (!model.files.has(path) && !inFlight.has(path))
        expect(this.sim.images.get(path), `${path} should be gone`).toBeUndefined();
  }

  /**
   * The end of every sequence: heal the hypervisor, end every job as the model says it can be
   * ended (pivot when ready, else a forced abort), and check that each ended exactly as predicted.
   */
  async drain(): Promise<void> {
    const m = this.model;
    // What is in flight lands first (a fault about to hit, an ending), then the world heals.
    const pending = m.jobs().map((j) => Math.max(j.unsettledUntil, j.ending?.by ?? 0));
    if (m.alive && m.connected && pending.length > 0)
      await this.step(Math.max(0, Math.max(...pending) - this.clock.now()) + 10);
    this.releaseHeld();
    this.sim.clearFaults();
    m.fault = null;
    this.sim.setEventLoss(null);
    this.sim.setEventDuplication(null);
    if (!this.sim.isAlive) {
      this.sim.restart();
      m.alive = true;
    }
    if (!m.connected) {
      this.sim.reconnect();
      m.connected = true;
      for (const job of m.jobs()) reconnected(m, job);
    }
    for (const job of m.jobs()) if (job.frozen) unfreeze(job);
    await this.step(LATENCY_MS);
    // Jobs already on their way out end first.
    const endings = m.jobs().flatMap((j) => (j.ending ? [j.ending.by] : []));
    if (endings.length > 0) await this.step(Math.max(0, Math.max(...endings) - this.clock.now()) + 10);
    for (const [k, d] of m.disks) {
      const job = d.job;
      if (!job) continue;
      const [domain, disk] = split(k);
      if (job.paused !== null) {
        expect(codeOf(await this.await(this.engine.blockJobResume(domain, disk))), `resume ${k}`).toBe('ok');
        resumed(m, job);
        await this.step(LATENCY_MS);
      }
      // A copy the model expects to become ready within a virtual minute is waited for.
      if (m.view(job) !== 'ready' && job.maxLeft < 60_000) await this.step(job.maxLeft + 2 * LATENCY_MS);
      if (m.disk(k).job !== job) continue;
      const pivot = m.view(job) === 'ready';
      const r = await this.await(
        this.engine.blockJobAbort(domain, disk, pivot ? AbortFlags.PIVOT : 0, { force: !pivot }),
      );
      expect(codeOf(r), `drain ${pivot ? 'pivot' : 'abort'} ${k}`).toBe('ok');
      m.endJob(k, pivot ? 'COMPLETED' : 'CANCELED', pivot ? 'keep' : 'remove');
      await this.step(10);
    }
    await this.step(1_000);
    this.verify();
    // Every concluded job was dismissed: the hypervisor is left with no job (auto-dismiss=false).
    expect(this.sim.listJobs().map((j) => j.id)).toEqual([]);
    for (const jobId of this.rec.started.keys())
      expect(this.rec.finals.get(jobId)?.length ?? 0, `${jobId} final events`).toBe(1);
    this.engine.close();
  }

  /** Lets virtual time pass and tells the model. */
  async step(ms: number): Promise<void> {
    await this.clock.advance(ms);
    this.model.advanceTo(this.clock.now());
  }
}
