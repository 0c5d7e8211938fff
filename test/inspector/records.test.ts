// Inspector records: JSON-safe conversion, the JSON Lines export format, and the progress meter.
import { describe, expect, it } from 'vitest';
import { ProgressMeter } from '../../src/inspector/progress.js';
import type { InspectorRecord } from '../../src/inspector/records.js';
import { headerRecord, parseJsonl, toJsonLine, toJsonSafe } from '../../src/inspector/records.js';

describe('toJsonSafe', () => {
  it('keeps plain data and drops what JSON cannot hold', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(
      toJsonSafe({
        n: 1,
        s: 'x',
        b: true,
        nil: null,
        u: undefined,
        f: () => 1,
        big: 10n,
        inf: Infinity,
        err: new TypeError('boom'),
        list: [1, undefined, 'y'],
        cyclic,
      }),
    ).toEqual({
      n: 1,
      s: 'x',
      b: true,
      nil: null,
      big: '10',
      inf: 'Infinity',
      err: { name: 'TypeError', message: 'boom' },
      list: [1, null, 'y'],
      cyclic: { a: 1, self: '[circular]' },
    });
  });

  it('shows actor references by id and cuts very deep values', () => {
    expect(toJsonSafe({ ref: { id: 'child', sessionId: 'x:1', send() {} } })).toEqual({ ref: '[actor child]' });
    let deep: unknown = 'bottom';
    for (let i = 0; i < 20; i++) deep = { deep };
    expect(JSON.stringify(toJsonSafe(deep))).toContain('"[…]"');
  });
});

describe('JSON Lines export', () => {
  const records: InspectorRecord[] = [
    headerRecord('blockCopyJob', new Date('2026-11-27T00:00:00Z')),
    {
      kind: 'inspection',
      seq: 1,
      time: 1,
      jobId: 'j',
      type: '@xstate.snapshot',
      actor: 'x:0',
      root: true,
      snapshot: { status: 'active', value: { mirroring: 'running' }, state: 'mirroring.running' },
    },
    { kind: 'progress', seq: 2, time: 2, jobId: 'j', cur: 5, end: 10, speed: 0, rate: 100, etaMs: 50 },
  ];

  it('round-trips', () => {
    const text = records.map(toJsonLine).join('');
    expect(text.split('\n')).toHaveLength(records.length + 1);
    expect(parseJsonl(text)._unsafeUnwrap()).toEqual(records);
    expect(parseJsonl(`\n${text}\n\n`)._unsafeUnwrap()).toEqual(records);
  });

  it('names the bad line', () => {
    expect(parseJsonl('{"kind":"progress"}\nnot json\n')._unsafeUnwrapErr()).toBe('line 2: not JSON');
    expect(parseJsonl('{"kind":"other"}')._unsafeUnwrapErr()).toBe('line 1: not an inspector record');
    expect(parseJsonl('{"kind":"header","format":"blockcopy-inspection","version":2}')._unsafeUnwrapErr()).toMatch(
      /line 1: unsupported format/,
    );
  });
});

describe('ProgressMeter', () => {
  it('measures the copy rate and the time until the gap closes', () => {
    const meter = new ProgressMeter(3000);
    expect(meter.push({ cur: 0, end: 1000, at: 0 })).toEqual({ rate: null, etaMs: null });
    expect(meter.push({ cur: 100, end: 1000, at: 1000 })).toEqual({ rate: 100, etaMs: 9000 });
    expect(meter.push({ cur: 200, end: 1000, at: 2000 })).toEqual({ rate: 100, etaMs: 8000 });
  });

  it('counts guest writes: the gap shrinks slower than the copy runs', () => {
    const meter = new ProgressMeter(3000);
    meter.push({ cur: 0, end: 1000, at: 0 });
    // 100 B/s copied, 50 B/s written by the guest: 900 left, closing at 50 B/s.
    expect(meter.push({ cur: 100, end: 1050, at: 1000 })).toEqual({ rate: 100, etaMs: 19000 });
  });

  it('says null when the mirror falls behind, and 0 once caught up', () => {
    const meter = new ProgressMeter(3000);
    meter.push({ cur: 0, end: 1000, at: 0 });
    expect(meter.push({ cur: 100, end: 1200, at: 1000 }).etaMs).toBeNull();
    expect(meter.push({ cur: 1200, end: 1200, at: 2000 }).etaMs).toBe(0);
  });

  it('averages over the window only and restarts when time goes back', () => {
    const meter = new ProgressMeter(2000);
    meter.push({ cur: 0, end: 10_000, at: 0 });
    meter.push({ cur: 1000, end: 10_000, at: 1000 });
    meter.push({ cur: 2000, end: 10_000, at: 2000 });
    // Slower now: the first second drops out of the window.
    expect(meter.push({ cur: 2100, end: 10_000, at: 3000 }).rate).toBe((2100 - 1000) / 2);
    expect(meter.push({ cur: 0, end: 10_000, at: 10 })).toEqual({ rate: null, etaMs: null });
  });
});
