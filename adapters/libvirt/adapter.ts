/**
 * The libvirt implementation of the engine's HypervisorPort: block copy through libvirtd's RPC
 * (virDomainBlockCopy, virDomainBlockJobAbort, virDomainGetBlockJobInfo, SetSpeed, BLOCK_JOB_2
 * and lifecycle events), for hosts where libvirt owns QEMU's monitor.
 *
 * How the port's QEMU-shaped steps map onto libvirt (README, "libvirt"):
 * - A job is named by libvirt's (domain, disk target); the engine's job id is mapped to it here.
 * - createDestination only checks the path is free and reserves it: libvirt creates the file
 *   itself in virDomainBlockCopy (no REUSE_EXT). A reserved destination makes startMirror omit
 *   REUSE_EXT; any other destination is a reused one (REUSE_EXT).
 * - READY comes from the BLOCK_JOB_2 event, or from the live XML's `<mirror ready='yes'>` when
 *   polling (authoritative after a daemon restart lost the event), never from cur == end.
 * - libvirt always aborts with a soft block-job-cancel: after READY that leaves a consistent
 *   copy and libvirt reports CANCELED; the adapter reports it as QEMU does (completed, no error).
 * - libvirt dismisses concluded jobs itself (dismissJob is a no-op) and has no block-job pause
 *   (pauseJob/resumeJob fail with a typed error).
 * Errors libvirt sends pass through unchanged (kind 'libvirt', code, domain, message).
 */
import { type Res, invalid, ioError, wrap } from '../hypervisor-results.js';
import { err, ok, ResultAsync } from 'neverthrow';
import { Subject, type Observable, type Subscription } from 'rxjs';
import type { Clock } from '../../src/core/clock.js';
import type {
  CreateDestinationSpec,
  DestinationProbe,
  DiskInfo,
  DiskNames,
  DomainInfo,
  HypervisorError,
  HypervisorEvent,
  HypervisorJobInfo,
  HypervisorPort,
  JobStatus,
  MirrorSpec,
  StreamSpec,
} from '../../src/core/hypervisor-port.js';
import { chainInfo, destinationXml, findDisk, parseDomainXml, type DomainDisk, type DomainXml } from './domain-xml.js';
import { LocalImages, parseJson, removeFile, samePath } from '../local-images.js';
import { BackingSizes } from './backing-sizes.js';
import { describeError, LibvirtClient, type LibvirtReconnectOptions, type LibvirtRpcError } from './rpc/client.js';
import {
  args,
  Proc,
  rets,
  type DomainRef,
  type LibvirtEvent,
  type TypedParam,
  type XdrReader,
} from './rpc/protocol.js';
import { parseConnectUri } from './uri.js';

/** virDomainBlockCopyFlags / AbortFlags / job and event constants (libvirt-rpc.md §4). */
export const LibvirtFlags = {
  COPY_SHALLOW: 1,
  COPY_REUSE_EXT: 2,
  COPY_TRANSIENT_JOB: 4,
  COPY_SYNCHRONOUS_WRITES: 8,
  ABORT_ASYNC: 1,
  ABORT_PIVOT: 2,
  BANDWIDTH_BYTES: 1,
  JOB_TYPE_PULL: 1,
  JOB_TYPE_COPY: 2,
  REBASE_RELATIVE: 16,
  REBASE_BANDWIDTH_BYTES: 64,
  JOB_COMPLETED: 0,
  JOB_FAILED: 1,
  JOB_CANCELED: 2,
  JOB_READY: 3,
  LIFECYCLE_STOPPED: 5,
  LIFECYCLE_SHUTDOWN: 6,
} as const;

export interface LibvirtHypervisorOptions {
  /** A virsh-style URI: qemu:///system (default) or qemu+unix:///system?socket=PATH. */
  readonly uri?: string;
  readonly clock?: Clock;
  readonly callTimeoutMs?: number;
  readonly keepaliveIntervalMs?: number;
  /** Reconnect policy after libvirtd went away; false: a drop is final. */
  readonly reconnect?: false | LibvirtReconnectOptions;
  readonly qemuImg?: string;
  readonly toolTimeoutMs?: number;
  /** How long a job that vanished without its end event waits for the event (default 2 s). */
  readonly endEventGraceMs?: number;
}

interface TrackedJob {
  readonly jobId: string;
  readonly domain: string;
  readonly dom: DomainRef;
  readonly disk: string;
  readonly destination: string;
  /** The terminal event libvirt sent, as the port's conclusion. */
  end: { readonly error?: string; readonly cancelled: boolean } | null;
  /** The last abort was issued while the mirror was ready (libvirt's soft cancel: consistent copy). */
  softCancel: boolean;
  /** Clock time the job was first seen gone without its end event. */
  vanishedAt: number | null;
  lastSpeed: number;
  /** A block pull (libvirt job type PULL) instead of a copy; `base` is what it pulls down to. */
  readonly stream?: { readonly base: string | null };
}

/** A block job as libvirt reports it (GetBlockJobInfo in bytes + the live `<mirror>`). */
export interface LibvirtBlockJob {
  readonly disk: string;
  /** virDomainBlockJobType: 2 = COPY. */
  readonly type: number;
  readonly bandwidth: number;
  readonly cur: number;
  readonly end: number;
  readonly source: string | null;
  readonly destination: string | null;
  /** libvirt's own word: `<mirror ready='yes'>`. */
  readonly ready: boolean;
  /** The job id this adapter knows it by, if it tracks it. */
  readonly jobId: string | null;
}

