/**
 * One step of a chart through XState's pure `transition`: from a snapshot resolved out of a state
 * value and a context, one event in, and what came out — the state (as a dotted name), the
 * context, the events the chart emitted and the IO actors it invoked (with their input). No actor
 * runs, no promise settles: every state and every event can be tried directly, in microseconds.
 */
import type { AnyMachineSnapshot, AnyStateMachine, EventFrom, StateValue } from 'xstate';
import { transition } from 'xstate';

export interface Step<C> {
  /** The state reached, e.g. `mirroring.running`. */
  readonly state: string;
  readonly status: string;
  readonly context: C;
  readonly output: unknown;
  /** What `emit` sent (refusals). */
  readonly emitted: readonly unknown[];
  /** The actors invoked on the way (src and input), in order. */
  readonly invoked: readonly { readonly src: string; readonly input: unknown }[];
  /** Events sent to children (sendTo), by child id. */
  readonly sent: readonly { readonly to: string; readonly event: unknown }[];
}

/** `{ a: { b: 'c' } }` → `a.b.c` (the engine's spelling, src/engine/job-runner.ts). */
export function stateName(value: StateValue): string {
  if (typeof value === 'string') return value;
  const [key, child] = Object.entries(value)[0]!;
  return child === undefined ? key : `${key}.${stateName(child)}`;
}

interface RawAction {
  readonly type: string;
  readonly params?: {
    readonly event?: unknown;
    readonly src?: unknown;
    readonly input?: unknown;
    readonly to?: unknown;
    readonly id?: unknown;
  };
}

/** The snapshot of `machine` at `value` with `context`. */
export function at(machine: AnyStateMachine, value: StateValue, context: object): AnyMachineSnapshot {
  return machine.resolveState({ value, context });
}

/** Sends `event` to the snapshot at `value`/`context` and reports what the chart did. */
export function step<M extends AnyStateMachine, C>(
  machine: M,
  value: StateValue,
  context: C,
  event: EventFrom<M> | { type: string; output?: unknown; error?: unknown },
): Step<C> {
  const [next, actions] = transition(machine as AnyStateMachine, at(machine, value, context as object), event as never);
  const raw = actions as unknown as RawAction[];
  return {
    state: stateName(next.value),
    status: next.status,
    context: next.context as C,
    output: next.output,
    emitted: raw.filter((a) => a.type === 'xstate.emit').map((a) => a.params?.event),
    invoked: raw
      .filter((a) => a.type === 'xstate.spawnChild')
      .map((a) => ({ src: String(a.params?.src), input: a.params?.input })),
    sent: raw
      .filter((a) => a.type === 'xstate.sendTo')
      .map((a) => {
        const to = a.params?.to;
        const id = typeof to === 'string' ? to : ((to as { id?: string } | undefined)?.id ?? String(to));
        return { to: id, event: a.params?.event };
      }),
  };
}

/** The done event of the actor invoked in `state` (a dotted path below the machine id). */
export const done = (machineId: string, state: string, output?: unknown) => ({
  type: `xstate.done.actor.0.${machineId}.${state}`,
  output,
});
/** The error event of the actor invoked in `state`. */
export const failed = (machineId: string, state: string, error: unknown) => ({
  type: `xstate.error.actor.0.${machineId}.${state}`,
  error,
});
