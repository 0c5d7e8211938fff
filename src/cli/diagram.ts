/**
 * `blockcopy diagram [--format svg|mermaid|dot] [--output FILE] [--machine NAME]`: prints (or
 * writes) a diagram generated from the machine definition, the same text `npm run diagrams`
 * commits to visualizations/.
 */
import { writeFile } from 'node:fs/promises';
import { readCommandArgs, usageFailure } from './command-args.js';
import type { DiagramFormat } from '../diagram/index.js';
import { DEFAULT_DIAGRAM_MACHINE, diagramMachines, renderDiagram, walkMachine } from '../diagram/index.js';
import type { Output } from './copy.js';

export const DIAGRAM_USAGE = `usage: blockcopy diagram [--format mermaid|dot|svg] [--output FILE] [--machine NAME]

Prints the job statechart, generated from the machine definition (default format mermaid).
--output writes it to FILE instead. Machines: ${Object.keys(diagramMachines).join(', ')}.`;

const FORMATS: readonly DiagramFormat[] = ['mermaid', 'dot', 'svg'];

/** Exit codes: 0 done, 2 usage error, 1 the file could not be written. */
export async function runDiagramCommand(argv: readonly string[], out: Output): Promise<number> {
  const parsed = readCommandArgs('diagram', argv, {
    options: {
      format: { type: 'string', short: 'f' },
      output: { type: 'string', short: 'o' },
      machine: { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (parsed.isErr()) return usageFailure(out, 'diagram', parsed.error.message);
  if (parsed.value === 'help') {
    out.line(DIAGRAM_USAGE);
    return 0;
  }
  const { values } = parsed.value;
  const format = (values.format ?? 'mermaid') as DiagramFormat;
  if (!FORMATS.includes(format)) {
    return usageFailure(out, 'diagram', `--format expects mermaid, dot or svg, got '${values.format}'`);
  }
  const name = values.machine ?? DEFAULT_DIAGRAM_MACHINE;
  const machine = diagramMachines[name];
  if (!machine) {
    return usageFailure(
      out,
      'diagram',
      `unknown machine '${name}' (known: ${Object.keys(diagramMachines).join(', ')})`,
    );
  }
  const text = await renderDiagram(walkMachine(machine), format);
  if (values.output !== undefined) {
    try {
      await writeFile(values.output, text);
    } catch (e) {
      out.error(`error: cannot write ${values.output}: ${e instanceof Error ? e.message : String(e)}`);
      return 1;
    }
    out.line(`wrote ${values.output}`);
    return 0;
  }
  out.line(text.endsWith('\n') ? text.slice(0, -1) : text);
  return 0;
}
