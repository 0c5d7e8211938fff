/**
 * Block pull (virDomainBlockRebase without COPY, and virDomainBlockPull): the request once its
 * arguments are read (PullRequest), the facts it is planned on (PullFacts), and what the engine
 * will do (PullPlan: QEMU block-stream into the active image from `base`, or the whole chain).
 * Pure: no IO, no xstate; every function returns a neverthrow Result.
 *
 * The checks run in the order libvirt 9.0 runs them (qemuDomainBlockPullCommon), as measured
 * against the real libvirtd here (test/libvirt/pull.test.ts):
 *   library checks (flags value, disk NULL, copy-only flags) → virCheckFlags → RELATIVE without
 *   base → domain → running → disk → already in a job → base in the chain → relative backing →
 *   bandwidth overflow.
 */
import { posix } from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import { blockCopyError, errors, type BlockCopyError } from './errors.js';
import { BandwidthFlags, RebaseFlags } from './flags.js';
import type { BackingRef, DomainInfo, ImageInfo } from './hypervisor-port.js';

/** virDomainBlockPullFlags: the one flag virDomainBlockPull takes (same bit as the rebase one). */
export const PullFlags = {
  BANDWIDTH_BYTES: 1 << 6,
} as const;

const REBASE_PULL_FLAGS = RebaseFlags.RELATIVE | RebaseFlags.BANDWIDTH_BYTES;
const COPY_ONLY = RebaseFlags.SHALLOW | RebaseFlags.REUSE_EXT | RebaseFlags.COPY_RAW | RebaseFlags.COPY_DEV;
const LLONG_MAX = 9223372036854775807n;
const MAX_BANDWIDTH_MIB = 8796093022207;
const MIB = 1024 * 1024;

/** A pull request after the checks that need no facts. */
export interface PullRequest {
  readonly api: 'virDomainBlockRebase' | 'virDomainBlockPull';
  readonly domain: string;
  readonly disk: string;
  /** The image that stays as the new backing; null: pull the whole chain. */
  readonly base: string | null;
  /** VIR_DOMAIN_BLOCK_REBASE_RELATIVE: write base's name relative to the top image. */
  readonly keepRelative: boolean;
  /** As given (MiB/s, or bytes/s with BANDWIDTH_BYTES): converted after the facts, as libvirt does. */
  readonly bandwidth: number;
  readonly bandwidthBytes: boolean;
  readonly flags: number;
}

/** Read-only facts: the domain, the disk's chain, and whether a job holds it (and of which kind). */
export interface PullFacts {
  readonly domain: DomainInfo | null;
  /** Canonical disk name and its chain, top first; null: no such disk. */
  readonly disk: { readonly disk: string; readonly chain: readonly ImageInfo[] } | null;
  /** Why the disk was not found (the names that would work). */
  readonly diskNotFound?: BlockCopyError;
  /** The kind of block job that holds the disk: 'mirror' (libvirt's `<mirror>`), 'other', or null. */
  readonly busy: 'mirror' | 'other' | null;
  /**
   * Backing names as written in each image's header, top first (null: no backing); absent when
   * the adapter cannot read them (then RELATIVE is refused as libvirt refuses an absolute link).
   */
  readonly writtenBacking?: readonly (string | null)[];
}

export interface PullPlan {
  readonly domain: string;
  readonly disk: string;
  /** The active image the data is pulled into. */
  readonly top: string;
  /** The image kept as backing; null: the whole chain is pulled and the top stands alone. */
  readonly base: BackingRef | null;
  /** The backing name block-stream writes (RELATIVE); null: QEMU writes base's own filename. */
  readonly backingFile: string | null;
  /** Bytes/s; 0 = unlimited. */
  readonly speed: number;
  /** The chain's paths before the pull (top first), for reports and the after-check. */
  readonly chainBefore: readonly string[];
}

// ------------------------------------------------------------------ libvirt's wording

