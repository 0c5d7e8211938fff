/**
 * `blockcopy replay TRACE.jsonl [--json]`: the report, the human output, and the exit codes
 * (0 replayed, 1 unreadable trace, 2 usage).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runReplayCommand } from '../../src/cli/replay.js';
import { captureOutput } from '../cli/capture.js';
import { tracePath } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'blockcopy-replay-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('blockcopy replay', () => {
  it('--json prints the copy report plus the refused requests', async () => {
    const out = captureOutput();
    expect(await runReplayCommand([tracePath('f_set_speed_polling'), '--json'], out)).toBe(0);
    expect(out.errors).toEqual([]);
    const report = JSON.parse(out.lines.join('\n')) as Record<string, unknown>;
    expect(Object.keys(report).sort()).toEqual(
      ['decodeErrors', 'destinationConsistent', 'error', 'pivoted', 'refused', 'states', 'status'].sort(),
    );
    expect(report).toMatchObject({ status: 'completed', pivoted: true, destinationConsistent: true, error: null });
    expect(report['refused']).toEqual([
      {
        request: 'set-speed',
        command: 'block-job-set-speed',
        id: 'c30',
        error: {
          code: 'VIR_ERR_INVALID_ARG',
          number: 8,
          message: "invalid argument: bandwidth must be a non-negative integer, not '-1'",
        },
      },
    ]);
  });

  it('prints the states, the refused requests and the outcome', async () => {
    const out = captureOutput();
    expect(await runReplayCommand([tracePath('e3_cancel_ready')], out)).toBe(0);
    expect(out.lines).toEqual([
      'state: validating',
      'state: preparingDestination',
      'state: starting',
      'state: mirroring.running',
      'state: ready.synced',
      'state: aborting',
      'state: finishing',
      'state: canceled',
      'outcome: canceled (destination consistent)',
    ]);
    const refusing = captureOutput();
    expect(await runReplayCommand([tracePath('a2_manual_finalize_dismiss')], refusing)).toBe(0);
    expect(refusing.lines).toContain(
      'refused: pivot (block-job-complete c23): invalid argument: disk snap2 does not have an active block job',
    );
    expect(refusing.lines.at(-1)).toBe('outcome: completed (pivoted, destination consistent)');
  });

  it('exits 0 for a failed job too, with its error', async () => {
    const out = captureOutput();
    expect(await runReplayCommand([tracePath('h1_target_error_report')], out)).toBe(0);
    expect(out.lines.slice(-2)).toEqual([
      'outcome: failed',
      "error: operation failed: block job 'snap2' failed: Input/output error",
    ]);
  });

  it('exits 1 when the trace cannot be read', async () => {
    const missing = captureOutput();
    expect(await runReplayCommand([join(tmp, 'missing.jsonl')], missing)).toBe(1);
    expect(missing.errors[0]).toContain('cannot read trace');

    const bad = join(tmp, 'bad.jsonl');
    writeFileSync(bad, '{"seq": 1, "t": 0, "dir": "recv", "kind": "greeting", "msg": {}}\nnot json\n');
    const malformed = captureOutput();
    expect(await runReplayCommand([bad, '--json'], malformed)).toBe(1);
    expect(malformed.errors[0]).toContain('trace line 2');
    expect(malformed.lines).toEqual([]);

    const empty = join(tmp, 'empty.jsonl');
    writeFileSync(empty, '');
    const nothing = captureOutput();
    expect(await runReplayCommand([empty], nothing)).toBe(1);
    expect(nothing.errors[0]).toContain('no blockdev-mirror or drive-mirror');
  });

  it.each([[[]], [['--verbose', 'x.jsonl']], [['a.jsonl', 'b.jsonl']]])(
    'exits 2 for usage errors: %j',
    async (argv) => {
      const out = captureOutput();
      expect(await runReplayCommand(argv, out)).toBe(2);
      expect(out.errors.at(-1)).toBe('see blockcopy replay --help');
    },
  );
});
