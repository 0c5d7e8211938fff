/**
 * `blockcopy list [--all] [--json]`: the jobs in the store (active, and with --all the ended
 * ones): domain, disk, state, progress, age. Reads the store directly (SQLite lets a reader in
 * beside a running daemon), so it works with or without one.
 */
import { parseArgs } from 'node:util';
import type { JobRecord } from '../core/job-store.js';
import type { Output } from './copy.js';
import { openStore, storePath } from './durable.js';

export async function runListCommand(argv: readonly string[], out: Output, now = Date.now()): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        store: { type: 'string' },
        all: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    out.error(
      `error: ${e instanceof Error ? e.message : String(e)}\n\nusage: blockcopy list [--all] [--json] [--store PATH]`,
    );
    return 2;
  }
  const opened = openStore(storePath(values.store));
  if (opened.isErr()) {
    out.error(`error: ${opened.error}`);
    return 1;
  }
  const listed = await opened.value.list({ includeEnded: values.all });
  opened.value.close();
  if (listed.isErr()) {
    out.error(`error: ${listed.error.message}`);
    return 1;
  }
  const rows = listed.value.map((r) => row(r, now));
  if (values.json) {
    out.line(JSON.stringify(rows));
    return 0;
  }
  if (rows.length === 0) {
    out.line('no jobs');
    return 0;
  }
  out.line(['JOB', 'HYPERVISOR', 'DOMAIN', 'DISK', 'STATE', 'PROGRESS', 'AGE'].join('\t'));
  for (const r of rows)
    out.line(
      [r.jobId, r.hypervisor, r.domain, r.disk, r.end ?? r.state, r.progress ?? '-', `${r.ageSeconds}s`].join('\t'),
    );
  return 0;
}

function row(r: JobRecord, now: number) {
  const p = r.side.progress;
  return {
    jobId: r.jobId,
    hypervisor: r.hypervisor,
    domain: r.domain,
    disk: r.disk,
    origin: r.origin,
    state: r.state,
    end: r.end ? r.end.outcome : null,
    progress: p && p.end > 0 ? `${Math.floor((p.cur * 100) / p.end)}%` : null,
    ageSeconds: Math.max(0, Math.round((now - r.createdAt) / 1000)),
    owner: r.owner,
  };
}
