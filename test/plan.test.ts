/**
 * planCopy: the checks that need facts (domain, disk, destination probe), in the order of
 * qemuDomainBlockCopyCommon (libvirt-api.md in the reference notes §2.3), and the 2012 design review's
 * eight flag combinations on its chain base <- snap1 <- snap2 (qcow2, 1 GiB).
 */
import fc from 'fast-check';
import type { Result } from 'neverthrow';
import { describe, expect, it } from 'vitest';
import type { DestinationProbe, DiskInfo, DomainInfo, ImageInfo } from '../src/core/hypervisor-port.js';
import type { BlockCopyError } from '../src/core/errors.js';
import { CopyFlags, RebaseFlags } from '../src/core/flags.js';
import type { CopyFacts, CopyPlan, CopyRequest } from '../src/core/plan.js';
import { planCopy, validateCopy, validateRebase } from '../src/core/validate.js';

const { SHALLOW, REUSE_EXT, COPY_RAW, COPY, COPY_DEV } = RebaseFlags;
const GiB = 2 ** 30;
const DEST = '/images/copy';

type Expected = readonly [code: BlockCopyError['code'], number: number, message: string];

function expectError<T>(result: Result<T, BlockCopyError>, [code, number, message]: Expected): void {
  expect(result.isErr()).toBe(true);
  if (result.isErr()) {
    expect({ code: result.error.code, number: result.error.number, message: result.error.message }).toEqual({
      code,
      number,
      message,
    });
  }
}

function expectOk<T>(result: Result<T, BlockCopyError>): T {
  if (result.isErr()) throw new Error(`expected ok, got ${result.error.message}`);
  return result.value;
}

// The seed's chain: base <- snap1 <- snap2, all qcow2, 1 GiB; the guest reads snap2.
const base: ImageInfo = { path: '/vm/base.qcow2', format: 'qcow2', virtualSize: GiB, backing: null };
const snap1: ImageInfo = {
  path: '/vm/snap1.qcow2',
  format: 'qcow2',
  virtualSize: GiB,
  backing: { path: '/vm/base.qcow2', format: 'qcow2' },
};
const snap2: ImageInfo = {
  path: '/vm/snap2.qcow2',
  format: 'qcow2',
  virtualSize: GiB,
  backing: { path: '/vm/snap1.qcow2', format: 'qcow2' },
};
const seedDisk: DiskInfo = { domain: 'vm1', disk: 'vda', chain: [snap2, snap1, base] };
const rawDisk: DiskInfo = {
  domain: 'vm1',
  disk: 'vda',
  chain: [{ path: '/vm/disk.raw', format: 'raw', virtualSize: GiB, backing: null }],
};
const transientDomain: DomainInfo = { name: 'vm1', running: true, persistent: false, disks: ['vda'] };
const persistentDomain: DomainInfo = { ...transientDomain, persistent: true };

const missing: DestinationProbe = { exists: false };
/** A pre-created qcow2 image with nothing written to it. */
const emptyQcow2: DestinationProbe = {
  exists: true,
  kind: 'file',
  size: 196_608,
  image: { path: DEST, format: 'qcow2', virtualSize: GiB, backing: null },
  empty: true,
};
/** A qcow2 overlay on the source's own snap1, as a management application would pre-create it. */
const overlayOnSnap1: DestinationProbe = {
  exists: true,
  kind: 'file',
  size: 196_608,
  image: { path: DEST, format: 'qcow2', virtualSize: GiB, backing: { path: '/vm/snap1.qcow2', format: 'qcow2' } },
  empty: true,
};
/** A raw volume of the right size (copied from snap1, or all zeros). */
const rawVolume = (empty: boolean): DestinationProbe => ({
  exists: true,
  kind: 'file',
  size: GiB,
  image: { path: DEST, format: 'raw', virtualSize: GiB, backing: null },
  empty,
});

/** A block device of `size` bytes with no image header (probes as raw). */
const device = (size: number): DestinationProbe => ({
  exists: true,
  kind: 'block',
  size,
  image: { path: DEST, format: 'raw', virtualSize: size, backing: null },
  empty: false,
});

const facts = (over: Partial<CopyFacts> = {}): CopyFacts => ({
  domain: transientDomain,
  disk: seedDisk,
  diskBusy: false,
  destination: missing,
  ...over,
});

const rebaseRequest = (flags: number, over: { bandwidth?: number; base?: string } = {}): CopyRequest =>
  expectOk(
    validateRebase({ domain: 'vm1', disk: 'vda', base: over.base ?? DEST, bandwidth: over.bandwidth ?? 0, flags }),
  );

