/**
 * The facts-free checks of block copy: virDomainBlockRebase, virDomainBlockCopy,
 * virDomainBlockJobAbort and virDomainBlockJobSetSpeed arguments, in libvirt's order
 * (libvirt-api.md in the reference notes §1.3–§1.7, §2.1–§2.3, §2.6, §2.9). Every refusal is checked by
 * code, number and full message, written out literally.
 */
import fc from 'fast-check';
import type { Result } from 'neverthrow';
import { describe, expect, it } from 'vitest';
import type { BlockCopyError } from '../src/core/errors.js';
import { ErrorNumber } from '../src/core/errors.js';
import { AbortFlags, BandwidthFlags, CopyFlags, RebaseFlags } from '../src/core/flags.js';
import {
  validateAbort,
  validateCopy,
  validateRebase,
  validateSetSpeed,
  type CopyArgs,
  type RebaseArgs,
} from '../src/core/validate.js';

const { SHALLOW, REUSE_EXT, COPY_RAW, COPY, RELATIVE, COPY_DEV, BANDWIDTH_BYTES } = RebaseFlags;

type Expected = readonly [code: BlockCopyError['code'], number: number, message: string];

function expectError<T>(result: Result<T, BlockCopyError>, [code, number, message]: Expected): void {
  expect(result.isErr()).toBe(true);
  if (result.isErr()) {
    expect({ code: result.error.code, number: result.error.number, message: result.error.message }).toEqual({
      code,
      number,
      message,
    });
    expect(message.endsWith(result.error.detail)).toBe(true);
  }
}

function expectOk<T>(result: Result<T, BlockCopyError>): T {
  if (result.isErr()) throw new Error(`expected ok, got ${result.error.message}`);
  return result.value;
}

const rebase = (over: Partial<RebaseArgs>): RebaseArgs => ({
  domain: 'vm1',
  disk: 'vda',
  base: '/images/copy.qcow2',
  bandwidth: 0,
  flags: COPY,
  ...over,
});

const copy = (over: Partial<CopyArgs>): CopyArgs => ({
  domain: 'vm1',
  disk: 'vda',
  destination: { path: '/images/copy.qcow2' },
  flags: 0,
  ...over,
});

const REQUIRES_COPY: Expected = ['VIR_ERR_INVALID_ARG', 8, 'invalid argument: use of flags requires a copy job'];
const MIB_OVERFLOW: Expected = [
  'VIR_ERR_OVERFLOW',
  82,
  'numerical overflow: bandwidth must be less than 8796093022207',
];
const BYTES_OVERFLOW: Expected = [
  'VIR_ERR_INVALID_ARG',
  8,
  "invalid argument: bandwidth must be less than '9223372036854775807' bytes/s (8796093022207 MiB/s)",
];
const RELATIVE_PATH: Expected = [
  'VIR_ERR_INVALID_ARG',
  8,
  'invalid argument: absolute path must be used as block copy target',
];
const RELATIVE_BACKING: Expected = [
  'VIR_ERR_ARGUMENT_UNSUPPORTED',
  74,
  'argument unsupported: Relative backing during copy not supported yet',
];
const BLOCK_PULL: Expected = [
  'VIR_ERR_ARGUMENT_UNSUPPORTED',
  74,
  'argument unsupported: block pull (virDomainBlockRebase without VIR_DOMAIN_BLOCK_REBASE_COPY) is not a copy request: validate it with validateRebasePull',
];
const unsupported = (hex: string, fn: string): Expected => [
  'VIR_ERR_INVALID_ARG',
  8,
  `invalid argument: unsupported flags (0x${hex}) in function ${fn}`,
];

