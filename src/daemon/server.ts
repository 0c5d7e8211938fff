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
import { fromHypervisorError } from '../core/hypervisor-error.js';
import type { HypervisorPort } from '../core/hypervisor-port.js';
import type { EndIntent, JobRecord, JobStore } from '../core/job-store.js';
import type { IoErrorPolicy } from '../core/hypervisor-port.js';
import type { BlockCopyEngine, BlockCopyJob } from '../engine/engine.js';
import type { BlockPullJob } from '../engine/pull-jobs.js';
import { createEngine, storeFailure } from '../engine/engine.js';
import type { JobSlots } from '../engine/job-slots.js';
import { validateAbort, validateSetSpeed } from '../core/validate.js';
import type { InspectionEvent } from 'xstate';
import { InspectionRecorder } from '../inspector/recorder.js';
import type { Inspector } from '../inspector/server.js';
import { startInspector } from '../inspector/server.js';
import { foreignJobs } from '../engine/foreign.js';
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
  /**
   * The live inspector (every job: a list, then one job's chart and log) on 127.0.0.1, its
   * address (with its access token) logged at start. Default: on, any free port; false: off.
   */
  readonly inspector?: false | { readonly port?: number };
  /** See ControllerOptions.slots. */
  readonly slots?: JobSlots;
}

export interface Daemon {
  readonly socketPath: string;
  /** The inspector's address, token included (null when it is off). */
  readonly inspectorUrl: string | null;
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
  // Every engine records into the inspector's recorder from its start; the page itself (whose
  // chart takes a moment to render) comes up beside the control socket, not before it.
  const recorder = options.inspector !== false ? new InspectionRecorder() : null;
  const controller = createController({
    ...options,
    ...(recorder
      ? { inspect: recorder.inspect, onEngine: (engine: BlockCopyEngine) => void recorder.attach(engine) }
      : {}),
  });
  const inspecting: Promise<Inspector | null> = recorder
    ? startInspector({
        title: 'blockcopy daemon',
        recorder,
        ...(options.inspector && options.inspector.port !== undefined ? { port: options.inspector.port } : {}),
        jobs: {
          list: async () => (await controller.jobs()).map(row),
          get: async (jobId) => (await controller.jobs()).find((j) => j.jobId === jobId) ?? null,
        },
      }).catch((e: unknown) => {
        log(`inspector not started: ${e instanceof Error ? e.message : String(e)}`);
        return null;
      })
    : Promise.resolve(null);
  const { connect, dispatch } = controller;
  const stopInspector = async () => {
    await (await inspecting)?.close();
  };
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o700 });
  if (existsSync(socketPath)) {
    if ((await callDaemon(socketPath, 'ping', '-')) !== null) {
      await stopInspector();
      return err(`a blockcopy daemon already serves ${socketPath}`);
    }
    unlinkSync(socketPath); // left by a daemon that died
  }
  // Recover every connection that has unfinished jobs, before serving anyone.
  const unfinished = await store.list();
  if (unfinished.isErr()) {
    await stopInspector();
    return err(unfinished.error.message);
  }
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
  if (listening.isErr()) {
    await controller.close();
    await stopInspector();
    return err(listening.error);
  }
  chmodSync(socketPath, 0o600);
  log(`listening on ${socketPath}`);
  const inspector = await inspecting;
  const inspectorUrl = inspector?.url ?? null;
  if (inspectorUrl !== null) log(`inspector at ${inspectorUrl}`);
  return ok({
    socketPath,
    inspectorUrl,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await controller.close();
      await stopInspector();
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
  /** XState inspection observer for every engine (the daemon's inspector). */
  readonly inspect?: (event: InspectionEvent) => void;
  /** Called with each engine once it is created, before it recovers (the inspector attaches). */
  readonly onEngine?: (engine: BlockCopyEngine) => void;
  /** Copies running at once, shared by every connection's engine (`daemon --max-jobs`, `--max-jobs-per-fs`). */
  readonly slots?: JobSlots;
}

/** A job as the daemon lists it: its record, with the live state where an engine runs it. */
export interface DaemonJob {
  readonly jobId: string;
  readonly hypervisor: string;
  readonly domain: string;
  readonly disk: string;
  readonly origin: JobRecord['origin'] | 'foreign';
  readonly state: string;
  readonly states: readonly string[];
  readonly progress: JobRecord['side']['progress'];
  readonly end: JobRecord['end'];
  readonly createdAt: number | null;
  readonly updatedAt: number | null;
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
          ...(options.inspect ? { inspect: options.inspect } : {}),
          ...(options.actOnIntents !== undefined ? { actOnIntents: options.actOnIntents } : {}),
          ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
          ...(options.slots !== undefined ? { slots: options.slots } : {}),
        });
        options.onEngine?.(engine);
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
    if (verb === 'foreign') {
      // Block jobs nobody recorded, on the named domain and on every domain the store knows here.
      const named = stringArg(args, 'domain');
      if (named.isErr()) return err(named.error);
      const conn = await connect(request.hypervisor);
      if (conn.isErr()) return err(conn.error);
      const listed = await store.list({ includeEnded: true });
      if (listed.isErr()) return err(storeFailure(listed.error));
      const domains = listed.value.filter((r) => r.hypervisor === request.hypervisor).map((r) => r.domain);
      if (named.value !== undefined) {
        // A domain the user named must exist (virsh's answer), unlike those the store remembers.
        const disks = await conn.value.port.listDisks(named.value);
        if (disks.isErr()) return err(fromHypervisorError(disks.error));
        if (disks.value === null) return err(errors.noDomain(named.value));
        domains.unshift(named.value);
      }
      const known = new Set(listed.value.map((r) => r.jobId));
      return ok(await foreignJobs(conn.value.port, domains, known));
    }
    const domain = stringArg(args, 'domain');
    if (verb === 'disks') {
      // The domain's disks and any block job on them, whoever started it (list --connect).
      if (domain.isErr()) return err(domain.error);
      if (domain.value === undefined) return err(invalid("argument 'domain' is required"));
      const conn = await connect(request.hypervisor);
      if (conn.isErr()) return err(conn.error);
      return conn.value.engine.listDisks(domain.value);
    }
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
  /** Every job in the store (ended ones too), live state from the engine that runs it. */
  async function jobs(): Promise<DaemonJob[]> {
    const listed = await store.list({ includeEnded: true });
    if (listed.isErr()) throw new Error(listed.error.message);
    const live = new Map<string, BlockCopyJob>();
    for (const c of connections.values()) {
      const r = await c;
      if (r.isOk()) for (const job of r.value.engine.jobs({ includeEnded: true })) live.set(job.jobId, job);
    }
    return listed.value.map((r): DaemonJob => {
      const job = live.get(r.jobId);
      const ended = r.end !== null;
      return {
        jobId: r.jobId,
        hypervisor: r.hypervisor,
        domain: r.domain,
        disk: r.disk,
        origin: r.origin,
        state: job && !ended ? job.state() : r.state,
        states: job ? job.states() : r.side.states,
        progress: job?.progress() ?? r.side.progress,
        end: r.end,
        createdAt: r.createdAt,
        updatedAt: r.updatedAt,
      };
    });
  }
  return { connect, dispatch, close, jobs };
}

