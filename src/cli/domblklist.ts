/**
 * `blockcopy domblklist` (virsh's name): the domain's disks, each with every name that refers
 * to it (any of them works as `copy DISK`), its active image and backing chain, and any block job
 * running on it, whoever started it. Reads through the engine's listDisks; changes nothing.
 */
import type { BlockCopyError } from '../core/errors.js';
import type { DiskNames, HypervisorPort } from '../core/hypervisor-port.js';
import { createEngine } from '../engine/engine.js';
import type { DomblklistCommand } from './args.js';
import type { Output } from './copy.js';
import { defaultDomain } from './hypervisor.js';

export interface DomblklistDependencies {
  readonly hypervisor: HypervisorPort;
  readonly out: Output;
}

const COLUMNS = ['Target', 'Device', 'Drive', 'Node', 'Export', 'Source'] as const;

/** virsh's table: a header, a rule, one row per disk; then its backing chain and job under the row. */
export function formatDiskTable(disks: readonly DiskNames[]): string[] {
  const rows = disks.map((d) => [d.disk, d.device, d.drive, d.nodeName, d.exportId, d.source].map((v) => v ?? '-'));
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    ` ${cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('   ')}`;
  const lines = [line(COLUMNS), '-'.repeat(line(COLUMNS).length + 8)];
  const indent = ' '.repeat(widths[0]! + 4);
  disks.forEach((d, i) => {
    lines.push(line(rows[i]!));
    for (const image of d.chain.slice(1)) lines.push(`${indent}backing: ${image.path} (${image.format})`);
    if (d.job) lines.push(`${indent}block job: ${d.job.jobId} (${d.job.type}, ${d.job.status})`);
  });
  return lines;
}

/** Exit codes: 0 listed, 1 refused (no such domain) or the hypervisor failed. */
export async function runDomblklist(cmd: DomblklistCommand, deps: DomblklistDependencies): Promise<number> {
  const engine = createEngine({ hypervisor: deps.hypervisor });
  try {
    const domain = cmd.domain ?? defaultDomain(deps.hypervisor);
    const listed = await engine.listDisks(domain);
    if (listed.isErr()) return refused(listed.error, cmd, deps.out);
    if (cmd.json) deps.out.line(JSON.stringify(listed.value));
    else for (const line of formatDiskTable(listed.value)) deps.out.line(line);
    return 0;
  } finally {
    engine.close();
  }
}

function refused(error: BlockCopyError, cmd: DomblklistCommand, out: Output): number {
  if (cmd.json) {
    out.line(JSON.stringify({ error: { code: error.code, number: error.number, message: error.message } }));
  } else {
    out.error(`error: ${error.message}`);
  }
  return 1;
}