/** Connects to libvirtd and returns a ready adapter. */
export function connectLibvirt(
  options: LibvirtHypervisorOptions = {},
): ResultAsync<LibvirtHypervisor, HypervisorError> {
  const uri = parseConnectUri(options.uri ?? 'qemu:///system');
  if (uri.isErr()) return new ResultAsync(Promise.resolve(err(invalid('connect', uri.error))));
  return LibvirtClient.connect({
    socket: uri.value.socket,
    uri: uri.value.openUri,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.callTimeoutMs !== undefined ? { callTimeoutMs: options.callTimeoutMs } : {}),
    ...(options.keepaliveIntervalMs !== undefined ? { keepaliveIntervalMs: options.keepaliveIntervalMs } : {}),
    ...(options.reconnect !== undefined ? { reconnect: options.reconnect } : {}),
  })
    .mapErr((e) => toHypervisorError(e, 'connect'))
    .map((client) => new LibvirtHypervisor(client, options));
}

export class LibvirtHypervisor implements HypervisorPort {
  readonly name: string;
  private readonly subject = new Subject<HypervisorEvent>();
  readonly events$: Observable<HypervisorEvent> = this.subject.asObservable();
  /** libvirt passes granularity and buf-size to QEMU, which refuses bad ones before the job starts. */
  readonly checksCopyLimits = true;
  private readonly subscriptions: Subscription[] = [];
  private readonly jobs = new Map<string, TrackedJob>();
  /** Destinations createDestination reserved: libvirt creates them in startMirror. */
  private readonly reserved = new Map<string, CreateDestinationSpec>();
  /** Destinations libvirt created for this adapter (createDestination stays idempotent). */
  private readonly createdByLibvirt = new Set<string>();
  private readonly images: LocalImages;
  private readonly backingSizes: BackingSizes;
  private readonly graceMs: number;
  private readonly clock: Clock | undefined;

  constructor(
    readonly client: LibvirtClient,
    options: LibvirtHypervisorOptions,
  ) {
    this.name = `libvirt:${options.uri ?? 'qemu:///system'}`;
    this.images = new LocalImages(options.qemuImg ?? 'qemu-img', options.toolTimeoutMs ?? 120_000);
    this.backingSizes = new BackingSizes(this.images);
    this.graceMs = options.endEventGraceMs ?? 2000;
    this.clock = options.clock;
    this.subscriptions.push(
      client.events$.subscribe((e) => this.onEvent(e)),
      client.lifecycle$.subscribe((e) => {
        if (e.kind === 'connection-lost') this.subject.next({ kind: 'connection-lost', reason: e.reason });
        else if (e.kind === 'connection-restored') this.subject.next({ kind: 'connection-restored' });
        else if (e.kind === 'gone') this.subject.next({ kind: 'hypervisor-gone', reason: e.reason });
      }),
    );
  }

  private now(): number {
    return this.clock ? this.clock.now() : Date.now();
  }

  // ------------------------------------------------------------------ domain and disks

  getDomain(domain: string): ResultAsync<DomainInfo | null, HypervisorError> {
    return wrap('getDomain', async () => {
      const dom = await this.lookup(domain);
      if (dom.isErr()) return err(dom.error);
      if (dom.value === null) return ok(null);
      const [state, persistent, xml] = await Promise.all([
        this.call(Proc.DOMAIN_GET_STATE, args.domainFlags(dom.value, 0), rets.state),
        this.call(Proc.DOMAIN_IS_PERSISTENT, args.domain(dom.value), rets.int),
        this.liveXml(dom.value),
      ]);
      if (state.isErr()) return err(state.error);
      if (persistent.isErr()) return err(persistent.error);
      if (xml.isErr()) return err(xml.error);
      // virDomainState: 1 running, 2 blocked, 3 paused, 7 pmsuspended are all "active".
      const running = [1, 2, 3, 7].includes(state.value.state);
      return ok({
        name: dom.value.name,
        running,
        persistent: persistent.value === 1,
        disks: xml.value.disks.filter((d) => d.device === 'disk').map((d) => d.target),
      });
    });
  }

