/**
 * Machine → graph model: walks the live StateNode tree of an XState v5 machine and returns the
 * states and transitions the diagram renderers (mermaid.ts, dot.ts) draw.
 *
 * Why not `machine.toJSON()` or `xstate/graph`: both leave out eventless (`always`) transitions,
 * and toJSON() flattens guards and delays into strings that lose their kind (ecosystem.md §2.7).
 * The StateNode tree has everything: `node.transitions` (a Map, including invoke onDone/onError as
 * `xstate.done.actor.*`/`xstate.error.actor.*` and `after` as `xstate.after.*`), `node.always`,
 * `node.invoke`, guards as written. The walk follows definition order, so the output is
 * deterministic and diagrams only change when the machine does.
 */
import type { AnyStateMachine, AnyStateNode } from 'xstate';

/** A state's id in diagrams and in the inspector: its path below the root, dot-joined ("mirroring.running"). */
export type StateId = string;

export interface StateModel {
  readonly id: StateId;
  /** Last path segment ("running"). */
  readonly key: string;
  readonly type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  /** Id of the parent state, or null for top-level states. */
  readonly parent: StateId | null;
  /** Initial child of a compound state. */
  readonly initial: StateId | null;
  readonly children: readonly StateId[];
  /** `src` of each invoked actor (named actors; inline logic shows as "anonymous"). */
  readonly invokes: readonly string[];
  readonly entry: readonly string[];
  readonly exit: readonly string[];
  readonly description: string | null;
}

export type TransitionKind = 'event' | 'always' | 'after' | 'done' | 'error' | 'snapshot';

export interface TransitionModel {
  readonly source: StateId;
  /** Target states; empty for a targetless transition (actions only, the state does not change). */
  readonly targets: readonly StateId[];
  readonly kind: TransitionKind;
  /** The raw XState event descriptor ("HV.READY", "xstate.done.actor.0.blockCopyJob.validating"). */
  readonly eventType: string;
  /** What the diagrams print for the event: "HV.READY", "inspectFacts done", "after 30s", "always". */
  readonly event: string;
  /** Guard as written ("planValid", "!x", "a && b"); "else" for the unguarded fallback after guarded
   *  siblings; null when the transition is not guarded at all. */
  readonly guard: string | null;
  readonly actions: readonly string[];
  readonly reenter: boolean;
}

export interface MachineModel {
  /** The machine's id ("blockCopyJob"). */
  readonly id: string;
  readonly initial: StateId | null;
  /** Every state, parents before children, in definition order. */
  readonly states: readonly StateModel[];
  /** Every transition in definition order (per state: events, then `always`). */
  readonly transitions: readonly TransitionModel[];
}

const DONE_PREFIX = 'xstate.done.actor.';
const ERROR_PREFIX = 'xstate.error.actor.';
const SNAPSHOT_PREFIX = 'xstate.snapshot.';
const AFTER_PREFIX = 'xstate.after.';

/** The model id of a state node: its path, without the machine id. */
export function stateIdOf(node: AnyStateNode): StateId {
  return node.path.join('.');
}

/** Describes a guard as written in the machine config. */
export function guardLabel(guard: unknown): string {
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    // Higher-order guards (and/or/not from xstate) keep their operands in `guards`.
    const fn = guard as { name?: string; guards?: unknown[]; stateValue?: unknown };
    if (Array.isArray(fn.guards)) {
      const parts = fn.guards.map(guardLabel);
      if (fn.name === 'not') return `!${parts[0] ?? '?'}`;
      const joined = parts.join(fn.name === 'or' ? ' || ' : ' && ');
      return parts.length > 1 ? `(${joined})` : joined;
    }
    if (fn.stateValue !== undefined) return `in(${JSON.stringify(fn.stateValue)})`;
    // An inline arrow function: its name is the config key ("guard"), which says nothing.
    return fn.name && fn.name !== 'guard' ? fn.name : 'inline guard';
  }
  if (typeof guard === 'object' && guard !== null && 'type' in guard) {
    return String(guard.type);
  }
  return 'guard';
}

function actionLabel(action: unknown): string {
  if (typeof action === 'string') return action;
  if (typeof action === 'function') {
    const fn = action as { type?: unknown; name?: string };
    // Built-in action creators (assign, emit, raise…) carry their type; custom ones a name.
    if (typeof fn.type === 'string') return fn.type;
    return fn.name || 'inline action';
  }
  if (typeof action === 'object' && action !== null && 'type' in action) {
    return String(action.type);
  }
  return 'action';
}

function formatDelay(delay: unknown): string {
  if (typeof delay === 'number') {
    if (delay >= 1000 && delay % 1000 === 0) return `${delay / 1000}s`;
    return `${delay}ms`;
  }
  return String(delay);
}

interface RawTransition {
  readonly eventType: string;
  readonly target?: readonly AnyStateNode[] | undefined;
  readonly guard?: unknown;
  readonly actions?: readonly unknown[];
  readonly reenter?: boolean;
  readonly delay?: unknown;
}

