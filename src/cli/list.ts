/**
 * `blockcopy list [--all] [--json] [--hypervisor NAME [--domain NAME] | --connect URI --domain
 * NAME]`: the jobs in the store (active, and with --all the ended ones): domain, disk, state,
 * progress, age. Reads the store directly (SQLite lets a reader in beside a running daemon), so
 * it works with or without one. With a hypervisor named (`--connect URI` is libvirt's
 * `libvirt:URI`), block jobs on it that no record holds (a mirror another tool started, such as
 * `virsh blockcopy`) are listed too, marked foreign, before anyone adopts them: asked through the
 * daemon when one runs (QEMU's monitor serves one client), else read from the hypervisor directly.
 * `blockjob` can then act on them.
 */
import { errors } from '../core/errors.js';
import { fromHypervisorError } from '../core/hypervisor-error.js';
import type { JobRecord } from '../core/job-store.js';
import { callDaemon } from '../daemon/client.js';
import type { ForeignJob } from '../engine/foreign.js';
import { foreignJobs } from '../engine/foreign.js';
import type { Output } from './copy.js';
import { readCommandArgs, usageFailure } from './command-args.js';
import { daemonRuns, defaultDomainOf, openStore, socketPath, storePath } from './durable.js';
import { openHypervisorByName } from './hypervisor.js';
import { connectOption } from './virsh-options.js';

export const LIST_USAGE =
  'usage: blockcopy list [--all] [--json] [--store PATH] [--socket PATH] [--hypervisor sim|qmp:SOCKET [--domain NAME] | --connect URI --domain NAME]';

export const LIST_HELP = `${LIST_USAGE}

Lists the block jobs in the store: domain, disk, state, progress and age; with --all the ended
ones too. With a hypervisor named (--hypervisor, or --connect URI --domain NAME for libvirt), block
jobs on it that no record holds (started by another tool) are listed too, marked foreign; blockjob
can act on them. Works with or without a running daemon. --json prints one JSON document.`;

export async function runListCommand(argv: readonly string[], out: Output, now = Date.now()): Promise<number> {
  const parsed = readCommandArgs('list', argv, {
    options: {
      store: { type: 'string' },
      socket: { type: 'string' },
      hypervisor: { type: 'string' },
      connect: { type: 'string' },
      domain: { type: 'string' },
      all: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (parsed.isErr()) return usageFailure(out, 'list', parsed.error.message);
  if (parsed.value === 'help') {
    out.line(LIST_HELP);
    return 0;
  }
  const { values } = parsed.value;
  const usage = (message: string) => usageFailure(out, 'list', message);
  const connect = connectOption(values);
  if (connect.isErr()) return usage(connect.error.message);
  if (values.connect === undefined && values.domain !== undefined && values.hypervisor === undefined)
    return usage('--domain goes with --hypervisor or --connect');
  const hypervisor = values.connect !== undefined ? `libvirt:${values.connect}` : values.hypervisor;

  const path = storePath(values.store);
  const opened = openStore(path);
  if (opened.isErr()) {
    out.error(`error: ${opened.error}`);
    return 1;
  }
  const listed = await opened.value.list({ includeEnded: values.all });
  // Every id the store knows, ended ones too: a job is foreign only if nobody recorded it.
  const known = values.all ? listed : await opened.value.list({ includeEnded: true });
  opened.value.close();
  if (listed.isErr() || known.isErr()) {
    const failed = listed.isErr() ? listed.error : known.isErr() ? known.error : null;
    out.error(`error: ${failed?.message ?? 'job store unreadable'}`);
    return 1;
  }
  const rows: Row[] = listed.value.map((r) => row(r, now));
  if (hypervisor !== undefined) {
    const domain = values.domain ?? defaultDomainOf(hypervisor);
    const foreign = await listForeign(
      hypervisor,
      domain,
      new Set(known.value.map((r) => r.jobId)),
      socketPath(values.socket, path),
    );
    if (typeof foreign === 'string') {
      out.error(`error: ${foreign}`);
      return 1;
    }
    // A fresh libvirt connection names a job by its disk: a job an active record holds on that
    // disk (under any of its names) is that record's, not foreign.
    const held = (j: ForeignJob) =>
      listed.value.some(
        (r) => r.end === null && r.hypervisor === j.hypervisor && r.domain === j.domain && j.names.includes(r.disk),
      );
    rows.push(...foreign.filter((j) => !held(j)).map(foreignRow));
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

/** Foreign jobs on the hypervisor: from the daemon when one runs, else from the hypervisor itself. */
async function listForeign(
  hypervisor: string,
  domain: string,
  known: ReadonlySet<string>,
  socket: string,
): Promise<ForeignJob[] | string> {
  if (await daemonRuns(socket)) {
    const answer = await callDaemon(socket, 'foreign', hypervisor, { domain });
    if (answer === null) return `the daemon on ${socket} did not answer`;
    if (!answer.ok) return answer.error.message;
    return (answer.value as ForeignJob[]).filter((j) => !known.has(j.jobId));
  }
  const opened = await openHypervisorByName(hypervisor);
  if (opened.isErr()) return opened.error;
  try {
    // The domain the user named must exist (virsh's answer).
    const disks = await opened.value.listDisks(domain);
    if (disks.isErr()) return fromHypervisorError(disks.error).message;
    if (disks.value === null) return errors.noDomain(domain).message;
    return await foreignJobs(opened.value, [domain], known);
  } finally {
    await opened.value.close();
  }
}

interface Row {
  readonly jobId: string;
  readonly hypervisor: string;
  readonly domain: string;
  readonly disk: string;
  readonly origin: JobRecord['origin'] | 'foreign';
  readonly state: string;
  readonly end: string | null;
  readonly progress: string | null;
  readonly ageSeconds: number | null;
  readonly owner: string | null;
}

/** A foreign job: the hypervisor's job type and status as its state, and progress where known. */
function foreignRow(j: ForeignJob): Row {
  return {
    jobId: j.jobId,
    hypervisor: j.hypervisor,
    domain: j.domain,
    disk: j.disk,
    origin: 'foreign',
    state: `foreign ${j.type} ${j.status}`,
    end: null,
    progress: j.len !== undefined && j.offset !== undefined && j.len > 0 ? percent(j.offset, j.len) : null,
    ageSeconds: null,
    owner: null,
  };
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
