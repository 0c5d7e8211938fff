/**
 * A one-shot `blockcopy copy` process on a real qemu-storage-daemon leaves no debris: after
 * SIGTERM (+ a second signal during the clean-up), after `--pivot --async` and after
 * `--finish --async`, QEMU has no job and no node on the destination left, and the destination
 * the engine created is gone when the copy was aborted. Without --wait it says exactly what it
 * leaves running. A job QEMU paused on a write error (--on-target-error stop|enospc, blkdebug)
 * says so with the reason.
 */
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { targetNodeNames } from '../../adapters/qmp/qemu-adapter.js';
import { parseCommand } from '../../src/cli/args.js';
import type { CopyCommand } from '../../src/cli/args.js';
import { runCopy } from '../../src/cli/copy.js';
import { CLEANING_UP, trapInterrupts } from '../../src/cli/interrupts.js';
import { captureOutput } from '../cli/capture.js';
import { spawnCli } from '../cli/child.js';
import type { QemuFixture } from '../qemu/harness.js';
import { useQemu } from '../qemu/harness.js';
import { PIVOTED_STATES } from '../states.js';

const qemu = useQemu();

/** Node names whose image file is `path` (the engine's target nodes, while attached). */
async function nodesOn(fx: QemuFixture, path: string): Promise<string[]> {
  const nodes = await fx.cmd<{ 'node-name': string; file: string }[]>('query-named-block-nodes', { flat: true });
  return nodes.filter((n) => n.file === path || n.file.includes(`"${path}"`)).map((n) => n['node-name']);
}

