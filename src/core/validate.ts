/**
 * Argument checks and planning for block copy, as libvirt's library layer and QEMU driver do
 * them (libvirt-api.md in the reference notes, §1.3–§1.7, §2.1–§2.3, §2.6, §2.9), plus the 2012 design
 * review's rules for reused destinations (the seed).
 *
 * Everything here is pure: no IO, no xstate. Each function returns a neverthrow Result and never
 * throws. The checks run in libvirt's order, because which error a caller sees when a request
 * breaks two rules is part of the contract. Checks that need no facts (validateRebase,
 * validateCopy) run before the ones that do (planCopy).
 *
 * Deviations from libvirt, all deliberate:
 * - libvirt looks the domain up right after virCheckFlags; here the facts-free argument checks
 *   (bandwidth, RELATIVE, destination path) run first, then planCopy's domain lookup. So a request
 *   with both a bad argument and a missing domain reports the argument.
 * - virCheckFlags names the driver function (qemuDomainBlockRebase); this engine has no driver
 *   layer and names the public API (virDomainBlockRebase).
 * - validateRebase validates copies only: rebase without COPY is a block pull, which the engine
 *   validates and plans with validateRebasePull / planPull (src/core/pull.ts) instead.
 * - Refusals libvirt does not have: a block device given without COPY_DEV (libvirt opens it
 *   with QEMU's `file` driver, which refuses it), a raw block device whose size is not the
 *   disk's, overwriting an existing empty file, and reused
 *   destinations whose size, contents or backing do not fit (seed rules checked up front).
 * - JS numbers stand in for C integers; see checkUnsigned and fitsLongLong.
 */
import { posix } from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import type { BackingRef, HypervisorJobInfo, ImageFormat, IoErrorPolicy } from './hypervisor-port.js';
import { blockCopyError, errors, type BlockCopyError } from './errors.js';
import {
  ABORT_KNOWN_FLAGS,
  AbortFlags,
  BandwidthFlags,
  COPY_KNOWN_FLAGS,
  CopyFlags,
  REBASE_KNOWN_FLAGS,
  RebaseFlags,
} from './flags.js';
import type { CopyFacts, CopyPlan, CopyRequest } from './plan.js';

/** Engine options that libvirt never sets on blockdev-mirror (it leaves QEMU's default, report). */
export interface CopyOptions {
  readonly onTargetError?: IoErrorPolicy;
  readonly onSourceError?: IoErrorPolicy;
  /**
   * REUSE_EXT|SHALLOW: the reused destination keeps the backing chain its own header names (as
   * libvirt opens a reused shallow destination's chain) instead of having to name the source's
   * backing. The caller vouches that this chain reads as the source's backing chain does: the
   * whole-chain migration (src/workflows/) has copied and verified it with qemu-img compare.
   */
  readonly keepDestinationBacking?: boolean;
}

export interface RebaseArgs {
  readonly domain: string;
  readonly disk: string | null;
  /** With COPY: the destination path. */
  readonly base: string | null;
  /** MiB/s, or bytes/s with BANDWIDTH_BYTES; 0 = unlimited. */
  readonly bandwidth: number;
  readonly flags: number;
  readonly options?: CopyOptions;
}

export interface CopyArgs {
  readonly domain: string;
  readonly disk: string | null;
  /**
   * The host side of destxml: `<disk type='file|block'>`, `<source file|dev=…/>` and
   * `<driver type=…/>`; null = destxml NULL. type 'block' is what COPY_DEV is for rebase.
   */
  readonly destination: {
    readonly path: string | null;
    readonly format?: ImageFormat;
    readonly type?: 'file' | 'block';
  } | null;
  /** Typed parameters, all in bytes; 0 or absent = hypervisor default. */
  readonly params?: { readonly bandwidth?: number; readonly granularity?: number; readonly bufSize?: number };
  readonly flags: number;
  readonly options?: CopyOptions;
}

/** virDomainGetBlockJobInfo's virDomainBlockJobInfo: a copy job (2), or a pull job (1). */
export interface BlockJobInfo {
  readonly type: 1 | 2;
  /** MiB/s rounded up, or bytes/s with BANDWIDTH_BYTES. */
  readonly bandwidth: number;
  readonly cur: number;
  readonly end: number;
}

