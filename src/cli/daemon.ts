/**
 * `blockcopy daemon [--store PATH] [--socket PATH] [--inspector-port PORT] [--max-jobs N]
 * [--max-jobs-per-fs N]`: runs the daemon (src/daemon/server.ts) in the foreground until SIGTERM
 * or SIGINT, logging to stderr (journald under systemd), the live inspector's address among the
 * first lines. With the limits, copies beyond them wait queued (src/engine/job-slots.ts).
 */
import { startDaemon } from '../daemon/server.js';
import type { Output } from './copy.js';
import { readCommandArgs, usageFailure } from './command-args.js';
import { openStore, socketPath, storePath } from './durable.js';
import { openHypervisorByName } from './hypervisor.js';
import { JobSlots } from '../engine/job-slots.js';

const USAGE =
  'usage: blockcopy daemon [--store PATH] [--socket PATH] [--inspector-port PORT] [--max-jobs N] [--max-jobs-per-fs N]';

export const DAEMON_HELP = `${USAGE}

Runs in the foreground until SIGTERM or SIGINT: owns the hypervisor connections, the engine and
the job store, recovers unfinished jobs at start, and serves the control API on a unix socket
(owner-only) that copy, blockjob, list and blockpull use when it runs. Logs go to stderr.
  --store PATH           the job store (default: $BLOCKCOPY_STORE, /var/lib/blockcopy/jobs.db as
                         root, else $XDG_STATE_HOME/blockcopy/jobs.db)
  --socket PATH          the control socket (default: $BLOCKCOPY_SOCKET, /run/blockcopy/control.sock
                         as root, else $XDG_RUNTIME_DIR/blockcopy/control.sock or beside the store)
  --inspector-port PORT  serve the live inspector on 127.0.0.1:PORT (0 = any free port)
  --max-jobs N           at most N copies at once; more wait queued, in order
  --max-jobs-per-fs N    at most N copies at once per destination filesystem`;

/** A limit: a whole number of at least 1, as typed. */
function limitOf(name: string, text: string | undefined): number | undefined | Error {
  if (text === undefined) return undefined;
  if (!/^[0-9]+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text)))
    return new Error(`--${name} expects a whole number of at least 1, got '${text}'`);
  return Number(text);
}

export async function runDaemonCommand(argv: readonly string[], out: Output): Promise<number> {
  const parsed = readCommandArgs('daemon', argv, {
    options: {
      store: { type: 'string' },
      socket: { type: 'string' },
      'inspector-port': { type: 'string' },
      'max-jobs': { type: 'string' },
      'max-jobs-per-fs': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (parsed.isErr()) return usageFailure(out, 'daemon', parsed.error.message);
  if (parsed.value === 'help') {
    out.line(DAEMON_HELP);
    return 0;
  }
  const { values } = parsed.value;
  const inspectorPort = values['inspector-port'];
  if (inspectorPort !== undefined && !(/^\d+$/.test(inspectorPort) && Number(inspectorPort) <= 65535)) {
    return usageFailure(out, 'daemon', `--inspector-port expects a TCP port (0..65535), got '${inspectorPort}'`);
  }
  const maxJobs = limitOf('max-jobs', values['max-jobs']);
  const maxJobsPerFs = limitOf('max-jobs-per-fs', values['max-jobs-per-fs']);
  for (const limit of [maxJobs, maxJobsPerFs])
    if (limit instanceof Error) {
      return usageFailure(out, 'daemon', limit.message);
    }
  const slots =
    maxJobs !== undefined || maxJobsPerFs !== undefined
      ? new JobSlots({
          ...(typeof maxJobs === 'number' ? { maxJobs } : {}),
          ...(typeof maxJobsPerFs === 'number' ? { maxJobsPerFilesystem: maxJobsPerFs } : {}),
        })
      : undefined;
  const store = storePath(values.store);
  const opened = openStore(store);
  if (opened.isErr()) {
    out.error(`error: ${opened.error}`);
    return 1;
  }
  const daemon = await startDaemon({
    socketPath: socketPath(values.socket, store),
    store: opened.value,
    open: (spec) => openHypervisorByName(spec),
    pollIntervalMs: 200,
    inspector: { ...(inspectorPort !== undefined ? { port: Number(inspectorPort) } : {}) },
    log: (line) => out.error(`blockcopy daemon: ${line}`),
    ...(slots ? { slots } : {}),
  });
  if (daemon.isErr()) {
    out.error(`error: ${daemon.error}`);
    opened.value.close();
    return 1;
  }
  out.error(`blockcopy daemon: store ${store}`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await daemon.value.close();
  opened.value.close();
  return 0;
}
