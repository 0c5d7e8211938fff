/**
 * The hypervisor port: what the engine needs from a hypervisor, in QEMU's vocabulary. Two
 * adapters implement it: the in-process simulator (adapters/sim) and real QEMU over QMP
 * (adapters/qmp). Every method returns a neverthrow ResultAsync and never throws; every
 * mutating method is idempotent, so a restored job can safely run it again.
 */
import type { ResultAsync } from 'neverthrow';
import type { Observable } from 'rxjs';

/** QEMU JobStatus (qapi/job.json). */
export type JobStatus =
  | 'undefined'
  | 'created'
  | 'running'
  | 'paused'
  | 'ready'
  | 'standby'
  | 'waiting'
  | 'pending'
  | 'aborting'
  | 'concluded'
  | 'null';

/** Every JobStatus, in the column order of QEMU's JobSTT (U, C, R, P, Y, S, W, D, X, E, N). */
export const JOB_STATUSES: readonly JobStatus[] = [
  'undefined',
  'created',
  'running',
  'paused',
  'ready',
  'standby',
  'waiting',
  'pending',
  'aborting',
  'concluded',
  'null',
];

export function isJobStatus(value: unknown): value is JobStatus {
  return typeof value === 'string' && (JOB_STATUSES as readonly string[]).includes(value);
}

/** on-target-error / on-source-error policies of blockdev-mirror. */
export type IoErrorPolicy = 'report' | 'stop' | 'ignore' | 'enospc';
export type ImageFormat = 'qcow2' | 'raw';
export type CopyMode = 'background' | 'write-blocking';

export interface BackingRef {
  readonly path: string;
  readonly format: ImageFormat;
}

/** One image file of a chain, as the adapter sees it (qemu-img info). */
export interface ImageInfo {
  readonly path: string;
  readonly format: ImageFormat;
  /** Guest-visible size in bytes. */
  readonly virtualSize: number;
  readonly backing: BackingRef | null;
}

export interface DomainInfo {
  readonly name: string;
  readonly running: boolean;
  readonly persistent: boolean;
  readonly disks: readonly string[];
}

export interface DiskInfo {
  readonly domain: string;
  /** Target name, e.g. "vda". */
  readonly disk: string;
  /** The chain from the active (top) image down to the base. */
  readonly chain: readonly ImageInfo[];
}

/** One disk of a domain, by every name that refers to it. */
export interface DiskNames {
  readonly domain: string;
  /**
   * Canonical name: the device id (qdev id / libvirt target, 'vda'), else the legacy drive id,
   * else the export id (a storage daemon's export is the guest's device, and unlike the node name
   * it survives a pivot), else the root node name. Every engine decision keys on this.
   */
  readonly disk: string;
  /** qdev id (QMP) or target (libvirt). */
  readonly device: string | null;
  /** Legacy -drive id / block-backend name. */
  readonly drive: string | null;
  /** The disk's root (active) node. */
  readonly nodeName: string | null;
  /** NBD export id (qemu-storage-daemon). */
  readonly exportId: string | null;
  /** The active image's path. */
  readonly source: string;
  /** Top first. */
  readonly chain: readonly ImageInfo[];
  /** Any block job on this disk, started by anyone (busy check, adoption). */
  readonly job: {
    readonly jobId: string;
    readonly type: string;
    readonly status: JobStatus;
    /** Progress in bytes, where the adapter reads it in the same call (libvirt's job info). */
    readonly offset?: number;
    readonly len?: number;
  } | null;
}

export type DestinationProbe =
  | { readonly exists: false }
  | {
      readonly exists: true;
      readonly kind: 'file' | 'block' | 'other';
      /** Bytes the file occupies (st_size; a block device: its size); 0 for a fresh empty file. */
      readonly size: number;
      /** Probed image header; null when it cannot be probed. */
      readonly image: ImageInfo | null;
      /** True when the image holds no data (no allocated clusters / all zero). */
      readonly empty: boolean;
    };

export interface CreateDestinationSpec {
  readonly path: string;
  readonly format: ImageFormat;
  /**
   * 'block': `path` is an existing block device; the image header (qcow2) is written onto it in
   * place, nothing is created (raw: nothing to do). Absent: a new regular file.
   */
  readonly type?: 'block';
  readonly virtualSize: number;
  /** For shallow copies: the source's backing image, written into the new image's header. */
  readonly backing: BackingRef | null;
  /**
   * Ownership claim (the job id): lets a restarted engine tell a destination it created from one
   * that appeared meanwhile. Kept until releaseDestination.
   */
  readonly claim?: string;
}