// --- Constants ---------------------------------------------------------------------------------

/** LLONG_MAX: QEMU's speed is an int64, so libvirt refuses anything above it. */
const LLONG_MAX = 9223372036854775807n;
/** LLONG_MAX >> 20: the largest MiB/s value whose byte value fits LLONG_MAX. */
const MAX_BANDWIDTH_MIB = 8796093022207;
const MIB = 1024 * 1024;
const UINT_MAX = 0xffffffff;
const ULLONG_MAX = 18446744073709551615n;
const INT_MIN = -(2 ** 31);
/** virDomainBlockCopy's typed parameters (bandwidth, granularity, buf-size), by their API names. */
const COPY_PARAMS: readonly string[] = ['bandwidth', 'granularity', 'bufSize'];

/** QEMU blockdev_mirror_common: granularity 0 (default) or within [512 B, 64 MiB]. */
const MIN_GRANULARITY = 512;
const MAX_GRANULARITY = 64 * MIB;
const IO_ERROR_POLICIES: readonly IoErrorPolicy[] = ['report', 'stop', 'ignore', 'enospc'];
const IMAGE_FORMATS: readonly ImageFormat[] = ['qcow2', 'raw'];

// --- Refusals this engine adds (libvirt has no wording for them) --------------------------------

const refuse = {
  /** JS lets any number through where C has `unsigned int flags`. */
  flagsNotUnsigned: (flags: number) =>
    blockCopyError('VIR_ERR_INVALID_ARG', `flags must be an unsigned 32-bit integer, not '${String(flags)}'`),
  destxmlNull: () => blockCopyError('VIR_ERR_INVALID_ARG', 'destxml in virDomainBlockCopy must not be NULL'),
  /** Rebase without COPY is a block pull: not a copy request (the engine routes it to pull.ts). */
  blockPull: () =>
    blockCopyError(
      'VIR_ERR_ARGUMENT_UNSUPPORTED',
      'block pull (virDomainBlockRebase without VIR_DOMAIN_BLOCK_REBASE_COPY) is not a copy request: validate it with validateRebasePull',
    ),
  bandwidthNotUnsigned: (value: number) =>
    blockCopyError('VIR_ERR_INVALID_ARG', `bandwidth must be a non-negative integer, not '${String(value)}'`),
  paramNotUnsigned: (name: string, value: number, type: 'unsigned int' | 'unsigned long long') =>
    blockCopyError(
      'VIR_ERR_INVALID_ARG',
      `invalid value '${String(value)}' for parameter '${name}', expected an ${type}`,
    ),
  unknownParam: (name: string) => blockCopyError('VIR_ERR_ARGUMENT_UNSUPPORTED', `parameter '${name}' not supported`),
  destinationType: (type: string) =>
    blockCopyError('VIR_ERR_ARGUMENT_UNSUPPORTED', `unsupported block copy target type '${type}'`),
  destinationPathNull: () => blockCopyError('VIR_ERR_INVALID_ARG', 'block copy target has no source path'),
  destinationPathEmpty: () => blockCopyError('VIR_ERR_INVALID_ARG', 'block copy target path must not be empty'),
  /** C would silently cut the path at the NUL byte and copy somewhere else. */
  destinationPathNul: () => blockCopyError('VIR_ERR_INVALID_ARG', 'block copy target path must not contain NUL bytes'),
  destinationFormat: (format: string) =>
    blockCopyError('VIR_ERR_INVALID_ARG', `unsupported block copy target format '${format}'`),
  /** QEMU's own wording (QERR_INVALID_PARAMETER_VALUE); QEMU checks it when the mirror starts. */
  granularityRange: () =>
    blockCopyError('VIR_ERR_INVALID_ARG', "Parameter 'granularity' expects a value in range [512B, 64MB]"),
  bufSizeOverflow: () => blockCopyError('VIR_ERR_INVALID_ARG', "buf-size must be less than '9223372036854775807'"),
  ioErrorPolicy: (name: string, value: string) =>
    blockCopyError(
      'VIR_ERR_INVALID_ARG',
      `invalid ${name} policy '${value}', expected one of ${IO_ERROR_POLICIES.join(', ')}`,
    ),
  diskWithoutSource: (disk: string) =>
    blockCopyError('VIR_ERR_OPERATION_INVALID', `disk '${disk}' has no source image to copy`),
  /** libvirt would hand a block device to QEMU's `file` driver, which refuses it; say why up front. */
  blockDeviceWithoutFlag: (disk: string, path: string) =>
    blockCopyError(
      'VIR_ERR_CONFIG_UNSUPPORTED',
      `destination for disk ${disk} is a block device; copying to it needs the blockdev flag (COPY_DEV, <disk type='block'>, --blockdev): ${path}`,
    ),
  /** QEMU would accept the mirror and fail the job at once ("Source and target image have different sizes"). */
  deviceSize: (disk: string, path: string, want: number, have: number) =>
    blockCopyError(
      'VIR_ERR_CONFIG_UNSUPPORTED',
      `Source and target image have different sizes: disk ${disk} is ${want} bytes, raw block device ${path} is ${have} bytes`,
    ),
  notRegularFile: (disk: string, path: string) =>
    blockCopyError('VIR_ERR_CONFIG_UNSUPPORTED', `destination for disk ${disk} is not a regular file: ${path}`),
  reusedNotQcow2: (disk: string, path: string) =>
    blockCopyError('VIR_ERR_CONFIG_UNSUPPORTED', `reused destination for disk ${disk} is not a qcow2 image: ${path}`),
  reusedSize: (disk: string, path: string, want: number, have: number) =>
    blockCopyError(
      'VIR_ERR_CONFIG_UNSUPPORTED',
      `Source and target image have different sizes: disk ${disk} is ${want} bytes, reused destination ${path} is ${have} bytes`,
    ),
  reusedNotEmpty: (disk: string, path: string) =>
    blockCopyError(
      'VIR_ERR_CONFIG_UNSUPPORTED',
      `reused destination for a full copy of disk ${disk} must be empty: ${path}`,
    ),
  reusedBacking: (disk: string, path: string, backing: BackingRef) =>
    blockCopyError(
      'VIR_ERR_CONFIG_UNSUPPORTED',
      `reused destination for a shallow copy of disk ${disk} must have ${backing.path} (${backing.format}) as its backing image: ${path}`,
    ),
} as const;