/** The inspector's job list row (the detail view adds the states and the log). */
function row(job: DaemonJob) {
  const { states: _states, ...rest } = job;
  return rest;
}

export type Controller = ReturnType<typeof createController>;

/** The engine's job on the disk, adopting a mirror it did not start. */
function ensureJob(
  engine: BlockCopyEngine,
  domain: string,
  disk: string,
): ResultAsync<BlockCopyJob | BlockPullJob, BlockCopyError> {
  // A block pull of this engine (recovered from the store, too) is taken as it is: never adopted.
  const pull = engine.pullJob(domain, disk);
  if (pull) return okAsync(pull);
  const mine = engine.job(domain, disk);
  return mine ? okAsync(mine) : engine.adopt(domain, disk);
}

function summary(job: BlockCopyJob | BlockPullJob) {
  return {
    type: 'type' in job ? job.type : ('COPY' as const),
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
async function summaryWithEnd(job: BlockCopyJob | BlockPullJob) {
  const ended = /^(completed|canceled|failed)$/.test(job.state());
  return { ...summary(job), states: job.states(), end: ended ? await job.result : null };
}

function invalid(detail: string): BlockCopyError {
  return blockCopyError('VIR_ERR_INVALID_ARG', detail);
}

function tooLarge(): BlockCopyError {
  return invalid(`control request larger than ${MAX_BODY_BYTES} bytes`);
}