  /**
   * Every disk by the names libvirt accepts for it: the target (canonical, 'vda') and the source
   * path (libvirt's virDomainDiskByName). libvirt hides QEMU's node names, so nodeName is null. `job` is any block job
   * libvirt runs on the disk, started by anyone: the id this adapter tracks it under, else
   * `libvirt:<domain>/<target>` (adoptJob takes it over).
   */
  listDisks(domain: string): ResultAsync<readonly DiskNames[] | null, HypervisorError> {
    return wrap('listDisks', async () => {
      const dom = await this.lookup(domain);
      if (dom.isErr()) return err(dom.error);
      if (dom.value === null) return ok(null);
      const xml = await this.liveXml(dom.value);
      if (xml.isErr()) return err(xml.error);
      const out: DiskNames[] = [];
      for (const d of xml.value.disks) {
        const sizes = await this.chainSizes(dom.value, d);
        const chain = sizes.isOk() ? (chainInfo(d, sizes.value) ?? []) : [];
        const info = await this.call(
          Proc.DOMAIN_GET_BLOCK_JOB_INFO,
          args.diskFlags(dom.value, d.target, LibvirtFlags.BANDWIDTH_BYTES),
          rets.blockJobInfo,
        );
        if (info.isErr()) return err(info.error);
        const tracked = [...this.jobs.values()].find((j) => j.domain === domain && j.disk === d.target);
        out.push({
          domain,
          disk: d.target,
          device: d.target,
          // libvirt names a disk by target or source only (not by its alias 'virtio-disk0').
          drive: null,
          nodeName: null,
          exportId: null,
          source: d.chain[0]?.path ?? '',
          chain,
          job: info.value.found
            ? {
                jobId: tracked?.jobId ?? `${FOREIGN_PREFIX}${domain}/${d.target}`,
                type: QEMU_JOB_TYPE[info.value.type] ?? 'unknown',
                status: d.mirror?.ready === 'yes' ? 'ready' : d.mirror?.ready === 'abort' ? 'aborting' : 'running',
                offset: Number(info.value.cur),
                len: Number(info.value.end),
              }
            : null,
        });
      }
      return ok(out);
    });
  }

  describeDisk(domain: string, disk: string): ResultAsync<DiskInfo | null, HypervisorError> {
    return wrap('describeDisk', async () => {
      const found = await this.diskOf(domain, disk);
      if (found.isErr()) return err(found.error);
      if (found.value === null) return ok(null);
      const d = found.value.disk;
      const sizes = await this.chainSizes(found.value.dom, d);
      if (sizes.isErr()) return err(sizes.error);
      const chain = chainInfo(d, sizes.value);
      if (chain === null)
        return err(invalid('describeDisk', `disk '${d.target}' has an image format blockcopy does not copy`));
      return ok({ domain, disk: d.target, chain });
    });
  }

  activeImage(domain: string, disk: string): ResultAsync<string, HypervisorError> {
    return wrap('activeImage', async () => {
      const found = await this.diskOf(domain, disk);
      if (found.isErr()) return err(found.error);
      const top = found.value?.disk.chain[0]?.path;
      if (top === undefined) return err(invalid('activeImage', `disk '${disk}' not found in domain '${domain}'`));
      return ok(top);
    });
  }

  // ------------------------------------------------------------------ destination files

  probeDestination(path: string): ResultAsync<DestinationProbe, HypervisorError> {
    return wrap('probeDestination', () => this.images.probe(path));
  }

  createDestination(spec: CreateDestinationSpec): ResultAsync<void, HypervisorError> {
    return wrap('createDestination', async () => {
      // A block device (COPY_DEV) exists already: libvirt formats it itself (no REUSE_EXT).
      if (spec.type === 'block') {
        this.reserved.set(spec.path, spec);
        return ok(undefined);
      }
      const p = await this.images.probe(spec.path);
      if (p.isErr()) return err(p.error);
      if (p.value.exists) {
        if (this.createdByLibvirt.has(spec.path)) return ok(undefined);
        return err(invalid('createDestination', `'${spec.path}' exists: libvirt creates the destination itself`));
      }
      // libvirt creates it in virDomainBlockCopy (no REUSE_EXT): remember that it must.
      this.reserved.set(spec.path, spec);
      return ok(undefined);
    });
  }

  removeDestination(path: string): ResultAsync<void, HypervisorError> {
    return wrap('removeDestination', async () => {
      this.reserved.delete(path);
      this.createdByLibvirt.delete(path);
      return removeFile(path);
    });
  }

  // ------------------------------------------------------------------ jobs

  startMirror(spec: MirrorSpec): ResultAsync<void, HypervisorError> {
    return wrap('startMirror', async () => {
      if (spec.onTargetError !== 'report' || spec.onSourceError !== 'report')
        return err(
          invalid(
            'startMirror',
            `libvirt sets no on-target-error/on-source-error (QEMU's default, report); '${spec.onTargetError}'/'${spec.onSourceError}' cannot be honoured`,
          ),
        );
      const dom = await this.lookup(spec.domain);
      if (dom.isErr()) return err(dom.error);
      if (dom.value === null) return err(invalid('startMirror', `no domain with matching name '${spec.domain}'`));
      const xml = await this.liveXml(dom.value);
      if (xml.isErr()) return err(xml.error);
      const disk = findDisk(xml.value, spec.disk);
      // Idempotence: a mirror into this very destination is the one an earlier attempt started.
      if (disk?.mirror && disk.mirror.path !== null && samePath(disk.mirror.path, spec.destination.path)) {
        this.track(spec, dom.value, disk.target);
        return ok(undefined);
      }
      const persistent = await this.call(Proc.DOMAIN_IS_PERSISTENT, args.domain(dom.value), rets.int);
      if (persistent.isErr()) return err(persistent.error);
      const create = this.reserved.has(spec.destination.path);
      let flags = 0;
      if (spec.sync === 'top') flags |= LibvirtFlags.COPY_SHALLOW;
      if (!create) flags |= LibvirtFlags.COPY_REUSE_EXT;
      // The engine lets a copy on a persistent domain start only with TRANSIENT_JOB.
      if (persistent.value === 1) flags |= LibvirtFlags.COPY_TRANSIENT_JOB;
      if (spec.copyMode === 'write-blocking') flags |= LibvirtFlags.COPY_SYNCHRONOUS_WRITES;
      // virDomainBlockCopy's typed parameters; 0 or absent means the hypervisor's default, as in libvirt.
      const params: TypedParam[] = [];
      if (spec.speed > 0) params.push({ field: 'bandwidth', type: 'ullong', value: BigInt(spec.speed) });
      if (spec.granularity !== undefined && spec.granularity > 0)
        params.push({ field: 'granularity', type: 'uint', value: spec.granularity });
      if (spec.bufSize !== undefined && spec.bufSize > 0)
        params.push({ field: 'buf-size', type: 'ullong', value: BigInt(spec.bufSize) });
      const target = disk?.target ?? spec.disk;
      const r = await this.call(
        Proc.DOMAIN_BLOCK_COPY,
        args.blockCopy(
          dom.value,
          target,
          destinationXml(spec.destination.path, spec.destination.format, spec.destination.type ?? 'file'),
          params,
          flags,
        ),
        rets.void,
      );
      if (r.isErr()) return err(r.error);
      if (create) {
        this.reserved.delete(spec.destination.path);
        if (spec.destination.type !== 'block') this.createdByLibvirt.add(spec.destination.path);
      }
      this.track(spec, dom.value, target).lastSpeed = spec.speed;
      return ok(undefined);
    });
  }