// --- Small helpers ------------------------------------------------------------------------------

/**
 * `unsigned int flags` from JS: an integer in [0, 2^32), or an int32 as JS's `|` produces when
 * bit 31 is set (C converts a negative int to unsigned int the same way). Anything else (1.5,
 * 2^32, NaN) has no C equivalent and is refused.
 */
function checkFlagsValue(flags: number): Result<number, BlockCopyError> {
  return Number.isInteger(flags) && flags >= INT_MIN && flags <= UINT_MAX
    ? ok(flags >>> 0)
    : err(refuse.flagsNotUnsigned(flags));
}

/** virCheckFlags: the message carries the unknown bits only (`flags & ~supported`). */
function checkKnownFlags(flags: number, known: number, fn: string): Result<number, BlockCopyError> {
  const unknown = (flags & ~known) >>> 0;
  return unknown === 0 ? ok(flags) : err(errors.unsupportedFlags(unknown, fn));
}

/** C's unsigned integers: a JS number must be a finite integer ≥ 0 (NaN, -1, 1.5 are refused). */
function isUnsigned(value: number): boolean {
  return Number.isInteger(value) && value >= 0;
}

/**
 * value ≤ LLONG_MAX, compared exactly. LLONG_MAX itself is not a double: the literal
 * 9223372036854775807 rounds to 2^63 and is refused; the largest accepted number is 2^63 − 1024.
 */
function fitsLongLong(value: number): boolean {
  return BigInt(value) <= LLONG_MAX;
}

/** MiB/s → bytes/s with libvirt's overflow rule. Exact: a ≤ 43-bit integer times 2^20 is a double. */
function mibToBytes(mib: number): Result<number, BlockCopyError> {
  return mib > MAX_BANDWIDTH_MIB ? err(errors.bandwidthMiBOverflow()) : ok(mib * MIB);
}

function isPowerOfTwoOrZero(value: number): boolean {
  const big = BigInt(value);
  return (big & (big - 1n)) === 0n;
}

