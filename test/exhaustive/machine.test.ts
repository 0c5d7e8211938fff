/**
 * Exhaustive check of the job machine: every reachable state (state value + the context flags
 * that steer guards) gets every event — user requests, every variant of every hypervisor
 * observation, and every done/error outcome of the IO actor running in the state — through XState's pure `transition`. Each answer must be a transition the spec table
 * below allows (written from the README's contract and libvirt, not read off the chart) or a
 * refusal carrying the right libvirt error.
 */
import type { AnyMachineSnapshot } from 'xstate';
import { initialTransition, transition } from 'xstate';
import { describe, expect, it } from 'vitest';
import { blockCopyJobMachine } from '../../machines/block-copy-job.js';
import type { BlockCopyJobEvent } from '../../machines/events.js';
import { RebaseFlags } from '../../src/core/flags.js';
import { request, seedFacts } from '../machine/fixtures.js';

type Top =
  | 'validating'
  | 'preparingDestination'
  | 'starting'
  | 'mirroring'
  | 'ready'
  | 'pivoting'
  | 'confirmingPivot'
  | 'aborting'
  | 'finishing'
  | 'completed'
  | 'canceled'
  | 'failed';

const FINAL: readonly Top[] = ['completed', 'canceled', 'failed'];

const observations: BlockCopyJobEvent[] = [
  { type: 'HV.RUNNING' },
  { type: 'HV.READY' },
  ...(['user', 'io-error', 'internal'] as const).map((reason) => ({ type: 'HV.PAUSED', reason }) as const),
  ...(['ignore', 'report', 'stop'] as const).flatMap((action) =>
    (['read', 'write'] as const).map((operation) => ({ type: 'HV.IO_ERROR', action, operation }) as const),
  ),
  ...[null, 'Input/output error'].flatMap((error) =>
    [false, true].map((cancelled) => ({ type: 'HV.CONCLUDED', error, cancelled }) as const),
  ),
  { type: 'HV.VANISHED' },
  { type: 'HV.GONE', reason: 'killed' },
];
const userEvents: BlockCopyJobEvent[] = [
  { type: 'PIVOT' },
  { type: 'ABORT', force: false },
  { type: 'ABORT', force: true },
];

/** The IO actors by state, as the spec names them (the chart's invoke ids are derived). */
const ACTOR_STATE: Record<string, Top> = {
  inspectFacts: 'validating',
  prepareDestination: 'preparingDestination',
  startMirror: 'starting',
  completeJob: 'pivoting',
  confirmPivot: 'confirmingPivot',
  cancelJob: 'aborting',
  finishJob: 'finishing',
};
const failure = { code: 'VIR_ERR_INTERNAL_ERROR', number: 1, message: 'internal error: injected', detail: 'injected' };
const invalidFacts = { ...seedFacts(), domain: null };
/** Every done output and the error, per actor. */
const OUTPUTS: Record<string, unknown[]> = {
  inspectFacts: [seedFacts(), invalidFacts],
  prepareDestination: [{ created: true }, { created: false }],
  startMirror: [undefined],
  completeJob: [undefined],
  confirmPivot: [true, false],
  cancelJob: [undefined],
  finishJob: [undefined],
};

function actorEvents(): { name: string; event: { type: string; output?: unknown; error?: unknown } }[] {
  const out: { name: string; event: { type: string; output?: unknown; error?: unknown } }[] = [];
  for (const [name, state] of Object.entries(ACTOR_STATE)) {
    const id = `0.blockCopyJob.${state}`;
    for (const output of OUTPUTS[name]!) out.push({ name, event: { type: `xstate.done.actor.${id}`, output } });
    out.push({ name, event: { type: `xstate.error.actor.${id}`, error: failure } });
  }
  return out;
}