  /**
   * Block pull through virDomainBlockRebase (no COPY; base null pulls the whole chain), bandwidth
   * in bytes, RELATIVE when a backing name is to be kept relative (libvirt computes it itself).
   */
  startStream(spec: StreamSpec): ResultAsync<void, HypervisorError> {
    return wrap('startStream', async () => {
      if (this.jobs.has(spec.jobId)) return ok(undefined);
      const dom = await this.lookup(spec.domain);
      if (dom.isErr()) return err(dom.error);
      if (dom.value === null) return err(invalid('startStream', `no domain with matching name '${spec.domain}'`));
      const xml = await this.liveXml(dom.value);
      if (xml.isErr()) return err(xml.error);
      const target = findDisk(xml.value, spec.disk)?.target ?? spec.disk;
      let flags = LibvirtFlags.REBASE_BANDWIDTH_BYTES;
      if (spec.backingFile !== null) flags |= LibvirtFlags.REBASE_RELATIVE;
      const r = await this.call(
        Proc.DOMAIN_BLOCK_REBASE,
        args.blockRebase(dom.value, target, spec.base?.path ?? null, BigInt(spec.speed), flags),
        rets.void,
      );
      if (r.isErr()) return err(r.error);
      this.jobs.set(spec.jobId, {
        jobId: spec.jobId,
        domain: spec.domain,
        dom: dom.value,
        disk: target,
        destination: '',
        end: null,
        softCancel: false,
        vanishedAt: null,
        lastSpeed: spec.speed,
        stream: { base: spec.base?.path ?? null },
      });
      return ok(undefined);
    });
  }

  /** Backing names as written in each header (libvirt's XML shows resolved paths only). */
  backingNames(domain: string, disk: string): ResultAsync<readonly (string | null)[], HypervisorError> {
    return wrap('backingNames', async () => {
      const found = await this.diskOf(domain, disk);
      if (found.isErr()) return err(found.error);
      const top = found.value?.disk.chain[0]?.path;
      if (top === undefined) return err(invalid('backingNames', `disk '${disk}' not found`));
      const r = await this.images.tool('qemu-img info', ['info', '-U', '--backing-chain', '--output=json', top]);
      if (r.isErr()) return err(r.error);
      const infos = parseJson(r.value);
      if (!Array.isArray(infos)) return err(ioError('qemu-img info', `unreadable output for '${top}'`));
      return ok(
        infos.map((i) => {
          const name = (i as Record<string, unknown>)['backing-filename'];
          return typeof name === 'string' ? name : null;
        }),
      );
    });
  }

  /** A tracked pull as job info: running while libvirt lists it, else by its end event or the chain. */
  private async queryStream(job: TrackedJob): Res<HypervisorJobInfo | null> {
    const info = await this.call(
      Proc.DOMAIN_GET_BLOCK_JOB_INFO,
      args.diskFlags(job.dom, job.disk, LibvirtFlags.BANDWIDTH_BYTES),
      rets.blockJobInfo,
    );
    if (job.end) return ok(concluded(job));
    if (info.isErr()) return info.error.libvirt?.code === 42 ? ok(null) : err(info.error);
    if (info.value.found && info.value.type === LibvirtFlags.JOB_TYPE_PULL) {
      job.vanishedAt = null;
      return ok({
        jobId: job.jobId,
        status: 'running',
        offset: Number(info.value.cur),
        len: Number(info.value.end),
        speed: Number(info.value.bandwidth),
        ready: false,
        paused: false,
        ioStatus: 'ok',
      });
    }
    job.vanishedAt ??= this.now();
    if (this.now() - job.vanishedAt < this.graceMs)
      return ok({
        jobId: job.jobId,
        status: 'pending',
        offset: 0,
        len: 0,
        speed: 0,
        ready: false,
        paused: false,
        ioStatus: 'ok',
      });
    // The end event is lost: the chain tells whether the pull happened (top backed by base).
    const found = await this.diskOf(job.domain, job.disk);
    const chain = found.isOk() ? found.value?.disk.chain : undefined;
    const below = chain?.[1]?.path;
    const base = job.stream?.base ?? null;
    if (chain && (base === null ? below === undefined : below !== undefined && samePath(below, base))) {
      job.end = { cancelled: false };
      return ok(concluded(job));
    }
    return ok(null);
  }