const copyRequest = (flags: number): CopyRequest =>
  expectOk(validateCopy({ domain: 'vm1', disk: 'vda', destination: { path: DEST }, flags }));

const planFor = (
  destination: { format: 'qcow2' | 'raw'; action: 'create' | 'reuse' },
  sync: 'full' | 'top',
  backing: ImageInfo | null,
): CopyPlan => ({
  domain: 'vm1',
  disk: 'vda',
  sync,
  destination: { path: DEST, format: destination.format },
  destinationAction: destination.action,
  backing: backing && { path: backing.path, format: backing.format },
  virtualSize: GiB,
  speed: 0,
  copyMode: 'background',
  onTargetError: 'report',
  onSourceError: 'report',
  source: '/vm/snap2.qcow2',
});

describe('the seed: eight flag combinations on base <- snap1 <- snap2', () => {
  it.each<[string, number, DestinationProbe, CopyPlan]>([
    [
      'COPY: new file, format of snap2, no backing, whole chain flattened',
      COPY,
      missing,
      planFor({ format: 'qcow2', action: 'create' }, 'full', null),
    ],
    [
      'COPY|COPY_RAW: new raw file, whole chain flattened',
      COPY | COPY_RAW,
      missing,
      planFor({ format: 'raw', action: 'create' }, 'full', null),
    ],
    [
      'COPY|SHALLOW: new file, format of snap2, backing snap1, only snap2 copied',
      COPY | SHALLOW,
      missing,
      planFor({ format: 'qcow2', action: 'create' }, 'top', snap1),
    ],
    [
      'COPY|REUSE_EXT: existing empty file, format probed, whole chain',
      COPY | REUSE_EXT,
      emptyQcow2,
      planFor({ format: 'qcow2', action: 'reuse' }, 'full', null),
    ],
    [
      'COPY|REUSE_EXT|SHALLOW: existing file backed by snap1, format probed, only snap2',
      COPY | REUSE_EXT | SHALLOW,
      overlayOnSnap1,
      planFor({ format: 'qcow2', action: 'reuse' }, 'top', snap1),
    ],
    [
      'COPY|REUSE_EXT|SHALLOW|COPY_RAW: existing raw volume equal to snap1, only snap2',
      COPY | REUSE_EXT | SHALLOW | COPY_RAW,
      rawVolume(false),
      // A raw image cannot reference a backing file: it holds snap1's data itself.
      planFor({ format: 'raw', action: 'reuse' }, 'top', null),
    ],
    [
      'COPY|REUSE_EXT|COPY_RAW ("makes little sense"): raw and empty, whole chain',
      COPY | REUSE_EXT | COPY_RAW,
      rawVolume(true),
      planFor({ format: 'raw', action: 'reuse' }, 'full', null),
    ],
  ])('%s', (_name, flags, destination, plan) => {
    expect(expectOk(planCopy(rebaseRequest(flags), facts({ destination })))).toEqual(plan);
  });

  it('COPY|SHALLOW|COPY_RAW ("less useful"): fails because the source has a backing file', () => {
    expectError(planCopy(rebaseRequest(COPY | SHALLOW | COPY_RAW), facts()), [
      'VIR_ERR_CONFIG_UNSUPPORTED',
      67,
      "unsupported configuration: shallow copy of disk 'vda' into a raw file is not possible",
    ]);
  });

  it('COPY|SHALLOW|COPY_RAW on a raw source: SHALLOW is dropped, the single file is copied as raw', () => {
    const plan = expectOk(planCopy(rebaseRequest(COPY | SHALLOW | COPY_RAW), facts({ disk: rawDisk })));
    expect(plan).toEqual({
      ...planFor({ format: 'raw', action: 'create' }, 'full', null),
      source: '/vm/disk.raw',
    });
  });

  it('Rebase on a persistent domain always fails with "not transient"', () => {
    expectError(planCopy(rebaseRequest(COPY), facts({ domain: persistentDomain })), [
      'VIR_ERR_OPERATION_INVALID',
      55,
      'Requested operation is not valid: domain is not transient',
    ]);
  });
});

