/**
 * The live inspector's HTTP server (node:http, no dependency): serves the page, streams records
 * as server-sent events and hands out the recording as JSON Lines.
 *
 * It listens on 127.0.0.1 only and every request must carry the random token from the printed
 * URL (`?token=`), compared in constant time; anything else gets 403 before the path is even
 * looked at. The page loads nothing from elsewhere and its Content-Security-Policy says so.
 *
 * Use with an engine: create the inspector first, then the engine with `inspect:
 * inspector.inspect`, then `inspector.attach(engine)` for progress and block-job events.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { WriteStream } from 'node:fs';
import { createWriteStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { InspectionEvent } from 'xstate';
import { blockCopyJobMachine } from '../../machines/block-copy-job.js';
import { blockPullJobMachine } from '../../machines/block-pull-job.js';
import { convergencePolicyMachine } from '../../machines/convergence-policy.js';
import { diagramComposites, dotToSvg, toDot, walkMachine } from '../diagram/index.js';
import type { BlockCopyEngine } from '../engine/engine.js';
import { renderPage } from './page.js';
import type { InspectorRecord } from './records.js';
import { headerRecord, toJsonLine } from './records.js';
import { InspectionRecorder } from './recorder.js';

export interface InspectorOptions {
  /** TCP port on 127.0.0.1 (default 0: any free port). */
  readonly port?: number;
  /** Append every record to this JSON Lines file as it happens (the inspection export). */
  readonly exportPath?: string;
  /** Records to show first, e.g. a loaded export (`blockcopy inspect --load`). */
  readonly records?: readonly InspectorRecord[];
  /** Page title. */
  readonly title?: string;
  /** Records kept in memory (default 50,000). */
  readonly capacity?: number;
  /**
   * A recorder already in use (the daemon's engines record into it from their start, before the
   * page is up); default a new one with `capacity`.
   */
  readonly recorder?: InspectionRecorder;
  /** Access token (default 32 random bytes, hex). Tests may fix it. */
  readonly token?: string;
  /**
   * Every job the page should list, beyond those it has records of (the daemon: the job store's
   * jobs, ended ones too). Served as /jobs.json, one job as /jobs/ID.json with its log.
   */
  readonly jobs?: InspectorJobs;
}

/** Where the inspector reads the job list from (plain JSON values). */
export interface InspectorJobs {
  list(): Promise<readonly { readonly jobId: string }[]>;
  /** One job, or null when there is none by that id. */
  get(jobId: string): Promise<object | null>;
}

export interface Inspector {
  /** The page's address, token included: http://127.0.0.1:PORT/?token=… */
  readonly url: string;
  readonly port: number;
  readonly token: string;
  /** The XState inspection observer for createEngine({ inspect }). */
  readonly inspect: (event: InspectionEvent) => void;
  /** Records an engine's progress and block-job events; returns a function that stops that. */
  attach(engine: BlockCopyEngine): () => void;
  readonly recorder: InspectionRecorder;
  /** Closes the event streams, the server and the export file. */
  close(): Promise<void>;
}

const MACHINE = 'blockCopyJob';
const HEARTBEAT_MS = 15_000;

let chartSvg: Promise<string> | null = null;
let pullChartSvg: Promise<string> | null = null;
let migrateChartSvg: Promise<string> | null = null;
let convergenceChartSvg: Promise<string> | null = null;
/** The page's chart: the same SVG that `npm run diagrams` writes to visualizations/. */
function jobChartSvg(): Promise<string> {
  chartSvg ??= dotToSvg(toDot(walkMachine(blockCopyJobMachine)));
  return chartSvg;
}

