/**
 * Graph model → Graphviz DOT. Compound states become clusters; every state and cluster gets an
 * explicit SVG id (`state:<id>`, see svgStateId) and classes, so the inspector page can highlight
 * the active state in the rendered SVG by id. Output is a pure function of the model.
 */
import type { MachineModel, StateModel, TransitionKind } from './walk.js';
import { diagramEdges } from './walk.js';

/** The id the SVG element of a state carries ("state:mirroring.running"). */
export function svgStateId(stateId: string): string {
  return `state:${stateId}`;
}

/**
 * The id the SVG element of a drawn transition carries ("edge:starting:mirroring:done"). Colons
 * because state ids never contain one and Graphviz writes them as they are (`->` it escapes).
 */
export function svgEdgeId(source: string, target: string, kind: TransitionKind): string {
  return `edge:${source}:${target}:${kind}`;
}

function quote(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

const EDGE_STYLE: Record<TransitionKind, string> = {
  event: '',
  always: ', style=dashed',
  after: ', style=dotted',
  done: ', color="#2f6f3e", fontcolor="#2f6f3e"',
  error: ', color="#a33a3a", fontcolor="#a33a3a"',
  snapshot: ', style=dashed',
};

export interface DotOptions {
  /** Layout direction (default LR). */
  readonly rankdir?: 'LR' | 'TB';
}

export function toDot(model: MachineModel, options: DotOptions = {}): string {
  const byId = new Map(model.states.map((s) => [s.id, s]));
  const lines: string[] = [
    '// Generated from the machine definition by `npm run diagrams` (src/diagram). Do not edit.',
    `digraph ${quote(model.id)} {`,
    `  graph [id=${quote('chart')}, rankdir=${options.rankdir ?? 'LR'}, compound=true, fontname="Helvetica", fontsize=12, nodesep=0.35, ranksep=0.45, bgcolor="transparent"];`,
    '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#5b6b7b", fontname="Helvetica", fontsize=12, margin="0.12,0.05"];',
    '  edge [fontname="Helvetica", fontsize=9, color="#5b6b7b", fontcolor="#3d4a57", arrowsize=0.7];',
  ];

  // A compound state is drawn as a cluster; edges to or from it attach to its initial-state dot
  // and are clipped at the cluster border (lhead/ltail).
  const anchorOf = (id: string): string => (byId.get(id)?.children.length ? `${id}.__initial` : id);
  const clusterOf = (id: string): string => `cluster_${id}`;

  const writeState = (state: StateModel, indent: string): void => {
    if (state.children.length > 0) {
      lines.push(`${indent}subgraph ${quote(clusterOf(state.id))} {`);
      lines.push(
        `${indent}  graph [id=${quote(svgStateId(state.id))}, class=${quote(`state ${state.type}`)}, label=${quote(state.key)}, style="rounded,filled", fillcolor="#f4f6f8", color="#5b6b7b", labeljust=l];`,
      );
      lines.push(
        `${indent}  ${quote(anchorOf(state.id))} [shape=point, width=0.1, style=filled, fillcolor="#3d4a57", label=""];`,
      );
      for (const child of state.children) writeState(byId.get(child)!, `${indent}  `);
      if (state.initial) lines.push(`${indent}  ${quote(anchorOf(state.id))} -> ${quote(anchorOf(state.initial))};`);
      lines.push(`${indent}}`);
      return;
    }
    const sub = state.invokes.map((src) => `invoke ${src}`);
    const text = [state.key, ...sub].join('\n');
    const extra = state.type === 'final' ? ', peripheries=2' : '';
    lines.push(
      `${indent}${quote(state.id)} [id=${quote(svgStateId(state.id))}, class=${quote(`state ${state.type}`)}, label=${quote(text)}${extra}];`,
    );
  };

  lines.push('  "__initial" [shape=point, width=0.12, style=filled, fillcolor="#3d4a57", label=""];');
  for (const state of model.states) if (state.parent === null) writeState(state, '  ');
  if (model.initial) lines.push(`  "__initial" -> ${quote(anchorOf(model.initial))};`);

  for (const e of diagramEdges(model)) {
    const attrs = [
      `id=${quote(svgEdgeId(e.source, e.target, e.kind))}`,
      `class=${quote(`transition ${e.kind}`)}`,
      `label=${quote(e.labels.join('\n'))}`,
    ];
    if (byId.get(e.source)?.children.length) attrs.push(`ltail=${quote(clusterOf(e.source))}`);
    if (byId.get(e.target)?.children.length) attrs.push(`lhead=${quote(clusterOf(e.target))}`);
    lines.push(
      `  ${quote(anchorOf(e.source))} -> ${quote(anchorOf(e.target))} [${attrs.join(', ')}${EDGE_STYLE[e.kind]}];`,
    );
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