describe('validateRebase: the request it builds', () => {
  it('COPY alone: full copy, format inherited later, bandwidth MiB/s scaled to bytes/s', () => {
    expect(expectOk(validateRebase(rebase({ bandwidth: 10 })))).toEqual({
      api: 'virDomainBlockRebase',
      domain: 'vm1',
      disk: 'vda',
      destination: '/images/copy.qcow2',
      format: undefined,
      shallow: false,
      reuseExternal: false,
      transientJob: false,
      synchronousWrites: false,
      bandwidth: 10 * 1024 * 1024,
      granularity: 0,
      bufSize: 0,
      onTargetError: 'report',
      onSourceError: 'report',
      flags: COPY,
    });
  });

  it.each([
    ['COPY', COPY, { format: undefined, shallow: false, reuseExternal: false }],
    ['COPY|COPY_RAW', COPY | COPY_RAW, { format: 'raw', shallow: false, reuseExternal: false }],
    ['COPY|SHALLOW', COPY | SHALLOW, { format: undefined, shallow: true, reuseExternal: false }],
    ['COPY|REUSE_EXT', COPY | REUSE_EXT, { format: undefined, shallow: false, reuseExternal: true }],
    ['COPY|REUSE_EXT|SHALLOW', COPY | REUSE_EXT | SHALLOW, { format: undefined, shallow: true, reuseExternal: true }],
    [
      'COPY|REUSE_EXT|SHALLOW|COPY_RAW',
      COPY | REUSE_EXT | SHALLOW | COPY_RAW,
      { format: 'raw', shallow: true, reuseExternal: true },
    ],
    ['COPY|SHALLOW|COPY_RAW', COPY | SHALLOW | COPY_RAW, { format: 'raw', shallow: true, reuseExternal: false }],
    ['COPY|REUSE_EXT|COPY_RAW', COPY | REUSE_EXT | COPY_RAW, { format: 'raw', shallow: false, reuseExternal: true }],
  ])('seed combination %s is accepted as %o', (_name, flags, want) => {
    const request = expectOk(validateRebase(rebase({ flags })));
    expect({ format: request.format, shallow: request.shallow, reuseExternal: request.reuseExternal }).toEqual(want);
    // COPY_RAW (1<<2) aliases COPY_TRANSIENT_JOB and COPY (1<<3) aliases SYNCHRONOUS_WRITES: no leak.
    expect(request.transientJob).toBe(false);
    expect(request.synchronousWrites).toBe(false);
    expect(request.flags).toBe(flags);
  });

  it('passes I/O error policies through', () => {
    const request = expectOk(validateRebase(rebase({ options: { onTargetError: 'stop', onSourceError: 'ignore' } })));
    expect([request.onTargetError, request.onSourceError]).toEqual(['stop', 'ignore']);
  });

  it('refuses an unknown I/O error policy', () => {
    expectError(validateRebase(rebase({ options: { onTargetError: 'bogus' as never } })), [
      'VIR_ERR_INVALID_ARG',
      8,
      "invalid argument: invalid on-target-error policy 'bogus', expected one of report, stop, ignore, enospc",
    ]);
  });
});

describe('validateRebase: library checks', () => {
  it('disk NULL', () => {
    expectError(validateRebase(rebase({ disk: null })), [
      'VIR_ERR_INVALID_ARG',
      8,
      'invalid argument: disk in virDomainBlockRebase must not be NULL',
    ]);
  });

  it('COPY with base NULL', () => {
    expectError(validateRebase(rebase({ base: null })), [
      'VIR_ERR_INVALID_ARG',
      8,
      'invalid argument: base in virDomainBlockRebase must not be NULL',
    ]);
  });

  const copyOnly = { SHALLOW, REUSE_EXT, COPY_RAW, COPY_DEV };
  const combos: [string, number][] = [];
  for (let mask = 1; mask < 16; mask++) {
    const names = Object.entries(copyOnly).filter((_, i) => (mask & (1 << i)) !== 0);
    combos.push([names.map(([n]) => n).join('|'), names.reduce((acc, [, bit]) => acc | bit, 0)]);
  }
  it.each(combos)('%s without COPY: "use of flags requires a copy job"', (_name, flags) => {
    expectError(validateRebase(rebase({ flags })), REQUIRES_COPY);
    // base NULL is allowed without COPY (a pull); the mask rule still fires.
    expectError(validateRebase(rebase({ flags, base: null })), REQUIRES_COPY);
  });

  it('RELATIVE and BANDWIDTH_BYTES are pull flags: not in the "requires a copy job" mask', () => {
    expectError(validateRebase(rebase({ flags: RELATIVE | BANDWIDTH_BYTES, base: null })), BLOCK_PULL);
  });

  it('no COPY at all is a block pull, not a copy request (the engine plans it in core/pull.ts)', () => {
    expectError(validateRebase(rebase({ flags: 0, base: null })), BLOCK_PULL);
  });
});