/**
 * The destination path checks of qemuDomainBlockCopyCommon step 1 (virStorageSourceIsRelative:
 * a local path must start with '/'), preceded by two the C API cannot even express.
 */
function checkDestinationPath(path: string): Result<string, BlockCopyError> {
  if (path === '') return err(refuse.destinationPathEmpty());
  if (path.includes('\0')) return err(refuse.destinationPathNul());
  if (!path.startsWith('/')) return err(errors.relativeDestination());
  // `.`, `..` and `//` are resolved here, so that the destination is probed, created, compared
  // with the disk's own images and confirmed after the pivot under one spelling: otherwise
  // `/images/../images/snap2.qcow2` passes for a new file while it names the disk's own image.
  return ok(posix.normalize(path));
}

function resolveOptions(
  options: CopyOptions | undefined,
): Result<
  { onTargetError: IoErrorPolicy; onSourceError: IoErrorPolicy; keepDestinationBacking?: true },
  BlockCopyError
> {
  const onTargetError = options?.onTargetError ?? 'report';
  const onSourceError = options?.onSourceError ?? 'report';
  // Checked at runtime too: JS callers and restored JSON are not type-checked.
  if (!IO_ERROR_POLICIES.includes(onTargetError)) return err(refuse.ioErrorPolicy('on-target-error', onTargetError));
  if (!IO_ERROR_POLICIES.includes(onSourceError)) return err(refuse.ioErrorPolicy('on-source-error', onSourceError));
  const keep = options?.keepDestinationBacking;
  if (keep !== undefined && typeof keep !== 'boolean')
    return err(blockCopyError('VIR_ERR_INVALID_ARG', 'keepDestinationBacking must be a boolean'));
  return ok({ onTargetError, onSourceError, ...(keep === true ? { keepDestinationBacking: true as const } : {}) });
}

// --- virDomainBlockRebase -----------------------------------------------------------------------

/**
 * virDomainBlockRebase with VIR_DOMAIN_BLOCK_REBASE_COPY: libvirt's library checks (§1.3), then
 * qemuDomainBlockRebase (§2.1), then the facts-free head of qemuDomainBlockCopyCommon (§2.3
 * steps 1–2). Rebase cannot express TRANSIENT_JOB, SYNCHRONOUS_WRITES, granularity or buf-size.
 */
export function validateRebase(args: RebaseArgs): Result<CopyRequest, BlockCopyError> {
  const { domain, disk, base, bandwidth } = args;
  const flagsValue = checkFlagsValue(args.flags);
  if (flagsValue.isErr()) return err(flagsValue.error);
  const flags = flagsValue.value;
  const copy = (flags & RebaseFlags.COPY) !== 0;

  // Library layer (src/libvirt-domain.c), before any driver code.
  if (disk === null) return err(errors.diskNull('virDomainBlockRebase'));
  if (copy && base === null) return err(errors.baseNull('virDomainBlockRebase'));
  const copyOnly = RebaseFlags.SHALLOW | RebaseFlags.REUSE_EXT | RebaseFlags.COPY_RAW | RebaseFlags.COPY_DEV;
  if (!copy && (flags & copyOnly) !== 0) return err(errors.flagsRequireCopy());

  // qemuDomainBlockRebase.
  const known = checkKnownFlags(flags, REBASE_KNOWN_FLAGS, 'virDomainBlockRebase');
  if (known.isErr()) return err(known.error);
  if (!copy || base === null) return err(refuse.blockPull());

  if (!isUnsigned(bandwidth)) return err(refuse.bandwidthNotUnsigned(bandwidth));
  let speed = bandwidth;
  if ((flags & RebaseFlags.BANDWIDTH_BYTES) === 0) {
    const bytes = mibToBytes(bandwidth);
    if (bytes.isErr()) return err(bytes.error);
    speed = bytes.value;
  }
  if ((flags & RebaseFlags.RELATIVE) !== 0) return err(errors.relativeBackingDuringCopy());
  // COPY_RAW forces the format so a raw destination is never probed (the seed's security note).
  const format: ImageFormat | undefined = (flags & RebaseFlags.COPY_RAW) !== 0 ? 'raw' : undefined;

  // qemuDomainBlockCopyCommon steps 1–2.
  const destination = checkDestinationPath(base);
  if (destination.isErr()) return err(destination.error);
  if (!fitsLongLong(speed)) return err(errors.bandwidthBytesOverflow());

  const policies = resolveOptions(args.options);
  if (policies.isErr()) return err(policies.error);

  return ok({
    api: 'virDomainBlockRebase',
    domain,
    disk,
    destination: destination.value,
    format,
    // qemuDomainBlockRebase step 4: the destination is type='block' with COPY_DEV.
    ...((flags & RebaseFlags.COPY_DEV) !== 0 ? { blockDevice: true } : {}),
    shallow: (flags & RebaseFlags.SHALLOW) !== 0,
    reuseExternal: (flags & RebaseFlags.REUSE_EXT) !== 0,
    transientJob: false,
    synchronousWrites: false,
    bandwidth: speed,
    granularity: 0,
    bufSize: 0,
    ...policies.value,
    flags,
  });
}