  queryJob(jobId: string): ResultAsync<HypervisorJobInfo | null, HypervisorError> {
    return wrap('queryJob', async () => {
      const job = await this.jobOf(jobId);
      if (!job) return ok(null);
      if (job.end) return ok(concluded(job));
      if (job.stream) return this.queryStream(job);
      const [info, xml] = await Promise.all([
        this.call(
          Proc.DOMAIN_GET_BLOCK_JOB_INFO,
          args.diskFlags(job.dom, job.disk, LibvirtFlags.BANDWIDTH_BYTES),
          rets.blockJobInfo,
        ),
        this.liveXml(job.dom),
      ]);
      if (job.end) return ok(concluded(job)); // the end event arrived meanwhile
      if (info.isErr()) {
        // The domain is gone: libvirt drops its jobs without events (libvirt-api.md §2.8).
        if (info.error.libvirt?.code === 42) return ok(null);
        return err(info.error);
      }
      if (xml.isErr()) return err(xml.error);
      const disk = findDisk(xml.value, job.disk);
      const mirror = disk?.mirror ?? null;
      const ours = mirror !== null && mirror.path !== null && samePath(mirror.path, job.destination);
      if (info.value.found && info.value.type === LibvirtFlags.JOB_TYPE_COPY && ours) {
        job.vanishedAt = null;
        // READY only from libvirt's own word: <mirror ready='yes'> (never from cur == end).
        const status: JobStatus =
          mirror.ready === 'yes'
            ? 'ready'
            : mirror.ready === 'abort'
              ? 'aborting'
              : mirror.ready === 'pivot'
                ? 'waiting'
                : 'running';
        return ok({
          jobId,
          status,
          offset: Number(info.value.cur),
          len: Number(info.value.end),
          speed: Number(info.value.bandwidth),
          ready: status === 'ready',
          paused: false,
          ioStatus: 'ok',
        });
      }
      // Gone without its end event: the event may still be on its way; wait a little for it.
      job.vanishedAt ??= this.now();
      if (this.now() - job.vanishedAt < this.graceMs)
        return ok({
          jobId,
          status: 'pending',
          offset: 0,
          len: 0,
          speed: 0,
          ready: false,
          paused: false,
          ioStatus: 'ok',
        });
      // The event is lost (e.g. libvirtd restarted): only the live XML can tell.
      const top = disk?.chain[0]?.path;
      if (top !== undefined && samePath(top, job.destination)) {
        job.end = { cancelled: false };
        return ok(concluded(job));
      }
      return ok(null);
    });
  }

  completeJob(jobId: string): ResultAsync<void, HypervisorError> {
    return wrap('completeJob', async () => {
      const job = await this.jobOf(jobId);
      if (!job) return err(invalid('completeJob', `no block job '${jobId}'`));
      const r = await this.call(
        Proc.DOMAIN_BLOCK_JOB_ABORT,
        args.diskFlags(job.dom, job.disk, LibvirtFlags.ABORT_ASYNC | LibvirtFlags.ABORT_PIVOT),
        rets.void,
      );
      if (r.isOk()) return ok(undefined);
      // Idempotence: a pivot under way (ready='pivot') or done (the disk reads the copy).
      const state = await this.mirrorOf(job);
      if (state?.mirror?.ready === 'pivot') return ok(undefined);
      if (state && !state.mirror && state.top !== undefined && samePath(state.top, job.destination))
        return ok(undefined);
      return err(r.error);
    });
  }

  cancelJob(jobId: string, _force: boolean): ResultAsync<void, HypervisorError> {
    return wrap('cancelJob', async () => {
      const job = await this.jobOf(jobId);
      if (!job) return ok(undefined); // no job: nothing to cancel
      const before = await this.mirrorOf(job);
      // libvirt has no force cancel: it always soft-cancels (block-job-cancel force=false).
      const r = await this.call(
        Proc.DOMAIN_BLOCK_JOB_ABORT,
        args.diskFlags(job.dom, job.disk, LibvirtFlags.ABORT_ASYNC),
        rets.void,
      );
      if (r.isOk()) {
        job.softCancel = before?.mirror?.ready === 'yes';
        return ok(undefined);
      }
      const after = await this.mirrorOf(job);
      if (after?.mirror?.ready === 'abort') return ok(undefined);
      // Already ended without having pivoted: nothing to cancel. A pivoted job was not cancelled.
      if (after && !after.mirror && !(after.top !== undefined && samePath(after.top, job.destination)))
        return ok(undefined);
      return err(r.error);
    });
  }

