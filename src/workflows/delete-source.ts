/**
 * `--delete-source` of the whole-chain migration: once every disk pivoted onto its verified new
 * chain and the guest was seen reading it (the chart's `deletingSource` guards that), the old
 * chains' files are deleted. Only files the old chains consisted of; never a new file; never a
 * file a node of the domain still has open (the block graph: openFiles, else every disk's chain);
 * never a file that is no longer the one planned (its identity was recorded at planning).
 *
 * Durable: the decision (the files to delete) is recorded before the first is deleted; a run
 * killed in between resumes from the record and deletes what is left (a missing file is fine).
 */
import type { DiskPlan, SourceDeletion } from '../../machines/migrate-storage.js';
import type { ChainFiles } from '../core/chain-files.js';
import { blockCopyError } from '../core/errors.js';
import type { HypervisorPort } from '../core/hypervisor-port.js';
import type { BlockCopyEngine } from '../engine/engine.js';

export interface DeleteSourceSetup {
  readonly plan: readonly DiskPlan[];
  readonly domain: string;
  readonly hypervisor: HypervisorPort;
  readonly engine: BlockCopyEngine;
  readonly files: ChainFiles;
  /** The migration's ledger: identities planned, and the decision once taken. */
  readonly ledger: { sources?: Record<string, string>; deleting?: string[] };
  /** Every file the migration created (never deleted here). */
  readonly created: readonly string[];
  /** Makes the record (with the decision) durable, then runs the step's test hook. */
  readonly record: (step: string) => Promise<void>;
  /** Only the test hook, before each file's deletion. */
  readonly hook: (step: string) => Promise<void>;
}

/** Every file of the old chains, each once, top first. */
export function oldFiles(plan: readonly DiskPlan[]): string[] {
  return [...new Set(plan.flatMap((d) => d.oldChain))];
}

function newFiles(plan: readonly DiskPlan[]): Set<string> {
  return new Set(plan.flatMap((d) => [d.top, ...d.backing.map((l) => l.to)]));
}

/** What the domain has open now: its block graph where the port reads it, else its disks' chains. */
async function openNow(setup: DeleteSourceSetup): Promise<Set<string>> {
  const port = setup.hypervisor;
  if (port.openFiles) {
    const r = await port.openFiles(setup.domain);
    if (r.isErr())
      throw blockCopyError('VIR_ERR_OPERATION_FAILED', `reading the block graph of '${setup.domain}': ${r.error.desc}`);
    return new Set(r.value);
  }
  const listed = await setup.engine.listDisks(setup.domain);
  if (listed.isErr()) throw listed.error;
  return new Set(listed.value.flatMap((d) => d.chain.map((i) => i.path)));
}

/** Deletes the old chains' files as above; per-file problems are reported as kept, never thrown. */
export async function deleteOldChains(setup: DeleteSourceSetup): Promise<SourceDeletion> {
  const kept: { path: string; reason: string }[] = [];
  const deleted: string[] = [];
  const sources = setup.ledger.sources ?? {};
  let decision = setup.ledger.deleting;
  const inUse = await openNow(setup);
  if (decision === undefined) {
    const fresh = newFiles(setup.plan);
    decision = [];
    for (const path of oldFiles(setup.plan)) {
      if (fresh.has(path) || setup.created.includes(path)) kept.push({ path, reason: 'it is a file of the new chain' });
      else if (inUse.has(path)) kept.push({ path, reason: 'a node of the domain still uses it' });
      else if (sources[path] === undefined) kept.push({ path, reason: 'it was not there when the migration began' });
      else decision.push(path);
    }
    setup.ledger.deleting = decision;
  } else {
    // Resumed after a restart: the recorded decision, less what came into use meanwhile.
    for (const path of oldFiles(setup.plan))
      if (!decision.includes(path)) kept.push({ path, reason: 'kept by the decision recorded before the restart' });
  }
  // The decision is durable before the first file goes.
  await setup.record('delete-source');
  for (const path of decision) {
    if (inUse.has(path)) {
      kept.push({ path, reason: 'a node of the domain still uses it' });
      continue;
    }
    await setup.hook(`delete:${path}`);
    const r = await setup.files.removeSource(path, sources[path] ?? '');
    if (r.isErr()) kept.push({ path, reason: `could not delete it: ${r.error.desc}` });
    else if (r.value === 'changed')
      kept.push({ path, reason: 'another file has taken its place since the migration began' });
    else deleted.push(path);
  }
  return { deleted, kept };
}
