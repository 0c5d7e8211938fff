/** `blockcopy copy` end to end on the simulator in virtual time: reports, exit codes, output. */
import { describe, expect, it } from 'vitest';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { parseCommand } from '../../src/cli/args.js';
import type { CopyCommand } from '../../src/cli/args.js';
import { runCopy } from '../../src/cli/copy.js';
import { VirtualClock } from '../../src/core/clock.js';
import { captureOutput } from './capture.js';
import { PIVOTED_STATES } from '../states.js';

const DEST = '/var/lib/blockcopy/cli-copy.qcow2';

async function copyOnSim(
  args: string[],
  simOptions: ConstructorParameters<typeof SimulatedHypervisor>[0] = {},
  tty = false,
) {
  const clock = new VirtualClock();
  const sim = new SimulatedHypervisor({ clock, ...simOptions });
  const out = captureOutput(tty);
  const cmd = parseCommand(['copy', 'vda', DEST, ...args])._unsafeUnwrap() as CopyCommand;
  let done = false;
  const running = runCopy(cmd, { hypervisor: sim, clock, out }).finally(() => (done = true));
  await clock.runUntil(() => done, 600_000, 50);
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
    expect(run.report).toMatchObject({ status: 'canceled', pivoted: false, destinationConsistent: false });
    expect(out.lines).toContain('Copy aborted');
    // The partial destination the engine created is gone.
    expect((await sim.probeDestination(DEST))._unsafeUnwrap()).toEqual({ exists: false });
  });

  it('--verbose prints the progress and every state change', async () => {
    const { run, out } = await copyOnSim(['--pivot', '--verbose'], { copyRate: 128 * 1024 * 1024 });
    expect(run.exitCode).toBe(0);
    expect(out.lines).toContain('state: mirroring.running');
    expect(out.lines).toContain('state: ready.synced');
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

  it('without --wait it only starts the job', async () => {
    const { run } = await copyOnSim([]);
    expect(run).toMatchObject({ exitCode: 0, report: { status: 'running' } });
  });
});