// --- virDomainBlockCopy -------------------------------------------------------------------------

/**
 * virDomainBlockCopy: library checks (§1.4), qemuDomainBlockCopy (§2.2), the facts-free head of
 * qemuDomainBlockCopyCommon (§2.3 steps 1–2), and last QEMU's granularity range, which QEMU
 * itself would only report when the mirror starts (as an INTERNAL_ERROR through libvirt).
 */
export function validateCopy(
  args: CopyArgs,
  /**
   * hypervisorLimits: the hypervisor refuses granularity and buf-size outside QEMU's limits itself,
   * before anything starts (libvirt): those checks are left to it, so that its own refusal (code
   * and message) reaches the caller unchanged.
   */
  context: { readonly hypervisorLimits?: boolean } = {},
): Result<CopyRequest, BlockCopyError> {
  const { domain, disk, destination } = args;
  const flagsValue = checkFlagsValue(args.flags);
  if (flagsValue.isErr()) return err(flagsValue.error);
  const flags = flagsValue.value;

  // Library layer.
  if (disk === null) return err(errors.diskNull('virDomainBlockCopy'));
  if (destination === null) return err(refuse.destxmlNull());

  // qemuDomainBlockCopy: virCheckFlags, then the typed parameters' types, then their values.
  const known = checkKnownFlags(flags, COPY_KNOWN_FLAGS, 'virDomainBlockCopy');
  if (known.isErr()) return err(known.error);
  // virTypedParamsValidate: a parameter the driver does not know is refused, not ignored.
  for (const name of Object.keys(args.params ?? {}))
    if (!COPY_PARAMS.includes(name)) return err(refuse.unknownParam(name));
  const bandwidth = args.params?.bandwidth ?? 0;
  const granularity = args.params?.granularity ?? 0;
  const bufSize = args.params?.bufSize ?? 0;
  if (!isUnsigned(bandwidth)) return err(refuse.paramNotUnsigned('bandwidth', bandwidth, 'unsigned long long'));
  if (!isUnsigned(granularity) || granularity > UINT_MAX)
    return err(refuse.paramNotUnsigned('granularity', granularity, 'unsigned int'));
  if (!isUnsigned(bufSize)) return err(refuse.paramNotUnsigned('buf-size', bufSize, 'unsigned long long'));
  if (!isPowerOfTwoOrZero(granularity)) return err(errors.granularityNotPowerOfTwo());

  // Parsing destxml: the source path and driver format.
  if (destination.path === null) return err(refuse.destinationPathNull());
  const format = destination.format;
  if (format !== undefined && !IMAGE_FORMATS.includes(format)) return err(refuse.destinationFormat(String(format)));
  const type = destination.type ?? 'file';
  if (type !== 'file' && type !== 'block') return err(refuse.destinationType(String(type)));

  // qemuDomainBlockCopyCommon steps 1–2.
  const path = checkDestinationPath(destination.path);
  if (path.isErr()) return err(path.error);
  if (!fitsLongLong(bandwidth)) return err(errors.bandwidthBytesOverflow());

  // QEMU's own limits (blockdev_mirror_common), refused here rather than after the job started.
  if (
    !context.hypervisorLimits &&
    granularity !== 0 &&
    (granularity < MIN_GRANULARITY || granularity > MAX_GRANULARITY)
  )
    return err(refuse.granularityRange());
  // A typed parameter holds at most ULLONG_MAX, whoever checks the rest.
  if (!fitsLongLong(bufSize) && !(context.hypervisorLimits && BigInt(bufSize) <= ULLONG_MAX))
    return err(refuse.bufSizeOverflow());

  const policies = resolveOptions(args.options);
  if (policies.isErr()) return err(policies.error);

  return ok({
    api: 'virDomainBlockCopy',
    domain,
    disk,
    destination: path.value,
    format,
    ...(type === 'block' ? { blockDevice: true } : {}),
    shallow: (flags & CopyFlags.SHALLOW) !== 0,
    reuseExternal: (flags & CopyFlags.REUSE_EXT) !== 0,
    transientJob: (flags & CopyFlags.TRANSIENT_JOB) !== 0,
    synchronousWrites: (flags & CopyFlags.SYNCHRONOUS_WRITES) !== 0,
    bandwidth,
    granularity,
    bufSize,
    ...policies.value,
    flags,
  });
}

