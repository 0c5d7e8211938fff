/**
 * Graph model → Mermaid `stateDiagram-v2` text. Code hosts render Mermaid natively, so the README
 * and visualizations/*.mmd show the chart without any tool. Output is a pure function of the
 * model: same machine, same bytes.
 */
import type { MachineModel, StateModel } from './walk.js';
import { diagramEdges } from './walk.js';

/** Mermaid state ids cannot contain dots: "mirroring.running" → "mirroring_running". */
export function mermaidId(id: string): string {
  return id.replace(/[^A-Za-z0-9_]/g, '_');
}

/** Mermaid ends a label at a newline and reads `;` and `#` specially; keep labels plain. */
function label(text: string): string {
  return text.replace(/[\n;#]/g, ' ');
}

export interface MermaidOptions {
  /** Layout direction (default LR: the job's main path reads left to right). */
  readonly direction?: 'LR' | 'TB';
}

export function toMermaid(model: MachineModel, options: MermaidOptions = {}): string {
  const byId = new Map(model.states.map((s) => [s.id, s]));
  const edges = diagramEdges(model);
  const lines: string[] = [
    '%% Generated from the machine definition by `npm run diagrams` (src/diagram). Do not edit.',
    'stateDiagram-v2',
    `  direction ${options.direction ?? 'LR'}`,
  ];

  // An edge is written inside the innermost composite state that holds both ends, so Mermaid
  // keeps it inside that box; edges between top-level states (or crossing boxes) go at the top.
  const scopeOf = (a: string, b: string): string | null => {
    const ancestors = (id: string): string[] => {
      const out: string[] = [];
      for (let p = byId.get(id)?.parent ?? null; p !== null; p = byId.get(p)?.parent ?? null) out.push(p);
      return out;
    };
    const bAnc = new Set(ancestors(b));
    return ancestors(a).find((p) => bAnc.has(p)) ?? null;
  };
  const edgesIn = new Map<string | null, string[]>();
  for (const e of edges) {
    const scope = scopeOf(e.source, e.target);
    const list = edgesIn.get(scope) ?? [];
    list.push(`${mermaidId(e.source)} --> ${mermaidId(e.target)} : ${label(e.labels.join(', '))}`);
    edgesIn.set(scope, list);
  }

  const writeState = (state: StateModel, indent: string): void => {
    const id = mermaidId(state.id);
    if (state.children.length > 0) {
      lines.push(`${indent}state "${state.key}" as ${id} {`);
      // Children first: an alias (`state "running" as mirroring_running`) must be declared before
      // the id is used, or some renderers print the id.
      for (const child of state.children) writeState(byId.get(child)!, `${indent}  `);
      if (state.initial) lines.push(`${indent}  [*] --> ${mermaidId(state.initial)}`);
      for (const edge of edgesIn.get(state.id) ?? []) lines.push(`${indent}  ${edge}`);
      lines.push(`${indent}}`);
      return;
    }
    if (id !== state.key) lines.push(`${indent}state "${state.key}" as ${id}`);
    for (const src of state.invokes) lines.push(`${indent}${id} : invoke ${label(src)}`);
    if (state.type === 'final') lines.push(`${indent}${id} --> [*]`);
  };

  if (model.initial) lines.push(`  [*] --> ${mermaidId(model.initial)}`);
  for (const state of model.states) if (state.parent === null) writeState(state, '  ');
  for (const edge of edgesIn.get(null) ?? []) lines.push(`  ${edge}`);
  return `${lines.join('\n')}\n`;
}