  pauseJob(jobId: string): ResultAsync<void, HypervisorError> {
    return wrap('pauseJob', () =>
      Promise.resolve(err(invalid('pauseJob', `libvirt has no block-job pause (job '${jobId}')`))),
    );
  }

  resumeJob(jobId: string): ResultAsync<void, HypervisorError> {
    return wrap('resumeJob', () =>
      Promise.resolve(err(invalid('resumeJob', `libvirt has no block-job resume (job '${jobId}')`))),
    );
  }

  setJobSpeed(jobId: string, bytesPerSecond: number): ResultAsync<void, HypervisorError> {
    return wrap('setJobSpeed', async () => {
      const job = await this.jobOf(jobId);
      if (!job) return err(invalid('setJobSpeed', `no block job '${jobId}'`));
      const r = await this.call(
        Proc.DOMAIN_BLOCK_JOB_SET_SPEED,
        args.setSpeed(job.dom, job.disk, BigInt(bytesPerSecond), LibvirtFlags.BANDWIDTH_BYTES),
        rets.void,
      );
      if (r.isOk()) job.lastSpeed = bytesPerSecond;
      return r;
    });
  }

  /** libvirt dismisses a concluded job itself; the adapter only forgets it. */
  dismissJob(jobId: string): ResultAsync<void, HypervisorError> {
    return wrap('dismissJob', () => {
      this.jobs.delete(jobId);
      return Promise.resolve(ok(undefined));
    });
  }

  async close(): Promise<void> {
    for (const s of this.subscriptions) s.unsubscribe();
    await this.client.close();
    this.subject.complete();
  }

  // ------------------------------------------------------------------ libvirt-only helpers

  /** The domain's live XML, parsed. */
  domainXml(domain: string): ResultAsync<DomainXml | null, HypervisorError> {
    return wrap('domainXml', async () => {
      const dom = await this.lookup(domain);
      if (dom.isErr()) return err(dom.error);
      if (dom.value === null) return ok(null);
      return this.liveXml(dom.value);
    });
  }

  /**
   * Every block job libvirt has on the domain's disks, started by anyone (virsh, Nova, oVirt,
   * blockcopy): job info plus the live XML's `<mirror>`.
   */
  listBlockJobs(domain: string): ResultAsync<readonly LibvirtBlockJob[] | null, HypervisorError> {
    return wrap('listBlockJobs', async () => {
      const dom = await this.lookup(domain);
      if (dom.isErr()) return err(dom.error);
      if (dom.value === null) return ok(null);
      const xml = await this.liveXml(dom.value);
      if (xml.isErr()) return err(xml.error);
      const out: LibvirtBlockJob[] = [];
      for (const d of xml.value.disks) {
        const info = await this.call(
          Proc.DOMAIN_GET_BLOCK_JOB_INFO,
          args.diskFlags(dom.value, d.target, LibvirtFlags.BANDWIDTH_BYTES),
          rets.blockJobInfo,
        );
        if (info.isErr()) return err(info.error);
        if (!info.value.found) continue;
        out.push({
          disk: d.target,
          type: info.value.type,
          bandwidth: Number(info.value.bandwidth),
          cur: Number(info.value.cur),
          end: Number(info.value.end),
          source: d.chain[0]?.path ?? null,
          destination: d.mirror?.path ?? null,
          ready: d.mirror?.ready === 'yes',
          jobId: [...this.jobs.values()].find((j) => j.domain === domain && j.disk === d.target)?.jobId ?? null,
        });
      }
      return ok(out);
    });
  }

  /**
   * Takes over a copy job libvirt already runs on the disk (started by virsh, or by an engine
   * process before a restart), under `jobId`: queryJob, completeJob, cancelJob and setJobSpeed
   * then work on it, and its events are reported. Fails unless the disk has a copy job.
   */
  adoptJob(jobId: string, domain: string, disk: string): ResultAsync<LibvirtBlockJob, HypervisorError> {
    return wrap('adoptJob', async () => {
      const jobs = await this.listBlockJobs(domain);
      if (jobs.isErr()) return err(jobs.error);
      if (jobs.value === null) return err(invalid('adoptJob', `no domain with matching name '${domain}'`));
      const dom = await this.lookup(domain);
      if (dom.isErr() || dom.value === null) return err(invalid('adoptJob', `domain '${domain}' vanished`));
      const xml = await this.liveXml(dom.value);
      if (xml.isErr()) return err(xml.error);
      const target = findDisk(xml.value, disk)?.target ?? disk;
      const job = jobs.value.find((j) => j.disk === target);
      if (!job || job.type !== LibvirtFlags.JOB_TYPE_COPY || job.destination === null)
        return err(invalid('adoptJob', `disk ${target} does not have an active block copy job`));
      const tracked = this.track(
        {
          jobId,
          domain,
          disk: target,
          destination: { path: job.destination, format: 'qcow2' },
          destinationBacking: null,
          sync: 'full',
          speed: job.bandwidth,
          onTargetError: 'report',
          onSourceError: 'report',
          copyMode: 'background',
        },
        dom.value,
        target,
      );
      tracked.lastSpeed = job.bandwidth;
      return ok({ ...job, jobId });
    });
  }

