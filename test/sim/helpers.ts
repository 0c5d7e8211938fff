/**
 * Shared fixtures for the simulator tests: a simulator on a VirtualClock with every event recorded,
 * and a MirrorSpec builder for the default `demo`/`vda` disk.
 */
import { VirtualClock } from '../../src/core/clock.js';
import type { HypervisorEvent, MirrorSpec } from '../../src/core/hypervisor-port.js';
import { SimulatedHypervisor, type SimulatedHypervisorOptions } from '../../adapters/sim/index.js';

export const DIR = '/var/lib/blockcopy';
export const DEST = `${DIR}/copy.qcow2`;

export interface Fixture {
  readonly clock: VirtualClock;
  readonly sim: SimulatedHypervisor;
  readonly events: HypervisorEvent[];
  /** The job's events in a compact form: JSC statuses as "status", others by kind. */
  readonly trail: (jobId: string) => string[];
}

export function fixture(options: Omit<SimulatedHypervisorOptions, 'clock'> = {}): Fixture {
  const clock = new VirtualClock();
  const sim = new SimulatedHypervisor({ clock, ...options });
  const events: HypervisorEvent[] = [];
  sim.events$.subscribe((e) => events.push(e));
  return {
    clock,
    sim,
    events,
    trail: (jobId) =>
      events
        .filter((e) => 'jobId' in e && e.jobId === jobId)
        .map((e) => (e.kind === 'job-status' ? e.status : e.kind === 'job-error' ? `job-error:${e.action}` : e.kind)),
  };
}

export function spec(overrides: Partial<MirrorSpec> = {}): MirrorSpec {
  return {
    jobId: 'copy-vda',
    domain: 'demo',
    disk: 'vda',
    destination: { path: DEST, format: 'qcow2' },
    destinationBacking: null,
    sync: 'full',
    speed: 0,
    onTargetError: 'report',
    onSourceError: 'report',
    copyMode: 'background',
    ...overrides,
  };
}

/** Create the default 1 GiB flat qcow2 destination. */
export async function createDest(sim: SimulatedHypervisor, path = DEST): Promise<void> {
  const r = await sim.createDestination({ path, format: 'qcow2', virtualSize: 1024 ** 3, backing: null });
  if (r.isErr()) throw new Error(r.error.desc);
}

/** Create the destination and start a mirror; throws if either fails. */
export async function startJob(f: Fixture, overrides: Partial<MirrorSpec> = {}): Promise<MirrorSpec> {
  const s = spec(overrides);
  await createDest(f.sim, s.destination.path);
  const r = await f.sim.startMirror(s);
  if (r.isErr()) throw new Error(r.error.desc);
  return s;
}

export async function status(f: Fixture, jobId = 'copy-vda'): Promise<string | undefined> {
  return (await f.sim.queryJob(jobId))._unsafeUnwrap()?.status;
}

/** Advance virtual time until the job reaches `want` (fails the test after `limitMs`). */
export async function until(f: Fixture, want: string, jobId = 'copy-vda', limitMs = 600_000): Promise<void> {
  let current: string | undefined;
  const ok = await f.clock.runUntil(
    () => {
      current = f.sim.listJobs().find((j) => j.id === jobId)?.status;
      return current === want;
    },
    limitMs,
    50,
  );
  if (!ok) throw new Error(`job ${jobId} did not reach ${want} (is ${String(current)})`);
}
