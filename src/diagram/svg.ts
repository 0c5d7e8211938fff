/**
 * DOT → SVG, offline: Graphviz compiled to WebAssembly (@hpcc-js/wasm-graphviz, the wasm is
 * inlined in the package, nothing is fetched). The layout is deterministic for a given DOT text
 * and Graphviz version, so the committed SVG can be compared byte for byte.
 */
import { Graphviz } from '@hpcc-js/wasm-graphviz';

let loaded: Promise<Graphviz> | null = null;

/** Graphviz is loaded once per process (instantiating the wasm takes ~100 ms). */
function graphviz(): Promise<Graphviz> {
  loaded ??= Graphviz.load();
  return loaded;
}

export async function dotToSvg(dot: string): Promise<string> {
  const gv = await graphviz();
  const svg = gv.dot(dot, 'svg');
  // Graphviz writes its version into a comment; keep it (it pins the layout engine), but make
  // sure the file ends with a single newline like the other generated files.
  return svg.endsWith('\n') ? svg : `${svg}\n`;
}

export async function graphvizVersion(): Promise<string> {
  return (await graphviz()).version();
}