// --- Planning: the checks that need facts ---------------------------------------------------------

/** A backing path as written in an image header may be relative to the image's directory. */
function resolveBackingPath(imagePath: string, backingPath: string): string {
  return posix.normalize(
    posix.isAbsolute(backingPath) ? backingPath : posix.join(posix.dirname(imagePath), backingPath),
  );
}

/**
 * qemuDomainBlockCopyCommon steps 4–21 (§2.3) in order, on facts gathered read-only, then the
 * seed's content rules for reused destinations. The result says what to create or reuse and how
 * to mirror; nothing is touched here.
 */
export function planCopy(request: CopyRequest, facts: CopyFacts): Result<CopyPlan, BlockCopyError> {
  // Step 2 (domain lookup), 4 (active), 6 (disk), 7 (already in a job), 12 (transient rule):
  // the job conflict is reported before "not transient".
  const domain = facts.domain;
  if (domain === null) return err(errors.noDomain(request.domain));
  if (!domain.running) return err(errors.domainNotRunning());
  if (facts.disk === null) return err(facts.diskNotFound ?? errors.diskNotFound(request.disk));
  // libvirt finds a disk by target or by source path; messages from here on use the target name.
  const disk = facts.disk.disk;
  if (facts.diskBusy)
    return err(
      facts.busyWithOther === true
        ? blockCopyError('VIR_ERR_OPERATION_UNSUPPORTED', `disk '${disk}' already in active block job`)
        : errors.diskInCopyJob(disk),
    );
  if (!request.transientJob && domain.persistent) return err(errors.domainNotTransient());

  const top = facts.disk.chain[0];
  if (top === undefined) return err(refuse.diskWithoutSource(disk));
  const below = facts.disk.chain[1];
  const sourceBacking: BackingRef | null = below ? { path: below.path, format: below.format } : top.backing;

  // Step 13: SHALLOW on a source without backing is silently dropped; it is then a full copy.
  const shallow = request.shallow && sourceBacking !== null;
  const probe = facts.destination;
  const path = request.destination;
  const blockDevice = request.blockDevice === true;

  // Step 15, on the flag (libvirt checks it before it learns that a block device is "existing").
  // The 2012 rule ("SHALLOW+COPY_RAW fails unless the source is raw") agrees: a raw source has
  // no backing, so SHALLOW was dropped above and the copy goes ahead.
  const newFormat = request.format ?? top.format;
  if (shallow && !request.reuseExternal && newFormat === 'raw') return err(errors.shallowIntoRaw(disk));

  // Step 18: existence rules (qemuDomainBlockCopyValidateMirror, in its order).
  if (!probe.exists) {
    if (request.reuseExternal || blockDevice) return err(errors.destinationMissing(disk, path));
  } else if (probe.kind === 'block') {
    // libvirt takes a block device as pre-existing (never created) with or without COPY_DEV, but
    // without it QEMU gets the device under its `file` driver and refuses it: say so up front.
    if (!blockDevice) return err(refuse.blockDeviceWithoutFlag(disk, path));
  } else {
    if (probe.size > 0 && !request.reuseExternal) return err(errors.destinationExists(disk, path));
    if (blockDevice) return err(errors.blockdevNotBlockDevice(disk, path));
    // libvirt overwrites (O_TRUNC / blockdev-create) an empty file here. Deliberate deviation:
    // the engine never overwrites a file it did not create, so any existing destination without
    // REUSE_EXT is refused, with libvirt's message.
    if (!request.reuseExternal) return err(errors.destinationExists(disk, path));
    if (probe.kind !== 'file') return err(refuse.notRegularFile(disk, path));
  }

  const common = {
    domain: domain.name,
    disk,
    sync: shallow ? 'top' : 'full',
    virtualSize: top.virtualSize,
    speed: request.bandwidth,
    copyMode: request.synchronousWrites ? 'write-blocking' : 'background',
    onTargetError: request.onTargetError,
    onSourceError: request.onSourceError,
    source: top.path,
    // virsh --granularity / --buf-size, passed to blockdev-mirror (0: QEMU's default, omitted).
    ...(request.granularity > 0 ? { granularity: request.granularity } : {}),
    ...(request.bufSize > 0 ? { bufSize: request.bufSize } : {}),
  } as const;

  if (!probe.exists) {
    // Step 19 (not REUSE_EXT): inherit the format of the top image unless one was forced.
    return ok({
      ...common,
      destination: { path, format: newFormat },
      destinationAction: 'create',
      backing: shallow ? sourceBacking : null,
    });
  }

  if (blockDevice && !request.reuseExternal) {
    // Step 19 and 27 without REUSE_EXT: the source's format (or the forced one) is laid onto the
    // device as libvirt's blockdev-create would: a fresh qcow2 header (with the source's backing
    // for a shallow copy), or nothing at all for raw, where the guest's bytes map 1:1.
    if (newFormat === 'raw' && probe.size !== top.virtualSize)
      return err(refuse.deviceSize(disk, path, top.virtualSize, probe.size));
    return ok({
      ...common,
      destination: { path, format: newFormat, type: 'block' },
      destinationAction: newFormat === 'raw' ? 'reuse' : 'format',
      backing: shallow ? sourceBacking : null,
    });
  }

  // Step 19 (REUSE_EXT): the given format, else the probed one. A forced format (COPY_RAW or
  // destxml's driver type) is never second-guessed from the header.
  const format = request.format ?? probe.image?.format;
  if (format === undefined) return err(errors.reusedFormatUnknown());

  // The guest-visible size must match, or QEMU fails the job at once ("Source and target image
  // have different sizes"). A raw image's guest size is its file size.
  const image = probe.image;
  let size: number;
  if (format === 'raw') {
    size = probe.size;
  } else {
    if (image?.format !== 'qcow2') return err(refuse.reusedNotQcow2(disk, path));
    size = image.virtualSize;
  }
  if (size !== top.virtualSize) return err(refuse.reusedSize(disk, path, top.virtualSize, size));

  // The seed's content rules for reuse.
  if (!shallow) {
    // REUSE_EXT alone (and REUSE_EXT+COPY_RAW): "must have empty contents". Copying the whole
    // chain over leftover data is harmless only where the copy writes every block; unallocated
    // source areas would show the stale data through.
    if (!probe.empty) return err(refuse.reusedNotEmpty(disk, path));
  } else if (format === 'qcow2' && sourceBacking !== null) {
    // REUSE_EXT+SHALLOW: "contents must be identical to snap1". We check what can be checked:
    // the destination's backing is the source's own backing image. Without it the guest would
    // read zeros wherever the data lives in the backing chain after the pivot (the b2 pitfall).
    const backing = image?.backing ?? null;
    const same =
      backing !== null &&
      backing.format === sourceBacking.format &&
      resolveBackingPath(path, backing.path) === resolveBackingPath(top.path, sourceBacking.path);
    if (!same) {
      // Whole-chain migration: the destination brings its own (verified) copy of the chain.
      if (request.keepDestinationBacking === true && backing !== null)
        return ok({
          ...common,
          destination: { path, format },
          destinationAction: 'reuse',
          backing: { path: resolveBackingPath(path, backing.path), format: backing.format },
          backingFromDestination: true,
        });
      return err(refuse.reusedBacking(disk, path, sourceBacking));
    }
  }
  // REUSE_EXT+SHALLOW into raw: the seed accepts a "raw volume with contents identical to snap1".
  // Those contents cannot be verified here; the caller vouches for them.

  return ok({
    ...common,
    destination: blockDevice ? { path, format, type: 'block' } : { path, format },
    destinationAction: 'reuse',
    // A raw image cannot reference a backing file: it holds the backing's data itself.
    backing: shallow && format !== 'raw' ? sourceBacking : null,
  });
}

