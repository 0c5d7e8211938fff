/**
 * The inspection recorder: an XState `inspect` observer plus subscriptions to an engine's
 * Observables, turned into numbered records (records.ts) that listeners (the page's event stream,
 * an export file) receive in order. It keeps the latest records in memory so a page opened late
 * still sees the run so far.
 *
 * Each job has its own actor system, and XState session ids ("x:0") repeat across systems, so
 * records are keyed by the job id read from the root actor's first snapshot; the few events a
 * system emits before that snapshot are held back until it arrives.
 */
import type { Subscription } from 'rxjs';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import type { BlockCopyEngine, BlockCopyJob } from '../engine/engine.js';
import { stateName } from '../engine/job-runner.js';
import { ProgressMeter } from './progress.js';
import type { InspectionRecord, InspectorRecord, NewRecord, TransitionRecord } from './records.js';
import { toJsonSafe } from './records.js';

export interface RecorderOptions {
  /** Records kept in memory for late page loads and the page's download (default 50,000). */
  readonly capacity?: number;
  /** Wall clock for record times (default Date.now). */
  readonly now?: () => number;
}

type Listener = (record: InspectorRecord) => void;

interface SystemState {
  jobId: string | null;
  pending: InspectionEvent[];
  /** Last context JSON per actor, to leave unchanged contexts out of snapshot records. */
  contexts: Map<string, string>;
}

interface TransitionLike {
  readonly source?: { readonly path?: readonly string[] };
  readonly target?: readonly { readonly path?: readonly string[] }[];
  readonly eventType?: unknown;
}

const pathOf = (node: { readonly path?: readonly string[] } | undefined): string => (node?.path ?? []).join('.');

export class InspectionRecorder {
  private readonly buffer: InspectorRecord[] = [];
  private readonly listeners = new Set<Listener>();
  private readonly systems = new WeakMap<object, SystemState>();
  private readonly capacity: number;
  private readonly now: () => number;
  private seq = 0;

  constructor(options: RecorderOptions = {}) {
    this.capacity = options.capacity ?? 50_000;
    this.now = options.now ?? Date.now;
  }

  /** The XState inspection observer: pass it as the engine's `inspect` option. */
  readonly inspect = (event: InspectionEvent): void => {
    // Typed ActorRefLike; at run time it is an actor, and its system is the job's own.
    const system = (event.actorRef as AnyActorRef).system as object;
    let state = this.systems.get(system);
    if (!state) {
      state = { jobId: null, pending: [], contexts: new Map() };
      this.systems.set(system, state);
    }
    if (state.jobId === null) {
      const jobId = jobIdOf(event);
      if (jobId === null) {
        state.pending.push(event);
        return;
      }
      state.jobId = jobId;
      const held = state.pending;
      state.pending = [];
      for (const e of held) this.emit(this.toRecord(e, jobId, state));
    }
    this.emit(this.toRecord(event, state.jobId, state));
  };

  /**
   * Records an engine's block-job events and each job's progress. Jobs started later are picked
   * up from `jobStates$`. Returns a function that stops recording.
   */
  attach(engine: BlockCopyEngine): () => void {
    const subscriptions: Subscription[] = [];
    const watched = new Set<string>();
    const watch = (job: Pick<BlockCopyJob, 'jobId' | 'progress$'>): void => {
      if (watched.has(job.jobId)) return;
      watched.add(job.jobId);
      const meter = new ProgressMeter();
      subscriptions.push(
        job.progress$.subscribe((p) => {
          const estimate = meter.push({ cur: p.cur, end: p.end, at: p.at });
          this.emit({
            kind: 'progress',
            time: this.now(),
            jobId: job.jobId,
            cur: p.cur,
            end: p.end,
            speed: p.speed,
            rate: estimate.rate,
            etaMs: estimate.etaMs,
          });
        }),
      );
    };
    for (const job of [...engine.jobs(), ...engine.pullJobs()]) watch(job);
    subscriptions.push(
      engine.jobStates$.subscribe((change) => {
        if (watched.has(change.jobId)) return;
        // A job handle exists once the hypervisor job does (mirroring); earlier states have no progress.
        const job = engine.job(change.domain, change.disk) ?? engine.pullJob(change.domain, change.disk);
        if (job && job.jobId === change.jobId) watch(job);
      }),
      engine.events$.subscribe((e) => {
        this.emit({
          kind: 'job-event',
          time: this.now(),
          jobId: e.jobId,
          domain: e.domain,
          disk: e.disk,
          status: e.status,
          pivoted: e.pivoted,
          destinationConsistent: e.destinationConsistent,
          error: e.error ? { code: e.error.code, message: e.error.message } : null,
        });
      }),
    );
    return () => {
      for (const s of subscriptions) s.unsubscribe();
    };
  }

