/**
 * `blockcopy replay TRACE.jsonl [--json]`: replays a recorded QMP session through the engine
 * (src/replay/driver.ts) and reports what the job did: its states, its outcome, and the user
 * requests of the recording that were refused. `--json` prints the copy command's report
 * (status, pivoted, destinationConsistent, error, states) plus `refused` and `decodeErrors`.
 *
 * Exit codes: 0 when the replay ran (whatever the job's outcome), 1 when the trace cannot be read
 * or holds no copy to replay, 2 for a usage error.
 */
import { replayTrace } from '../replay/driver.js';
import { formatTraceError, readTraceFile } from '../replay/trace.js';
import type { Output } from './copy.js';

export const REPLAY_USAGE = 'usage: blockcopy replay TRACE.jsonl [--json]';

export async function runReplayCommand(argv: readonly string[], out: Output): Promise<number> {
  let json = false;
  const files: string[] = [];
  for (const arg of argv) {
    if (arg === '--json') json = true;
    else if (arg === '--help' || arg === '-h') {
      out.line(REPLAY_USAGE);
      return 0;
    } else if (arg.startsWith('-')) {
      out.error(`error: unknown option '${arg}'`);
      out.error(REPLAY_USAGE);
      return 2;
    } else files.push(arg);
  }
  const file = files[0];
  if (file === undefined || files.length > 1) {
    out.error(files.length > 1 ? 'error: one trace at a time' : 'error: no trace given');
    out.error(REPLAY_USAGE);
    return 2;
  }

  const lines = await readTraceFile(file);
  if (lines.isErr()) {
    out.error(`error: ${file}: ${formatTraceError(lines.error)}`);
    return 1;
  }
  const replayed = await replayTrace(lines.value, { name: `replay:${file}` });
  if (replayed.isErr()) {
    out.error(`error: ${file}: ${replayed.error.detail}`);
    return 1;
  }
  const report = replayed.value;
  if (json) {
    out.line(JSON.stringify(report, null, 2));
    return 0;
  }
  for (const state of report.states) out.line(`state: ${state}`);
  for (const r of report.refused) out.line(`refused: ${r.request} (${r.command} ${r.id}): ${r.error.message}`);
  for (const d of report.decodeErrors) out.line(`undecodable line ${d.line} (${d.kind}): ${d.detail}`);
  const flags = [report.pivoted ? 'pivoted' : null, report.destinationConsistent ? 'destination consistent' : null]
    .filter((x) => x !== null)
    .join(', ');
  out.line(`outcome: ${report.status}${flags ? ` (${flags})` : ''}`);
  if (report.error) out.line(`error: ${report.error.message}`);
  return 0;
}
