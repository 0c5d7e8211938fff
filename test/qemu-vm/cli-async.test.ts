/**
 * The one-shot CLI on a real VM: `--pivot --async` and `--finish --async` leave QEMU clean when
 * the command returns (no job; after the pivot only the destination's nodes, after the finish
 * none on the copy), as the storage-daemon tests check for the spawned CLI.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { captureOutput } from '../cli/capture.js';
import { useVm } from './harness.js';

const vm = useVm();

describe.each(['blockdev', 'drive'] as const)('VM (%s): CLI --async leaves no debris', (style) => {
  it('--pivot --async, then --finish --async: no job, no stray node', async () => {
    const fx = await vm(style);
    // The CLI gets the monitor the fixture's "other client" held.
    await fx.other.close();
    const hypervisor = `qmp:${fx.lab.socket('other')}`;
    const copy = async (dest: string, end: string) => {
      const out = captureOutput();
      const code = await main(['copy', fx.device, dest, end, '--async', '--json', '--hypervisor', hypervisor], out);
      return { code, report: JSON.parse(out.lines[0]!) as { status: string; left: { jobId: string } | null } };
    };

    const first = join(fx.dir, 'first.qcow2');
    const pivoted = await copy(first, '--pivot');
    expect(pivoted.code).toBe(0);
    expect(pivoted.report.status).toBe('completed');
    expect(await fx.cmd('query-jobs')).toEqual([]);
    const nodes = (await fx.nodes()).map((n) => n['node-name']);
    // Only the destination's two nodes: the old chain was released, nothing else added.
    expect(nodes).toHaveLength(2);
    expect((await fx.block()).inserted?.file).toBe(first);

    const second = join(fx.dir, 'second.qcow2');
    const finished = await copy(second, '--finish');
    expect(finished.code).toBe(0);
    expect(await fx.cmd('query-jobs')).toEqual([]);
    expect((await fx.nodes()).filter((n) => n.file === second)).toEqual([]);
    expect((await fx.nodes()).map((n) => n['node-name']).sort()).toEqual([...nodes].sort());
    expect((await fx.block()).inserted?.file).toBe(first);
    expect(await fx.lab.compareWithChain(second, 'qcow2')).toMatchObject({ identical: true });
  });
});