  /** Replays records (e.g. a loaded export) as if they had just been recorded. */
  load(records: readonly InspectorRecord[]): void {
    for (const record of records) {
      if (record.kind === 'header') continue;
      const { seq: _seq, ...rest } = record;
      this.emit(rest);
    }
  }

  /** Records kept in memory, oldest first. */
  records(): readonly InspectorRecord[] {
    return this.buffer;
  }

  /** Records numbered above `afterSeq` (for an event stream resuming after a reconnect). */
  recordsAfter(afterSeq: number): InspectorRecord[] {
    return this.buffer.filter((r) => r.kind !== 'header' && r.seq > afterSeq);
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(record: NewRecord): void {
    const numbered = { ...record, seq: ++this.seq } as InspectorRecord;
    this.buffer.push(numbered);
    if (this.buffer.length > this.capacity) this.buffer.splice(0, this.buffer.length - this.capacity);
    for (const listener of this.listeners) listener(numbered);
  }

  private toRecord(event: InspectionEvent, jobId: string, state: SystemState): NewRecord {
    const actorRef = event.actorRef as AnyActorRef;
    const root = actorRef.sessionId === event.rootId;
    const base: { -readonly [K in keyof InspectionRecord]: InspectionRecord[K] } = {
      kind: 'inspection',
      seq: 0,
      time: this.now(),
      jobId,
      type: event.type,
      actor: actorRef.id,
      root,
    };
    if (typeof actorRef.src === 'string') base.src = actorRef.src;
    switch (event.type) {
      case '@xstate.event':
        if (event.sourceRef) base.source = (event.sourceRef as AnyActorRef).id;
        base.event = toJsonSafe(event.event) ?? null;
        break;
      case '@xstate.snapshot':
        base.event = toJsonSafe(event.event) ?? null;
        base.snapshot = snapshotRecord(event.snapshot, actorRef, state);
        break;
      case '@xstate.microstep':
        base.event = toJsonSafe(event.event) ?? null;
        base.snapshot = snapshotRecord(event.snapshot, actorRef, state);
        base.transitions = (event._transitions as readonly TransitionLike[]).map((t): TransitionRecord => ({
          source: pathOf(t.source),
          targets: (t.target ?? []).map(pathOf),
          eventType: String(t.eventType),
        }));
        break;
      case '@xstate.action': {
        const params = toJsonSafe(event.action.params);
        base.action = params === undefined ? { type: event.action.type } : { type: event.action.type, params };
        break;
      }
      default:
        break;
    }
    const { seq: _seq, ...record } = base;
    return record;
  }
}

type SnapshotRecord = NonNullable<InspectionRecord['snapshot']>;

function snapshotRecord(snapshot: unknown, actorRef: AnyActorRef, state: SystemState): SnapshotRecord {
  const s = snapshot as { status?: unknown; value?: unknown; context?: unknown; output?: unknown; error?: unknown };
  const out: { -readonly [K in keyof SnapshotRecord]: SnapshotRecord[K] } = {
    status: String(s.status),
  };
  if (s.value !== undefined) {
    out.value = toJsonSafe(s.value) ?? null;
    out.state = stateName(s.value);
  }
  if (s.context !== undefined) {
    const context = toJsonSafe(s.context) ?? null;
    const text = JSON.stringify(context);
    if (state.contexts.get(actorRef.id) !== text) {
      state.contexts.set(actorRef.id, text);
      out.context = context;
    }
  }
  if (s.output !== undefined) out.output = toJsonSafe(s.output) ?? null;
  if (s.error !== undefined) out.error = toJsonSafe(s.error) ?? null;
  return out;
}

/**
 * The id the records of an actor system go under, once the root actor's snapshot (with the
 * machine context) is available: a job's id; a storage migration's workflow id; a copy's
 * convergence policy (its context names the copy's job) "JOB/convergence", a card of its own.
 */
function jobIdOf(event: InspectionEvent): string | null {
  if (event.actorRef.sessionId !== event.rootId) return null;
  if (event.type !== '@xstate.snapshot' && event.type !== '@xstate.microstep') return null;
  const context = (event.snapshot as { context?: { jobId?: unknown; workflowId?: unknown; policy?: unknown } }).context;
  if (typeof context?.workflowId === 'string') return context.workflowId;
  if (typeof context?.jobId !== 'string') return null;
  return context.policy !== undefined ? `${context.jobId}/convergence` : context.jobId;
}