describe('planCopy: output', () => {
  it('bandwidth, copy mode, policies and persistent domains via TRANSIENT_JOB', () => {
    const request = expectOk(
      validateCopy({
        domain: 'vm1',
        disk: 'vda',
        destination: { path: DEST, format: 'raw' },
        params: { bandwidth: 5000 },
        flags: CopyFlags.TRANSIENT_JOB | CopyFlags.SYNCHRONOUS_WRITES,
        options: { onTargetError: 'enospc' },
      }),
    );
    expect(expectOk(planCopy(request, facts({ domain: persistentDomain })))).toEqual({
      ...planFor({ format: 'raw', action: 'create' }, 'full', null),
      speed: 5000,
      copyMode: 'write-blocking',
      onTargetError: 'enospc',
    });
  });

  it('SHALLOW on a single qcow2 image without backing is dropped: full copy, no backing', () => {
    const single: DiskInfo = { domain: 'vm1', disk: 'vda', chain: [base] };
    const plan = expectOk(planCopy(copyRequest(CopyFlags.SHALLOW), facts({ disk: single })));
    expect([plan.sync, plan.backing, plan.source]).toEqual(['full', null, '/vm/base.qcow2']);
  });

  it('the disk may be found by source path: messages and plan use the target name', () => {
    const request = expectOk(
      validateCopy({ domain: 'vm1', disk: '/vm/snap2.qcow2', destination: { path: DEST }, flags: 0 }),
    );
    expect(expectOk(planCopy(request, facts())).disk).toBe('vda');
    expectError(planCopy(request, facts({ diskBusy: true })), [
      'VIR_ERR_BLOCK_COPY_ACTIVE',
      83,
      "block copy still active: disk 'vda' already in active block job",
    ]);
  });

  it('a shallow reuse may name its backing relative to its own directory', () => {
    const relative: DestinationProbe = {
      exists: true,
      kind: 'file',
      size: 196_608,
      image: { path: '/vm/copy', format: 'qcow2', virtualSize: GiB, backing: { path: 'snap1.qcow2', format: 'qcow2' } },
      empty: true,
    };
    const request = expectOk(validateCopy({ domain: 'vm1', disk: 'vda', destination: { path: '/vm/copy' }, flags: 3 }));
    expect(expectOk(planCopy(request, facts({ destination: relative }))).backing).toEqual({
      path: '/vm/snap1.qcow2',
      format: 'qcow2',
    });
  });
});

const EXISTS: Expected = [
  'VIR_ERR_CONFIG_UNSUPPORTED',
  67,
  `unsupported configuration: external destination file for disk vda already exists and is not a block device: ${DEST}`,
];
const NOT_BLOCK: Expected = [
  'VIR_ERR_INVALID_ARG',
  8,
  `invalid argument: blockdev flag requested for disk vda, but file '${DEST}' is not a block device`,
];
const MISSING: Expected = ['VIR_ERR_SYSTEM_ERROR', 38, `system error: missing destination file for disk vda: ${DEST}`];
const NOT_TRANSIENT: Expected = [
  'VIR_ERR_OPERATION_INVALID',
  55,
  'Requested operation is not valid: domain is not transient',
];
const BUSY: Expected = [
  'VIR_ERR_BLOCK_COPY_ACTIVE',
  83,
  "block copy still active: disk 'vda' already in active block job",
];
const SHALLOW_RAW: Expected = [
  'VIR_ERR_CONFIG_UNSUPPORTED',
  67,
  "unsupported configuration: shallow copy of disk 'vda' into a raw file is not possible",
];

