/**
 * One diagram of a chart with the chart of the child actors it spawns drawn inside the spawning
 * state: the migration's `mirroring` holds one block-copy job per disk (`copy:<disk>`), so its
 * diagram shows that job chart nested there. Pure: models in, model out, same bytes each time.
 */
import type { MachineModel, StateId, StateModel } from './walk.js';

/**
 * `parent` with `child`'s states nested in the state `at` under a compound state named `label`.
 * Transitions of both stay as they are; the child's ids are prefixed so they cannot collide.
 */
export function withChildChart(parent: MachineModel, at: StateId, child: MachineModel, label: string): MachineModel {
  const host = parent.states.find((s) => s.id === at);
  if (!host) throw new Error(`no state '${at}' in ${parent.id}`);
  const root = `${at}.${child.id}`;
  const map = (id: StateId): StateId => `${root}.${id}`;
  const nestedRoot: StateModel = {
    id: root,
    key: label,
    type: 'compound',
    parent: at,
    initial: child.initial === null ? null : map(child.initial),
    children: child.states.filter((s) => s.parent === null).map((s) => map(s.id)),
    invokes: [],
    entry: [],
    exit: [],
    description: `the child actor's chart (${child.id})`,
  };
  const nested: StateModel[] = child.states.map((s) => ({
    ...s,
    id: map(s.id),
    parent: s.parent === null ? root : map(s.parent),
    initial: s.initial === null ? null : map(s.initial),
    children: s.children.map(map),
  }));
  const states: StateModel[] = [];
  for (const s of parent.states) {
    if (s.id !== at) {
      states.push(s);
      continue;
    }
    states.push({ ...s, type: 'compound', children: [...s.children, root], initial: s.initial ?? root });
    states.push(nestedRoot, ...nested);
  }
  // Parents before children: the nested states follow their host, as the walk orders them.
  return {
    id: parent.id,
    initial: parent.initial,
    states,
    transitions: [
      ...parent.transitions,
      ...child.transitions.map((t) => ({ ...t, source: map(t.source), targets: t.targets.map(map) })),
    ],
  };
}