describe('blockcopy copy on QEMU as a child process: no debris', () => {
  it('SIGTERM aborts; a second signal while the clean-up waits for QEMU does not interrupt it; nothing is left', async () => {
    const fx = qemu();
    const dest = join(fx.dir, 'signal-copy.qcow2');
    const cli = spawnCli([
      'copy',
      '--hypervisor',
      `qmp:${fx.qmpSocket}`,
      'vda',
      dest,
      '--pivot',
      '--bandwidth',
      '1',
      '--verbose',
    ]);
    await cli.waitFor(/state: mirroring\.running/);
    // QEMU frozen: the abort (and so the clean-up) cannot finish until it is thawed.
    fx.freeze();
    try {
      cli.child.kill('SIGTERM');
      await cli.waitFor(/aborting the copy and cleaning up/);
      cli.child.kill('SIGINT');
      await cli.waitFor(/cleaning up, please wait/);
    } finally {
      fx.thaw();
    }
    expect(await cli.exited).toBe(1);
    expect(cli.stdout().trimEnd().split('\n').slice(-2)).toEqual(['state: canceled', 'Copy aborted']);
    expect(cli.stderr().trimEnd().split('\n')).toEqual([
      'blockcopy: SIGTERM: aborting the copy and cleaning up',
      CLEANING_UP,
      "error: operation aborted: block copy of disk 'vda' was interrupted by SIGTERM",
    ]);
    expect(await fx.cmd('query-jobs')).toEqual([]);
    expect(await nodesOn(fx, dest)).toEqual([]);
    expect(existsSync(dest)).toBe(false);
    expect(await fx.exportNode()).toBe('snap2');
  });

  it('--pivot --async --json: completed; QEMU has no job left when the process has exited', async () => {
    const fx = qemu();
    const dest = join(fx.dir, 'async-pivot.qcow2');
    const cli = spawnCli(['copy', '--hypervisor', `qmp:${fx.qmpSocket}`, 'vda', dest, '--pivot', '--async', '--json']);
    expect(await cli.exited).toBe(0);
    const report = JSON.parse(cli.stdout()) as Record<string, unknown>;
    expect(report).toMatchObject({ status: 'completed', pivoted: true, error: null, left: null });
    expect(report['states']).toEqual([...PIVOTED_STATES]);
    expect(report['hypervisor']).toBe(`qmp:${fx.qmpSocket}`);
    expect(cli.stderr()).toBe('');
    expect(await fx.cmd('query-jobs')).toEqual([]);
    expect(await fx.compareWithChain(dest, 'qcow2')).toMatchObject({ identical: true });
  });

  it('--finish --async: a consistent copy; no job and no node on the destination left', async () => {
    const fx = qemu();
    const dest = join(fx.dir, 'async-finish.qcow2');
    const cli = spawnCli(['copy', '--hypervisor', `qmp:${fx.qmpSocket}`, 'vda', dest, '--finish', '--async']);
    expect(await cli.exited).toBe(0);
    expect(cli.stdout().trimEnd().split('\n').slice(-2)).toEqual(['Now in mirroring phase', 'Successfully copied']);
    expect(await fx.cmd('query-jobs')).toEqual([]);
    expect(await nodesOn(fx, dest)).toEqual([]);
    expect(await fx.exportNode()).toBe('snap2');
    expect(await fx.compareWithChain(dest, 'qcow2')).toMatchObject({ identical: true });
  });

  it('without --wait: it says which QEMU job and destination it leaves running, and why', async () => {
    const fx = qemu();
    const dest = join(fx.dir, 'left.qcow2');
    const cli = spawnCli(['copy', '--hypervisor', `qmp:${fx.qmpSocket}`, 'vda', dest, '--bandwidth', '1', '--json']);
    expect(await cli.exited).toBe(0);
    const report = JSON.parse(cli.stdout()) as {
      status: string;
      left: { jobId: string; destination: string; reason: string };
    };
    expect(report.status).toBe('running');
    const jobs = await fx.cmd<{ id: string; status: string }[]>('query-jobs');
    expect(jobs.map((j) => j.id)).toEqual([report.left.jobId]);
    expect(report.left.destination).toBe(dest);
    const reason = `without --wait, --pivot, --finish or --timeout blockcopy only starts the job; QEMU job '${report.left.jobId}' into ${dest} goes on, recorded in the job store: end it with 'blockcopy blockjob vda --pivot' or '--abort' --hypervisor qmp:${fx.qmpSocket} (or use --pivot, --finish or --timeout to have this command see it through)`;
    expect(report.left.reason).toBe(reason);
    expect(cli.stderr()).toBe(`blockcopy: left running: ${reason}\n`);
  });

  it('a destination that cannot be created: the message names DEST, never an internal temporary file', async () => {
    const fx = qemu();
    const dest = join(fx.dir, 'missing-dir', 'copy.qcow2');
    const cli = spawnCli(['copy', '--hypervisor', `qmp:${fx.qmpSocket}`, 'vda', dest, '--pivot']);
    expect(await cli.exited).toBe(1);
    const stderr = cli.stderr();
    expect(stderr).not.toContain('blockcopy-tmp');
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^error: /);
    expect(stderr).toContain(dest);
    expect(await fx.cmd('query-jobs')).toEqual([]);
  });

  it.each([
    ['stop', 5, 'I/O error'],
    ['enospc', 28, 'no space left on device'],
  ] as const)(
    '--on-target-error %s: a job QEMU paused on a write error says so with the reason; Ctrl-C ends it',
    async (policy, errno, what) => {
      const fx = qemu();
      // A reused destination behind blkdebug, attached under the job's node names (adopted by the adapter).
      const dest = await fx.createImage('paused.qcow2', 'qcow2');
      const names = targetNodeNames('clipause');
      await fx.attachBlkdebugTarget({
        formatNode: names.format,
        fileNode: names.file,
        path: dest,
        format: 'qcow2',
        rules: [{ event: 'write_aio', errno, once: false }],
      });
      const signals = new EventEmitter();
      const out = captureOutput();
      const error = (text: string) => out.error(text);
      const watching = {
        ...out,
        error: (text: string) => {
          error(text);
          if (text.startsWith('Block Copy paused')) signals.emit('SIGINT');
        },
      };
      const { hv } = await fx.adapter({ domain: 'qemu' });
      const interrupts = trapInterrupts(watching, signals);
      const cmd = parseCommand([
        'copy',
        'vda',
        dest,
        '--reuse-external',
        '--pivot',
        '--json',
        '--on-target-error',
        policy,
      ])._unsafeUnwrap() as CopyCommand;
      const run = await runCopy(cmd, { hypervisor: hv, out: watching, interrupts, jobId: () => 'clipause' });
      interrupts.dispose();
      expect(out.errors.slice(0, 2)).toEqual([
        `Block Copy paused: ${what} writing the destination (--on-target-error ${policy}); the job waits for a resume, Ctrl-C aborts it`,
        'blockcopy: SIGINT: aborting the copy and cleaning up',
      ]);
      // The engine may briefly see the paused job as running (a poll answered before the pause
      // is handled after its event) and back: the CLI then reports each change, in order.
      for (const line of out.errors.slice(2)) expect(line).toMatch(/^Block Copy (resumed|paused: )/);
      expect(run.exitCode).toBe(1);
      expect(run.report).toMatchObject({ status: 'canceled', error: { code: 'VIR_ERR_OPERATION_ABORTED' } });
      expect(run.report.states).toContain('mirroring.errorPaused');
      expect(await fx.cmd('query-jobs')).toEqual([]);
      expect(await fx.exportNode()).toBe('snap2');
    },
  );
});
