/** `blockcopy copy` end to end on the simulator in virtual time: reports, exit codes, output. */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { parseCommand } from '../../src/cli/args.js';
import type { CopyCommand } from '../../src/cli/args.js';
import { runCopy, statusOf } from '../../src/cli/copy.js';
import { trapInterrupts } from '../../src/cli/interrupts.js';
import type { Interrupts } from '../../src/cli/interrupts.js';
import { VirtualClock } from '../../src/core/clock.js';
import { captureOutput } from './capture.js';
import { PIVOTED_STATES } from '../states.js';

const DEST = '/var/lib/blockcopy/cli-copy.qcow2';

interface SimRun {
  /** Fake signals for the run (an EventEmitter stands for the process). */
  readonly signals?: EventEmitter;
  /** Runs before the copy starts (e.g. to inject faults). */
  readonly before?: (sim: SimulatedHypervisor) => void;
  /** Called on every virtual-time step until it returns true (then no more calls). */
  readonly during?: (sim: SimulatedHypervisor, out: ReturnType<typeof captureOutput>) => boolean;
}

async function copyOnSim(
  args: string[],
  simOptions: ConstructorParameters<typeof SimulatedHypervisor>[0] = {},
  tty = false,
  extra: SimRun = {},
) {
  const clock = new VirtualClock();
  const sim = new SimulatedHypervisor({ clock, ...simOptions });
  const out = captureOutput(tty);
  extra.before?.(sim);
  const cmd = parseCommand(['copy', 'vda', DEST, ...args])._unsafeUnwrap() as CopyCommand;
  let done = false;
  let interrupts: Interrupts | undefined;
  if (extra.signals) interrupts = trapInterrupts(out, extra.signals);
  const running = runCopy(cmd, { hypervisor: sim, clock, out, ...(interrupts ? { interrupts } : {}) }).finally(
    () => (done = true),
  );
  let hookDone = extra.during === undefined;
  await clock.runUntil(
    () => {
      if (!hookDone) hookDone = extra.during!(sim, out);
      return done;
    },
    600_000,
    50,
  );
  interrupts?.dispose();
  return { run: await running, out, sim };
}

