/**
 * The inspector's record format: XState inspection events, engine progress and block-job events
 * turned into plain JSON objects, one per line in an export file (JSON Lines). The live page, the
 * export and a loaded export all read the same records, so what one sees after the fact is what
 * one would have seen live.
 *
 * Inspection events hold live actor references; a record keeps only what can be shown or
 * replayed: ids, the event, the snapshot's value/status/context, the transitions taken, the action.
 */
import type { Result } from 'neverthrow';
import { err, ok } from 'neverthrow';

export const EXPORT_FORMAT = 'blockcopy-inspection';
export const EXPORT_VERSION = 1;

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** First line of an export. */
export interface HeaderRecord {
  readonly kind: 'header';
  readonly format: typeof EXPORT_FORMAT;
  readonly version: typeof EXPORT_VERSION;
  /** The machine the job records belong to (its diagram is the page's chart). */
  readonly machine: string;
  /** Wall-clock ISO time the recording started. */
  readonly started: string;
}

export interface TransitionRecord {
  /** State ids as in the diagrams ("mirroring.running"). */
  readonly source: string;
  readonly targets: readonly string[];
  readonly eventType: string;
}

/** One XState inspection event of one job's actor system. */
export interface InspectionRecord {
  readonly kind: 'inspection';
  readonly seq: number;
  /** Wall-clock ms. */
  readonly time: number;
  readonly jobId: string;
  /** '@xstate.actor' | '@xstate.event' | '@xstate.snapshot' | '@xstate.microstep' | '@xstate.action'. */
  readonly type: string;
  /** Id of the actor concerned (the job's root actor, or an invoked IO actor such as "0.blockCopyJob.pivoting"). */
  readonly actor: string;
  /** True when `actor` is the job machine itself. */
  readonly root: boolean;
  /** Logic name of an invoked actor ("completeJob"), when known. */
  readonly src?: string;
  /** Sender of an '@xstate.event'. */
  readonly source?: string;
  readonly event?: Json;
  readonly snapshot?: {
    readonly status: string;
    readonly value?: Json;
    /** Dotted active leaf state ("mirroring.running"), for machine snapshots. */
    readonly state?: string;
    /** Machine context; left out when unchanged since this actor's previous snapshot record. */
    readonly context?: Json;
    readonly output?: Json;
    readonly error?: Json;
  };
  readonly transitions?: readonly TransitionRecord[];
  readonly action?: { readonly type: string; readonly params?: Json };
}

/** Engine progress of one job (JobProgress) with the inspector's estimates. */
export interface ProgressRecord {
  readonly kind: 'progress';
  readonly seq: number;
  readonly time: number;
  readonly jobId: string;
  readonly cur: number;
  readonly end: number;
  readonly speed: number;
  /** Copy rate in bytes/s over the last few seconds, null until two samples. */
  readonly rate: number | null;
  /** Estimated ms until the mirror is synchronised, null when it does not converge (yet). */
  readonly etaMs: number | null;
}

/** A block-job event of the engine (libvirt's VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2). */
export interface JobEventRecord {
  readonly kind: 'job-event';
  readonly seq: number;
  readonly time: number;
  readonly jobId: string;
  readonly domain: string;
  readonly disk: string;
  readonly status: string;
  readonly pivoted: boolean;
  readonly destinationConsistent: boolean;
  readonly error: { readonly code: string; readonly message: string } | null;
}

export type InspectorRecord = HeaderRecord | InspectionRecord | ProgressRecord | JobEventRecord;
/** A record before the recorder numbered it. */
export type NewRecord = DistributiveOmit<Exclude<InspectorRecord, HeaderRecord>, 'seq'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

const MAX_DEPTH = 8;
const MAX_STRING = 4000;

/**
 * Any value → JSON-safe data: Errors become {name, message}, functions and symbols are dropped,
 * cycles and very deep values are cut. Events and contexts are meant to be plain data already;
 * this only guards the export against the odd Error or actor reference.
 */
export function toJsonSafe(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): Json | undefined {
  if (value === null) return null;
  switch (typeof value) {
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'string':
      return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value;
    case 'bigint':
      return value.toString();
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (typeof value !== 'object') return undefined;
  const obj = value;
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (seen.has(obj)) return '[circular]';
  if (depth >= MAX_DEPTH) return '[…]';
  seen.add(obj);
  try {
    if (Array.isArray(value)) return value.map((v) => toJsonSafe(v, depth + 1, seen) ?? null);
    // Actor references (event.sourceRef…) are live objects: keep their id only.
    if ('sessionId' in obj && 'send' in obj) return `[actor ${String((obj as { id?: unknown }).id)}]`;
    const out: { [key: string]: Json } = {};
    for (const [k, v] of Object.entries(obj)) {
      const safe = toJsonSafe(v, depth + 1, seen);
      if (safe !== undefined) out[k] = safe;
    }
    return out;
  } finally {
    seen.delete(obj);
  }
}

export function headerRecord(machine: string, started: Date): HeaderRecord {
  return { kind: 'header', format: EXPORT_FORMAT, version: EXPORT_VERSION, machine, started: started.toISOString() };
}

export function toJsonLine(record: InspectorRecord): string {
  return `${JSON.stringify(record)}\n`;
}

const KINDS = new Set(['header', 'inspection', 'progress', 'job-event']);

/**
 * Parses an export. Blank lines are skipped; a line that is not a JSON record, or a header of
 * another format or version, is an error naming the line.
 */
export function parseJsonl(text: string): Result<InspectorRecord[], string> {
  const records: InspectorRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return err(`line ${i + 1}: not JSON`);
    }
    if (typeof parsed !== 'object' || parsed === null || !KINDS.has(String((parsed as { kind?: unknown }).kind))) {
      return err(`line ${i + 1}: not an inspector record`);
    }
    const record = parsed as InspectorRecord;
    if (record.kind === 'header' && (record.format !== EXPORT_FORMAT || record.version !== EXPORT_VERSION)) {
      return err(`line ${i + 1}: unsupported format ${String(record.format)} v${String(record.version)}`);
    }
    records.push(record);
  }
  return ok(records);
}
