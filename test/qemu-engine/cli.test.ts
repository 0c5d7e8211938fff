/**
 * The command line on real QEMU: `blockcopy copy --hypervisor qmp:SOCKET vda DEST --pivot --json`
 * through main(), and the QEMU demo (runQemuDemo) with a capturing Output.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Output } from '../../src/cli/copy.js';
import { runDemo, runQemuDemo } from '../../src/cli/demo.js';
import { main } from '../../src/cli/main.js';
import { MiB, useQemu } from '../qemu/harness.js';
import { PIVOTED_STATES } from '../states.js';

const qemu = useQemu();

function capture(): { out: Output; lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return {
    lines,
    errors,
    out: { line: (t) => lines.push(t), overwrite: (t) => lines.push(t), error: (t) => errors.push(t), tty: false },
  };
}

describe('blockcopy CLI on QEMU', () => {
  it('copy --hypervisor qmp:SOCKET vda DEST --pivot --json: completed, pivoted, identical', async () => {
    const fx = qemu();
    const dest = join(fx.dir, 'cli-copy.qcow2');
    const c = capture();
    const code = await main(['copy', '--hypervisor', `qmp:${fx.qmpSocket}`, 'vda', dest, '--pivot', '--json'], c.out);
    expect(c.errors).toEqual([]);
    expect(code).toBe(0);
    expect(c.lines).toHaveLength(1);
    const report = JSON.parse(c.lines[0]!) as Record<string, unknown>;
    expect(report).toMatchObject({ status: 'completed', pivoted: true, destinationConsistent: true, error: null });
    expect(report['states']).toEqual([...PIVOTED_STATES]);
    expect(await fx.exportNode()).not.toBe('snap2');
    expect(await fx.compareWithChain(dest, 'qcow2')).toMatchObject({ identical: true });
  });

  it('copy --hypervisor qmp:SOCKET --shallow --dry-run --json: the plan, nothing created', async () => {
    const fx = qemu();
    const dest = join(fx.dir, 'plan.qcow2');
    const c = capture();
    const argv = ['copy', '--hypervisor', `qmp:${fx.qmpSocket}`, 'vda', dest, '--shallow', '--dry-run', '--json'];
    expect(await main(argv, c.out)).toBe(0);
    const report = JSON.parse(c.lines[0]!) as { status: string; plan: Record<string, unknown> };
    expect(report.status).toBe('planned');
    expect(report.plan).toMatchObject({ sync: 'top', backing: { path: fx.paths.snap1 } });
    expect(existsSync(dest)).toBe(false);
  });

  it('copy --hypervisor qmp:MISSING: the hypervisor cannot be reached, exit 1', async () => {
    const c = capture();
    const code = await main(['copy', '--hypervisor', 'qmp:/nonexistent/qmp.sock', 'vda', '/tmp/x.qcow2'], c.out);
    expect(code).toBe(1);
    expect(c.errors).toEqual([
      'error: cannot connect to qmp:/nonexistent/qmp.sock: /nonexistent/qmp.sock: connect ENOENT /nonexistent/qmp.sock',
    ]);
  });

  it('demo on QEMU: exit 0 and the verification line', async () => {
    const fx = qemu(); // only for its temp dir (cleaned up by the harness)
    const c = capture();
    const code = await runQemuDemo({ command: 'demo', json: false, hypervisor: 'qemu' }, c.out, {
      size: 64 * MiB,
      bandwidthMiB: 32,
      parentDir: fx.dir,
      handleSigint: false,
    });
    expect(c.errors).toEqual([]);
    expect(code).toBe(0);
    const text = c.lines.join('\n');
    expect(text).toContain('verified: the copy is identical to the source and the guest switched to it');
    expect(text).toContain('qemu-img compare snap2.qcow2 vda-copy.qcow2: identical');
    expect(text).toMatch(/the guest wrote [1-9]\d* blocks of 1 MiB during the copy/);
    expect(text).toContain('state: mirroring.running');
    expect(text).toContain('Block Copy: [');
  });

  it('demo --hypervisor qemu without the QEMU tools on PATH, or an unknown hypervisor: exit 2', async () => {
    const path = process.env['PATH'];
    const c = capture();
    try {
      process.env['PATH'] = '/nonexistent';
      expect(await runDemo({ command: 'demo', json: false, hypervisor: 'qemu' }, c.out)).toBe(2);
    } finally {
      process.env['PATH'] = path;
    }
    expect(c.errors.join('\n')).toContain('--hypervisor qemu needs qemu-storage-daemon, qemu-img, qemu-io on PATH');
    expect(await runDemo({ command: 'demo', json: false, hypervisor: 'xen' }, c.out)).toBe(2);
  });
});
