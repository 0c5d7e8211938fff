/** Fuzzing the QMP decoder: truncated, oversized, wrong-typed, unknown-event, reordered input. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { QmpDecodeResult } from '../../adapters/qmp/decoder.js';
import { QmpDecoder, decodeLine } from '../../adapters/qmp/decoder.js';

const KINDS = ['malformed', 'wrong-type', 'oversized', 'truncated'];

function checkResult(r: QmpDecodeResult): void {
  if (r.isErr()) {
    expect(KINDS).toContain(r.error.kind);
    expect(typeof r.error.detail).toBe('string');
    expect(r.error.excerpt.length).toBeLessThanOrEqual(200);
  } else expect(['greeting', 'return', 'error', 'event']).toContain(r.value.type);
}

const ts = fc.record({ seconds: fc.nat(), microseconds: fc.nat({ max: 999_999 }) });
/** Well-formed QMP messages, including events nobody knows. */
const message = fc.oneof(
  fc.record({ return: fc.jsonValue(), id: fc.option(fc.string(), { nil: undefined }) }),
  fc.record({ error: fc.record({ class: fc.string(), desc: fc.string() }), id: fc.jsonValue() }),
  fc.record({
    event: fc.oneof(fc.constantFrom('BLOCK_JOB_READY', 'JOB_STATUS_CHANGE', 'BLOCK_JOB_COMPLETED'), fc.string()),
    data: fc.dictionary(fc.string(), fc.jsonValue()),
    timestamp: ts,
  }),
);
/** Shapes that are JSON but not QMP, or QMP with wrong types. */
const wrongTyped = fc.oneof(
  fc.jsonValue(),
  fc.record({ event: fc.oneof(fc.integer(), fc.constant(null)), data: fc.jsonValue(), timestamp: fc.jsonValue() }),
  fc.record({ error: fc.jsonValue() }),
  fc.record({ QMP: fc.jsonValue() }),
  fc.record({ event: fc.string(), data: fc.array(fc.jsonValue()), timestamp: ts }),
);

describe('QMP decoder under hostile input', () => {
  it('arbitrary bytes in arbitrary chunks: never throws, every result typed', () => {
    let lines = 0;
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }),
        fc.nat({ max: 300 }),
        (chunks, cap) => {
          const d = new QmpDecoder({ maxLineBytes: cap + 1 });
          for (const c of chunks)
            for (const r of d.push(c)) {
              checkResult(r);
              lines++;
            }
          for (const r of d.end()) checkResult(r);
        },
      ),
      { numRuns: 2_000 },
    );
    expect(lines).toBeGreaterThan(0);
  });

  it('fragmentation does not matter: any split of a stream decodes as its lines do', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(message, wrongTyped).map((m) => JSON.stringify(m) ?? 'null'),
          { minLength: 1, maxLength: 10 },
        ),
        fc.array(fc.nat(), { maxLength: 10 }),
        (lines, cuts) => {
          const stream = Buffer.from(lines.map((l) => `${l}\n`).join(''), 'utf8');
          const expected = lines.map((l) => decodeLine(l)).filter((r) => r !== null);
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
          const d = new QmpDecoder();
          const got: QmpDecodeResult[] = [];
          let last = 0;
          // Cutting inside a UTF-8 sequence included: the decoder keeps bytes, not strings.
          for (const p of [...points, stream.length]) {
            got.push(...d.push(stream.subarray(last, p)));
            last = p;
          }
          got.push(...d.end());
          expect(got.map((r) => (r.isOk() ? r.value : r.error.kind))).toEqual(
            expected.map((r) => (r.isOk() ? r.value : r.error.kind)),
          );
          got.forEach(checkResult);
        },
      ),
      { numRuns: 1_000 },
    );
  });

  it('oversized lines become one typed error and decoding goes on with the next line', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 0, max: 400 }), message, (cap, extra, next) => {
        const d = new QmpDecoder({ maxLineBytes: cap });
        const big = `{"return": "${'x'.repeat(cap + extra)}", "id": "the-id"}`;
        const small = JSON.stringify(next);
        const out = [...d.push(`${big}\n`), ...d.push(`${small}\n`)];
        expect(out[0]?.isErr() && out[0].error.kind).toBe('oversized');
        // The tail keeps the reply's id, short lines included (a negative subarray start once
        // cut it to a few bytes).
        if (out[0]?.isErr()) expect(out[0].error.tail).toContain('the-id');
        // The following line is decoded normally if it fits, or is oversized too.
        expect(out).toHaveLength(2);
        checkResult(out[1]!);
        if (Buffer.byteLength(small) <= cap) expect(out[1]!.isOk()).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('a stream cut mid-line is reported truncated; wrong-typed lines are wrong-type', () => {
    fc.assert(
      fc.property(message, fc.nat(), (m, cut) => {
        const line = JSON.stringify(m);
        const d = new QmpDecoder();
        const prefix = line.slice(0, 1 + (cut % line.length));
        expect(d.push(prefix)).toEqual([]);
        const end = d.end();
        expect(end).toHaveLength(1);
        const first = end[0]!;
        expect(first.isErr() && first.error.kind).toBe('truncated');
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(wrongTyped, (m) => {
        const r = decodeLine(JSON.stringify(m) ?? 'null');
        if (r !== null) checkResult(r);
      }),
      { numRuns: 1_000 },
    );
  });
});
