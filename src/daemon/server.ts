/**
 * `blockcopy daemon`: owns the hypervisor connections (one engine per connection, all on one
 * job store), recovers every unfinished job at start, and serves the control API on a unix
 * socket that only its owner may use (mode 0600 in a 0700 directory). Bad input gets the
 * library's typed errors and changes nothing; bodies above MAX_BODY_BYTES are refused unread.
 */
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { err, ok, okAsync, type Result, type ResultAsync } from 'neverthrow';
import type { BlockCopyError } from '../core/errors.js';
import { blockCopyError, errors } from '../core/errors.js';
import type { HypervisorPort } from '../core/hypervisor-port.js';
import type { EndIntent, JobStore } from '../core/job-store.js';
import type { IoErrorPolicy } from '../core/hypervisor-port.js';
import type { BlockCopyEngine, BlockCopyJob } from '../engine/engine.js';
import { createEngine, storeFailure } from '../engine/engine.js';
import type { JobSlots } from '../engine/job-slots.js';
import { validateAbort, validateSetSpeed } from '../core/validate.js';
import { callDaemon } from './client.js';
import type { ControlAnswer, ControlRequest } from './protocol.js';
import { MAX_BODY_BYTES, numberArg, parseRequest, stringArg } from './protocol.js';

export interface DaemonOptions {
  readonly socketPath: string;
  readonly store: JobStore;
  /** Opens a hypervisor connection by its name ("sim", "qmp:SOCKET"). */
  readonly open: (spec: string) => Promise<Result<HypervisorPort, string>>;
  readonly pollIntervalMs?: number;
  readonly log?: (line: string) => void;
  /** See ControllerOptions.slots. */
  readonly slots?: JobSlots;
}

export interface Daemon {
  readonly socketPath: string;
  close(): Promise<void>;
}

interface Connection {
  readonly port: HypervisorPort;
  readonly engine: BlockCopyEngine;
}

const INTENTS: readonly (EndIntent | undefined)[] = ['pivot', 'finish', null, undefined];
const POLICIES: readonly string[] = ['report', 'stop', 'ignore', 'enospc'];

export async function startDaemon(options: DaemonOptions): Promise<Result<Daemon, string>> {
  const { socketPath, store } = options;
  const log = options.log ?? (() => {});
  const controller = createController(options);
  const { connect, dispatch } = controller;
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o700 });
  if (existsSync(socketPath)) {
    if ((await callDaemon(socketPath, 'ping', '-')) !== null)
      return err(`a blockcopy daemon already serves ${socketPath}`);
    unlinkSync(socketPath); // left by a daemon that died
  }
  // Recover every connection that has unfinished jobs, before serving anyone.
  const unfinished = await store.list();
  if (unfinished.isErr()) return err(unfinished.error.message);
  for (const spec of new Set(unfinished.value.map((r) => r.hypervisor))) {
    const c = await connect(spec);
    if (c.isErr()) log(`${spec}: ${c.error.message}`);
  }

  const server: Server = createServer((req, res) => void serve(req, res));
  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const answer = (status: number, body: ControlAnswer) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST') return answer(405, { ok: false, error: invalid('the control API takes POST requests') });
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      answer(413, { ok: false, error: tooLarge() });
      req.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        answer(413, { ok: false, error: tooLarge() });
        req.destroy();
        return;
      }
      chunks.push(chunk);
    }
    const parsed = parseRequest(Buffer.concat(chunks).toString('utf8'));
    if (parsed.isErr()) return answer(400, { ok: false, error: parsed.error });
    const result = await dispatch(parsed.value);
    if (result.isErr()) return answer(200, { ok: false, error: result.error });
    answer(200, { ok: true, value: result.value });
  }

  const listening = await new Promise<Result<void, string>>((resolve) => {
    server.once('error', (e) => resolve(err(`cannot listen on ${socketPath}: ${e.message}`)));
    server.listen(socketPath, () => resolve(ok(undefined)));
  });
  if (listening.isErr()) return err(listening.error);
  chmodSync(socketPath, 0o600);
  log(`listening on ${socketPath}`);
  return ok({
    socketPath,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await controller.close();
      if (existsSync(socketPath)) unlinkSync(socketPath);
    },
  });
}