  /**
   * The port's reattachJob: `jobId` is the copy of `domain`/`disk` into `destination` that an engine
   * recorded before it restarted. libvirt names jobs by disk only, so a fresh adapter learns the
   * engine's id here. Tracks it while the disk mirrors into that destination, or already reads it
   * (pivoted while nobody watched: queryJob then reports it concluded); otherwise tracks nothing,
   * and queryJob answers null, as for a job the hypervisor no longer knows.
   */
  reattachJob(job: {
    readonly jobId: string;
    readonly domain: string;
    readonly disk: string;
    readonly destination: string;
  }): ResultAsync<void, HypervisorError> {
    return wrap('reattachJob', async () => {
      if (this.jobs.has(job.jobId)) return ok(undefined);
      const found = await this.diskOf(job.domain, job.disk);
      if (found.isErr()) return err(found.error);
      if (found.value === null) return ok(undefined);
      const d = found.value.disk;
      const mirrors = d.mirror !== null && d.mirror.path !== null && samePath(d.mirror.path, job.destination);
      const top = d.chain[0]?.path;
      const pivoted = d.mirror === null && top !== undefined && samePath(top, job.destination);
      if (!mirrors && !pivoted) return ok(undefined);
      const info = await this.call(
        Proc.DOMAIN_GET_BLOCK_JOB_INFO,
        args.diskFlags(found.value.dom, d.target, LibvirtFlags.BANDWIDTH_BYTES),
        rets.blockJobInfo,
      );
      if (info.isErr()) return err(info.error);
      const speed = info.value.found ? Number(info.value.bandwidth) : 0;
      this.track(
        {
          jobId: job.jobId,
          domain: job.domain,
          disk: d.target,
          destination: { path: job.destination, format: 'qcow2' },
          destinationBacking: null,
          sync: 'full',
          speed,
          onTargetError: 'report',
          onSourceError: 'report',
          copyMode: 'background',
        },
        found.value.dom,
        d.target,
      );
      return ok(undefined);
    });
  }

  /** Jobs this adapter tracks (engine job id → libvirt domain and disk). */
  trackedJobs(): readonly { readonly jobId: string; readonly domain: string; readonly disk: string }[] {
    return [...this.jobs.values()].map((j) => ({ jobId: j.jobId, domain: j.domain, disk: j.disk }));
  }

  // ------------------------------------------------------------------ internals

  /**
   * The job `jobId` names: one this adapter tracks, else a job listDisks named
   * `libvirt:<domain>/<target>` (started by anyone), taken over on first use, as engine.adopt needs.
   */
  private async jobOf(jobId: string): Promise<TrackedJob | undefined> {
    const tracked = this.jobs.get(jobId);
    if (tracked || !jobId.startsWith(FOREIGN_PREFIX)) return tracked;
    const name = jobId.slice(FOREIGN_PREFIX.length);
    const slash = name.lastIndexOf('/');
    if (slash <= 0) return undefined;
    const adopted = await this.adoptJob(jobId, name.slice(0, slash), name.slice(slash + 1));
    return adopted.isOk() ? this.jobs.get(jobId) : undefined;
  }

  private track(spec: MirrorSpec, dom: DomainRef, target: string): TrackedJob {
    const job: TrackedJob = {
      jobId: spec.jobId,
      domain: spec.domain,
      dom,
      disk: target,
      destination: spec.destination.path,
      end: null,
      softCancel: false,
      vanishedAt: null,
      lastSpeed: spec.speed,
    };
    this.jobs.set(spec.jobId, job);
    return job;
  }

  private onEvent(e: LibvirtEvent): void {
    if (e.kind === 'block-job') {
      if (e.type !== LibvirtFlags.JOB_TYPE_COPY && e.type !== LibvirtFlags.JOB_TYPE_PULL) return;
      const job = [...this.jobs.values()].find(
        (j) =>
          j.end === null &&
          j.dom.uuid.equals(e.domain.uuid) &&
          j.disk === e.disk &&
          (j.stream !== undefined) === (e.type === LibvirtFlags.JOB_TYPE_PULL),
      );
      if (!job) return;
      switch (e.status) {
        case LibvirtFlags.JOB_READY:
          this.subject.next({ kind: 'job-status', jobId: job.jobId, status: 'ready' });
          return;
        case LibvirtFlags.JOB_COMPLETED:
          job.end = { cancelled: false };
          break;
        case LibvirtFlags.JOB_FAILED:
          job.end = { cancelled: false, error: 'libvirt reported the block job FAILED' };
          break;
        case LibvirtFlags.JOB_CANCELED:
          // libvirt's abort is a soft cancel: after READY it leaves a consistent copy, which QEMU
          // itself reports as completed (libvirt a887da529c renames it CANCELED).
          job.end = job.softCancel ? { cancelled: false } : { cancelled: true };
          break;
        default:
          return;
      }
      this.emitEnd(job);
      return;
    }
    if (e.event === LibvirtFlags.LIFECYCLE_STOPPED || e.event === LibvirtFlags.LIFECYCLE_SHUTDOWN) {
      if (e.event === LibvirtFlags.LIFECYCLE_SHUTDOWN) return; // STOPPED follows once QEMU is gone
      // libvirt drops the jobs of a stopped domain without block-job events.
      for (const job of this.jobs.values())
        if (job.end === null && job.dom.uuid.equals(e.domain.uuid)) {
          job.end = { cancelled: false, error: 'domain is not running' };
          this.emitEnd(job);
        }
    }
  }

