/** An Output that records what a command printed. */
import type { Output } from '../../src/cli/copy.js';

export function captureOutput(tty = false): Output & { lines: string[]; errors: string[]; bars: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  const bars: string[] = [];
  return {
    lines,
    errors,
    bars,
    tty,
    line: (text) => lines.push(text),
    overwrite: (text) => bars.push(text),
    error: (text) => errors.push(text),
  };
}
