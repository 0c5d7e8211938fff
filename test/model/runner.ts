/**
 * The model-based runner: random command sequences (fast-check `fc.commands`) against the engine
 * on the simulator, checked against the model's exact predictions after every command, the jobs
 * drained at the end. Shrinking is on: a failure is reported minimal, with the command that
 * replays it (BLOCKCOPY_SEED and BLOCKCOPY_PATH). BLOCKCOPY_MODEL_RUNS sets the number of
 * sequences (split over the five spec files that take a budget).
 */
import fc from 'fast-check';
import { MiB } from '../../adapters/sim/index.js';
import { Advance } from './commands/advance.js';
import type { Command } from './commands/base.js';
import { Disconnect, Reconnect } from './commands/connection.js';
import { DomainOp } from './commands/domain-op.js';
import { EndJob } from './commands/end-job.js';
import { EventNoise, ReorderEvents } from './commands/event-noise.js';
import { GuestWrite } from './commands/guest-write.js';
import { ClearFaults, IoError } from './commands/io-error.js';
import { Kill, Restart } from './commands/kill.js';
import { PauseResume } from './commands/pause-resume.js';
import { RestartEngine } from './commands/restart-engine.js';
import { SetSpeed } from './commands/set-speed.js';
import { POLICIES, StartCopy, backingOf, destPath } from './commands/start.js';
import { DISKS, System } from './system.js';

const disk = fc.constantFrom(...DISKS);

/** Destinations: 0 absent, 1 an empty qcow2 on the disk's snap1 (reusable), 2 one holding data. */
function foreignFiles() {
  return DISKS.flatMap((k) => [
    { path: destPath(k, 1), backing: backingOf(k) },
    { path: destPath(k, 2), allocated: MiB },
  ]);
}

export type Mix = 'lifecycle' | 'faults' | 'hypervisor' | 'everything' | 'restarts';

export function commandArbs(mix: Mix): fc.Arbitrary<Command>[] {
  const start = fc
    .record({
      disk,
      args: fc.record({ shallow: fc.boolean(), reuse: fc.boolean(), raw: fc.boolean() }),
      dest: fc.constantFrom(0, 0, 1, 2),
      policy: fc.constantFrom(...POLICIES),
      bw: fc.constantFrom(0, 0, 8, 64),
    })
    .map((r) => new StartCopy(r.disk, r.args, r.dest, r.policy, r.bw));
  const end = fc
    .record({ disk, pivot: fc.boolean(), async: fc.boolean(), force: fc.boolean() })
    .map((r) => new EndJob(r.disk, r.pivot, r.async, r.force));
  const advance = fc.constantFrom(100, 500, 1_000, 3_000).map((ms) => new Advance(ms));
  const lifecycle = [
    start,
    start,
    end,
    end,
    advance,
    advance,
    // MiB/s, or with BANDWIDTH_BYTES bytes/s of at least 1 MiB/s: QEMU's rate limiter delays a
    // write error by one 16 MiB burst, so at 1 B/s a fault lands ~194 virtual days later, and
    // the simulator's 100 ms ticks would take hours of real time to get there (a CI hang, seen).
    fc
      .oneof(
        fc.record({ bw: fc.constantFrom(0, 1, 100, 1024 * 1024), bytes: fc.constant(false) }),
        fc.record({ bw: fc.constantFrom(0, MiB, 100 * MiB), bytes: fc.constant(true) }),
      )
      .chain((r) => fc.record({ disk, bw: fc.constant(r.bw), bytes: fc.constant(r.bytes) }))
      .map((r) => new SetSpeed(r.disk, r.bw, r.bytes)),
    fc.record({ disk, pause: fc.boolean() }).map((r) => new PauseResume(r.disk, r.pause)),
    fc.record({ disk, mib: fc.constantFrom(1, 16, 64) }).map((r) => new GuestWrite(r.disk, r.mib)),
    fc
      .record({ disk, op: fc.constantFrom('save', 'snapshot-create', 'detach', 'define') as fc.Arbitrary<'save'> })
      .map((r) => new DomainOp(r.disk, r.op)),
    // In every mix: an engine restart from its store at a random point changes no outcome.
    fc.constant(new RestartEngine()),
  ];
  const faults = [
    fc
      .record({ errno: fc.constantFrom('EIO', 'ENOSPC') as fc.Arbitrary<'EIO'>, once: fc.boolean() })
      .map((r) => new IoError(r.errno, r.once)),
    fc.constant(new ClearFaults()),
    fc
      .record({ loss: fc.constantFrom(0, 0.3, 1), dup: fc.constantFrom(0, 0.5, 1) })
      .map((r) => new EventNoise(r.loss, r.dup)),
    fc.constantFrom(200, 1_000).map((ms) => new ReorderEvents(ms)),
  ];
  const hypervisor = [
    fc.constant(new Disconnect()),
    fc.constant(new Reconnect()),
    fc.constant(new Kill()),
    fc.constant(new Restart()),
  ];
  switch (mix) {
    case 'lifecycle':
      return lifecycle;
    case 'faults':
      return [...lifecycle, ...faults];
    case 'hypervisor':
      return [...lifecycle, ...hypervisor];
    case 'everything':
      return [...lifecycle, ...faults, ...hypervisor];
    case 'restarts':
      // Restarts weighted up, so that many land while jobs run, in any state.
      return [...lifecycle, ...hypervisor, ...Array.from({ length: 4 }, () => fc.constant(new RestartEngine()))];
  }
}

