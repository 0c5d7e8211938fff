/**
 * `blockcopy list [--all] [--json] [--connect URI --domain NAME]`: the jobs in the store (active,
 * and with --all the ended ones): domain, disk, state, progress, age. Reads the store directly
 * (SQLite lets a reader in beside a running daemon), so it works with or without one. With
 * --connect it also asks libvirtd (through the daemon when one runs, else over its own
 * connection) for the block jobs on the domain's disks that the store does not hold, such as a
 * copy started by `virsh blockcopy`: origin 'hypervisor', which `blockjob` can then act on.
 */
import { parseArgs } from 'node:util';
import { err, ok, type Result } from 'neverthrow';
import { errors } from '../core/errors.js';
import { fromHypervisorError } from '../core/hypervisor-error.js';
import type { DiskNames } from '../core/hypervisor-port.js';
import type { JobRecord } from '../core/job-store.js';
import { callDaemon } from '../daemon/client.js';
import { parseConnectUri } from '../../adapters/libvirt/uri.js';
import type { Output } from './copy.js';
import { daemonRuns, openStore, socketPath, storePath } from './durable.js';
import { openHypervisorByName } from './hypervisor.js';

const USAGE = 'usage: blockcopy list [--all] [--json] [--store PATH] [--connect URI --domain NAME] [--socket PATH]';

export async function runListCommand(argv: readonly string[], out: Output, now = Date.now()): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        store: { type: 'string' },
        all: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        connect: { type: 'string' },
        domain: { type: 'string' },
        socket: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    out.error(`error: ${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
    return 2;
  }
  const usage = (message: string) => {
    out.error(`error: ${message}\n\n${USAGE}`);
    return 2;
  };
  if (values.connect !== undefined) {
    if (values.domain === undefined) return usage('--connect needs --domain NAME');
    const uri = parseConnectUri(values.connect);
    if (uri.isErr()) return usage(uri.error);
  } else if (values.domain !== undefined) return usage('--domain goes with --connect URI');

  const store = storePath(values.store);
  const opened = openStore(store);
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
  const rows: Row[] = listed.value.map((r) => row(r, now));

  if (values.connect !== undefined && values.domain !== undefined) {
    const hypervisor = `libvirt:${values.connect}`;
    const disks = await liveDisks(hypervisor, values.domain, socketPath(values.socket, store));
    if (disks.isErr()) {
      if (values.json) out.line(JSON.stringify({ error: disks.error }));
      else out.error(`error: ${disks.error.message}`);
      return 1;
    }
    rows.push(...foreignRows(rows, hypervisor, values.domain, disks.value));
  }

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
      [
        r.jobId,
        r.hypervisor,
        r.domain,
        r.disk,
        r.end ?? r.state,
        r.progress ?? '-',
        r.ageSeconds === null ? '-' : `${r.ageSeconds}s`,
      ].join('\t'),
    );
  return 0;
}

interface Row {
  readonly jobId: string;
  readonly hypervisor: string;
  readonly domain: string;
  readonly disk: string;
  /** 'engine' or 'adopted' (in the store), 'hypervisor' (only the hypervisor knows it). */
  readonly origin: JobRecord['origin'] | 'hypervisor';
  readonly state: string;
  readonly end: string | null;
  readonly progress: string | null;
  readonly ageSeconds: number | null;
  readonly owner: string | null;
}

function row(r: JobRecord, now: number): Row {
  const p = r.side.progress;
  return {
    jobId: r.jobId,
    hypervisor: r.hypervisor,
    domain: r.domain,
    disk: r.disk,
    origin: r.origin,
    state: r.state,
    end: r.end ? r.end.outcome : null,
    progress: p && p.end > 0 ? percent(p.cur, p.end) : null,
    ageSeconds: Math.max(0, Math.round((now - r.createdAt) / 1000)),
    owner: r.owner,
  };
}

const percent = (cur: number, end: number) => `${Math.floor((cur * 100) / end)}%`;

interface ListError {
  readonly code: string;
  readonly number?: number;
  readonly message: string;
}

/** The domain's disks as the daemon's connection sees them, else over a connection of our own. */
async function liveDisks(
  hypervisor: string,
  domain: string,
  socket: string,
): Promise<Result<readonly DiskNames[], ListError>> {
  if (await daemonRuns(socket)) {
    const answer = await callDaemon(socket, 'disks', hypervisor, { domain });
    if (answer === null) return err({ code: 'VIR_ERR_OPERATION_FAILED', message: 'the daemon went away' });
    return answer.ok ? ok(answer.value as readonly DiskNames[]) : err(answer.error);
  }
  // libvirtd serves many clients: a read-only look needs no engine and changes nothing.
  const port = await openHypervisorByName(hypervisor);
  if (port.isErr()) return err({ code: 'VIR_ERR_OPERATION_FAILED', message: port.error });
  try {
    const disks = await port.value.listDisks(domain);
    if (disks.isErr()) return err(fromHypervisorError(disks.error));
    return disks.value === null ? err(errors.noDomain(domain)) : ok(disks.value);
  } finally {
    await port.value.close();
  }
}

/** A row for each block job on the domain that no active store record holds. */
function foreignRows(rows: readonly Row[], hypervisor: string, domain: string, disks: readonly DiskNames[]): Row[] {
  const out: Row[] = [];
  for (const d of disks) {
    const job = d.job;
    if (!job) continue;
    const names = [d.disk, d.device, d.source].filter((n): n is string => n !== null);
    const known = rows.some(
      (r) =>
        r.end === null &&
        r.hypervisor === hypervisor &&
        r.domain === domain &&
        (r.jobId === job.jobId || names.includes(r.disk)),
    );
    if (known) continue;
    out.push({
      jobId: job.jobId,
      hypervisor,
      domain,
      disk: d.disk,
      origin: 'hypervisor',
      state: job.status,
      end: null,
      progress: job.len !== undefined && job.offset !== undefined && job.len > 0 ? percent(job.offset, job.len) : null,
      ageSeconds: null,
      owner: null,
    });
  }
  return out;
}
