/**
 * `blockcopy migrate-storage DISK DEST-DIR` (also `--all` or `--disk NAME` repeated, then
 * DEST-DIR): the whole-chain live storage migration of src/workflows/migrate-storage.ts, with
 * its record in the job store; `--recover` takes over migrations whose process died (rolled back
 * before their first pivot, carried forward after it). Ctrl-C cancels (rolls back) before the
 * first pivot. Exit codes: 0 every disk migrated, 1 rolled back, failed or partial, 2 usage.
 */
import { SimChainFiles } from '../../adapters/sim/chain-files.js';
import { SimulatedHypervisor } from '../../adapters/sim/hypervisor.js';
import { LocalChainFiles } from '../../adapters/local-chain-files.js';
import { MemoryJobStore } from '../../adapters/store/memory.js';
import type { ChainFiles } from '../core/chain-files.js';
import type { HypervisorPort } from '../core/hypervisor-port.js';
import type { JobStore } from '../core/job-store.js';
import { createEngine } from '../engine/engine.js';
import type { MigrationResult, StorageMigration } from '../workflows/migrate-storage.js';
import { migrateStorage, recoverMigrations } from '../workflows/migrate-storage.js';
import type { Output } from './copy.js';
import { defaultDomainOf, openStore, storePath } from './durable.js';
import { SIMULATOR_NOTICE, hypervisorName, noHypervisor, openHypervisorByName } from './hypervisor.js';
import { readCommandArgs, usageFailure } from './command-args.js';
import { connectOption } from './virsh-options.js';
import type { SignalSource } from './interrupts.js';
import { trapInterrupts } from './interrupts.js';

export const MIGRATE_STORAGE_USAGE = `usage: blockcopy migrate-storage DISK DEST-DIR [options]
       blockcopy migrate-storage (--all | --disk NAME [--disk NAME]...) DEST-DIR [options]
       blockcopy migrate-storage --recover [options]
options: [--domain NAME] [--hypervisor sim|qmp:SOCKET | --connect URI --domain NAME] [--store PATH] [--delete-source]
         [--verbose] [--json]

Moves each disk with its entire backing chain to DEST-DIR while the guest runs: the backing
images are copied, verified (qemu-img compare) and given relative backing names, a new top is
pre-created, a REUSE_EXT|SHALLOW copy mirrors into it, and every disk pivots once all are ready.
The old files are never written; with --delete-source they are deleted once every disk pivoted
onto its verified new chain and the guest was seen reading it (never a file the domain still
uses, never one created since; the result lists what was deleted and what was kept).`;