export interface MirrorSpec {
  /** Explicit QEMU job id (required with node names, qemu-mirror.md §0.13). */
  readonly jobId: string;
  readonly domain: string;
  readonly disk: string;
  /** `type` 'block': a block device (QEMU's host_device driver instead of file). */
  readonly destination: { readonly path: string; readonly format: ImageFormat; readonly type?: 'block' };
  /** Shallow copies: the source's backing, attached as the target node's backing (b2 pitfall). */
  readonly destinationBacking: BackingRef | null;
  /**
   * With destinationBacking: open the chain the destination's own header names (it must resolve
   * to destinationBacking) as the target's backing, instead of sharing the source's backing node
   * (libvirt's reused shallow copy; the whole-chain migration). Absent: the source's backing.
   */
  readonly openDestinationBacking?: boolean;
  readonly sync: 'full' | 'top';
  /** Bytes per second; 0 = unlimited. */
  readonly speed: number;
  readonly onTargetError: IoErrorPolicy;
  readonly onSourceError: IoErrorPolicy;
  readonly copyMode: CopyMode;
  /** Dirty-bitmap granularity in bytes (power of two, 512 B..64 MiB); absent: QEMU's default. */
  readonly granularity?: number;
  /** Bytes in flight; absent: QEMU's default. */
  readonly bufSize?: number;
}

/** block-stream: a block pull into the disk's active image (src/core/pull.ts). */
export interface StreamSpec {
  /** Explicit QEMU job id. */
  readonly jobId: string;
  readonly domain: string;
  readonly disk: string;
  /** The image kept as the new backing (QEMU base-node); null: the whole chain is pulled. */
  readonly base: BackingRef | null;
  /** backing-file written into the top image (RELATIVE); null: QEMU writes base's filename. */
  readonly backingFile: string | null;
  /** Bytes per second; 0 = unlimited. */
  readonly speed: number;
}

/** A job as query-jobs + query-block-jobs report it. */
export interface HypervisorJobInfo {
  readonly jobId: string;
  readonly status: JobStatus;
  readonly offset: number;
  readonly len: number;
  readonly speed: number;
  readonly ready: boolean;
  readonly paused: boolean;
  readonly ioStatus: 'ok' | 'failed' | 'nospace';
  /** Present once concluded with an error. */
  readonly error?: string;
}

/** Events as QEMU sends them, normalized (the job id is QEMU's `id`/`device`). */
export type HypervisorEvent =
  | { readonly kind: 'job-status'; readonly jobId: string; readonly status: JobStatus }
  | {
      readonly kind: 'job-ready';
      readonly jobId: string;
      readonly len: number;
      readonly offset: number;
      readonly speed: number;
    }
  | {
      readonly kind: 'job-completed';
      readonly jobId: string;
      readonly len: number;
      readonly offset: number;
      readonly speed: number;
      readonly error?: string;
    }
  | {
      readonly kind: 'job-cancelled';
      readonly jobId: string;
      readonly len: number;
      readonly offset: number;
      readonly speed: number;
    }
  | {
      readonly kind: 'job-error';
      readonly jobId: string;
      readonly operation: 'read' | 'write';
      readonly action: 'ignore' | 'report' | 'stop';
    }
  /** The monitor connection dropped; events in between are lost (QEMU does not replay them). */
  | { readonly kind: 'connection-lost'; readonly reason: string }
  /** The connection is back; the engine must resync from queries. */
  | { readonly kind: 'connection-restored' }
  /** The hypervisor process is gone: every job with it. */
  | { readonly kind: 'hypervisor-gone'; readonly reason: string };

export interface HypervisorError {
  /** qmp: QEMU answered with an error; connection: no answer; io: a local file operation failed. */
  readonly kind: 'qmp' | 'connection' | 'timeout' | 'io' | 'invalid' | 'libvirt';
  /** QMP error class (GenericError, DeviceNotActive, …) when kind is qmp. */
  readonly errorClass?: string;
  readonly command: string;
  readonly desc: string;
  /** kind libvirt: the daemon's own virError (code, domain, message), passed through unchanged. */
  readonly libvirt?: { readonly code: number; readonly domain: number; readonly message: string };
}

