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
import { readCommandArgs, usageFailure } from './command-args.js';

export const REPLAY_USAGE = 'usage: blockcopy replay TRACE.jsonl [--json]';

export async function runReplayCommand(argv: readonly string[], out: Output): Promise<number> {
  const parsed = readCommandArgs('replay', argv, {
    options: { json: { type: 'boolean', default: false } },
    strict: true,
    allowPositionals: true,
  });
  if (parsed.isErr()) return usageFailure(out, 'replay', parsed.error.message);
  if (parsed.value === 'help') {
    out.line(REPLAY_USAGE);
    return 0;
  }
  const json = parsed.value.values.json;
  const files = parsed.value.positionals;
  const file = files[0];
  if (file === undefined) return usageFailure(out, 'replay', "command 'replay' requires <trace> option");
  if (files.length > 1) return usageFailure(out, 'replay', `unexpected data '${files[1]}': one trace at a time`);

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