export interface ControllerOptions {
  readonly store: JobStore;
  readonly open: (spec: string) => Promise<Result<HypervisorPort, string>>;
  readonly pollIntervalMs?: number;
  readonly log?: (line: string) => void;
  /** See EngineOptions.actOnIntents (default true). */
  readonly actOnIntents?: boolean;
  /** Copies running at once, shared by every connection's engine (`daemon --max-jobs`, `--max-jobs-per-fs`). */
  readonly slots?: JobSlots;
}

/**
 * The control verbs over a registry of engines (one per hypervisor connection, opened on first
 * use and recovered from the store then). The daemon serves it on its socket; the CLI uses it
 * in-process when no daemon runs.
 */
export function createController(options: ControllerOptions) {
  const { store } = options;
  const log = options.log ?? (() => {});
  const connections = new Map<string, Promise<Result<Connection, BlockCopyError>>>();
  const connect = (spec: string): Promise<Result<Connection, BlockCopyError>> => {
    let c = connections.get(spec);
    if (!c) {
      c = options.open(spec).then(async (opened) => {
        if (opened.isErr()) {
          connections.delete(spec);
          return err(blockCopyError('VIR_ERR_OPERATION_FAILED', opened.error));
        }
        const engine = createEngine({
          hypervisor: opened.value,
          store,
          ...(options.actOnIntents !== undefined ? { actOnIntents: options.actOnIntents } : {}),
          ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
          ...(options.slots !== undefined ? { slots: options.slots } : {}),
        });
        const report = await engine.recover();
        if (report.isOk()) {
          const r = report.value;
          log(
            `${spec}: recovered ${r.resumed.length} job(s), finished ${r.finished.length}, skipped ${r.skipped.length}`,
          );
          for (const s of r.skipped) log(`${spec}: skipped ${s.jobId}: ${s.reason}`);
        } else log(`${spec}: recovery failed: ${report.error.message}`);
        return ok({ port: opened.value, engine });
      });
      connections.set(spec, c);
    }
    return c;
  };

  async function dispatch(request: ControlRequest): Promise<Result<unknown, BlockCopyError>> {
    const { verb, args } = request;
    if (verb === 'ping') return ok({ pid: process.pid });
    if (verb === 'list') {
      const listed = await store.list({ includeEnded: args['includeEnded'] === true });
      return listed.mapErr(storeFailure);
    }
    const domain = stringArg(args, 'domain');
    const disk = stringArg(args, 'disk');
    const flags = numberArg(args, 'flags', 0);
    if (domain.isErr()) return err(domain.error);
    if (disk.isErr()) return err(disk.error);
    if (flags.isErr()) return err(flags.error);
    if (domain.value === undefined) return err(invalid("argument 'domain' is required"));
    if (disk.value === undefined) return err(errors.diskNull('the control API'));
    const conn = await connect(request.hypervisor);
    if (conn.isErr()) return err(conn.error);
    const { engine } = conn.value;
    const d = domain.value;
    const k = disk.value;
    switch (verb) {
      case 'copy': {
        const destination = stringArg(args, 'destination');
        const bandwidth = numberArg(args, 'bandwidth', 0);
        if (destination.isErr()) return err(destination.error);
        if (bandwidth.isErr()) return err(bandwidth.error);
        const endIntent = args['endIntent'] as EndIntent | undefined;
        if (!INTENTS.includes(endIntent)) return err(invalid("endIntent must be 'pivot', 'finish' or null"));
        const policy = args['onTargetError'];
        if (policy !== undefined && (typeof policy !== 'string' || !POLICIES.includes(policy)))
          return err(invalid('onTargetError must be report, stop, ignore or enospc'));
        const converge = numberArg(args, 'convergeTimeoutMs', 0);
        if (converge.isErr()) return err(converge.error);
        const started = await engine.blockRebase(d, k, destination.value ?? null, bandwidth.value, flags.value, {
          ...(policy !== undefined ? { onTargetError: policy as IoErrorPolicy } : {}),
          endIntent: endIntent ?? null,
          ...(converge.value > 0 ? { convergence: { timeoutMs: converge.value } } : {}),
        });
        return started.map(summary);
      }
      case 'info': {
        const checked = await engine.getBlockJobInfo(d, k, flags.value);
        if (checked.isErr()) return checked;
        const job = await ensureJob(engine, d, k);
        if (job.isErr())
          return job.error.code === 'VIR_ERR_INVALID_ARG' && /does not have an active/.test(job.error.detail)
            ? ok(null)
            : job;
        const info = await engine.getBlockJobInfo(d, k, flags.value);
        return info.map((i) => ({ info: i, job: summary(job.value) }));
      }
      case 'abort': {
        // Flags first, as the library: a bad call is refused before any job is looked for.
        const checked = validateAbort(flags.value);
        if (checked.isErr()) return err(checked.error);
        const job = await ensureJob(engine, d, k);
        if (job.isErr()) return job;
        const force = args['force'] === true;
        return engine.blockJobAbort(d, job.value.disk, flags.value, { force }).map(() => summary(job.value));
      }
      case 'speed': {
        const bandwidth = numberArg(args, 'bandwidth', Number.NaN);
        if (bandwidth.isErr()) return err(bandwidth.error);
        if (Number.isNaN(bandwidth.value)) return err(invalid("argument 'bandwidth' is required"));
        const speedChecked = validateSetSpeed(bandwidth.value, flags.value);
        if (speedChecked.isErr()) return err(speedChecked.error);
        const job = await ensureJob(engine, d, k);
        if (job.isErr()) return job;
        return engine.blockJobSetSpeed(d, k, bandwidth.value, flags.value).map(() => summary(job.value));
      }
      case 'pause':
      case 'resume': {
        const job = await ensureJob(engine, d, k);
        if (job.isErr()) return job;
        const call = verb === 'pause' ? engine.blockJobPause(d, k) : engine.blockJobResume(d, k);
        return call.map(() => summary(job.value));
      }
      case 'job': {
        const jobId = stringArg(args, 'jobId');
        if (jobId.isErr()) return err(jobId.error);
        const job = jobId.value !== undefined ? engine.jobById(jobId.value) : engine.job(d, k);
        if (job) return ok(await summaryWithEnd(job));
        if (jobId.value !== undefined) {
          const stored = await store.load(jobId.value);
          if (stored.isErr()) return err(storeFailure(stored.error));
          if (stored.value) return ok({ jobId: jobId.value, state: stored.value.state, end: stored.value.end });
        }
        return err(errors.noActiveJob(k));
      }
    }
  }

  async function close(): Promise<void> {
    for (const c of connections.values()) {
      const r = await c;
      if (r.isOk()) {
        await r.value.engine.shutdown();
        await r.value.port.close();
      }
    }
  }
  return { connect, dispatch, close };
}

export type Controller = ReturnType<typeof createController>;

/** The engine's job on the disk, adopting a mirror it did not start. */
function ensureJob(engine: BlockCopyEngine, domain: string, disk: string): ResultAsync<BlockCopyJob, BlockCopyError> {
  const mine = engine.job(domain, disk);
  return mine ? okAsync(mine) : engine.adopt(domain, disk);
}

function summary(job: BlockCopyJob) {
  return {
    jobId: job.jobId,
    domain: job.domain,
    disk: job.disk,
    origin: job.origin,
    state: job.state(),
    progress: job.progress(),
    plan: job.plan,
  };
}

/** A job's summary, with its end once it has ended. */
async function summaryWithEnd(job: BlockCopyJob) {
  const ended = /^(completed|canceled|failed)$/.test(job.state());
  return { ...summary(job), states: job.states(), end: ended ? await job.result : null };
}

function invalid(detail: string): BlockCopyError {
  return blockCopyError('VIR_ERR_INVALID_ARG', detail);
}

function tooLarge(): BlockCopyError {
  return invalid(`control request larger than ${MAX_BODY_BYTES} bytes`);
}