export interface HypervisorPort {
  /** "sim" or "qmp:<socket>". */
  readonly name: string;
  readonly events$: Observable<HypervisorEvent>;
  /**
   * The hypervisor refuses a granularity or buf-size outside QEMU's limits itself before any job
   * starts (libvirt does, with its own code and message): the engine then leaves those checks to it.
   */
  readonly checksCopyLimits?: boolean;

  getDomain(domain: string): ResultAsync<DomainInfo | null, HypervisorError>;
  /** Every disk of the domain by all its names; null when there is no such domain. */
  listDisks(domain: string): ResultAsync<readonly DiskNames[] | null, HypervisorError>;
  describeDisk(domain: string, disk: string): ResultAsync<DiskInfo | null, HypervisorError>;
  probeDestination(path: string): ResultAsync<DestinationProbe, HypervisorError>;
  /** Creates an empty image. Idempotent: an identical image already created by this adapter is fine. */
  createDestination(spec: CreateDestinationSpec): ResultAsync<void, HypervisorError>;
  /**
   * Drops the ownership claim createDestination left for `claim` (the file itself stays).
   * Idempotent. Optional: an adapter that keeps no claim need not have it.
   */
  releaseDestination?(path: string, claim: string): ResultAsync<void, HypervisorError>;
  /**
   * For a hypervisor that names a job by its disk, not by the engine's id (libvirt): tells a fresh
   * adapter that `jobId` is the copy of `domain`/`disk` into `destination`, as recorded before a
   * restart, so that queryJob and the job calls find it. Does nothing when the disk has no such
   * job. Optional: QEMU keeps the engine's job id itself.
   */
  reattachJob?(job: {
    readonly jobId: string;
    readonly domain: string;
    readonly disk: string;
    readonly destination: string;
  }): ResultAsync<void, HypervisorError>;
  /** Removes an image the engine created (never a block device). Idempotent: a missing file is fine. */
  removeDestination(path: string): ResultAsync<void, HypervisorError>;

  /** blockdev-mirror (after attaching the destination). Idempotent: an existing job with this id is fine. */
  startMirror(spec: MirrorSpec): ResultAsync<void, HypervisorError>;
  /**
   * block-stream (block pull) with auto-dismiss off, so its outcome stays readable until
   * dismissJob. Idempotent: an existing job with this id is fine. Optional: a port without it
   * refuses block pull.
   */
  startStream?(spec: StreamSpec): ResultAsync<void, HypervisorError>;
  /**
   * The backing names as written in each image header of the disk's chain, top first (null: no
   * backing), for RELATIVE pulls. Optional: without it RELATIVE is refused.
   */
  backingNames?(domain: string, disk: string): ResultAsync<readonly (string | null)[], HypervisorError>;
  /** null when the hypervisor has no such job. */
  queryJob(jobId: string): ResultAsync<HypervisorJobInfo | null, HypervisorError>;
  /** block-job-complete: the pivot request. */
  completeJob(jobId: string): ResultAsync<void, HypervisorError>;
  /** block-job-cancel; force=false after ready leaves a consistent copy. */
  cancelJob(jobId: string, force: boolean): ResultAsync<void, HypervisorError>;
  pauseJob(jobId: string): ResultAsync<void, HypervisorError>;
  resumeJob(jobId: string): ResultAsync<void, HypervisorError>;
  setJobSpeed(jobId: string, bytesPerSecond: number): ResultAsync<void, HypervisorError>;
  /**
   * job-dismiss of a concluded job, and detach of the job's leftover nodes. Idempotent. A block
   * pull passes the images it pulled out (`pulledOut`, top first): an adapter that lost its
   * memory of the stream with a restart still releases their nodes once nothing uses them.
   */
  dismissJob(jobId: string, hint?: { readonly pulledOut?: readonly string[] }): ResultAsync<void, HypervisorError>;
  /**
   * Every file a node of the domain's block graph has open (any disk's chain, a job's target, a
   * node left attached), for `--delete-source`. Optional: without it, the chains of listDisks.
   */
  openFiles?(domain: string): ResultAsync<readonly string[], HypervisorError>;
  /** Path of the image the disk's guest device now reads from (to confirm a pivot). */
  activeImage(domain: string, disk: string): ResultAsync<string, HypervisorError>;

  close(): Promise<void>;
}
