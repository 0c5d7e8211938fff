/**
 * Incremental decoder for the QMP byte stream: bytes in, messages out. QEMU writes one JSON
 * object per line (greeting, command reply, error reply or event). The decoder is pure (no IO,
 * no timers) so that the client can feed it whatever chunks the socket delivers and so that it
 * can be unit-tested with arbitrary fragmentation.
 *
 * Nothing in here throws on bad input: a malformed line, a line of the wrong shape or a line that
 * exceeds the size cap becomes an error *value*, and decoding continues with the next line. A
 * monitor that sends one bad line must not take the engine down with it.
 */
import { err, ok, type Result } from 'neverthrow';

/** QEMU's own event timestamp (wall clock of the QEMU host). */
export interface QmpTimestamp {
  readonly seconds: number;
  readonly microseconds: number;
}

export type QmpMessage =
  | {
      readonly type: 'greeting';
      readonly version: { readonly major: number; readonly minor: number; readonly micro: number };
      readonly package: string;
      readonly capabilities: readonly string[];
    }
  /** `id` is whatever the command carried (absent when the command had none). */
  | { readonly type: 'return'; readonly id: unknown; readonly value: unknown }
  | { readonly type: 'error'; readonly id: unknown; readonly errorClass: string; readonly desc: string }
  | {
      readonly type: 'event';
      readonly event: string;
      readonly data: Readonly<Record<string, unknown>>;
      readonly timestamp: QmpTimestamp;
    };

export interface QmpDecodeError {
  /**
   * malformed: not JSON; wrong-type: JSON but not a QMP message; oversized: longer than the cap;
   * truncated: the stream ended in the middle of a line.
   */
  readonly kind: 'malformed' | 'wrong-type' | 'oversized' | 'truncated';
  readonly detail: string;
  /** The start of the offending line (at most 200 characters), for logs. */
  readonly excerpt: string;
  /**
   * oversized only: the last 200 bytes of the line. QEMU writes a reply's `id` last, so the
   * client can still fail the right command at once instead of letting it time out.
   */
  readonly tail?: string;
}

export type QmpDecodeResult = Result<QmpMessage, QmpDecodeError>;

export interface QmpDecoderOptions {
  /** Longest accepted line in bytes (without the newline). Default 1 MiB. */
  readonly maxLineBytes?: number;
}

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
const NEWLINE = 0x0a;
const EXCERPT = 200;

export class QmpDecoder {
  private readonly maxLineBytes: number;
  /** Pieces of the current, not yet terminated line (kept as bytes: a chunk may split a UTF-8 sequence). */
  private parts: Buffer[] = [];
  private partLength = 0;
  /** Set once the current line exceeded the cap: its bytes are dropped up to the newline. */
  private oversized: { head: Buffer; tail: Buffer } | null = null;

  constructor(options: QmpDecoderOptions = {}) {
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  }