export async function runMigrateStorageCommand(
  argv: readonly string[],
  out: Output,
  signals: SignalSource = process,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<number> {
  const parsed = readCommandArgs('migrate-storage', argv, {
    options: {
      domain: { type: 'string' },
      hypervisor: { type: 'string' },
      connect: { type: 'string' },
      store: { type: 'string' },
      all: { type: 'boolean', default: false },
      disk: { type: 'string', multiple: true },
      recover: { type: 'boolean', default: false },
      'delete-source': { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: true,
  });
  if (parsed.isErr()) return usageFailure(out, 'migrate-storage', parsed.error.message);
  if (parsed.value === 'help') {
    out.line(MIGRATE_STORAGE_USAGE);
    return 0;
  }
  const { values, positionals } = parsed.value;
  const usage = (message: string) => usageFailure(out, 'migrate-storage', message);
  const listed = values.disk ?? [];
  let disks: readonly string[] | 'all' = 'all';
  let destDir = '';
  if (values.recover) {
    if (positionals.length > 0 || values.all || listed.length > 0) return usage('--recover takes no disks');
    if (values['delete-source']) return usage('--recover carries on with the options the migration was started with');
  } else if (values.all || listed.length > 0) {
    if (values.all && listed.length > 0) return usage('choose --all or --disk, not both');
    if (positionals.length !== 1) return usage('expected DEST-DIR after --all or --disk');
    disks = values.all ? 'all' : listed;
    destDir = positionals[0]!;
  } else {
    if (positionals.length !== 2) return usage('migrate-storage expects DISK and DEST-DIR');
    disks = [positionals[0]!];
    destDir = positionals[1]!;
  }

  // As for copy: no hypervisor named is a usage error, never a silent simulator.
  const connect = connectOption(values);
  if (connect.isErr()) return usage(connect.error.message);
  const named = hypervisorName({ connect: connect.value, option: values.hypervisor, env });
  if (named === undefined) return usage(noHypervisor('migrate-storage'));
  const opened = await openHypervisorByName(named);
  if (opened.isErr()) {
    out.error(`error: ${opened.error}`);
    return 1;
  }
  const hypervisor: HypervisorPort = opened.value;
  const sim = hypervisor instanceof SimulatedHypervisor ? hypervisor : null;
  if (sim) out.error(SIMULATOR_NOTICE);
  // On the simulator nothing outlives the process: its records stay in memory unless --store.
  let store: JobStore;
  if (sim && values.store === undefined) store = new MemoryJobStore();
  else {
    const s = openStore(storePath(values.store));
    if (s.isErr()) {
      out.error(`error: ${s.error}`);
      await hypervisor.close();
      return 1;
    }
    store = s.value;
  }
  const files: ChainFiles = sim ? new SimChainFiles(sim) : new LocalChainFiles();
  const engine = createEngine({ hypervisor, store, pollIntervalMs: 200 });
  const setup = { engine, hypervisor, files };
  const interrupts = trapInterrupts(out, signals);
  try {
    let migrations: readonly StorageMigration[];
    if (values.recover) {
      const r = await recoverMigrations(setup);
      if (r.isErr()) return fail(out, values.json, r.error.message);
      migrations = r.value;
      if (migrations.length === 0 && !values.json) out.line('No storage migration to recover');
    } else {
      const domain = values.domain ?? defaultDomainOf(named);
      const r = await migrateStorage(setup, {
        domain,
        disks,
        destDir,
        ...(values['delete-source'] ? { deleteSource: true } : {}),
      });
      if (r.isErr()) return fail(out, values.json, r.error.message, r.error.code);
      migrations = [r.value];
    }
    for (const m of migrations) {
      if (values.verbose) m.stateChanges$.subscribe((s) => out.error(`${m.workflowId}: ${s}`));
      void interrupts.interrupted.then(() => m.cancel());
    }
    const results: MigrationResult[] = [];
    for (const m of migrations) results.push(await m.result);
    if (values.json) out.line(JSON.stringify(values.recover ? results : results[0]));
    else for (const r of results) report(r, out);
    return results.every((r) => r.outcome === 'migrated') ? 0 : 1;
  } finally {
    interrupts.dispose();
    await engine.shutdown();
    await hypervisor.close();
    store.close();
  }
}

function fail(out: Output, json: boolean, message: string, code = 'VIR_ERR_OPERATION_FAILED'): number {
  if (json) out.line(JSON.stringify({ outcome: 'failed', error: { code, message } }));
  else out.error(`error: ${message}`);
  return 1;
}

function report(r: MigrationResult, out: Output): void {
  for (const [disk, st] of Object.entries(r.status)) {
    const chain = st.observedChain ? `: now reads ${st.observedChain.join(' <- ')}` : '';
    const why = st.error ? ` (${st.error.message})` : '';
    out.line(`${disk}: ${st.state}${chain}${why}`);
  }
  const deletion = r.sourceDeletion;
  if (deletion) {
    for (const path of deletion.deleted) out.line(`deleted ${path}`);
    for (const k of deletion.kept) out.error(`warning: kept ${k.path}: ${k.reason}`);
  }
  switch (r.outcome) {
    case 'migrated':
      out.line(
        deletion
          ? 'Storage migration complete; the old chain was deleted as listed'
          : 'Storage migration complete; the old chain is no longer used (remove it when you wish)',
      );
      return;
    case 'partial':
      out.error(`error: storage migration partly done, disk by disk as above: ${r.error?.message ?? ''}`);
      return;
    case 'rolled-back':
      out.error(`error: storage migration rolled back, the guest stays on its old chain: ${r.error?.message ?? ''}`);
      return;
    case 'failed':
      out.error(`error: storage migration failed: ${r.error?.message ?? ''}`);
  }
}
