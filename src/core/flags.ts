/**
 * libvirt's block-copy flag values (ABI) and their typed names. The numeric values are the ones
 * in libvirt-domain.h; REBASE_* and COPY_* share bits 0 and 1 on purpose (see
 * libvirt-api.md in the reference notes §1.1).
 */

/** virDomainBlockRebaseFlags */
export const RebaseFlags = {
  SHALLOW: 1 << 0,
  REUSE_EXT: 1 << 1,
  COPY_RAW: 1 << 2,
  COPY: 1 << 3,
  RELATIVE: 1 << 4,
  COPY_DEV: 1 << 5,
  BANDWIDTH_BYTES: 1 << 6,
} as const;

/** virDomainBlockCopyFlags */
export const CopyFlags = {
  SHALLOW: 1 << 0,
  REUSE_EXT: 1 << 1,
  TRANSIENT_JOB: 1 << 2,
  SYNCHRONOUS_WRITES: 1 << 3,
} as const;

/** virDomainBlockJobAbortFlags */
export const AbortFlags = {
  ASYNC: 1 << 0,
  PIVOT: 1 << 1,
} as const;

/** virDomainBlockJobInfoFlags / virDomainBlockJobSetSpeedFlags */
export const BandwidthFlags = {
  BYTES: 1 << 0,
} as const;

/** virConnectDomainEventBlockJobStatus */
export const BlockJobStatus = {
  COMPLETED: 0,
  FAILED: 1,
  CANCELED: 2,
  READY: 3,
} as const;
export type BlockJobStatusName = keyof typeof BlockJobStatus;

/** virDomainBlockJobType */
export const BlockJobType = {
  UNKNOWN: 0,
  PULL: 1,
  COPY: 2,
  COMMIT: 3,
  ACTIVE_COMMIT: 4,
  BACKUP: 5,
} as const;

/** The flags that rebase accepts in virCheckFlags (libvirt-api.md §2.1 step 1). */
export const REBASE_KNOWN_FLAGS =
  RebaseFlags.SHALLOW |
  RebaseFlags.REUSE_EXT |
  RebaseFlags.COPY |
  RebaseFlags.COPY_RAW |
  RebaseFlags.RELATIVE |
  RebaseFlags.COPY_DEV |
  RebaseFlags.BANDWIDTH_BYTES;

export const COPY_KNOWN_FLAGS =
  CopyFlags.SHALLOW | CopyFlags.REUSE_EXT | CopyFlags.TRANSIENT_JOB | CopyFlags.SYNCHRONOUS_WRITES;

export const ABORT_KNOWN_FLAGS = AbortFlags.ASYNC | AbortFlags.PIVOT;

/** Names of the set bits, for messages and the CLI. */
export function flagNames(flags: number, table: Readonly<Record<string, number>>): string[] {
  return Object.entries(table)
    .filter(([, bit]) => (flags & bit) !== 0)
    .map(([name]) => name);
}
