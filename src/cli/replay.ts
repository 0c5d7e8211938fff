/** Placeholder until trace replay lands: `blockcopy replay` is being built. */
import type { Output } from './copy.js';

export async function runReplayCommand(_argv: readonly string[], out: Output): Promise<number> {
  out.error('error: replay is not available in this build');
  return 2;
}
