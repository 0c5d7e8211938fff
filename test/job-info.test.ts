/**
 * translateJobInfo: what virDomainGetBlockJobInfo reports for a copy job, with every quirk of
 * qemuBlockJobInfoTranslate (libvirt-api.md in the reference notes §1.6, §2.9).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HypervisorJobInfo } from '../src/core/hypervisor-port.js';
import { BandwidthFlags } from '../src/core/flags.js';
import { translateJobInfo } from '../src/core/validate.js';

const MiB = 2 ** 20;

const job = (over: Partial<HypervisorJobInfo>): HypervisorJobInfo => ({
  jobId: 'copy-vda',
  status: 'running',
  offset: 0,
  len: 0,
  speed: 0,
  ready: false,
  paused: false,
  ioStatus: 'ok',
  ...over,
});

describe('translateJobInfo', () => {
  it.each<[string, HypervisorJobInfo | null, { cur: number; end: number }]>([
    ['job missing from QEMU (finished, not yet processed): 0/1', null, { cur: 0, end: 1 }],
    ['progress: cur = offset, end = len', job({ offset: 100, len: 400 }), { cur: 100, end: 400 }],
    ['0/0 not ready: end = 1', job({}), { cur: 0, end: 1 }],
    ['0/0 ready (empty disk): 1/1', job({ ready: true, status: 'ready' }), { cur: 1, end: 1 }],
    ['all copied but not ready: cur = end − 1', job({ offset: 400, len: 400 }), { cur: 399, end: 400 }],
    ['1/1 not ready: 0/1', job({ offset: 1, len: 1 }), { cur: 0, end: 1 }],
    ['all copied and ready: cur = end', job({ offset: 400, len: 400, ready: true }), { cur: 400, end: 400 }],
    [
      'ready while still behind (new guest writes): as reported',
      job({ offset: 300, len: 400, ready: true }),
      {
        cur: 300,
        end: 400,
      },
    ],
  ])('%s', (_name, info, want) => {
    expect(translateJobInfo(info, 0)._unsafeUnwrap()).toEqual({ type: 2, bandwidth: 0, ...want });
  });

  it.each([
    [0, 0],
    [1, 1],
    [MiB - 1, 1],
    [MiB, 1],
    [MiB + 1, 2],
    [10 * MiB, 10],
    [9223372036853727232, 8796093022207],
  ])('speed %d bytes/s is reported as %d MiB/s (rounded up)', (speed, mib) => {
    expect(translateJobInfo(job({ speed, offset: 1, len: 2 }), 0)._unsafeUnwrap().bandwidth).toBe(mib);
  });

  it('BANDWIDTH_BYTES: bytes/s as QEMU reports them', () => {
    expect(translateJobInfo(job({ speed: MiB + 1 }), BandwidthFlags.BYTES)._unsafeUnwrap().bandwidth).toBe(MiB + 1);
  });

  it('a job missing from QEMU reports bandwidth 0', () => {
    expect(translateJobInfo(null, BandwidthFlags.BYTES)._unsafeUnwrap()).toEqual({
      type: 2,
      bandwidth: 0,
      cur: 0,
      end: 1,
    });
  });

  it('a bandwidth that cannot be represented exactly: OVERFLOW', () => {
    const error = translateJobInfo(job({ speed: 2 ** 60 }), BandwidthFlags.BYTES)._unsafeUnwrapErr();
    expect([error.code, error.number, error.message]).toEqual([
      'VIR_ERR_OVERFLOW',
      82,
      'numerical overflow: bandwidth 1152921504606846976 cannot be represented in result',
    ]);
  });

  it.each([
    [2, '2'],
    [3, '2'],
    [0x10, '10'],
  ])('unknown flags %d: the unknown bits 0x%s, even with no job', (flags, hex) => {
    for (const info of [null, job({})]) {
      const error = translateJobInfo(info, flags)._unsafeUnwrapErr();
      expect([error.code, error.number, error.message]).toEqual([
        'VIR_ERR_INVALID_ARG',
        8,
        `invalid argument: unsupported flags (0x${hex}) in function virDomainGetBlockJobInfo`,
      ]);
    }
  });

  it('property: cur ≤ end, end ≥ 1, and cur == end only once QEMU says ready', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 0, max: 2 ** 40 })
          .chain((len) =>
            fc.record({ len: fc.constant(len), offset: fc.integer({ min: 0, max: len }), ready: fc.boolean() }),
          ),
        ({ len, offset, ready }) => {
          const info = translateJobInfo(job({ len, offset, ready }), 0)._unsafeUnwrap();
          expect(info.end).toBeGreaterThanOrEqual(1);
          expect(info.cur).toBeLessThanOrEqual(info.end);
          expect(info.cur).toBeGreaterThanOrEqual(0);
          if (info.cur === info.end) expect(ready).toBe(true);
          // Only the two documented adjustments ever change cur.
          expect(info.cur === offset || info.cur === offset - 1 || (offset === 0 && len === 0)).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
