/**
 * The trace reader: JSONL framing only, and every bad line an error value naming its line.
 */
import { describe, expect, it } from 'vitest';
import { parseTrace, readTraceFile } from '../../src/replay/trace.js';
import { tracePath } from './helpers.js';

const greeting =
  '{"seq": 1, "t": 0.05, "dir": "recv", "kind": "greeting", "msg": {"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}}';
const command =
  '{"seq": 2, "t": 0.06, "dir": "send", "kind": "command", "msg": {"execute": "qmp_capabilities", "id": "c1"}}';
const postRun = '{"dir": "local", "kind": "note", "t": 2.5, "msg": {"note": "check", "result": true}}';

describe('parseTrace', () => {
  it('reads lines with their line number, seq (null after the run) and message; blank lines are skipped', () => {
    const lines = parseTrace([greeting, '', command, postRun, ''].join('\n'))._unsafeUnwrap();
    expect(lines.map((l) => [l.line, l.seq, l.dir, l.kind])).toEqual([
      [1, 1, 'recv', 'greeting'],
      [3, 2, 'send', 'command'],
      [4, null, 'local', 'note'],
    ]);
    expect(lines[1]!.msg).toEqual({ execute: 'qmp_capabilities', id: 'c1' });
  });

  it('makes a line that is not JSON an error value naming the line', () => {
    const e = parseTrace([greeting, '{"seq": 2, "t": 0.06, "dir": "send",'].join('\n'))._unsafeUnwrapErr();
    expect(e).toMatchObject({ kind: 'malformed', line: 2 });
  });

  it.each([
    ['not an object', '[1, 2]', 'not a JSON object'],
    ['unknown kind', '{"t": 1, "dir": "recv", "kind": "reply", "msg": {}}', 'unknown kind "reply"'],
    ['unknown dir', '{"t": 1, "dir": "in", "kind": "event", "msg": {}}', 'unknown dir "in"'],
    [
      'kind in the wrong direction',
      '{"t": 1, "dir": "send", "kind": "event", "msg": {}}',
      "kind 'event' cannot have dir 'send'",
    ],
    ['no time', '{"dir": "recv", "kind": "event", "msg": {}}', 't is not a number'],
    ['no msg', '{"t": 1, "dir": "recv", "kind": "event"}', 'no msg'],
    [
      'command without execute',
      '{"t": 1, "dir": "send", "kind": "command", "msg": {"id": "c1"}}',
      'command without execute',
    ],
    ['fractional seq', '{"seq": 1.5, "t": 1, "dir": "recv", "kind": "event", "msg": {}}', 'seq is not an integer'],
  ])('refuses %s', (_what, line, detail) => {
    expect(parseTrace([greeting, line].join('\n'))._unsafeUnwrapErr()).toEqual({ kind: 'shape', line: 2, detail });
  });
});

describe('readTraceFile', () => {
  it('reads a recorded trace', async () => {
    const lines = (await readTraceFile(tracePath('e1_cancel_running')))._unsafeUnwrap();
    expect(lines[0]!.kind).toBe('greeting');
    expect(lines.some((l) => l.kind === 'command')).toBe(true);
  });

  it('makes a missing file an io error value', async () => {
    const e = (await readTraceFile('/nonexistent/trace.jsonl'))._unsafeUnwrapErr();
    expect(e.kind).toBe('io');
    expect(e.detail).toContain('ENOENT');
  });
});
