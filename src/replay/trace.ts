/**
 * Reader for recorded QMP sessions (test/fixtures/traces/qemu-7.2/*.jsonl): one JSON object a line,
 * `{seq?, t, dir: send|recv|local, kind: greeting|command|return|error|event|note, msg}`. Lines
 * written after the daemon quit (post-run checks) carry no `seq`.
 *
 * Only the JSONL framing is checked here; the QMP content of `msg` is left to the adapter's
 * decoder (the replay re-serializes it and pushes it through QmpDecoder). Nothing throws: a line
 * that is not JSON or not shaped like a trace line is an error value naming the line.
 */
import { readFile } from 'node:fs/promises';
import { err, ok, ResultAsync, type Result } from 'neverthrow';

export type TraceDirection = 'send' | 'recv' | 'local';
export type TraceKind = 'greeting' | 'command' | 'return' | 'error' | 'event' | 'note';

export interface TraceLine {
  /** 1-based line number in the file. */
  readonly line: number;
  /** The recorder's sequence number; null for post-run lines. */
  readonly seq: number | null;
  /** Seconds since the scenario started. */
  readonly t: number;
  readonly dir: TraceDirection;
  readonly kind: TraceKind;
  /** The QMP message as recorded (a JSON object), or a raw line (string) to decode verbatim. */
  readonly msg: unknown;
}

export interface TraceReadError {
  /** io: the file cannot be read; malformed: a line is not JSON; shape: JSON but not a trace line. */
  readonly kind: 'io' | 'malformed' | 'shape';
  /** 1-based line number (0 for io). */
  readonly line: number;
  readonly detail: string;
}

const DIRECTIONS = new Set<string>(['send', 'recv', 'local']);
const KINDS = new Set<string>(['greeting', 'command', 'return', 'error', 'event', 'note']);
/** Which direction each kind is recorded in. */
const KIND_DIR: Record<TraceKind, TraceDirection> = {
  greeting: 'recv',
  command: 'send',
  return: 'recv',
  error: 'recv',
  event: 'recv',
  note: 'local',
};

/** Parses a whole trace; the first bad line makes it an error. Blank lines are ignored. */
export function parseTrace(text: string): Result<readonly TraceLine[], TraceReadError> {
  const out: TraceLine[] = [];
  const rows = text.split('\n');
  for (let i = 0; i < rows.length; i++) {
    const raw = rows[i]!.replace(/\r$/, '');
    if (raw.trim() === '') continue;
    const parsed = parseTraceLine(raw, i + 1);
    if (parsed.isErr()) return err(parsed.error);
    out.push(parsed.value);
  }
  return ok(out);
}

/** Parses one line of a trace. */
export function parseTraceLine(raw: string, line: number): Result<TraceLine, TraceReadError> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    return err({ kind: 'malformed', line, detail: (e as Error).message });
  }
  const shape = (detail: string) => err<TraceLine, TraceReadError>({ kind: 'shape', line, detail });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return shape('not a JSON object');
  const o = value as Record<string, unknown>;
  const { seq, t, dir, kind, msg } = o;
  if (seq !== undefined && (typeof seq !== 'number' || !Number.isInteger(seq))) return shape('seq is not an integer');
  if (typeof t !== 'number' || !Number.isFinite(t)) return shape('t is not a number');
  if (typeof dir !== 'string' || !DIRECTIONS.has(dir)) return shape(`unknown dir ${JSON.stringify(dir)}`);
  if (typeof kind !== 'string' || !KINDS.has(kind)) return shape(`unknown kind ${JSON.stringify(kind)}`);
  if (KIND_DIR[kind as TraceKind] !== dir) return shape(`kind '${kind}' cannot have dir '${dir}'`);
  if (msg === undefined) return shape('no msg');
  if (kind === 'command') {
    const m = msg as Record<string, unknown> | null;
    if (typeof m !== 'object' || m === null || typeof m['execute'] !== 'string')
      return shape('command without execute');
  }
  return ok({
    line,
    seq: typeof seq === 'number' ? seq : null,
    t,
    dir,
    kind: kind as TraceKind,
    msg,
  });
}

/** Reads and parses a trace file. */
export function readTraceFile(path: string | URL): ResultAsync<readonly TraceLine[], TraceReadError> {
  return ResultAsync.fromPromise(readFile(path, 'utf8'), (e): TraceReadError => ({
    kind: 'io',
    line: 0,
    detail: e instanceof Error ? e.message : String(e),
  })).andThen((text) => parseTrace(text));
}

/** A recorded client command, as the replay needs it. */
export interface RecordedCommand {
  readonly execute: string;
  readonly args: Readonly<Record<string, unknown>>;
  /** The command id (c1, c2, …); null when the recorder sent none. */
  readonly id: string | null;
}

export function commandOf(line: TraceLine): RecordedCommand | null {
  if (line.kind !== 'command') return null;
  const m = line.msg as Record<string, unknown>;
  const args = m['arguments'];
  const id = m['id'];
  return {
    execute: String(m['execute']),
    args: typeof args === 'object' && args !== null && !Array.isArray(args) ? (args as Record<string, unknown>) : {},
    id: typeof id === 'string' ? id : null,
  };
}

export function formatTraceError(e: TraceReadError): string {
  return e.kind === 'io' ? `cannot read trace: ${e.detail}` : `trace line ${e.line}: ${e.detail}`;
}