describe('validateRebase: virCheckFlags', () => {
  it.each([
    [COPY | (1 << 7), '80'],
    [COPY | (1 << 7) | (1 << 12), '1080'],
    [(COPY | 0x80000000) >>> 0, '80000000'],
    [0xffffffff, 'ffffff80'],
  ])('flags %d: the message carries the unknown bits only', (flags, hex) => {
    expectError(validateRebase(rebase({ flags })), unsupported(hex, 'virDomainBlockRebase'));
  });

  it.each([
    // What JS's `|` makes of bit 31, and what C makes of a negative int: the same bits.
    [COPY | 0x80000000, '80000000'],
    [-1, 'ffffff80'],
  ])('int32 flags %d are read as unsigned int', (flags, hex) => {
    expectError(validateRebase(rebase({ flags })), unsupported(hex, 'virDomainBlockRebase'));
  });

  it.each([-(2 ** 31) - 1, 1.5, 2 ** 32, Number.NaN])('flags %s is not an unsigned int', (flags) => {
    expectError(validateRebase(rebase({ flags })), [
      'VIR_ERR_INVALID_ARG',
      8,
      `invalid argument: flags must be an unsigned 32-bit integer, not '${String(flags)}'`,
    ]);
  });
});

describe('validateRebase: bandwidth', () => {
  it('8796093022207 MiB/s is the largest accepted, exactly scaled', () => {
    expect(expectOk(validateRebase(rebase({ bandwidth: 8796093022207 }))).bandwidth).toBe(9223372036853727232);
    expect(BigInt(8796093022207) * 2n ** 20n).toBe(9223372036853727232n);
  });

  it('8796093022208 MiB/s overflows', () => {
    expectError(validateRebase(rebase({ bandwidth: 8796093022208 })), MIB_OVERFLOW);
  });

  it('BANDWIDTH_BYTES: no scaling, and no MiB limit', () => {
    expect(
      expectOk(validateRebase(rebase({ flags: COPY | BANDWIDTH_BYTES, bandwidth: 8796093022208 }))).bandwidth,
    ).toBe(8796093022208);
  });

  it('BANDWIDTH_BYTES: 2^63 − 1024 (the largest double ≤ LLONG_MAX) passes, 2^63 does not', () => {
    expect(
      expectOk(validateRebase(rebase({ flags: COPY | BANDWIDTH_BYTES, bandwidth: 2 ** 63 - 1024 }))).bandwidth,
    ).toBe(2 ** 63 - 1024);
    // LLONG_MAX is not a double: 9223372036854775807 reads as 2^63, above LLONG_MAX.
    const llongMax = Number('9223372036854775807');
    expect(llongMax).toBe(2 ** 63);
    expectError(validateRebase(rebase({ flags: COPY | BANDWIDTH_BYTES, bandwidth: llongMax })), BYTES_OVERFLOW);
  });

  it.each([-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY])('bandwidth %s is refused', (bandwidth) => {
    expectError(validateRebase(rebase({ bandwidth })), [
      'VIR_ERR_INVALID_ARG',
      8,
      `invalid argument: bandwidth must be a non-negative integer, not '${String(bandwidth)}'`,
    ]);
  });

  it('0 is unlimited', () => {
    expect(expectOk(validateRebase(rebase({ bandwidth: 0 }))).bandwidth).toBe(0);
  });
});