export function walkMachine(machine: AnyStateMachine): MachineModel {
  const states: StateModel[] = [];
  const transitions: TransitionModel[] = [];

  const visit = (node: AnyStateNode): void => {
    const invokeSources = new Map<string, string>();
    for (const inv of node.invoke) {
      const src = typeof inv.src === 'string' ? inv.src : 'anonymous';
      invokeSources.set(inv.id, src);
    }

    const kindOf = (eventType: string): { kind: TransitionKind; event: string } => {
      for (const [prefix, kind, suffix] of [
        [DONE_PREFIX, 'done', 'done'],
        [ERROR_PREFIX, 'error', 'error'],
        [SNAPSHOT_PREFIX, 'snapshot', 'snapshot'],
      ] as const) {
        if (eventType.startsWith(prefix)) {
          const invokeId = eventType.slice(prefix.length);
          const src = invokeSources.get(invokeId);
          // done.state.* of a child final state uses xstate.done.state, not handled here.
          return { kind, event: src ? `${src} ${suffix}` : `${invokeId} ${suffix}` };
        }
      }
      if (eventType.startsWith(AFTER_PREFIX)) return { kind: 'after', event: 'after' };
      return { kind: 'event', event: eventType };
    };

    if (node !== node.machine.root) {
      const id = stateIdOf(node);
      states.push({
        id,
        key: node.key,
        type: node.type,
        parent: node.parent && node.parent !== node.machine.root ? stateIdOf(node.parent) : null,
        initial: node.type === 'compound' ? (node.initial.target[0] ? stateIdOf(node.initial.target[0]) : null) : null,
        children: Object.values(node.states).map((child) => stateIdOf(child)),
        invokes: [...invokeSources.values()],
        entry: node.entry.map(actionLabel),
        exit: node.exit.map(actionLabel),
        description: node.description ?? null,
      });

      const add = (raw: RawTransition, siblingsGuarded: boolean, kindOverride?: TransitionKind): void => {
        const { kind, event } = kindOverride ? { kind: kindOverride, event: 'always' } : kindOf(String(raw.eventType));
        const guard = raw.guard !== undefined ? guardLabel(raw.guard) : siblingsGuarded ? 'else' : null;
        transitions.push({
          source: id,
          targets: (raw.target ?? []).map((t) => stateIdOf(t)),
          kind,
          eventType: String(raw.eventType),
          event: kind === 'after' ? `after ${formatDelay(raw.delay)}` : event,
          guard,
          actions: (raw.actions ?? []).map(actionLabel),
          reenter: raw.reenter ?? false,
        });
      };

      // Transitions of one event are tried in order: an unguarded one after guarded ones is "else".
      const addGroup = (group: readonly RawTransition[], kindOverride?: TransitionKind): void => {
        let guardedBefore = false;
        for (const t of group) {
          add(t, guardedBefore, kindOverride);
          if (t.guard !== undefined) guardedBefore = true;
        }
      };
      for (const group of node.transitions.values()) addGroup(group as readonly RawTransition[]);
      if (node.always) addGroup(node.always as readonly RawTransition[], 'always');
    }

    for (const child of Object.values(node.states)) visit(child);
  };

  visit(machine.root);
  const rootInitial = machine.root.initial.target[0];
  return {
    id: machine.id,
    initial: rootInitial ? stateIdOf(rootInitial) : null,
    states,
    transitions,
  };
}

/** A transition as drawn: every transition between the same two states, of one kind, merged. */
export interface EdgeModel {
  readonly source: StateId;
  readonly target: StateId;
  readonly kind: TransitionKind;
  /** One line per event: "HV.CONCLUDED [concludedWithError]", "inspectFacts done", "always [else]". */
  readonly labels: readonly string[];
}

/**
 * The edges a diagram draws. Targetless transitions (actions only) are left out: they do not change
 * the state. Transitions of the same event from the same source to the same target are merged; if
 * one of them is the unguarded fallback the merged edge is taken whatever the guards say, so it
 * shows no guard. Then every event between the same two states (of one kind) shares one edge, one
 * label line each: a drawn arrow per event made the chart unreadable.
 */
export function diagramEdges(model: MachineModel): EdgeModel[] {
  const byEvent = new Map<
    string,
    { source: StateId; target: StateId; kind: TransitionKind; event: string; guards: (string | null)[] }
  >();
  for (const t of model.transitions) {
    for (const target of t.targets) {
      const key = `${t.source}\u0000${target}\u0000${t.event}`;
      const entry = byEvent.get(key);
      if (entry) entry.guards.push(t.guard);
      else byEvent.set(key, { source: t.source, target, kind: t.kind, event: t.event, guards: [t.guard] });
    }
  }
  const edges = new Map<string, { source: StateId; target: StateId; kind: TransitionKind; labels: string[] }>();
  for (const e of byEvent.values()) {
    const unconditional = e.guards.some((g) => g === null || g === 'else');
    const guard = unconditional && e.guards.length > 1 ? null : e.guards.filter((g) => g !== null).join(' | ') || null;
    const label = guard ? `${e.event} [${guard}]` : e.event;
    const key = `${e.source}\u0000${e.target}\u0000${e.kind}`;
    const edge = edges.get(key);
    if (edge) edge.labels.push(label);
    else edges.set(key, { source: e.source, target: e.target, kind: e.kind, labels: [label] });
  }
  return [...edges.values()];
}
