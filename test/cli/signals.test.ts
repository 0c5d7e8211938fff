/**
 * Ctrl-C and SIGTERM with real signals to a real `blockcopy copy` process on the simulator: the
 * copy is aborted and cleaned up, and every output mode says what happened. A second signal
 * during the clean-up is tested where the clean-up can be held open deterministically: on a
 * frozen qemu-storage-daemon (test/qemu-engine/cli-signals.test.ts), and in-process with fake
 * signals (copy.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { SIMULATOR_NOTICE } from '../../src/cli/hypervisor.js';
import { spawnCli } from './child.js';

const DEST = '/var/lib/blockcopy/signal-copy.qcow2';
// 1 GiB at 10 MiB/s: the copy is still mirroring when the signal comes.
const SLOW = ['copy', '--hypervisor', 'sim', 'vda', DEST, '--pivot', '--bandwidth', '10'];

describe('blockcopy copy and signals (simulator, real child process)', () => {
  it('SIGTERM aborts the copy like Ctrl-C: "Copy aborted", the reason, exit 1', async () => {
    const cli = spawnCli([...SLOW, '--verbose']);
    await cli.waitFor(/state: mirroring\.running/);
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(1);
    const stdout = cli.stdout().trimEnd().split('\n');
    expect(stdout.slice(-3)).toEqual(['state: finishing', 'state: canceled', 'Copy aborted']);
    expect(stdout).toContain('state: aborting');
    expect(cli.stderr().trimEnd().split('\n')).toEqual([
      SIMULATOR_NOTICE,
      'blockcopy: SIGTERM: aborting the copy and cleaning up',
      "error: operation aborted: block copy of disk 'vda' was interrupted by SIGTERM",
    ]);
  });

  it('--json: one object on stdout whose status is the state the job ended in, with the reason', async () => {
    const cli = spawnCli([...SLOW, '--json']);
    // --json prints nothing until the end; the notice comes once the signals are trapped.
    await cli.waitFor(/in-process simulator/);
    cli.child.kill('SIGINT');
    expect(await cli.exited).toBe(1);
    const report = JSON.parse(cli.stdout()) as Record<string, unknown> & { states: string[] };
    expect(report).toMatchObject({
      status: 'canceled',
      pivoted: false,
      hypervisor: 'sim',
      left: null,
      error: {
        code: 'VIR_ERR_OPERATION_ABORTED',
        number: 78,
        message: "operation aborted: block copy of disk 'vda' was interrupted by SIGINT",
      },
    });
    // Interrupted before the job started, nothing ran (no states); after, the job ended canceled.
    if (report.states.length > 0) expect(report.states[report.states.length - 1]).toBe('canceled');
    expect(cli.stderr().trimEnd().split('\n')).toEqual([
      SIMULATOR_NOTICE,
      'blockcopy: SIGINT: aborting the copy and cleaning up',
    ]);
  });
});
