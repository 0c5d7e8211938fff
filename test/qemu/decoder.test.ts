/**
 * Unit tests of the QMP line decoder: fragmentation, several messages per chunk, and bad input
 * (malformed, wrong-typed, oversized, truncated) as error values followed by recovery.
 */
import { describe, expect, it } from 'vitest';
import { QmpDecoder, type QmpDecodeResult } from '../../adapters/qmp/decoder.js';

const greeting =
  '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}\r\n';
const created =
  '{"timestamp": {"seconds": 1795737506, "microseconds": 802965}, "event": "JOB_STATUS_CHANGE", "data": {"status": "created", "id": "mirror-a"}}\r\n';
const reply = '{"return": {}, "id": "c13"}\r\n';
const error = '{"id": "c2", "error": {"class": "GenericError", "desc": "Job not found"}}\r\n';

const values = (rs: QmpDecodeResult[]) => rs.map((r) => (r.isOk() ? r.value : { decodeError: r.error.kind }));

describe('QmpDecoder', () => {
  it('decodes the four message kinds with their fields', () => {
    const d = new QmpDecoder();
    expect(values(d.push(greeting + created + reply + error))).toEqual([
      {
        type: 'greeting',
        version: { major: 7, minor: 2, micro: 22 },
        package: 'Debian 1:7.2+dfsg-7+deb12u18+b3',
        capabilities: ['oob'],
      },
      {
        type: 'event',
        event: 'JOB_STATUS_CHANGE',
        data: { status: 'created', id: 'mirror-a' },
        timestamp: { seconds: 1795737506, microseconds: 802965 },
      },
      { type: 'return', id: 'c13', value: {} },
      { type: 'error', id: 'c2', errorClass: 'GenericError', desc: 'Job not found' },
    ]);
  });

  it('reassembles lines split at every byte boundary, including inside UTF-8 sequences', () => {
    const text = created + '{"return": {"desc": "naïve ✓ ünïcödé"}, "id": 7}\n' + reply;
    const bytes = Buffer.from(text, 'utf8');
    for (const step of [1, 2, 3, 7, 64]) {
      const d = new QmpDecoder();
      const out: QmpDecodeResult[] = [];
      for (let i = 0; i < bytes.length; i += step) out.push(...d.push(bytes.subarray(i, i + step)));
      expect(values(out).map((m) => ('type' in m ? m.type : m))).toEqual(['event', 'return', 'return']);
      const second = out[1];
      expect(second?.isOk() && second.value.type === 'return' && second.value.value).toEqual({
        desc: 'naïve ✓ ünïcödé',
      });
    }
  });

  it('keeps a partial line until its newline arrives', () => {
    const d = new QmpDecoder();
    expect(d.push('{"return": {}, ')).toEqual([]);
    expect(d.push('"id": "x1"}')).toEqual([]);
    expect(values(d.push('\n'))).toEqual([{ type: 'return', id: 'x1', value: {} }]);
  });

  it('reports malformed JSON as an error value and decodes the next line', () => {
    const d = new QmpDecoder();
    const out = d.push('{"return": {}, "id": \n' + reply);
    expect(values(out)).toEqual([{ decodeError: 'malformed' }, { type: 'return', id: 'c13', value: {} }]);
    const first = out[0];
    expect(first?.isErr() && first.error.excerpt).toBe('{"return": {}, "id": ');
  });

  it('reports wrong-typed lines (valid JSON, not QMP) and recovers', () => {
    const d = new QmpDecoder();
    const bad = [
      '[1,2,3]',
      '"just a string"',
      'null',
      '{"hello": 1}',
      '{"error": {"class": 5, "desc": "x"}, "id": 1}',
      '{"error": "text"}',
      '{"event": 42, "timestamp": {"seconds": 1, "microseconds": 2}}',
      '{"event": "X", "data": [1], "timestamp": {"seconds": 1, "microseconds": 2}}',
      '{"event": "X", "data": {}}',
      '{"event": "X", "data": {}, "timestamp": {"seconds": "1", "microseconds": 2}}',
      '{"QMP": {"version": {}, "capabilities": []}}',
      '{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": [1]}}',
    ];
    const out = d.push(bad.join('\n') + '\n' + created);
    expect(values(out)).toEqual([
      ...bad.map(() => ({ decodeError: 'wrong-type' })),
      expect.objectContaining({ type: 'event' }),
    ]);
  });

  it('accepts an event without data (QEMU omits it for some events)', () => {
    const d = new QmpDecoder();
    expect(values(d.push('{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 0}}\n'))).toEqual([
      { type: 'event', event: 'STOP', data: {}, timestamp: { seconds: 1, microseconds: 0 } },
    ]);
  });

  it('rejects an oversized line once, skips the rest of it across chunks, then recovers', () => {
    const d = new QmpDecoder({ maxLineBytes: 100 });
    const huge = '{"return": "' + 'x'.repeat(250) + '"}';
    const out: QmpDecodeResult[] = [];
    out.push(...d.push(huge.slice(0, 60)));
    expect(out).toEqual([]);
    out.push(...d.push(huge.slice(60, 180)));
    out.push(...d.push(huge.slice(180) + '\n' + reply));
    expect(values(out)).toEqual([{ decodeError: 'oversized' }, { type: 'return', id: 'c13', value: {} }]);
    // A complete over-long line in one chunk, between two good lines.
    expect(values(d.push(reply + huge + '\n' + reply))).toEqual([
      { type: 'return', id: 'c13', value: {} },
      { decodeError: 'oversized' },
      { type: 'return', id: 'c13', value: {} },
    ]);
  });

  it("keeps an oversized line's head and tail (where QEMU writes a reply's id)", () => {
    const d = new QmpDecoder({ maxLineBytes: 1000 });
    const line = '{"return": [' + Array.from({ length: 500 }, (_, i) => i).join(', ') + '], "id": "bc42"}\r';
    const out: QmpDecodeResult[] = [];
    for (let i = 0; i < line.length; i += 333) out.push(...d.push(line.slice(i, i + 333)));
    expect(out).toEqual([]);
    out.push(...d.push('\n'));
    const e = out[0];
    expect(out).toHaveLength(1);
    expect(e?.isErr() && e.error).toMatchObject({ kind: 'oversized', detail: 'line longer than 1000 bytes' });
    expect(e?.isErr() && e.error.excerpt).toBe(line.slice(0, 200));
    expect(e?.isErr() && e.error.tail).toBe(line.slice(-200, -1)); // the last 200 bytes, without the \r
    // An oversized line cut off by the end of the stream is reported as oversized.
    d.push('{"return": "' + 'x'.repeat(2000));
    expect(values(d.end())).toEqual([{ decodeError: 'oversized' }]);
  });

  it('accepts a line of exactly the cap and defaults the cap to 1 MiB', () => {
    const line = '{"return": "' + 'y'.repeat(86) + '"}';
    expect(line.length).toBe(100);
    expect(values(new QmpDecoder({ maxLineBytes: 100 }).push(line + '\n'))[0]).toMatchObject({ type: 'return' });
    const big = '{"return": "' + 'z'.repeat(1024 * 1024) + '"}\n';
    expect(values(new QmpDecoder().push(big))).toEqual([{ decodeError: 'oversized' }]);
    const fits = '{"return": "' + 'z'.repeat(1024 * 1024 - 100) + '"}\n';
    expect(values(new QmpDecoder().push(fits))[0]).toMatchObject({ type: 'return' });
  });

  it('ignores blank lines and reports a line cut off by the end of the stream', () => {
    const d = new QmpDecoder();
    expect(values(d.push('\n\r\n' + reply + '{"return": {}, "i'))).toEqual([{ type: 'return', id: 'c13', value: {} }]);
    expect(values(d.end())).toEqual([{ decodeError: 'truncated' }]);
    expect(d.end()).toEqual([]);
    // after end() the decoder starts clean
    expect(values(d.push(reply))).toEqual([{ type: 'return', id: 'c13', value: {} }]);
  });

  it('never throws on arbitrary bytes', () => {
    const d = new QmpDecoder({ maxLineBytes: 64 });
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed);
    for (let i = 0; i < 2000; i++) {
      const chunk = Buffer.alloc(rnd() % 40, 0).map(() => rnd() % 256);
      expect(() => d.push(chunk)).not.toThrow();
    }
    expect(() => d.end()).not.toThrow();
    expect(values(d.push('\n' + reply)).at(-1)).toEqual({ type: 'return', id: 'c13', value: {} });
  });
});