  /** Feeds a chunk; returns the messages (and errors) of every line it completed, in order. */
  push(chunk: Uint8Array | string): QmpDecodeResult[] {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk);
    const out: QmpDecodeResult[] = [];
    let start = 0;
    while (start < bytes.length) {
      const nl = bytes.indexOf(NEWLINE, start);
      const piece = bytes.subarray(start, nl === -1 ? bytes.length : nl);
      if (this.oversized) {
        // Memory stays bounded however long the line is: keep only its head and tail.
        const t = Buffer.concat([this.oversized.tail, piece]);
        this.oversized.tail = t.subarray(Math.max(0, t.length - EXCERPT));
      } else if (this.partLength + piece.length > this.maxLineBytes) {
        const all = Buffer.concat([...this.parts, piece]);
        this.oversized = {
          head: Buffer.from(all.subarray(0, EXCERPT)),
          tail: Buffer.from(all.subarray(Math.max(0, all.length - EXCERPT))),
        };
        this.parts = [];
        this.partLength = 0;
      } else if (piece.length > 0) {
        this.parts.push(piece);
        this.partLength += piece.length;
      }
      if (nl === -1) break;
      if (this.oversized) out.push(this.takeOversized());
      else {
        const line = Buffer.concat(this.parts).toString('utf8');
        this.parts = [];
        this.partLength = 0;
        const decoded = decodeLine(line);
        if (decoded !== null) out.push(decoded);
      }
      start = nl + 1;
    }
    return out;
  }

  /** The stream ended: a pending partial line is reported (truncated, or oversized). */
  end(): QmpDecodeResult[] {
    if (this.oversized) return [this.takeOversized()];
    const line = Buffer.concat(this.parts).toString('utf8');
    this.reset();
    if (line.trim() === '') return [];
    return [err({ kind: 'truncated', detail: 'stream ended inside a line', excerpt: excerpt(line) })];
  }

  /** Forgets any partial line (a new connection starts a new stream). */
  reset(): void {
    this.parts = [];
    this.partLength = 0;
    this.oversized = null;
  }

  private takeOversized(): QmpDecodeResult {
    const o = this.oversized ?? { head: Buffer.alloc(0), tail: Buffer.alloc(0) };
    this.oversized = null;
    const tail = o.tail.toString('utf8').replace(/\r$/, '');
    return err({
      kind: 'oversized',
      detail: `line longer than ${this.maxLineBytes} bytes`,
      excerpt: excerpt(o.head),
      tail,
    });
  }
}

/** Decodes one complete line; null for a blank line (QEMU never sends one, but it is harmless). */
export function decodeLine(raw: string): QmpDecodeResult | null {
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  if (line.trim() === '') return null;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    return err({ kind: 'malformed', detail: (e as Error).message, excerpt: excerpt(line) });
  }
  const wrong = (detail: string): QmpDecodeResult => err({ kind: 'wrong-type', detail, excerpt: excerpt(line) });
  if (!isRecord(value)) return wrong('not a JSON object');

  if ('QMP' in value) {
    const qmp = value['QMP'];
    if (!isRecord(qmp) || !isRecord(qmp['version']) || !isRecord(qmp['version']['qemu']))
      return wrong('greeting without QMP.version.qemu');
    const v = qmp['version']['qemu'];
    const caps = qmp['capabilities'];
    if (!isInt(v['major']) || !isInt(v['minor']) || !isInt(v['micro'])) return wrong('greeting version not numeric');
    if (!Array.isArray(caps) || !caps.every((c) => typeof c === 'string'))
      return wrong('greeting capabilities not a string array');
    const pkg = qmp['version']['package'];
    return ok({
      type: 'greeting',
      version: { major: v['major'], minor: v['minor'], micro: v['micro'] },
      package: typeof pkg === 'string' ? pkg : '',
      capabilities: caps,
    });
  }
  if ('return' in value) return ok({ type: 'return', id: value['id'], value: value['return'] });
  if ('error' in value) {
    const e = value['error'];
    if (!isRecord(e) || typeof e['class'] !== 'string' || typeof e['desc'] !== 'string')
      return wrong('error without string class/desc');
    return ok({ type: 'error', id: value['id'], errorClass: e['class'], desc: e['desc'] });
  }
  if ('event' in value) {
    const name = value['event'];
    const data = value['data'] ?? {};
    const ts = value['timestamp'];
    if (typeof name !== 'string') return wrong('event name not a string');
    if (!isRecord(data)) return wrong('event data not an object');
    if (!isRecord(ts) || !isInt(ts['seconds']) || !isInt(ts['microseconds']))
      return wrong('event timestamp missing or not numeric');
    return ok({
      type: 'event',
      event: name,
      data,
      timestamp: { seconds: ts['seconds'], microseconds: ts['microseconds'] },
    });
  }
  return wrong('neither greeting, return, error nor event');
}

function isRecord(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

function excerpt(s: string | Buffer): string {
  const text = typeof s === 'string' ? s : s.toString('utf8');
  return text.length > EXCERPT ? text.slice(0, EXCERPT) : text;
}
