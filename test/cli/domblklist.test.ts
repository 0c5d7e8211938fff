/** `blockcopy domblklist` on the simulator: virsh's table, every name of each disk, its chain, any job; --json. */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { parseCommand } from '../../src/cli/args.js';
import type { DomblklistCommand } from '../../src/cli/args.js';
import { runDomblklist } from '../../src/cli/domblklist.js';
import { SIMULATOR_NOTICE } from '../../src/cli/hypervisor.js';
import type { SignalSource } from '../../src/cli/interrupts.js';
import { main } from '../../src/cli/main.js';
import { RebaseFlags } from '../../src/core/flags.js';
import { createEngine } from '../../src/engine/engine.js';
import { captureOutput } from './capture.js';

const dir = '/var/lib/blockcopy';

async function domblklist(args: string[], env: Record<string, string> = {}) {
  const out = captureOutput();
  const code = await main(['domblklist', ...args], out, {
    env,
    signals: new EventEmitter() as unknown as SignalSource,
  });
  return { code, lines: out.lines, errors: out.errors };
}

describe('blockcopy domblklist (simulator)', () => {
  it('the table: names, source, the backing chain', async () => {
    expect(await domblklist(['--hypervisor', 'sim'])).toEqual({
      code: 0,
      errors: [SIMULATOR_NOTICE],
      lines: [
        ' Target   Device   Drive   Node   Export   Source',
        '-'.repeat(57),
        ` vda      vda      -       -      -        ${dir}/snap2.qcow2`,
        `          backing: ${dir}/snap1.qcow2 (qcow2)`,
        `          backing: ${dir}/base.qcow2 (qcow2)`,
      ],
    });
  });

  it('--json: one array of disks with every name, the chain top first, and the job', async () => {
    const r = await domblklist(['--json'], { BLOCKCOPY_HYPERVISOR: 'sim' });
    expect(r.code).toBe(0);
    const disks = JSON.parse(r.lines[0]!) as Record<string, unknown>[];
    expect(disks).toHaveLength(1);
    expect(disks[0]).toMatchObject({
      domain: 'demo',
      disk: 'vda',
      device: 'vda',
      drive: null,
      nodeName: null,
      exportId: null,
      source: `${dir}/snap2.qcow2`,
      job: null,
    });
    expect((disks[0]!['chain'] as { path: string }[]).map((i) => i.path)).toEqual([
      `${dir}/snap2.qcow2`,
      `${dir}/snap1.qcow2`,
      `${dir}/base.qcow2`,
    ]);
  });

  it('shows a block job running on the disk', async () => {
    const sim = new SimulatedHypervisor({ copyRate: 1024 * 1024 });
    const engine = createEngine({ hypervisor: sim });
    const job = (await engine.blockRebase('demo', 'vda', `${dir}/listed.qcow2`, 0, RebaseFlags.COPY))._unsafeUnwrap();
    const out = captureOutput();
    const cmd = parseCommand(['domblklist', '--hypervisor', 'sim'])._unsafeUnwrap() as DomblklistCommand;
    expect(await runDomblklist(cmd, { hypervisor: sim, out })).toBe(0);
    expect(out.lines.at(-1)).toBe(`          block job: ${job.jobId} (mirror, running)`);
    engine.close();
    await sim.close();
  });

  it("an unknown domain: libvirt's error, exit 1", async () => {
    expect(await domblklist(['--hypervisor', 'sim', '--domain', 'nope'])).toEqual({
      code: 1,
      lines: [],
      errors: [SIMULATOR_NOTICE, "error: Domain not found: no domain with matching name 'nope'"],
    });
  });

  it('needs a hypervisor like copy', async () => {
    expect(await domblklist([])).toEqual({
      code: 2,
      lines: [],
      errors: [
        'error: domblklist needs a hypervisor: --hypervisor sim|qmp:SOCKET, --connect URI or the BLOCKCOPY_HYPERVISOR environment variable',
        'see blockcopy domblklist --help',
      ],
    });
  });
});