describe('validateRebase: copy-only rules', () => {
  it('RELATIVE with COPY', () => {
    expectError(validateRebase(rebase({ flags: COPY | RELATIVE })), RELATIVE_BACKING);
  });

  it("COPY_DEV: the destination is a block device (libvirt's type='block'); without it a file", () => {
    expect(validateRebase(rebase({ flags: COPY | COPY_DEV }))._unsafeUnwrap().blockDevice).toBe(true);
    expect(validateRebase(rebase({ flags: COPY }))._unsafeUnwrap().blockDevice ?? false).toBe(false);
  });

  it.each(['copy.qcow2', './copy.qcow2', '../images/copy.qcow2', 'images/copy.qcow2', ' /images/copy.qcow2'])(
    'relative destination %j',
    (base) => {
      expectError(validateRebase(rebase({ base })), RELATIVE_PATH);
    },
  );

  it('empty destination path', () => {
    expectError(validateRebase(rebase({ base: '' })), [
      'VIR_ERR_INVALID_ARG',
      8,
      'invalid argument: block copy target path must not be empty',
    ]);
  });

  it('NUL byte in the destination path', () => {
    expectError(validateRebase(rebase({ base: '/images/copy\0.qcow2' })), [
      'VIR_ERR_INVALID_ARG',
      8,
      'invalid argument: block copy target path must not contain NUL bytes',
    ]);
  });
});

describe('validateRebase: order of checks', () => {
  it.each<[string, Partial<RebaseArgs>, Expected]>([
    [
      'disk NULL before unknown flags',
      { disk: null, flags: COPY | (1 << 9) },
      ['VIR_ERR_INVALID_ARG', 8, 'invalid argument: disk in virDomainBlockRebase must not be NULL'],
    ],
    [
      'base NULL before unknown flags',
      { base: null, flags: COPY | (1 << 9) },
      ['VIR_ERR_INVALID_ARG', 8, 'invalid argument: base in virDomainBlockRebase must not be NULL'],
    ],
    ['"requires a copy job" (library) before unknown flags (driver)', { flags: SHALLOW | (1 << 9) }, REQUIRES_COPY],
    ['unknown flags before the block-pull refusal', { flags: 1 << 9 }, unsupported('200', 'virDomainBlockRebase')],
    [
      'unknown flags before bandwidth overflow',
      { flags: COPY | (1 << 9), bandwidth: 2 ** 60 },
      unsupported('200', 'virDomainBlockRebase'),
    ],
    ['block pull before a bad bandwidth', { flags: 0, bandwidth: -1 }, BLOCK_PULL],
    ['MiB overflow before RELATIVE', { flags: COPY | RELATIVE, bandwidth: 8796093022208 }, MIB_OVERFLOW],
    ['RELATIVE before COPY_DEV', { flags: COPY | RELATIVE | COPY_DEV }, RELATIVE_BACKING],
    ['RELATIVE before a relative path', { flags: COPY | RELATIVE, base: 'copy.qcow2' }, RELATIVE_BACKING],
    [
      'relative path before bytes overflow',
      { flags: COPY | BANDWIDTH_BYTES, bandwidth: 2 ** 64, base: 'copy.qcow2' },
      RELATIVE_PATH,
    ],
  ])('%s', (_name, over, expected) => {
    expectError(validateRebase(rebase(over)), expected);
  });
});