function tokenMatches(expected: Buffer, given: string | null): boolean {
  if (given === null) return false;
  const actual = Buffer.from(given, 'utf8');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

export async function startInspector(options: InspectorOptions = {}): Promise<Inspector> {
  const token = options.token ?? randomBytes(32).toString('hex');
  const expected = Buffer.from(token, 'utf8');
  const recorder =
    options.recorder ?? new InspectionRecorder(options.capacity !== undefined ? { capacity: options.capacity } : {});
  const header = headerRecord(MACHINE, new Date());
  const svg = await jobChartSvg();
  pullChartSvg ??= dotToSvg(toDot(walkMachine(blockPullJobMachine)));
  const pullSvg = await pullChartSvg;
  // The migration with its child copies drawn in, and the policy beside a copy (their records
  // come from migrateStorage's `inspect` and the engine's).
  migrateChartSvg ??= dotToSvg(toDot(diagramComposites['migrate-storage-with-copies']!()));
  convergenceChartSvg ??= dotToSvg(toDot(walkMachine(convergencePolicyMachine)));
  const [migrateSvg, convergenceSvg] = await Promise.all([migrateChartSvg, convergenceChartSvg]);

  let file: WriteStream | null = null;
  let stopFile = (): void => {};
  if (options.exportPath !== undefined) {
    const stream = createWriteStream(options.exportPath, { flags: 'w' });
    file = stream;
    stream.write(toJsonLine(header));
    stopFile = recorder.subscribe((record) => {
      stream.write(toJsonLine(record));
    });
  }
  if (options.records) recorder.load(options.records);

  const streams = new Set<ServerResponse>();

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    // Same answer for a wrong token whatever the path: the token guards everything.
    if (!tokenMatches(expected, url.searchParams.get('token'))) {
      res.writeHead(403, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end('403 forbidden: open the URL blockcopy printed, with its token\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' });
      res.end();
      return;
    }
    const common = {
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
    };
    switch (url.pathname) {
      case '/': {
        const nonce = randomBytes(16).toString('base64');
        res.writeHead(200, {
          ...common,
          'Content-Type': 'text/html; charset=utf-8',
          'Content-Security-Policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
        });
        res.end(
          req.method === 'HEAD'
            ? undefined
            : renderPage({
                svg,
                pullSvg,
                migrateSvg,
                convergenceSvg,
                nonce,
                ...(options.title ? { title: options.title } : {}),
              }),
        );
        return;
      }
      case '/events': {
        res.writeHead(200, { ...common, 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive' });
        if (req.method === 'HEAD') {
          res.end();
          return;
        }
        // A reconnecting EventSource says what it has seen; send only the rest.
        const lastId = Number(req.headers['last-event-id'] ?? 0);
        const send = (record: InspectorRecord): void => {
          const id = record.kind === 'header' ? '' : `id: ${record.seq}\n`;
          res.write(`${id}data: ${JSON.stringify(record)}\n\n`);
        };
        res.write('retry: 1000\n\n');
        if (!(lastId > 0)) send(header);
        for (const record of recorder.recordsAfter(Number.isFinite(lastId) ? lastId : 0)) send(record);
        const unsubscribe = recorder.subscribe(send);
        const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
        heartbeat.unref();
        streams.add(res);
        res.on('close', () => {
          unsubscribe();
          clearInterval(heartbeat);
          streams.delete(res);
        });
        return;
      }
      case '/export.jsonl': {
        res.writeHead(200, {
          ...common,
          'Content-Type': 'application/jsonl; charset=utf-8',
          'Content-Disposition': 'attachment; filename="blockcopy-inspection.jsonl"',
        });
        if (req.method === 'HEAD') {
          res.end();
          return;
        }
        res.write(toJsonLine(header));
        for (const record of recorder.records()) res.write(toJsonLine(record));
        res.end();
        return;
      }
      default: {
        const jobs = options.jobs;
        const one = /^\/jobs\/([^/]+)\.json$/.exec(url.pathname);
        if (jobs && (url.pathname === '/jobs.json' || one)) {
          void serveJobs(jobs, one ? decodeURIComponent(one[1]!) : null, req, res, common);
          return;
        }
        res.writeHead(404, { ...common, 'Content-Type': 'text/plain; charset=utf-8' });
        res.end('404 not found\n');
      }
    }
  };

  /** The job list, or one job with its log (the records the inspector holds for it). */
  async function serveJobs(
    jobs: InspectorJobs,
    jobId: string | null,
    req: IncomingMessage,
    res: ServerResponse,
    common: Record<string, string>,
  ): Promise<void> {
    let body: unknown;
    try {
      if (jobId === null) body = await jobs.list();
      else {
        const job = await jobs.get(jobId);
        body = job && { ...job, log: recorder.records().filter((r) => r.kind !== 'header' && r.jobId === jobId) };
      }
    } catch (e) {
      res.writeHead(500, { ...common, 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(`500 ${e instanceof Error ? e.message : String(e)}\n`);
      return;
    }
    if (body === null) {
      res.writeHead(404, { ...common, 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('404 no such job\n');
      return;
    }
    res.writeHead(200, { ...common, 'Content-Type': 'application/json; charset=utf-8' });
    res.end(req.method === 'HEAD' ? undefined : JSON.stringify(body));
  }

  const server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}/?token=${token}`,
    port,
    token,
    inspect: recorder.inspect,
    attach: (engine) => recorder.attach(engine),
    recorder,
    async close() {
      for (const res of streams) res.end();
      streams.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Idle keep-alive connections would hold close() open.
      server.closeAllConnections();
      await closed;
      stopFile();
      if (file) {
        const stream = file;
        await new Promise<void>((resolve) => stream.end(() => resolve()));
      }
    },
  };
}
