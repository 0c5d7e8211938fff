/**
 * `blockcopy inspect`: the live inspector page on 127.0.0.1. Without --load it runs the demo
 * (simulated jobs, src/inspector/demo.ts) so there is something to watch; with --load it shows a
 * recorded export. It serves until Ctrl-C (or the caller's signal).
 *
 * `copy --inspect` uses startInspector (re-exported here) the same way: create the inspector, then
 * the engine with `inspect: inspector.inspect`, then `inspector.attach(engine)`.
 */
import { readFile } from 'node:fs/promises';
import { readCommandArgs, usageFailure } from './command-args.js';
import { createEngine } from '../engine/engine.js';
import { createDemoHypervisor, runDemo } from '../inspector/demo.js';
import type { InspectorRecord } from '../inspector/records.js';
import { parseJsonl } from '../inspector/records.js';
import { startInspector } from '../inspector/server.js';
import type { Output } from './copy.js';

export type { Inspector, InspectorOptions } from '../inspector/server.js';
export { startInspector } from '../inspector/server.js';

export const INSPECT_USAGE = `usage: blockcopy inspect [--port N] [--load FILE.jsonl] [--export FILE.jsonl] [--rounds N]

Serves the live inspector on 127.0.0.1 (the printed URL carries its access token): each job's
statechart with the active state highlighted, its progress and its event log.
Without --load it runs the demo: simulated copies on domain 'demo' (vda, vdb, vdc), round after
round (--rounds N stops after N). --load shows a recorded export instead. --export writes every
record to FILE as JSON Lines, which --load (or the page's "Load JSONL") can show later.`;

export interface InspectDependencies {
  /** Stops serving (default: Ctrl-C). */
  readonly signal?: AbortSignal;
  /** Told the page's URL once it is served. */
  readonly onReady?: (url: string) => void;
  /** Scales the demo's pauses (tests). */
  readonly demoPace?: number;
  /** The demo simulator's copy rate in bytes/s (tests run it faster). */
  readonly demoCopyRate?: number;
}

function positiveInt(name: string, value: string | undefined): number | null | string {
  if (value === undefined) return null;
  if (!/^\d+$/.test(value)) return `--${name} expects a whole number, got '${value}'`;
  return Number(value);
}

/** Exit codes: 0 served until stopped, 1 the file could not be read, 2 usage error. */
export async function runInspectCommand(
  argv: readonly string[],
  out: Output,
  deps: InspectDependencies = {},
): Promise<number> {
  const parsed = readCommandArgs('inspect', argv, {
    options: {
      port: { type: 'string' },
      load: { type: 'string' },
      export: { type: 'string' },
      rounds: { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (parsed.isErr()) return usageFailure(out, 'inspect', parsed.error.message);
  if (parsed.value === 'help') {
    out.line(INSPECT_USAGE);
    return 0;
  }
  const { values } = parsed.value;
  const port = positiveInt('port', values.port);
  const rounds = positiveInt('rounds', values.rounds);
  if (typeof port === 'string' || typeof rounds === 'string') {
    return usageFailure(out, 'inspect', typeof port === 'string' ? port : String(rounds));
  }
  if (values.load !== undefined && values.rounds !== undefined) {
    return usageFailure(out, 'inspect', '--rounds is for the demo; --load shows a recording');
  }

  let records: InspectorRecord[] | undefined;
  if (values.load !== undefined) {
    let text: string;
    try {
      text = await readFile(values.load, 'utf8');
    } catch (e) {
      out.error(`error: cannot read ${values.load}: ${e instanceof Error ? e.message : String(e)}`);
      return 1;
    }
    const parsed = parseJsonl(text);
    if (parsed.isErr()) {
      out.error(`error: ${values.load}: ${parsed.error}`);
      return 1;
    }
    records = parsed.value;
  }

  const inspector = await startInspector({
    ...(port !== null ? { port } : {}),
    ...(values.export !== undefined ? { exportPath: values.export } : {}),
    ...(records ? { records, title: `blockcopy inspector: ${values.load}` } : {}),
  });
  const stop = new AbortController();
  const onSigint = (): void => stop.abort();
  if (deps.signal) deps.signal.addEventListener('abort', onSigint, { once: true });
  else process.once('SIGINT', onSigint);
  const stopped = new Promise<void>((resolve) => {
    if (stop.signal.aborted) resolve();
    else stop.signal.addEventListener('abort', () => resolve(), { once: true });
  });

  out.line(`blockcopy inspector: ${inspector.url}`);
  out.line(
    records ? `showing ${records.length} recorded records` : 'demo: simulated copies on domain demo (Ctrl-C stops)',
  );
  deps.onReady?.(inspector.url);

  let demo: Promise<void> = Promise.resolve();
  let closeEngine = (): void => {};
  if (!records) {
    const hypervisor = createDemoHypervisor(deps.demoCopyRate !== undefined ? { copyRate: deps.demoCopyRate } : {});
    const engine = createEngine({ hypervisor, inspect: inspector.inspect, pollIntervalMs: 250 });
    inspector.attach(engine);
    closeEngine = () => {
      engine.close();
      void hypervisor.close();
    };
    demo = runDemo({
      engine,
      hypervisor,
      signal: stop.signal,
      ...(rounds !== null ? { rounds } : {}),
      ...(deps.demoPace !== undefined ? { pace: deps.demoPace } : {}),
      onJobEnd: (disk, outcome) => out.line(`demo: ${disk} ${outcome}`),
    }).then(() => {
      if (!stop.signal.aborted) out.line('demo finished; the page stays up until Ctrl-C');
    });
  }

  await stopped;
  process.removeListener('SIGINT', onSigint);
  await demo.catch((e: unknown) => out.error(`demo: ${e instanceof Error ? e.message : String(e)}`));
  closeEngine();
  await inspector.close();
  return 0;
}
