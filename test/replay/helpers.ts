/**
 * Shared helpers of the replay tests: where the recorded traces are (copied into the
 * repository from the QEMU 7.2 recordings), and loading one as parsed trace lines.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseTrace, type TraceLine } from '../../src/replay/trace.js';

export const TRACE_DIR = new URL('../fixtures/traces/qemu-7.2/', import.meta.url);

export function tracePath(name: string): string {
  return fileURLToPath(new URL(`${name}.jsonl`, TRACE_DIR));
}

export function traceText(name: string): string {
  return readFileSync(tracePath(name), 'utf8');
}

export function loadTrace(name: string): readonly TraceLine[] {
  return parseTrace(traceText(name))._unsafeUnwrap();
}