/** Allowed targets per (state, event) from the spec; anything not listed must leave the top state as it is. */
function allowedTargets(from: Top, event: { type: string }, actor: string | null, ctx: Ctx): Top[] | 'refuse' {
  if (FINAL.includes(from)) return [from];
  const t = event.type;
  if (t === 'PIVOT' || t === 'ABORT') {
    if (from === 'ready') return [t === 'PIVOT' ? 'pivoting' : 'aborting'];
    if (from === 'mirroring' && t === 'ABORT') return ['aborting'];
    return 'refuse';
  }
  if (actor !== null) {
    if (ACTOR_STATE[actor] !== from) return [from];
    const done = t.startsWith('xstate.done');
    switch (from) {
      case 'validating':
        return done ? ['preparingDestination', 'failed'] : ['failed'];
      case 'preparingDestination':
        return done ? ['starting'] : ['failed'];
      case 'starting':
        return done ? ['mirroring'] : ['finishing'];
      case 'pivoting':
        // Accepted: wait for the conclusion; refused: the mirror stays synchronised.
        return done ? ['pivoting'] : ['ready'];
      case 'confirmingPivot':
        return ['finishing'];
      case 'aborting':
        return done ? ['aborting'] : [ctx.readySeen ? 'ready' : 'mirroring'];
      case 'finishing':
        return ['completed', 'canceled', 'failed'];
      default:
        return [from];
    }
  }
  const ends = t === 'HV.CONCLUDED' || t === 'HV.VANISHED' || t === 'HV.GONE';
  switch (from) {
    case 'validating':
    case 'preparingDestination':
      return [from];
    case 'starting':
      // Events may come before the reply to blockdev-mirror.
      if (t === 'HV.READY') return ['ready'];
      if (t === 'HV.CONCLUDED' || t === 'HV.GONE') return ['finishing'];
      return ['starting'];
    case 'mirroring':
      if (t === 'HV.READY') return ['ready'];
      return ends ? ['finishing'] : ['mirroring'];
    case 'ready':
      // Ready is sticky: nothing takes the job back to mirroring. A completion nobody here
      // asked for may be another client's pivot (virsh blockjob --pivot): it is confirmed.
      if (t === 'HV.CONCLUDED') return ['finishing', 'confirmingPivot'];
      return ends ? ['finishing'] : ['ready'];
    case 'pivoting':
      if (t === 'HV.CONCLUDED') return ['finishing', 'confirmingPivot'];
      if (t === 'HV.VANISHED') return ['confirmingPivot'];
      if (t === 'HV.GONE') return ['finishing'];
      return ['pivoting'];
    case 'aborting':
      return ends ? ['finishing'] : ['aborting'];
    default:
      return [from];
  }
}

/** The refusal libvirt gives for a pivot or abort in this state. */
function expectedRefusal(from: Top, type: string): string {
  if (from === 'validating' || from === 'preparingDestination' || from === 'starting') return 'VIR_ERR_INVALID_ARG';
  if (from === 'mirroring' && type === 'PIVOT') return 'VIR_ERR_BLOCK_COPY_ACTIVE';
  return 'VIR_ERR_OPERATION_INVALID';
}

interface Ctx {
  readySeen: boolean;
  endRequest: string | null;
  destinationCreated: boolean;
  pivoted: boolean;
  destinationConsistent: boolean;
  outcome: string | null;
  started: boolean;
}

const topOf = (s: AnyMachineSnapshot): Top => (typeof s.value === 'string' ? s.value : Object.keys(s.value)[0]!) as Top;
function keyOf(s: AnyMachineSnapshot): string {
  const c = s.context as Ctx & { endAccepted: boolean; error: { code: string } | null; request: { flags: number } };
  return JSON.stringify([
    s.value,
    s.status,
    c.readySeen,
    c.endRequest,
    c.endAccepted,
    c.destinationCreated,
    c.pivoted,
    c.destinationConsistent,
    c.outcome,
    c.started,
    c.error?.code ?? null,
    c.request.flags,
  ]);
}

interface Action {
  type: string;
  params?: unknown;
}