  private emitEnd(job: TrackedJob): void {
    const end = job.end!;
    const progress = { jobId: job.jobId, len: 0, offset: 0, speed: job.lastSpeed };
    this.subject.next(
      end.cancelled
        ? { kind: 'job-cancelled', ...progress }
        : end.error !== undefined
          ? { kind: 'job-completed', ...progress, error: end.error }
          : { kind: 'job-completed', ...progress },
    );
    this.subject.next({ kind: 'job-status', jobId: job.jobId, status: 'concluded' });
  }

  private async call<T>(proc: number, payload: Buffer, decode: (r: XdrReader) => T): Res<T> {
    const r = await this.client.call(proc, payload, decode);
    return r.mapErr((e) => toHypervisorError(e, procName(proc)));
  }

  private async lookup(domain: string): Res<DomainRef | null> {
    const r = await this.call(Proc.DOMAIN_LOOKUP_BY_NAME, args.string(domain), rets.domain);
    if (r.isOk()) return ok(r.value);
    if (r.error.libvirt?.code === 42) return ok(null);
    return err(r.error);
  }

  private async liveXml(dom: DomainRef): Res<DomainXml> {
    const r = await this.call(Proc.DOMAIN_GET_XML_DESC, args.domainFlags(dom, 0), rets.string);
    if (r.isErr()) return err(r.error);
    const parsed = parseDomainXml(r.value);
    return parsed.isOk() ? ok(parsed.value) : err(invalid('domainXml', parsed.error));
  }

  private async diskOf(domain: string, disk: string): Res<{ dom: DomainRef; disk: DomainDisk } | null> {
    const dom = await this.lookup(domain);
    if (dom.isErr()) return err(dom.error);
    if (dom.value === null) return ok(null);
    const xml = await this.liveXml(dom.value);
    if (xml.isErr()) return err(xml.error);
    const d = findDisk(xml.value, disk);
    return ok(d ? { dom: dom.value, disk: d } : null);
  }

  private async mirrorOf(job: TrackedJob): Promise<{ mirror: DomainDisk['mirror']; top: string | undefined } | null> {
    const xml = await this.liveXml(job.dom);
    if (xml.isErr()) return null;
    const d = findDisk(xml.value, job.disk);
    return d ? { mirror: d.mirror, top: d.chain[0]?.path } : null;
  }

  /**
   * Virtual sizes of the chain's images: the active image's from libvirt (virDomainGetBlockInfo,
   * one round trip), the backing images' remembered per file (backing-sizes.ts), so that starting
   * a copy costs no `qemu-img` run once the chain is known.
   */
  private async chainSizes(dom: DomainRef, d: DomainDisk): Res<number[]> {
    if (d.chain[0] === undefined) return ok([]);
    const [top, backing] = await Promise.all([
      this.call(Proc.DOMAIN_GET_BLOCK_INFO, args.diskFlags(dom, d.target, 0), rets.blockInfo),
      this.backingSizes.sizes(d.chain.slice(1).map((c) => c.path)),
    ]);
    if (top.isErr()) return err(top.error);
    if (backing.isErr()) return err(backing.error);
    return ok([Number(top.value.capacity), ...backing.value]);
  }
}

// ---------------------------------------------------------------- helpers

/** How listDisks names a block job this adapter does not track (e.g. one virsh started). */
const FOREIGN_PREFIX = 'libvirt:';

/** libvirt's job type → QEMU's job type name (what the port's DiskNames.job.type speaks). */
const QEMU_JOB_TYPE: Readonly<Record<number, string>> = {
  1: 'stream',
  2: 'mirror',
  3: 'commit',
  4: 'commit',
  5: 'backup',
};

function concluded(job: TrackedJob): HypervisorJobInfo {
  return {
    jobId: job.jobId,
    status: 'concluded',
    offset: 0,
    len: 0,
    speed: job.lastSpeed,
    ready: false,
    paused: false,
    ioStatus: 'ok',
    // observeJobInfo reads a cancel from the error text, as QEMU words a force cancel.
    ...(job.end?.cancelled ? { error: 'Operation canceled' } : job.end?.error ? { error: job.end.error } : {}),
  };
}

const PROC_NAMES = new Map<number, string>(Object.entries(Proc).map(([k, v]) => [v, k]));

export function procName(proc: number): string {
  return PROC_NAMES.get(proc) ?? `procedure ${proc}`;
}

/** A client error as the port's HypervisorError; libvirt's own errors keep code and message. */
export function toHypervisorError(e: LibvirtRpcError, command: string): HypervisorError {
  switch (e.kind) {
    case 'libvirt':
      return {
        kind: 'libvirt',
        command,
        desc: describeError(e),
        libvirt: {
          code: e.error.code,
          domain: e.error.domain,
          message: e.error.message ?? `libvirt error ${e.error.code}`,
        },
      };
    case 'timeout':
      return { kind: 'timeout', command, desc: e.message };
    case 'connection':
    case 'access-denied':
      return { kind: 'connection', command, desc: e.message };
    case 'protocol':
      return { kind: 'connection', command, desc: `libvirt protocol error: ${e.message}` };
  }
}