/** The spec files sharing the sequence budget: lifecycle, faults, hypervisor, everything, restart-engine. */
const FILES = 5;

/**
 * Number of sequences for one spec file: its default, or a fifth of BLOCKCOPY_MODEL_RUNS
 * (the total over the five files) when set, e.g. BLOCKCOPY_MODEL_RUNS=1000000 for a long run.
 */
export function runs(defaultRuns: number): number {
  const env = Number(process.env['BLOCKCOPY_MODEL_RUNS']);
  return Number.isInteger(env) && env > 0 ? Math.ceil(env / FILES) : defaultRuns;
}

/** A test timeout that grows with the number of sequences (generous: a loaded 2-core box took ~60 ms each). */
export function timeoutFor(numRuns: number): number {
  return Math.max(120_000, numRuns * 200);
}

/**
 * BLOCKCOPY_SEED / BLOCKCOPY_PATH: replay one failure (as the failure message prints them);
 * BLOCKCOPY_COMMANDS carries fast-check's replayPath of the command list (which commands ran).
 */
export function replayParams(): { seed?: number; path?: string } {
  const seed = process.env['BLOCKCOPY_SEED'];
  const path = process.env['BLOCKCOPY_PATH'];
  return {
    ...(seed !== undefined && seed !== '' ? { seed: Number(seed) } : {}),
    ...(path !== undefined && path !== '' ? { path } : {}),
  };
}

function replayCommands(): { replayPath?: string } {
  const ran = process.env['BLOCKCOPY_COMMANDS'];
  return ran !== undefined && ran !== '' ? { replayPath: ran } : {};
}

export async function runModel(
  mix: Mix,
  numRuns: number,
  specFile: string,
  maxCommands = 10,
  /** fast-check's size of the command lists (longer lists: more happens before each command). */
  size?: fc.SizeForArbitrary,
): Promise<{ sequences: number; commands: number; ms: number; restarts: number; restartsWithJobs: number }> {
  const t0 = performance.now();
  let sequences = 0;
  let commands = 0;
  let restarts = 0;
  let restartsWithJobs = 0;
  const replay = replayParams();
  // The seed is chosen here and printed first, so that even a run that hangs can be replayed.
  const seed = replay.seed ?? (Date.now() ^ (Math.random() * 0x100000000)) >>> 0;
  console.log(`model ${mix}: BLOCKCOPY_SEED=${seed}`);
  const details = await fc.check(
    fc.asyncProperty(
      fc.commands(commandArbs(mix), { maxCommands, ...(size ? { size } : {}), ...replayCommands() }),
      async (cmds) => {
        const sys = new System(foreignFiles());
        sequences++;
        await fc.asyncModelRun(() => ({ model: sys.model, real: sys }), cmds);
        await sys.drain();
        commands += sys.commands;
        restarts += sys.restarts;
        restartsWithJobs += sys.restartsWithJobs;
      },
    ),
    { numRuns, ...replay, seed },
  );
  if (details.failed) {
    const seed = details.seed;
    const path = details.counterexamplePath ?? '';
    const ran = /replayPath="([^"]*)"/.exec(fc.stringify(details.counterexample))?.[1] ?? '';
    throw new Error(
      `model-based run failed. Replay: BLOCKCOPY_SEED=${seed} BLOCKCOPY_PATH="${path}" ` +
        `BLOCKCOPY_COMMANDS="${ran}" npx vitest run ${specFile}\n` +
        fc.defaultReportMessage(details) +
        `\n${details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)}`,
    );
  }
  return { sequences, commands, ms: performance.now() - t0, restarts, restartsWithJobs };
}
