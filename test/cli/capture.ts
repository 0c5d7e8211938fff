/** An Output that records what a command printed. */
import type { Output } from '../../src/cli/copy.js';

export interface Capture extends Output {
  readonly lines: string[];
  readonly errors: string[];
  readonly bars: string[];
  /** Everything in order, as a terminal would receive it. */
  readonly transcript: (readonly ['line' | 'bar' | 'error', string])[];
}

export function captureOutput(tty = false): Capture {
  const lines: string[] = [];
  const errors: string[] = [];
  const bars: string[] = [];
  const transcript: (readonly ['line' | 'bar' | 'error', string])[] = [];
  return {
    lines,
    errors,
    bars,
    transcript,
    tty,
    line: (text) => {
      lines.push(text);
      transcript.push(['line', text]);
    },
    overwrite: (text) => {
      bars.push(text);
      transcript.push(['bar', text]);
    },
    error: (text) => {
      errors.push(text);
      transcript.push(['error', text]);
    },
  };
}