describe('planCopy: refusals', () => {
  const file = (size: number, image: ImageInfo | null = null, empty = size === 0): DestinationProbe => ({
    exists: true,
    kind: 'file',
    size,
    image,
    empty,
  });

  it.each<[string, CopyRequest, Partial<CopyFacts>, Expected]>([
    [
      'no such domain',
      copyRequest(0),
      { domain: null },
      ['VIR_ERR_NO_DOMAIN', 42, "Domain not found: no domain with matching name 'vm1'"],
    ],
    [
      'domain not running',
      copyRequest(0),
      { domain: { ...transientDomain, running: false } },
      ['VIR_ERR_OPERATION_INVALID', 55, 'Requested operation is not valid: domain is not running'],
    ],
    [
      'disk not found',
      copyRequest(0),
      { disk: null },
      ['VIR_ERR_INVALID_ARG', 8, "invalid argument: disk 'vda' not found in domain"],
    ],
    ['disk already in a block job', copyRequest(0), { diskBusy: true }, BUSY],
    ['persistent domain without TRANSIENT_JOB', copyRequest(0), { domain: persistentDomain }, NOT_TRANSIENT],
    [
      'disk without a source image',
      copyRequest(0),
      { disk: { domain: 'vm1', disk: 'vda', chain: [] } },
      ['VIR_ERR_OPERATION_INVALID', 55, "Requested operation is not valid: disk 'vda' has no source image to copy"],
    ],
    ['shallow into a new raw file', rebaseRequest(COPY | SHALLOW | COPY_RAW), {}, SHALLOW_RAW],
    ['existing non-empty file without REUSE_EXT', copyRequest(0), { destination: file(4096) }, EXISTS],
    // Deliberate deviation: libvirt would overwrite an empty file; the engine never overwrites.
    ['existing empty file without REUSE_EXT', copyRequest(0), { destination: file(0) }, EXISTS],
    ['missing destination with REUSE_EXT', copyRequest(CopyFlags.REUSE_EXT), {}, MISSING],
    ['missing destination with REUSE_EXT|SHALLOW', copyRequest(3), {}, MISSING],
    [
      "block device given without COPY_DEV (libvirt hands it to QEMU's file driver, which refuses it)",
      copyRequest(CopyFlags.REUSE_EXT),
      { destination: device(GiB) },
      [
        'VIR_ERR_CONFIG_UNSUPPORTED',
        67,
        `unsupported configuration: destination for disk vda is a block device; copying to it needs the blockdev flag (COPY_DEV, <disk type='block'>, --blockdev): ${DEST}`,
      ],
    ],
    [
      'block device given without COPY_DEV or REUSE_EXT',
      copyRequest(0),
      { destination: device(GiB) },
      [
        'VIR_ERR_CONFIG_UNSUPPORTED',
        67,
        `unsupported configuration: destination for disk vda is a block device; copying to it needs the blockdev flag (COPY_DEV, <disk type='block'>, --blockdev): ${DEST}`,
      ],
    ],
    ['COPY_DEV on a missing device', rebaseRequest(COPY | COPY_DEV), {}, MISSING],
    [
      'COPY_DEV on a non-empty regular file without REUSE_EXT',
      rebaseRequest(COPY | COPY_DEV),
      { destination: file(4096) },
      EXISTS,
    ],
    ['COPY_DEV on an empty regular file', rebaseRequest(COPY | COPY_DEV), { destination: file(0) }, NOT_BLOCK],
    [
      'COPY_DEV|REUSE_EXT on a regular file',
      rebaseRequest(COPY | COPY_DEV | REUSE_EXT),
      { destination: file(4096) },
      NOT_BLOCK,
    ],
    [
      'COPY_DEV|COPY_RAW on a device of another size',
      rebaseRequest(COPY | COPY_DEV | COPY_RAW),
      { destination: device(GiB + 512) },
      [
        'VIR_ERR_CONFIG_UNSUPPORTED',
        67,
        `unsupported configuration: Source and target image have different sizes: disk vda is ${GiB} bytes, raw block device ${DEST} is ${GiB + 512} bytes`,
      ],
    ],
    [
      'COPY_DEV|SHALLOW|COPY_RAW: a shallow raw copy, as libvirt refuses it',
      rebaseRequest(COPY | COPY_DEV | SHALLOW | COPY_RAW),
      { destination: device(GiB) },
      SHALLOW_RAW,
    ],
    [
      'reused destination that is not a regular file',
      copyRequest(CopyFlags.REUSE_EXT),
      { destination: { exists: true, kind: 'other', size: 4096, image: null, empty: false } },
      [
        'VIR_ERR_CONFIG_UNSUPPORTED',
        67,
        `unsupported configuration: destination for disk vda is not a regular file: ${DEST}`,
      ],
    ],
    [
      'reused destination of unknown format',
      copyRequest(CopyFlags.REUSE_EXT),
      { destination: file(4096, null, true) },
      [
        'VIR_ERR_CONFIG_UNSUPPORTED',
        67,
        'unsupported configuration: reused mirror destination format must be specified',
      ],
    ],
    [
      'reused destination of a different size',
      copyRequest(CopyFlags.REUSE_EXT),
      { destination: file(196_608, { path: DEST, format: 'qcow2', virtualSize: GiB / 2, backing: null }, true) },
      [
        'VIR_ERR_CONFIG_UNSUPPORTED',
        67,
        `unsupported configuration: Source and target image have different sizes: disk vda is ${GiB} bytes, reused destination ${DEST} is ${GiB / 2} bytes`,
      ],
    ],
    [
      'reused raw destination of 0 bytes (REUSE_EXT|COPY_RAW on an empty file)',
      rebaseRequest(COPY | REUSE_EXT | COPY_RAW),
      { destination: file(0, null, true) },
      [
        'VIR_ERR_CONFIG_UNSUPPORTED',
        67,
        `unsupported configuration: Source and target image have different sizes: disk vda is ${GiB} bytes, reused destination ${DEST} is 0 bytes`,
      ],
    ],
    [
      'full copy into a reused destination that holds data',
      copyRequest(CopyFlags.REUSE_EXT),
      { destination: { ...emptyQcow2, empty: false } },
      [
        'VIR_ERR_CONFIG_UNSUPPORTED',
        67,
        `unsupported configuration: reused destination for a full copy of disk vda must be empty: ${DEST}`,
      ],
    ],
    [
      'shallow reuse without a backing (the b2 "guest reads zeros" pitfall)',
      copyRequest(3),
      { destination: emptyQcow2 },
      [
        'VIR_ERR_CONFIG_UNSUPPORTED',
        67,
        `unsupported configuration: reused destination for a shallow copy of disk vda must have /vm/snap1.qcow2 (qcow2) as its backing image: ${DEST}`,
      ],
    ],
    [
      'shallow reuse backed by base instead of snap1',
      copyRequest(3),
      {
        destination: file(196_608, {
          path: DEST,
          format: 'qcow2',
          virtualSize: GiB,
          backing: { path: '/vm/base.qcow2', format: 'qcow2' },
        }),
      },
      [
        'VIR_ERR_CONFIG_UNSUPPORTED',
        67,
        `unsupported configuration: reused destination for a shallow copy of disk vda must have /vm/snap1.qcow2 (qcow2) as its backing image: ${DEST}`,
      ],
    ],
    [
      'shallow reuse backed by snap1 read as raw',
      copyRequest(3),
      {
        destination: file(196_608, {
          path: DEST,
          format: 'qcow2',
          virtualSize: GiB,
          backing: { path: '/vm/snap1.qcow2', format: 'raw' },
        }),
      },
      [
        'VIR_ERR_CONFIG_UNSUPPORTED',
        67,
        `unsupported configuration: reused destination for a shallow copy of disk vda must have /vm/snap1.qcow2 (qcow2) as its backing image: ${DEST}`,
      ],
    ],
    [
      'destxml says qcow2, the reused file is not',
      expectOk(
        validateCopy({
          domain: 'vm1',
          disk: 'vda',
          destination: { path: DEST, format: 'qcow2' },
          flags: CopyFlags.REUSE_EXT,
        }),
      ),
      { destination: rawVolume(true) },
      [
        'VIR_ERR_CONFIG_UNSUPPORTED',
        67,
        `unsupported configuration: reused destination for disk vda is not a qcow2 image: ${DEST}`,
      ],
    ],
  ])('%s', (_name, request, over, expected) => {
    expectError(planCopy(request, facts(over)), expected);
  });
});