describe('blockcopy copy on the simulator', () => {
  it('--pivot --json reports a completed, pivoted job with its states', async () => {
    const { run, out, sim } = await copyOnSim(['--pivot', '--json']);
    expect(run.exitCode).toBe(0);
    expect(run.report).toMatchObject({ status: 'completed', pivoted: true, destinationConsistent: true, error: null });
    expect(run.report.states).toEqual([...PIVOTED_STATES]);
    expect(out.lines).toEqual([]); // --json prints nothing else (main prints the object)
    expect((await sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(DEST);
  });

  it('--finish leaves a consistent copy and the guest on its source', async () => {
    const { run, out, sim } = await copyOnSim(['--finish']);
    expect(run.exitCode).toBe(0);
    expect(run.report).toMatchObject({ status: 'canceled', pivoted: false, destinationConsistent: true });
    expect(out.lines).toContain('Successfully copied');
    expect((await sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe('/var/lib/blockcopy/snap2.qcow2');
  });

  it('--dry-run prints the plan and touches nothing', async () => {
    const { run, out, sim } = await copyOnSim(['--dry-run', '--shallow']);
    expect(run.exitCode).toBe(0);
    expect(run.report.status).toBe('planned');
    expect(run.report.plan).toMatchObject({
      sync: 'top',
      destinationAction: 'create',
      backing: { path: '/var/lib/blockcopy/snap1.qcow2' },
    });
    expect(out.lines[0]).toMatch(/^Plan: shallow copy/);
    expect((await sim.probeDestination(DEST))._unsafeUnwrap()).toEqual({ exists: false });
    expect(sim.listJobs()).toEqual([]);
  });

  it('a refused request exits 1 with the libvirt error', async () => {
    const { run, out } = await copyOnSim(['--shallow', '--raw', '--pivot']);
    expect(run.exitCode).toBe(1);
    expect(run.report).toMatchObject({
      status: 'failed',
      error: {
        code: 'VIR_ERR_CONFIG_UNSUPPORTED',
        number: 67,
        message: "unsupported configuration: shallow copy of disk 'vda' into a raw file is not possible",
      },
    });
    expect(out.errors[0]).toBe(
      "error: unsupported configuration: shallow copy of disk 'vda' into a raw file is not possible",
    );
  });

  it('--timeout aborts a copy that does not finish in time and exits 1', async () => {
    const { run, out, sim } = await copyOnSim(['--pivot', '--timeout', '2', '--bandwidth', '1']);
    expect(run.exitCode).toBe(1);
    expect(run.report).toMatchObject({
      status: 'canceled',
      pivoted: false,
      destinationConsistent: false,
      error: {
        code: 'VIR_ERR_OPERATION_TIMEOUT',
        number: 68,
        message:
          "Timed out during operation: block copy of disk 'vda' did not finish within --timeout 2 s and was aborted",
      },
    });
    expect(run.report.states.at(-1)).toBe('canceled');
    expect(out.lines.at(-1)).toBe('Copy aborted');
    expect(out.errors).toEqual([
      "error: Timed out during operation: block copy of disk 'vda' did not finish within --timeout 2 s and was aborted",
    ]);
    // The partial destination the engine created is gone.
    expect((await sim.probeDestination(DEST))._unsafeUnwrap()).toEqual({ exists: false });
  });

  it('--verbose prints the progress and every state change', async () => {
    const { run, out } = await copyOnSim(['--pivot', '--verbose'], { copyRate: 128 * 1024 * 1024 });
    expect(run.exitCode).toBe(0);
    expect(out.lines).toContain('state: mirroring.running');
    expect(out.lines).toContain('state: ready.synced');
    // Each state once, in the chart's order (the state stream replays the current one).
    expect(out.lines.filter((l) => l.startsWith('state: ')).map((l) => l.slice(7))).toEqual(run.report.states);
    expect(out.lines).toContain('Now in mirroring phase');
    expect(out.lines.some((l) => /^Block Copy: \[#+-*\]\s+\d+ %/.test(l))).toBe(true);
    // 100 % only once ready.
    const full = out.lines.findIndex((l) => l.includes('100 %'));
    expect(full).toBeGreaterThan(out.lines.indexOf('state: ready.synced'));
  });

  it('on a terminal, the progress bar is redrawn in place and never shares a line with text', async () => {
    const { run, out } = await copyOnSim(['--pivot', '--verbose'], { copyRate: 128 * 1024 * 1024 }, true);
    expect(run.exitCode).toBe(0);
    expect(out.bars.length).toBeGreaterThan(3);
    out.transcript.forEach(([kind, text], i) => {
      const previous = out.transcript[i - 1];
      // After a bar, the next line must first end the bar (an empty line), then the text.
      if (kind !== 'bar' && previous?.[0] === 'bar') expect([kind, text]).toEqual(['line', '']);
    });
    // The same bar is not drawn twice in a row.
    out.transcript.forEach(([kind, text], i) => {
      if (kind === 'bar') expect(out.transcript[i - 1]).not.toEqual(['bar', text]);
    });
  });

  it('without --wait it only starts the job, and says it leaves it running', async () => {
    const { run, out } = await copyOnSim([]);
    expect(run).toMatchObject({ exitCode: 0, report: { status: 'running', hypervisor: 'sim', left: null } });
    expect(statusOf(run.report.states)).toBe('running');
    expect(out.errors).toEqual([
      'blockcopy: left running: without --wait, --pivot, --finish or --timeout blockcopy only starts the job; the simulated job ends with this process',
    ]);
  });

  it('--wait alone stops watching in the mirroring phase, and says so', async () => {
    const { run, out } = await copyOnSim(['--wait', '--json']);
    expect(run).toMatchObject({ exitCode: 0, report: { status: 'ready' } });
    expect(run.report.states.at(-1)).toBe('ready.synced');
    expect(out.errors).toEqual([
      'blockcopy: left running: --wait without --pivot or --finish stops watching in the mirroring phase; the simulated job ends with this process',
    ]);
  });

  it('--pivot --async still waits until the job is dismissed, then reports the real outcome', async () => {
    const { run, out, sim } = await copyOnSim(['--pivot', '--async', '--json']);
    expect(run.exitCode).toBe(0);
    expect(run.report).toMatchObject({ status: 'completed', pivoted: true, error: null });
    expect(run.report.states).toEqual([...PIVOTED_STATES]);
    expect(sim.listJobs()).toEqual([]);
    expect(out.errors).toEqual([]);
  });

  it('--finish --async: the copy is finished and the job gone before the run returns', async () => {
    const { run, out, sim } = await copyOnSim(['--finish', '--async']);
    expect(run.exitCode).toBe(0);
    expect(run.report).toMatchObject({ status: 'canceled', destinationConsistent: true, error: null });
    expect(out.lines.at(-1)).toBe('Successfully copied');
    expect(sim.listJobs()).toEqual([]);
  });

  it.each([
    [['--json'], true],
    [[], false],
    [['--verbose'], false],
  ])(
    'a job paused by a target I/O error (--on-target-error stop) says so with the reason (%j); Ctrl-C aborts it',
    async (mode, json) => {
      const signals = new EventEmitter();
      const { run, out } = await copyOnSim(['--pivot', '--on-target-error', 'stop', ...mode], {}, false, {
        signals,
        before: (sim) => sim.injectTargetError({ errno: 'EIO', once: false, atOffset: 256 * 1024 * 1024 }),
        // Once the pause was reported, the user presses Ctrl-C.
        during: (_sim, o) => {
          if (!o.errors.some((e) => e.startsWith('Block Copy paused'))) return false;
          signals.emit('SIGINT');
          return true;
        },
      });
      expect(out.errors).toEqual([
        'Block Copy paused: I/O error writing the destination (--on-target-error stop); the job waits for a resume, Ctrl-C aborts it',
        'blockcopy: SIGINT: aborting the copy and cleaning up',
        ...(json ? [] : ["error: operation aborted: block copy of disk 'vda' was interrupted by SIGINT"]),
      ]);
      expect(run.exitCode).toBe(1);
      expect(run.report).toMatchObject({ status: 'canceled', error: { code: 'VIR_ERR_OPERATION_ABORTED' } });
      expect(run.report.states).toContain('mirroring.errorPaused');
      if (json) expect(out.lines).toEqual([]);
      else expect(out.lines.at(-1)).toBe('Copy aborted');
    },
  );

  it('Ctrl-C once the pivot was requested does not abort it: the pivot completes, exit 0', async () => {
    const signals = new EventEmitter();
    const { run, out } = await copyOnSim(['--pivot', '--verbose'], {}, false, {
      signals,
      during: (_sim, o) => {
        if (!o.lines.includes('state: pivoting')) return false;
        signals.emit('SIGINT');
        return true;
      },
    });
    expect(out.errors).toEqual(['blockcopy: SIGINT: the pivot is already under way; cleaning up, please wait']);
    expect(run.exitCode).toBe(0);
    expect(run.report).toMatchObject({ status: 'completed', pivoted: true, error: null });
    expect(out.lines.at(-1)).toBe('Successfully pivoted');
  });

  it('a second signal during the clean-up prints "cleaning up, please wait" and changes nothing', async () => {
    const signals = new EventEmitter();
    const { run, out, sim } = await copyOnSim(['--pivot', '--bandwidth', '10'], {}, false, {
      signals,
      during: (_sim, o) => {
        if (!o.lines.some((l) => l.startsWith('Block Copy started'))) return false;
        signals.emit('SIGINT');
        signals.emit('SIGTERM');
        return true;
      },
    });
    expect(out.errors).toEqual([
      'blockcopy: SIGINT: aborting the copy and cleaning up',
      'cleaning up, please wait',
      "error: operation aborted: block copy of disk 'vda' was interrupted by SIGINT",
    ]);
    expect(run).toMatchObject({ exitCode: 1, report: { status: 'canceled' } });
    expect(sim.listJobs()).toEqual([]);
    expect((await sim.probeDestination(DEST))._unsafeUnwrap()).toEqual({ exists: false });
  });
});