export const pullErrors = {
  relativeNeedsBase: () =>
    blockCopyError('VIR_ERR_INVALID_ARG', 'flag VIR_DOMAIN_BLOCK_REBASE_RELATIVE is valid only with non-null base'),
  baseNotInChain: (base: string, top: string, disk: string) =>
    blockCopyError('VIR_ERR_INVALID_ARG', `could not find image '${base}' beneath '${top}' in chain for '${disk}'`),
  cannotKeepRelative: () => blockCopyError('VIR_ERR_OPERATION_INVALID', "can't keep relative backing relationship"),
  /** qemuDomainDiskBlockJobIsActive: a disk with a job that is not a mirror. */
  diskInActiveJob: (disk: string) =>
    blockCopyError('VIR_ERR_OPERATION_UNSUPPORTED', `disk '${disk}' already in active block job`),
  /** PIVOT on a job that is never ready: qemuBlockPivot checks readiness first (libvirt a89ba6524c). */
  notReadyForPivot: (jobName: string) =>
    blockCopyError('VIR_ERR_BLOCK_COPY_ACTIVE', `block job '${jobName}' not ready for pivot yet`),
  failed: (disk: string, why?: string) =>
    blockCopyError('VIR_ERR_OPERATION_FAILED', `block pull of disk '${disk}' failed${why ? `: ${why}` : ''}`),
  /** The port has no block-stream (an adapter built before block pull). */
  noStream: (hypervisor: string) =>
    blockCopyError('VIR_ERR_NO_SUPPORT', `block pull: hypervisor '${hypervisor}' has no block-stream`),
} as const;

// ------------------------------------------------------------------ argument checks

function flagsValue(flags: number): Result<number, BlockCopyError> {
  return Number.isInteger(flags) && flags >= -(2 ** 31) && flags <= 0xffffffff
    ? ok(flags >>> 0)
    : err(blockCopyError('VIR_ERR_INVALID_ARG', `flags must be an unsigned 32-bit integer, not '${String(flags)}'`));
}

function bandwidthValue(bandwidth: number): Result<number, BlockCopyError> {
  return Number.isInteger(bandwidth) && bandwidth >= 0
    ? ok(bandwidth)
    : err(
        blockCopyError('VIR_ERR_INVALID_ARG', `bandwidth must be a non-negative integer, not '${String(bandwidth)}'`),
      );
}

/** virDomainBlockRebase without COPY: the library checks, then qemuDomainBlockPullCommon's head. */
export function validateRebasePull(args: {
  readonly domain: string;
  readonly disk: string | null;
  readonly base: string | null;
  readonly bandwidth: number;
  readonly flags: number;
}): Result<PullRequest, BlockCopyError> {
  const value = flagsValue(args.flags);
  if (value.isErr()) return err(value.error);
  const flags = value.value;
  if (args.disk === null) return err(errors.diskNull('virDomainBlockRebase'));
  if ((flags & COPY_ONLY) !== 0) return err(errors.flagsRequireCopy());
  const unknown = (flags & ~(REBASE_PULL_FLAGS | RebaseFlags.COPY)) >>> 0;
  if (unknown !== 0) return err(errors.unsupportedFlags(unknown, 'virDomainBlockRebase'));
  if ((flags & RebaseFlags.COPY) !== 0)
    return err(blockCopyError('VIR_ERR_INVALID_ARG', 'VIR_DOMAIN_BLOCK_REBASE_COPY starts a copy job, not a pull'));
  const keepRelative = (flags & RebaseFlags.RELATIVE) !== 0;
  // virsh passes an empty --base as NULL; so does this engine.
  const base = args.base === '' ? null : args.base;
  if (keepRelative && base === null) return err(pullErrors.relativeNeedsBase());
  const bandwidth = bandwidthValue(args.bandwidth);
  if (bandwidth.isErr()) return err(bandwidth.error);
  if (base !== null && base.includes('\0'))
    return err(blockCopyError('VIR_ERR_INVALID_ARG', 'base path must not contain NUL bytes'));
  return ok({
    api: 'virDomainBlockRebase',
    domain: args.domain,
    disk: args.disk,
    base,
    keepRelative,
    bandwidth: bandwidth.value,
    bandwidthBytes: (flags & RebaseFlags.BANDWIDTH_BYTES) !== 0,
    flags,
  });
}