describe('planCopy: order of checks (§2.3)', () => {
  it.each<[string, CopyRequest, Partial<CopyFacts>, Expected]>([
    [
      'no domain before anything else',
      copyRequest(CopyFlags.REUSE_EXT),
      { domain: null, disk: null, diskBusy: true },
      ['VIR_ERR_NO_DOMAIN', 42, "Domain not found: no domain with matching name 'vm1'"],
    ],
    [
      'not running before disk not found',
      copyRequest(0),
      { domain: { ...persistentDomain, running: false }, disk: null },
      ['VIR_ERR_OPERATION_INVALID', 55, 'Requested operation is not valid: domain is not running'],
    ],
    [
      'disk not found before busy and not transient',
      copyRequest(0),
      { domain: persistentDomain, disk: null, diskBusy: true },
      ['VIR_ERR_INVALID_ARG', 8, "invalid argument: disk 'vda' not found in domain"],
    ],
    [
      'a persistent domain whose disk is busy reports the job conflict, not "not transient"',
      rebaseRequest(COPY),
      { domain: persistentDomain, diskBusy: true },
      BUSY,
    ],
    [
      'not transient before shallow-into-raw',
      rebaseRequest(COPY | SHALLOW | COPY_RAW),
      { domain: persistentDomain },
      NOT_TRANSIENT,
    ],
    [
      'not transient before destination existence',
      copyRequest(CopyFlags.REUSE_EXT),
      { domain: persistentDomain },
      NOT_TRANSIENT,
    ],
    [
      'shallow-into-raw before "already exists"',
      rebaseRequest(COPY | SHALLOW | COPY_RAW),
      { destination: { exists: true, kind: 'file', size: 4096, image: null, empty: false } },
      SHALLOW_RAW,
    ],
    ['"missing" before format resolution', rebaseRequest(COPY | REUSE_EXT), { destination: missing }, MISSING],
  ])('%s', (_name, request, over, expected) => {
    expectError(planCopy(request, facts(over)), expected);
  });
});