describe('validateCopy', () => {
  it('builds the request: bytes/s, typed parameters, TRANSIENT_JOB, SYNCHRONOUS_WRITES', () => {
    const request = expectOk(
      validateCopy(
        copy({
          destination: { path: '/images/copy.raw', format: 'raw' },
          params: { bandwidth: 1000, granularity: 65536, bufSize: 1 << 20 },
          flags: CopyFlags.SHALLOW | CopyFlags.REUSE_EXT | CopyFlags.TRANSIENT_JOB | CopyFlags.SYNCHRONOUS_WRITES,
          options: { onSourceError: 'stop' },
        }),
      ),
    );
    expect(request).toEqual({
      api: 'virDomainBlockCopy',
      domain: 'vm1',
      disk: 'vda',
      destination: '/images/copy.raw',
      format: 'raw',
      shallow: true,
      reuseExternal: true,
      transientJob: true,
      synchronousWrites: true,
      bandwidth: 1000,
      granularity: 65536,
      bufSize: 1 << 20,
      onTargetError: 'report',
      onSourceError: 'stop',
      flags: 15,
    });
  });

  it('defaults: no params, no flags', () => {
    const request = expectOk(validateCopy(copy({})));
    expect([request.bandwidth, request.granularity, request.bufSize, request.format]).toEqual([0, 0, 0, undefined]);
    expect([request.shallow, request.reuseExternal, request.transientJob, request.synchronousWrites]).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });

  it.each<[string, Partial<CopyArgs>, Expected]>([
    [
      'disk NULL',
      { disk: null },
      ['VIR_ERR_INVALID_ARG', 8, 'invalid argument: disk in virDomainBlockCopy must not be NULL'],
    ],
    [
      'destxml NULL',
      { destination: null },
      ['VIR_ERR_INVALID_ARG', 8, 'invalid argument: destxml in virDomainBlockCopy must not be NULL'],
    ],
    ['unknown flag 1<<4 (TARGET_ZEROED is not supported)', { flags: 1 << 4 }, unsupported('10', 'virDomainBlockCopy')],
    ['unknown flags 0x300', { flags: CopyFlags.SHALLOW | 0x300 }, unsupported('300', 'virDomainBlockCopy')],
    [
      'granularity not a power of two',
      { params: { granularity: 65537 } },
      ['VIR_ERR_INVALID_ARG', 8, 'invalid argument: granularity must be power of 2'],
    ],
    [
      'granularity 3 · 2^30',
      { params: { granularity: 3 * 2 ** 30 } },
      ['VIR_ERR_INVALID_ARG', 8, 'invalid argument: granularity must be power of 2'],
    ],
    [
      'granularity 256 B: a power of two, below QEMU range',
      { params: { granularity: 256 } },
      ['VIR_ERR_INVALID_ARG', 8, "invalid argument: Parameter 'granularity' expects a value in range [512B, 64MB]"],
    ],
    [
      'granularity 128 MiB: above QEMU range',
      { params: { granularity: 128 * 2 ** 20 } },
      ['VIR_ERR_INVALID_ARG', 8, "invalid argument: Parameter 'granularity' expects a value in range [512B, 64MB]"],
    ],
    [
      'granularity 2^32 is not an unsigned int',
      { params: { granularity: 2 ** 32 } },
      [
        'VIR_ERR_INVALID_ARG',
        8,
        "invalid argument: invalid value '4294967296' for parameter 'granularity', expected an unsigned int",
      ],
    ],
    [
      'negative bandwidth',
      { params: { bandwidth: -5 } },
      [
        'VIR_ERR_INVALID_ARG',
        8,
        "invalid argument: invalid value '-5' for parameter 'bandwidth', expected an unsigned long long",
      ],
    ],
    [
      'fractional buf-size',
      { params: { bufSize: 1.5 } },
      [
        'VIR_ERR_INVALID_ARG',
        8,
        "invalid argument: invalid value '1.5' for parameter 'buf-size', expected an unsigned long long",
      ],
    ],
    ['bandwidth 2^63 bytes/s', { params: { bandwidth: 2 ** 63 } }, BYTES_OVERFLOW],
    [
      'buf-size 2^63',
      { params: { bufSize: 2 ** 63 } },
      ['VIR_ERR_INVALID_ARG', 8, "invalid argument: buf-size must be less than '9223372036854775807'"],
    ],
    [
      'destination without a path',
      { destination: { path: null } },
      ['VIR_ERR_INVALID_ARG', 8, 'invalid argument: block copy target has no source path'],
    ],
    [
      'unknown destination format',
      { destination: { path: '/images/copy.vmdk', format: 'vmdk' as never } },
      ['VIR_ERR_INVALID_ARG', 8, "invalid argument: unsupported block copy target format 'vmdk'"],
    ],
    ['relative destination', { destination: { path: 'copy.qcow2' } }, RELATIVE_PATH],
    [
      "destxml <disk type='network'>",
      { destination: { path: '/images/copy', type: 'network' as never } },
      ['VIR_ERR_ARGUMENT_UNSUPPORTED', 74, "argument unsupported: unsupported block copy target type 'network'"],
    ],
    [
      'empty destination',
      { destination: { path: '' } },
      ['VIR_ERR_INVALID_ARG', 8, 'invalid argument: block copy target path must not be empty'],
    ],
  ])('refuses: %s', (_name, over, expected) => {
    expectError(validateCopy(copy(over)), expected);
  });

  it("destxml <disk type='block'> is a block device (COPY_DEV); type='file' or none is a file", () => {
    expect(expectOk(validateCopy(copy({ destination: { path: '/dev/sdb', type: 'block' } }))).blockDevice).toBe(true);
    expect(
      expectOk(validateCopy(copy({ destination: { path: '/images/c', type: 'file' } }))).blockDevice ?? false,
    ).toBe(false);
    expect(expectOk(validateCopy(copy({ destination: { path: '/images/c' } }))).blockDevice ?? false).toBe(false);
  });

  it.each([0, 512, 65536, 64 * 2 ** 20])('granularity %d is accepted', (granularity) => {
    expect(expectOk(validateCopy(copy({ params: { granularity } }))).granularity).toBe(granularity);
  });

  it('bandwidth 2^63 − 1024 bytes/s is accepted', () => {
    expect(expectOk(validateCopy(copy({ params: { bandwidth: 2 ** 63 - 1024 } }))).bandwidth).toBe(2 ** 63 - 1024);
  });

  it.each<[string, Partial<CopyArgs>, Expected]>([
    [
      'disk NULL before destxml NULL and unknown flags',
      { disk: null, destination: null, flags: 1 << 9 },
      ['VIR_ERR_INVALID_ARG', 8, 'invalid argument: disk in virDomainBlockCopy must not be NULL'],
    ],
    [
      'destxml NULL before unknown flags',
      { destination: null, flags: 1 << 9 },
      ['VIR_ERR_INVALID_ARG', 8, 'invalid argument: destxml in virDomainBlockCopy must not be NULL'],
    ],
    [
      'unknown flags before granularity',
      { flags: 1 << 9, params: { granularity: 3 } },
      unsupported('200', 'virDomainBlockCopy'),
    ],
    [
      'granularity before a relative path',
      { params: { granularity: 3 }, destination: { path: 'x' } },
      ['VIR_ERR_INVALID_ARG', 8, 'invalid argument: granularity must be power of 2'],
    ],
    [
      'relative path before bytes overflow',
      { params: { bandwidth: 2 ** 64 }, destination: { path: 'x' } },
      RELATIVE_PATH,
    ],
    [
      "libvirt's bytes overflow before QEMU's granularity range",
      { params: { bandwidth: 2 ** 64, granularity: 256 } },
      BYTES_OVERFLOW,
    ],
  ])('order: %s', (_name, over, expected) => {
    expectError(validateCopy(copy(over)), expected);
  });
});