/** virDomainBlockPull: virCheckFlags(BANDWIDTH_BYTES), then the pull of the whole chain. */
export function validateBlockPull(args: {
  readonly domain: string;
  readonly disk: string | null;
  readonly bandwidth: number;
  readonly flags: number;
}): Result<PullRequest, BlockCopyError> {
  const value = flagsValue(args.flags);
  if (value.isErr()) return err(value.error);
  const flags = value.value;
  if (args.disk === null) return err(errors.diskNull('virDomainBlockPull'));
  const unknown = (flags & ~PullFlags.BANDWIDTH_BYTES) >>> 0;
  if (unknown !== 0) return err(errors.unsupportedFlags(unknown, 'virDomainBlockPull'));
  const bandwidth = bandwidthValue(args.bandwidth);
  if (bandwidth.isErr()) return err(bandwidth.error);
  return ok({
    api: 'virDomainBlockPull',
    domain: args.domain,
    disk: args.disk,
    base: null,
    keepRelative: false,
    bandwidth: bandwidth.value,
    bandwidthBytes: (flags & PullFlags.BANDWIDTH_BYTES) !== 0,
    flags,
  });
}

/** The rebase flags select a pull (no COPY bit). */
export function isPullRebase(flags: number): boolean {
  return Number.isInteger(flags) && (flags & RebaseFlags.COPY) === 0;
}

// ------------------------------------------------------------------ planning

/**
 * virStorageSourceChainLookup by name: an absolute path names the image with that path; a
 * relative one names the image whose name is written so in its child's header, or that path
 * resolved against the top image's directory. Only images beneath the top count.
 */
function findBase(chain: readonly ImageInfo[], written: readonly (string | null)[] | undefined, base: string): number {
  const top = chain[0]!;
  const wanted = posix.isAbsolute(base) ? posix.normalize(base) : posix.join(posix.dirname(top.path), base);
  for (let i = 1; i < chain.length; i++) {
    if (posix.normalize(chain[i]!.path) === wanted) return i;
    if (written?.[i - 1] === base) return i;
  }
  return -1;
}

/**
 * virStorageSourceGetRelativeBackingPath: every link from the top's backing down to base must be
 * written relative; the names are joined directory by directory. null: some link is absolute.
 */
function relativeBacking(written: readonly (string | null)[] | undefined, baseIndex: number): string | null {
  if (written === undefined) return null;
  let path = '';
  for (let i = 0; i < baseIndex; i++) {
    const rel = written[i];
    if (rel === null || rel === undefined || posix.isAbsolute(rel)) return null;
    const dir = path === '' ? '' : posix.dirname(path);
    path = dir === '' || dir === '.' ? rel : posix.join(dir, rel);
  }
  return path === '' ? null : path;
}

export function planPull(request: PullRequest, facts: PullFacts): Result<PullPlan, BlockCopyError> {
  if (facts.domain === null) return err(errors.noDomain(request.domain));
  if (!facts.domain.running) return err(errors.domainNotRunning());
  if (facts.disk === null) return err(facts.diskNotFound ?? errors.diskNotFound(request.disk));
  const disk = facts.disk.disk;
  if (facts.busy === 'mirror') return err(errors.diskInCopyJob(disk));
  if (facts.busy === 'other') return err(pullErrors.diskInActiveJob(disk));
  const chain = facts.disk.chain;
  const top = chain[0];
  if (top === undefined)
    return err(blockCopyError('VIR_ERR_OPERATION_INVALID', `disk '${disk}' has no source image to pull into`));

  let base: BackingRef | null = null;
  let backingFile: string | null = null;
  if (request.base !== null) {
    const at = findBase(chain, facts.writtenBacking, request.base);
    if (at < 0) return err(pullErrors.baseNotInChain(request.base, top.path, disk));
    const image = chain[at]!;
    base = { path: image.path, format: image.format };
    if (request.keepRelative) {
      backingFile = relativeBacking(facts.writtenBacking, at);
      if (backingFile === null) return err(pullErrors.cannotKeepRelative());
    }
  }

  let speed = request.bandwidth;
  if (!request.bandwidthBytes) {
    if (speed > MAX_BANDWIDTH_MIB) return err(errors.bandwidthMiBOverflow());
    speed *= MIB;
  } else if (BigInt(speed) > LLONG_MAX) return err(errors.bandwidthBytesOverflow());

  return ok({
    domain: facts.domain.name,
    disk,
    top: top.path,
    base,
    backingFile,
    speed,
    chainBefore: chain.map((i) => i.path),
  });
}

/** The block-job-info flags accepted for a pull job are the copy job's (INFO_BANDWIDTH_BYTES). */
export const PULL_INFO_FLAGS = BandwidthFlags.BYTES;