describe('planCopy: properties', () => {
  const imageArb = fc.record({
    path: fc.constantFrom(DEST, '/elsewhere'),
    format: fc.constantFrom<'qcow2' | 'raw'>('qcow2', 'raw'),
    virtualSize: fc.constantFrom(0, GiB / 2, GiB),
    backing: fc.option(
      fc.record({
        path: fc.constantFrom('/vm/snap1.qcow2', 'snap1.qcow2', '/vm/base.qcow2'),
        format: fc.constantFrom<'qcow2' | 'raw'>('qcow2', 'raw'),
      }),
    ),
  });
  const probeArb: fc.Arbitrary<DestinationProbe> = fc.oneof(
    fc.constant<DestinationProbe>({ exists: false }),
    fc.record({
      exists: fc.constant(true as const),
      kind: fc.constantFrom<'file' | 'block' | 'other'>('file', 'block', 'other'),
      size: fc.constantFrom(0, 4096, GiB),
      image: fc.option(imageArb),
      empty: fc.boolean(),
    }),
  );
  const factsArb: fc.Arbitrary<CopyFacts> = fc.record({
    domain: fc.option(
      fc.record({
        name: fc.constant('vm1'),
        running: fc.boolean(),
        persistent: fc.boolean(),
        disks: fc.constant(['vda']),
      }),
    ),
    disk: fc.option(fc.constantFrom(seedDisk, rawDisk, { domain: 'vm1', disk: 'vda', chain: [base] })),
    diskBusy: fc.boolean(),
    destination: probeArb,
  });
  const requestArb: fc.Arbitrary<CopyRequest> = fc.oneof(
    fc
      .integer({ min: 0, max: 0x7f })
      .map((flags) => validateRebase({ domain: 'vm1', disk: 'vda', base: DEST, bandwidth: 1, flags }))
      .filter((r) => r.isOk())
      .map((r) => r._unsafeUnwrap()),
    fc
      .record({ flags: fc.integer({ min: 0, max: 15 }), format: fc.constantFrom(undefined, 'qcow2', 'raw') })
      .map(({ flags, format }) =>
        validateCopy({
          domain: 'vm1',
          disk: 'vda',
          destination: format === undefined ? { path: DEST } : { path: DEST, format },
          flags,
        })._unsafeUnwrap(),
      ),
  );

  it('never plans to create a destination that exists, and never plans an unsafe copy', () => {
    fc.assert(
      fc.property(requestArb, factsArb, (request, given) => {
        const result = planCopy(request, given);
        if (result.isErr()) return;
        const plan = result.value;
        const probe = given.destination;
        // An existing path is never created over; a block device only with COPY_DEV, and never
        // as a file the engine owns.
        if (!probe.exists) expect(plan.destinationAction).toBe('create');
        else if (probe.kind === 'block') {
          expect(request.blockDevice).toBe(true);
          expect(plan.destination.type).toBe('block');
          expect(plan.destinationAction).toBe(
            request.reuseExternal || plan.destination.format === 'raw' ? 'reuse' : 'format',
          );
        } else {
          expect(plan.destinationAction).toBe('reuse');
          expect(request.reuseExternal).toBe(true);
          expect(request.blockDevice ?? false).toBe(false);
          expect(probe.kind).toBe('file');
        }
        // Never a copy libvirt refuses, and never a shallow new raw file.
        expect(given.domain?.running).toBe(true);
        expect(given.diskBusy).toBe(false);
        expect(request.transientJob || given.domain?.persistent === false).toBe(true);
        if (plan.sync === 'top') {
          expect(request.shallow).toBe(true);
          expect(request.reuseExternal || plan.destination.format !== 'raw').toBe(true);
          // A shallow qcow2 destination always gets the source's backing (the b2 pitfall).
          if (plan.destination.format === 'qcow2')
            expect(plan.backing).toEqual({ path: '/vm/snap1.qcow2', format: 'qcow2' });
        } else {
          expect(plan.backing).toBeNull();
        }
      }),
      { numRuns: 2000 },
    );
  });
});