describe('validateAbort', () => {
  it.each([
    [0, { async: false, pivot: false }],
    [AbortFlags.ASYNC, { async: true, pivot: false }],
    [AbortFlags.PIVOT, { async: false, pivot: true }],
    [AbortFlags.ASYNC | AbortFlags.PIVOT, { async: true, pivot: true }],
  ])('flags %d', (flags, want) => {
    expect(expectOk(validateAbort(flags))).toEqual(want);
  });

  it.each([
    [4, '4'],
    [AbortFlags.PIVOT | 8 | 16, '18'],
    [-2, 'fffffffc'],
  ])('unknown flags %d', (flags, hex) => {
    expectError(validateAbort(flags), unsupported(hex, 'virDomainBlockJobAbort'));
  });
});

describe('validateSetSpeed', () => {
  it('MiB/s → bytes/s', () => {
    expect(expectOk(validateSetSpeed(3, 0))).toBe(3 * 2 ** 20);
    expect(expectOk(validateSetSpeed(0, 0))).toBe(0);
    expect(expectOk(validateSetSpeed(8796093022207, 0))).toBe(9223372036853727232);
  });

  it('8796093022208 MiB/s overflows', () => {
    expectError(validateSetSpeed(8796093022208, 0), MIB_OVERFLOW);
  });

  it('BANDWIDTH_BYTES: as given, up to LLONG_MAX', () => {
    expect(expectOk(validateSetSpeed(12345, BandwidthFlags.BYTES))).toBe(12345);
    expectError(validateSetSpeed(2 ** 63, BandwidthFlags.BYTES), BYTES_OVERFLOW);
  });

  it('negative bandwidth', () => {
    expectError(validateSetSpeed(-1, 0), [
      'VIR_ERR_INVALID_ARG',
      8,
      "invalid argument: bandwidth must be a non-negative integer, not '-1'",
    ]);
  });

  it('unknown flags, reported before the bandwidth', () => {
    expectError(validateSetSpeed(-1, 2), unsupported('2', 'virDomainBlockJobSetSpeed'));
  });
});

