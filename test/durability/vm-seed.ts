/**
 * What the kill tests on TCG VMs share: the seed chain built once per file and copied into each
 * VM's directory, and the guest's view of the seed read through its virtio device.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MiB, buildChain } from '../../adapters/qmp/lab.js';
import type { QmpClient } from '../../adapters/qmp/client.js';
import type { VmLab } from '../../adapters/qmp/vm-lab.js';

/** The seed chain base <- snap1 <- snap2 (relative backing names), built on first use. */
export class ChainTemplate {
  private dir: Promise<string> | null = null;

  constructor(private readonly prefix: string) {}

  path(): Promise<string> {
    this.dir ??= (async () => {
      const dir = await fs.mkdtemp(join(tmpdir(), this.prefix));
      await buildChain(dir, 64 * MiB);
      return dir;
    })();
    return this.dir;
  }

  async remove(): Promise<void> {
    if (this.dir) await fs.rm(await this.dir, { recursive: true, force: true });
  }
}

/** Regions the guest does not read as the seed wrote them (HMP qemu-io on its device). */
export async function guestReadsSeed(lab: VmLab, harness: QmpClient): Promise<string[]> {
  const blocks = (await harness.execute<{ qdev?: string; inserted?: unknown }[]>('query-block'))._unsafeUnwrap();
  const qdev = blocks.find((b) => b.inserted !== undefined)?.qdev ?? 'vda';
  const bad: string[] = [];
  for (const r of lab.expected()) {
    const out = (
      await harness.execute<string>('human-monitor-command', {
        'command-line': `qemu-io -d ${qdev} "read -P 0x${r.pattern.toString(16)} ${r.offset} ${r.len}"`,
      })
    )._unsafeUnwrap();
    if (/verification failed|error|fail/i.test(out)) bad.push(`${r.offset}+${r.len}: ${out.trim()}`);
  }
  return bad;
}
