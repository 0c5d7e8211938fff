/**
 * The inspector's demo: simulated copies that show a newcomer what the chart does. Each round
 * runs three jobs on the simulator, a few seconds apart:
 *   vda  a pivot asked too early (refused), then mirroring → ready → pivoting → completed;
 *   vdb  a busy guest, a user pause and resume (mirroring.paused), then --finish after ready
 *        (a soft abort: canceled with a consistent copy);
 *   vdc  ENOSPC on the target with on-target-error=stop (mirroring.errorPaused), resumed, pivoted.
 * Real time on purpose: it is meant to be watched.
 */
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { MiB, demoDisk } from '../../adapters/sim/index.js';
import type { BlockCopyEngine, BlockCopyJob } from '../engine/engine.js';
import { AbortFlags, RebaseFlags } from '../core/flags.js';

export const DEMO_DOMAIN = 'demo';
const DIR = '/var/lib/blockcopy';

export interface DemoHypervisorOptions {
  /** Copy rate in bytes/s (default 160 MiB/s: a 1 GiB disk mirrors in about 7 s). */
  readonly copyRate?: number;
}

/** The demo's simulator: domain `demo` with disks vda, vdb and vdc (1 GiB each). */
export function createDemoHypervisor(options: DemoHypervisorOptions = {}): SimulatedHypervisor {
  return new SimulatedHypervisor({
    copyRate: options.copyRate ?? 160 * MiB,
    domains: [
      {
        name: DEMO_DOMAIN,
        running: true,
        persistent: false,
        disks: [demoDisk('vda', DIR), demoDisk('vdb', `${DIR}/vdb`), demoDisk('vdc', `${DIR}/vdc`)],
      },
    ],
  });
}

export interface DemoOptions {
  readonly engine: BlockCopyEngine;
  readonly hypervisor: SimulatedHypervisor;
  /** Rounds to run (default: until aborted). */
  readonly rounds?: number;
  /** Scales every pause of the script (default 1; tests use less). */
  readonly pace?: number;
  readonly signal?: AbortSignal;
  /** Told about each job's end, e.g. to print a line. */
  readonly onJobEnd?: (disk: string, outcome: string) => void;
}

class Aborted extends Error {}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new Aborted());
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new Aborted());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function until(
  job: BlockCopyJob,
  predicate: (state: string) => boolean,
  signal: AbortSignal | undefined,
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (predicate(job.state())) {
      resolve();
      return;
    }
    const onAbort = (): void => {
      sub.unsubscribe();
      reject(new Aborted());
    };
    const sub = job.stateChanges$.subscribe({
      next: (state) => {
        if (predicate(state)) {
          sub.unsubscribe();
          signal?.removeEventListener('abort', onAbort);
          resolve();
        }
      },
      // The job ended without reaching the state: the caller awaits job.result next.
      complete: () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      },
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs the demo script; resolves when the rounds are done or the signal aborts. */
export async function runDemo(options: DemoOptions): Promise<void> {
  const { engine, hypervisor, signal } = options;
  const pace = options.pace ?? 1;
  const wait = (ms: number) => sleep(ms * pace, signal);
  const rounds = options.rounds ?? Number.POSITIVE_INFINITY;

  const start = async (disk: string, round: number, copyOptions = {}): Promise<BlockCopyJob | null> => {
    const dir = disk === 'vda' ? DIR : `${DIR}/${disk}`;
    const started = await engine.blockRebase(
      DEMO_DOMAIN,
      disk,
      `${dir}/${disk}-copy-${round}.qcow2`,
      0,
      RebaseFlags.COPY,
      copyOptions,
    );
    return started.isOk() ? started.value : null;
  };
  const ready = (s: string) => s.startsWith('ready');
  const finished = async (disk: string, job: BlockCopyJob): Promise<void> => {
    const result = await job.result;
    options.onJobEnd?.(disk, result.outcome);
  };

  const pivotEarlyThenPivot = async (round: number): Promise<void> => {
    const job = await start('vda', round);
    if (!job) return;
    await wait(800);
    // Too early: the chart refuses (the log shows the refusal), nothing reaches the hypervisor.
    await engine.blockJobAbort(DEMO_DOMAIN, 'vda', AbortFlags.PIVOT);
    await until(job, ready, signal);
    await wait(2500);
    await engine.blockJobAbort(DEMO_DOMAIN, 'vda', AbortFlags.PIVOT);
    await finished('vda', job);
  };

  const pauseThenFinish = async (round: number): Promise<void> => {
    await wait(1500);
    hypervisor.setGuestWriteRate(DEMO_DOMAIN, 'vdb', 24 * MiB);
    const job = await start('vdb', round);
    if (!job) return;
    await wait(2000);
    await engine.blockJobPause(DEMO_DOMAIN, 'vdb');
    await wait(2500);
    await engine.blockJobResume(DEMO_DOMAIN, 'vdb');
    await until(job, ready, signal);
    hypervisor.setGuestWriteRate(DEMO_DOMAIN, 'vdb', 0);
    await wait(2000);
    // --finish: a soft abort after ready leaves a consistent copy.
    await engine.blockJobAbort(DEMO_DOMAIN, 'vdb', 0);
    await finished('vdb', job);
  };

  const errorThenResume = async (round: number): Promise<void> => {
    await wait(3000);
    const destination = `${DIR}/vdc/vdc-copy-${round}.qcow2`;
    hypervisor.injectTargetError({ errno: 'ENOSPC', once: true, atOffset: 400 * MiB, path: destination });
    const job = await start('vdc', round, { onTargetError: 'stop' });
    if (!job) return;
    await until(job, (s) => s === 'mirroring.errorPaused' || ready(s), signal);
    if (job.state() === 'mirroring.errorPaused') {
      await wait(2500);
      await engine.blockJobResume(DEMO_DOMAIN, 'vdc');
    }
    await until(job, ready, signal);
    await wait(1500);
    await engine.blockJobAbort(DEMO_DOMAIN, 'vdc', AbortFlags.PIVOT);
    await finished('vdc', job);
  };

  try {
    for (let round = 1; round <= rounds; round++) {
      await Promise.all([pivotEarlyThenPivot(round), pauseThenFinish(round), errorThenResume(round)]);
      if (round < rounds) await wait(4000);
    }
  } catch (e) {
    if (!(e instanceof Aborted)) throw e;
  }
}