describe('properties', () => {
  const text = fc.oneof(fc.string(), fc.constantFrom('/a/b', 'rel', '', '/x\0y'));
  const number = fc.oneof(
    fc.integer({ min: -(2 ** 33), max: 2 ** 33 }),
    fc.double(),
    fc.constantFrom(8796093022207, 8796093022208, 2 ** 63, 2 ** 64, -0),
  );

  it('validateRebase never throws and never accepts a request libvirt refuses by flags', () => {
    fc.assert(
      fc.property(
        fc.option(text),
        fc.option(text),
        number,
        fc.integer({ min: -(2 ** 32), max: 2 ** 33 }),
        (disk, base, bandwidth, flags) => {
          const result = validateRebase({ domain: 'vm', disk, base, bandwidth, flags });
          if (result.isOk()) {
            expect(flags & COPY).toBe(COPY);
            expect(flags & (RELATIVE | COPY_DEV | ~0x7f)).toBe(0);
            expect(result.value.destination.startsWith('/')).toBe(true);
            expect(Number.isInteger(result.value.bandwidth) && result.value.bandwidth >= 0).toBe(true);
          }
        },
      ),
    );
  });

  it('validateCopy never throws, and what it accepts is a sane copy request', () => {
    fc.assert(
      fc.property(
        fc.option(text),
        fc.option(fc.record({ path: fc.option(text) })),
        fc.record({ bandwidth: number, granularity: number, bufSize: number }, { requiredKeys: [] }),
        fc.integer({ min: -(2 ** 32), max: 2 ** 33 }),
        (disk, destination, params, flags) => {
          const result = validateCopy({ domain: 'vm', disk, destination, params, flags });
          if (result.isOk()) {
            expect(flags & ~15).toBe(0);
            expect(flags).toBeGreaterThanOrEqual(0);
            expect(result.value.destination.startsWith('/')).toBe(true);
            expect(Number.isSafeInteger(result.value.bandwidth) && result.value.bandwidth >= 0).toBe(true);
          } else {
            // A refusal is one of libvirt's codes, with its number and a message.
            expect(ErrorNumber[result.error.code]).toBe(result.error.number);
            expect(result.error.message.length).toBeGreaterThan(0);
          }
        },
      ),
    );
  });

  it('validateSetSpeed: accepts exactly an unsigned bandwidth with flags 0 (MiB/s) or BYTES', () => {
    fc.assert(
      fc.property(number, number, (bandwidth, flags) => {
        const result = validateSetSpeed(bandwidth, flags);
        const unsigned = Number.isInteger(bandwidth) && bandwidth >= 0;
        if (result.isOk()) {
          expect(flags === 0 || flags === 1).toBe(true);
          expect(unsigned).toBe(true);
          expect(result.value).toBe(flags === 1 ? bandwidth : bandwidth * 1024 * 1024);
        } else {
          expect(['VIR_ERR_INVALID_ARG', 'VIR_ERR_OVERFLOW']).toContain(result.error.code);
          // Refused only for a reason: bad flags, a bandwidth that is not unsigned, or too large.
          const tooLarge = flags === 1 ? bandwidth >= 2 ** 63 : bandwidth > 8796093022207; // LLONG_MAX, in MiB
          expect(!(flags === 0 || flags === 1) || !unsigned || tooLarge).toBe(true);
        }
      }),
    );
  });

  it('validateAbort: accepts exactly the flags ASYNC and PIVOT, and says which were set', () => {
    fc.assert(
      fc.property(number, (flags) => {
        const result = validateAbort(flags);
        if (Number.isInteger(flags) && flags >= 0 && flags <= 3)
          expect(result._unsafeUnwrap()).toEqual({ async: (flags & 1) !== 0, pivot: (flags & 2) !== 0 });
        else expect(result._unsafeUnwrapErr().code).toBe('VIR_ERR_INVALID_ARG');
      }),
    );
  });
});