// --- virDomainBlockJobAbort, virDomainBlockJobSetSpeed, virDomainGetBlockJobInfo ------------------

/** qemuDomainBlockJobAbort step 1 (§2.6): virCheckFlags(ASYNC | PIVOT). */
export function validateAbort(flags: number): Result<{ async: boolean; pivot: boolean }, BlockCopyError> {
  return checkFlagsValue(flags)
    .andThen((value) => checkKnownFlags(value, ABORT_KNOWN_FLAGS, 'virDomainBlockJobAbort'))
    .map((value) => ({ async: (value & AbortFlags.ASYNC) !== 0, pivot: (value & AbortFlags.PIVOT) !== 0 }));
}

/**
 * qemuDomainBlockJobSetSpeed (§2.9): flags, then the MiB → bytes conversion with its overflow
 * check, all before the domain is looked up. Returns bytes/s (0 = unlimited).
 */
export function validateSetSpeed(bandwidth: number, rawFlags: number): Result<number, BlockCopyError> {
  const flagsValue = checkFlagsValue(rawFlags);
  if (flagsValue.isErr()) return err(flagsValue.error);
  const flags = flagsValue.value;
  const known = checkKnownFlags(flags, BandwidthFlags.BYTES, 'virDomainBlockJobSetSpeed');
  if (known.isErr()) return err(known.error);
  if (!isUnsigned(bandwidth)) return err(refuse.bandwidthNotUnsigned(bandwidth));
  if ((flags & BandwidthFlags.BYTES) === 0) return mibToBytes(bandwidth);
  // QEMU's speed is an int64: libvirt would pass a larger value on and QEMU would refuse it.
  return fitsLongLong(bandwidth) ? ok(bandwidth) : err(errors.bandwidthBytesOverflow());
}