describe('exhaustive check of the job machine', () => {
  it('every event in every reachable state is an allowed transition or the right refusal', () => {
    const t0 = performance.now();
    const queue: AnyMachineSnapshot[] = [];
    const seen = new Map<string, AnyMachineSnapshot>();
    for (const flags of [RebaseFlags.COPY, RebaseFlags.COPY | RebaseFlags.REUSE_EXT]) {
      const [s0] = initialTransition(blockCopyJobMachine, { jobId: 'j', request: request(flags) });
      seen.set(keyOf(s0), s0);
      queue.push(s0);
    }
    const events = [
      ...userEvents.map((event) => ({ name: null, event })),
      ...observations.map((event) => ({ name: null, event })),
      ...actorEvents(),
    ];
    let sent = 0;
    let transitions = 0;
    let refusals = 0;
    let ignored = 0;
    // The semantic rules on invoked actors below must have seen their actors.
    let completeStarts = 0;
    let finishStarts = 0;
    const edges = new Set<string>();
    while (queue.length > 0) {
      const snap = queue.shift()!;
      const from = topOf(snap);
      const ctx = snap.context as Ctx;
      for (const { name, event } of events) {
        // Done/error events come only from the running actor: XState stops an actor (and drops
        // its events) when its state is left, and a finished machine takes no events at all.
        if (name !== null && ACTOR_STATE[name] !== from) continue;
        sent++;
        const [next, actions] = transition(blockCopyJobMachine, snap, event as BlockCopyJobEvent);
        const to = topOf(next);
        const nctx = next.context as Ctx;
        const what = `${keyOf(snap)} --${event.type}${name ? `(${name})` : ''}--> ${String(JSON.stringify(next.value))}`;
        const allowed = allowedTargets(from, event, name, ctx);
        const emitted = (actions as Action[])
          .filter((a) => a.type === 'xstate.emit')
          .map(
            (a) =>
              (a.params as { event?: { type: string; request: string; error: { code: string } } }).event ?? a.params,
          ) as {
          type: string;
          request: string;
          error: { code: string };
        }[];
        if (allowed === 'refuse') {
          expect(to, what).toBe(from);
          expect(emitted.length, what).toBe(1);
          expect(emitted[0]!.request, what).toBe(event.type);
          expect(emitted[0]!.error.code, what).toBe(expectedRefusal(from, event.type));
          expect(next.context, what).toEqual(snap.context);
          refusals++;
        } else {
          expect(allowed, what).toContain(to);
          // A refusal is only emitted when QEMU refused a pivot or an abort (the chart backs off).
          if (emitted.length > 0) expect(['pivoting', 'aborting'], what).toContain(from);
        }
        // Semantic rules, whatever the table says.
        for (const a of actions as Action[]) {
          if (a.type !== 'xstate.spawnChild') continue;
          // block-job-complete only from ready.
          // XState puts the invoked actor's src and input in the action's params.
          const spawned = a.params as { src?: unknown; input?: unknown } | undefined;
          if (spawned?.src === 'completeJob') {
            expect(from, what).toBe('ready');
            completeStarts++;
          }
          if (spawned?.src === 'finishJob') {
            finishStarts++;
            const input = spawned.input as { removeDestination: string | null };
            if (input.removeDestination !== null) {
              expect(nctx.destinationCreated, what).toBe(true);
              expect(nctx.pivoted || nctx.destinationConsistent, what).toBe(false);
            }
          }
        }
        // The block graph decides: a pivot that did not land is a failure, never COMPLETED.
        if (name === 'confirmPivot') {
          const landed = (event as { output?: unknown }).output === true;
          expect(nctx.outcome, what).toBe(landed ? 'completed' : 'failed');
          expect(nctx.pivoted, what).toBe(landed);
        }
        // COMPLETED only with a confirmed pivot: ours, or another client's (no end request here).
        if (to === 'completed' && from !== 'completed') {
          expect(nctx.pivoted && (nctx.endRequest === 'pivot' || nctx.endRequest === null), what).toBe(true);
        }
        if (to === 'canceled' && from !== 'canceled') expect(['abort', 'abort-force'], what).toContain(nctx.endRequest);
        if (ctx.readySeen) expect(nctx.readySeen, what).toBe(true);
        // Before ready, and in standby (paused), QEMU only takes a force cancel; a soft cancel
        // after ready leaves a consistent copy.
        if (event.type === 'ABORT' && to === 'aborting' && from !== 'aborting') {
          const soft = JSON.stringify(snap.value) === '{"ready":"synced"}' && !(event as { force: boolean }).force;
          expect(nctx.endRequest, what).toBe(soft ? 'abort' : 'abort-force');
        }
        if (to === 'pivoting' && from !== 'pivoting') expect(JSON.stringify(snap.value), what).toMatch(/^\{"ready"/);
        if (FINAL.includes(from)) expect(next, what).toBe(snap);
        if (to !== from || JSON.stringify(next.value) !== JSON.stringify(snap.value)) {
          transitions++;
          edges.add(`${JSON.stringify(snap.value)} -> ${JSON.stringify(next.value)}`);
        } else if (allowed !== 'refuse') ignored++;
        const k = keyOf(next);
        if (!seen.has(k)) {
          seen.set(k, next);
          queue.push(next);
        }
      }
    }
    const tops = new Set([...seen.values()].map(topOf));
    // Every state of the chart is reachable.
    expect([...tops].sort()).toEqual(
      [
        'aborting',
        'canceled',
        'completed',
        'confirmingPivot',
        'failed',
        'finishing',
        'mirroring',
        'pivoting',
        'preparingDestination',
        'ready',
        'starting',
        'validating',
      ].sort(),
    );
    const leaves = new Set([...seen.values()].map((s) => JSON.stringify(s.value)));
    console.log(
      `exhaustive: ${seen.size} reachable states (${leaves.size} chart states), ${events.length} events each, ` +
        `${sent} sent: ${transitions} transitions (${edges.size} distinct edges), ${refusals} refusals, ` +
        `${ignored} ignored; ${Math.round(performance.now() - t0)} ms`,
    );
    expect(completeStarts).toBeGreaterThan(0);
    expect(finishStarts).toBeGreaterThan(0);
    // 10 atomic states + mirroring's 3 + ready's 2 (settled is eventless, never at rest).
    expect(leaves.size).toBe(15);
  });
});
