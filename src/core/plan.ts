/**
 * What a copy request is, once its arguments are read (CopyRequest), and what the engine will do
 * for it, once every rule has passed (CopyPlan). Both are plain data: they live in the job
 * machine's context and survive a JSON round trip.
 */
import type { BlockCopyError } from './errors.js';
import type {
  BackingRef,
  CopyMode,
  DestinationProbe,
  DiskInfo,
  DomainInfo,
  ImageFormat,
  IoErrorPolicy,
} from './hypervisor-port.js';

/** A block copy request after argument checks, normalized from blockRebase or blockCopy. */
export interface CopyRequest {
  readonly api: 'virDomainBlockRebase' | 'virDomainBlockCopy';
  readonly domain: string;
  readonly disk: string;
  /** Absolute destination path. */
  readonly destination: string;
  /** Forced destination format (COPY_RAW → raw); undefined: inherit (new) or probe (reused). */
  readonly format: ImageFormat | undefined;
  /**
   * COPY_DEV / destxml `<disk type='block'>`: the destination is a block device (QEMU's
   * host_device driver), never created, truncated or removed. Absent: a regular file.
   */
  readonly blockDevice?: boolean;
  readonly shallow: boolean;
  readonly reuseExternal: boolean;
  readonly transientJob: boolean;
  readonly synchronousWrites: boolean;
  /** Bytes per second; 0 = unlimited. */
  readonly bandwidth: number;
  readonly granularity: number;
  readonly bufSize: number;
  readonly onTargetError: IoErrorPolicy;
  readonly onSourceError: IoErrorPolicy;
  /** The raw flags as given, for reports. */
  readonly flags: number;
  /** REUSE_EXT|SHALLOW: keep the reused destination's own backing chain (CopyOptions). */
  readonly keepDestinationBacking?: boolean;
}

/** Facts the planner needs, gathered read-only from the hypervisor. */
export interface CopyFacts {
  readonly domain: DomainInfo | null;
  readonly disk: DiskInfo | null;
  /** True when another block job already owns the disk. */
  readonly diskBusy: boolean;
  /** The busy disk's job is not a mirror (e.g. a block pull): libvirt answers OPERATION_UNSUPPORTED. */
  readonly busyWithOther?: boolean;
  /** Why the disk was not found (the names that would work), when `disk` is null. */
  readonly diskNotFound?: BlockCopyError;
  readonly destination: DestinationProbe;
}

/** The outcome of a valid request: what will be copied where. */
export interface CopyPlan {
  readonly domain: string;
  readonly disk: string;
  readonly sync: 'full' | 'top';
  /** `type` 'block': a block device (COPY_DEV); absent: a regular file. */
  readonly destination: { readonly path: string; readonly format: ImageFormat; readonly type?: 'block' };
  /**
   * create: a new file the engine owns; reuse: attached as it is; format: a block device that
   * gets a fresh image header written onto it (libvirt's blockdev-create), never created or removed.
   */
  readonly destinationAction: 'create' | 'reuse' | 'format';
  /** Shallow copies: the source's backing image, shared by the destination. */
  readonly backing: BackingRef | null;
  /** True when `backing` is the reused destination's own chain, opened for the copy (not shared). */
  readonly backingFromDestination?: boolean;
  /** Guest-visible size of the disk, in bytes. */
  readonly virtualSize: number;
  readonly speed: number;
  readonly copyMode: CopyMode;
  /** blockdev-mirror granularity / buf-size in bytes; absent: QEMU's default. */
  readonly granularity?: number;
  readonly bufSize?: number;
  readonly onTargetError: IoErrorPolicy;
  readonly onSourceError: IoErrorPolicy;
  /** The top image the guest reads now (to tell a pivot from a revert). */
  readonly source: string;
}