/**
 * qemuBlockJobInfoTranslate (§2.9) for a job the engine knows. `job` null: QEMU no longer lists
 * it (finished, not yet processed). Returning 0 when there is no libvirt job is the engine's part.
 */
export function translateJobInfo(
  job: HypervisorJobInfo | null,
  rawFlags: number,
): Result<BlockJobInfo, BlockCopyError> {
  const flagsValue = checkFlagsValue(rawFlags);
  if (flagsValue.isErr()) return err(flagsValue.error);
  const flags = flagsValue.value;
  const known = checkKnownFlags(flags, BandwidthFlags.BYTES, 'virDomainGetBlockJobInfo');
  if (known.isErr()) return err(known.error);

  if (job === null) return ok({ type: 2, bandwidth: 0, cur: 0, end: 1 });

  let cur = job.offset;
  let end = job.len;
  // QEMU ≥ 2.2 always reports `ready`. An empty job: 0/1, or 1/1 once ready.
  if (cur === 0 && end === 0) {
    end = 1;
    if (job.ready) cur = 1;
  }
  // All data copied but not ready yet: never show cur == end, so pollers that take cur == end
  // for "ready" do not pivot too early (libvirt 73ce3911aa).
  if (!job.ready && cur === end && cur > 0) cur -= 1;

  const bandwidth = (flags & BandwidthFlags.BYTES) !== 0 ? job.speed : Math.ceil(job.speed / MIB);
  // libvirt: a value `unsigned long` cannot hold → OVERFLOW. Here the limit is exact JS integers.
  if (!Number.isSafeInteger(bandwidth) || bandwidth < 0) {
    const shown = Number.isInteger(bandwidth) ? BigInt(bandwidth).toString() : String(bandwidth);
    return err(blockCopyError('VIR_ERR_OVERFLOW', `bandwidth ${shown} cannot be represented in result`));
  }
  return ok({ type: 2, bandwidth, cur, end });
}
