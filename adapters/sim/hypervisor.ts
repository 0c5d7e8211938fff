/**
 * SimulatedHypervisor: an in-process HypervisorPort that behaves like QEMU 7.2 as recorded in
 * test/fixtures/traces/qemu-7.2 (qemu-mirror.md). It is the engine's embedded default and the base of
 * its fast property tests: all time comes from the injected Clock, all randomness from the
 * injected random source, so a run is deterministic and a VirtualClock runs a 1 GiB copy in
 * microseconds.
 *
 * Event delivery: events go out synchronously on `events$`, in the order they happen. Events a
 * command causes are delivered before its ResultAsync resolves (blockdev-mirror's created/running,
 * pause, resume, dismiss: "events before the reply"); what QEMU does later in the job coroutine
 * runs from clock timers after the reply: a cancel or a start-up failure at 0 ms, the end of a
 * complete or soft cancel after END_DELAY_MS (job.ts). Events raised while a subscriber reacts to
 * an event are queued behind it, so every subscriber sees one global order.
 *
 * Control methods beyond the port (documented where declared below): guestWrite,
 * setGuestWriteRate, setCopyRate, injectTargetError, injectSourceError, clearFaults, setEventLoss,
 * setEventDuplication, disconnect, reconnect, kill, shutdown, restart; read-only: images,
 * isConnected, isAlive, sttViolations, listJobs. SimQmp (qmp.ts) is the same simulator behind
 * QMP command names.
 */
import { Result, ResultAsync, err, errAsync, ok, okAsync } from 'neverthrow';
import { Subject, type Observable } from 'rxjs';
import { systemClock, type Clock } from '../../src/core/clock.js';
import type {
  BackingRef,
  CreateDestinationSpec,
  DestinationProbe,
  DiskInfo,
  DiskNames,
  DomainInfo,
  HypervisorError,
  HypervisorEvent,
  HypervisorJobInfo,
  HypervisorPort,
  ImageInfo,
  MirrorSpec,
  StreamSpec,
} from '../../src/core/hypervisor-port.js';
import { DEFAULT_IMAGE_DIR, MiB, defaultDomains, type SimDomainSpec } from './default-domain.js';
import {
  blockJobNotFound,
  connectionError,
  deviceNotFound,
  invalidError,
  ioError,
  jobNotFound,
  qmpError,
} from './errors.js';
import { EventNoise, FaultPlan, seededRandom, type EventPredicate, type FaultHit, type IoFaultSpec } from './faults.js';
import {
  ImageStore,
  fileSize,
  imageInfo,
  makeImage,
  parentDir,
  protocolDriverError,
  sameBacking,
  type SimImage,
  type SimImageSpec,
} from './images.js';
import { MirrorJob, type JobHost } from './job.js';

export interface SimulatedHypervisorOptions {
  /** Default systemClock. Use a VirtualClock in tests. */
  readonly clock?: Clock;
  /** Default: defaultDomains(), the `demo` domain with `vda` on base <- snap1 <- snap2. */
  readonly domains?: readonly SimDomainSpec[];
  /** Files that exist besides the disks' chains (pre-created destinations, block devices, dirs). */
  readonly images?: readonly SimImageSpec[];
  /** Bytes per second the copy engine moves (default 512 MiB/s, about QEMU's measured rate). */
  readonly copyRate?: number;
  /** Random source for event loss/duplication (default: a fixed-seed PRNG). */
  readonly random?: () => number;
  /** Period of the job loop in clock ms (default 100, QEMU's BLOCK_JOB_SLICE_TIME). */
  readonly tickMs?: number;
  /**
   * Directories that exist besides those holding an image (a destination can only be created in
   * an existing directory, as with qemu-img create). Default: DEFAULT_IMAGE_DIR and /tmp.
   */
  readonly directories?: readonly string[];
}

/** Which QMP family a job command comes from: they report an unknown job differently (§3 d). */
export type CommandFlavour = 'block-job' | 'job';

interface DiskState {
  readonly domain: string;
  /** Canonical name: the device id, else the drive id. */
  readonly name: string;
  /** qdev id of the guest device; null: anonymous (legacy -drive). */
  readonly device: string | null;
  /** Legacy -drive id (BlockBackend name), or null. */
  readonly drive: string | null;
  /** A VM disk (device or drive configured): listed by query-block, nodes known to QMP. */
  readonly vm: boolean;
  /** The node graph the guest reads through, top first (may differ from image headers: b2). */
  chain: string[];
  /** The job mirroring this disk, if any (kept until dismissed). */
  job: MirrorJob | null;
  writeRate: number;
  writeCredit: number;
  lastWrite: number;
}

interface DomainState {
  readonly name: string;
  readonly running: boolean;
  readonly persistent: boolean;
  readonly disks: Map<string, DiskState>;
}

const JOB_ID = /^[A-Za-z][A-Za-z0-9._-]*$/;

const ALREADY_PAUSED = 'Job is already paused';
const NOT_PAUSED = "Can't resume a job that was not paused";

/** blockdev-mirror's granularity and buf-size (bytes; 0 or absent: QEMU's defaults). */
export interface MirrorTuning {
  readonly granularity?: number;
  readonly bufSize?: number;
}

/**
 * blockdev_mirror_common's and mirror_start_job's checks, in QEMU's order and words (measured on
 * 7.2: granularity 256 / 128 MiB → range, 1000 → power of 2, buf-size −1 → invalid; granularity
 * 512 … 64 MiB powers of two and any buf-size ≥ 0 are accepted). The QAPI type checks (uint32
 * granularity, int buf-size) are the caller's: SimQmp sees raw JSON, the port sees numbers.
 */
export function checkMirrorTuning(command: string, t: MirrorTuning): Result<void, HypervisorError> {
  const g = t.granularity ?? 0;
  if (g !== 0 && (g < 512 || g > 64 * MiB))
    return err(qmpError(command, "Parameter 'granularity' expects a value in range [512B, 64MB]"));
  if (g !== 0 && (g & (g - 1)) !== 0) return err(qmpError(command, "Parameter 'granularity' expects a power of 2"));
  if ((t.bufSize ?? 0) < 0) return err(qmpError(command, "Invalid parameter 'buf-size'"));
  return ok(undefined);
}

/**
 * QEMU's speed is an int64: a JSON number that is not an integer, or lies outside int64 (2^63
 * and up; JSON.stringify writes the double 2^63 as 9223372036854775808), is refused by the QAPI
 * visitor before the command runs. Every double below 2^63 is an integer QEMU takes as it is.
 */
export function checkSpeedType(command: string, speed: number): Result<void, HypervisorError> {
  return Number.isInteger(speed) && speed < 2 ** 63 && speed >= -(2 ** 63)
    ? ok(undefined)
    : err(qmpError(command, "Invalid parameter type for 'speed', expected: integer"));
}

export class SimulatedHypervisor implements HypervisorPort {
  readonly name = 'sim';
  readonly events$: Observable<HypervisorEvent>;
  /** The simulated file system. Read it in tests; change files through the methods. */
  readonly images = new ImageStore();

  private readonly clock: Clock;
  private readonly tickMs: number;
  private copyRate: number;
  private readonly subject = new Subject<HypervisorEvent>();
  private readonly domains = new Map<string, DomainState>();
  private readonly jobs = new Map<string, MirrorJob>();
  // Indexes, so that starting job 10,000 costs what starting job 1 did.
  /** Path → the disk whose guest reads it (its node graph). */
  private readonly readers = new Map<string, DiskState>();
  /** Target path → jobs (until dismissed) writing into it. */
  private readonly targets = new Map<string, Set<MirrorJob>>();
  private readonly faults = new FaultPlan();
  private readonly noise: EventNoise;
  private readonly host: JobHost;
  private readonly violations: string[] = [];
  /** Format node names by image path (VM -blockdev names, QEMU's automatic #blockNNN, targets). */
  private readonly nodeNames = new Map<string, string>();
  /** Stream job → the backing-file name it writes into the top image (null: base's own path). */
  private readonly streamBacking = new Map<string, string | null>();
  private nextAutoNode = 30;

  private connected = true;
  private alive = true;
  private closed = false;
  /** Set when the constructor's options were unusable: every call returns it. */
  readonly optionsError: string | null = null;
  /** Bumped by kill/restart/close so stale timer callbacks do nothing. */
  private epoch = 0;

  // One loop timer for every job and guest writer, not one per job: 10,000 jobs stay cheap.
  private readonly active = new Set<MirrorJob>();
  private readonly writers = new Set<DiskState>();
  private loopTimer: unknown = undefined;
  private soon: (() => void)[] = [];
  private soonTimer: unknown = undefined;
  private later: { at: number; fn: () => void }[] = [];
  private laterTimer: unknown = undefined;
  private laterAt = 0;

  private queue: HypervisorEvent[] = [];
  private depth = 0;
  private flushing = false;

  constructor(options: SimulatedHypervisorOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.tickMs = options.tickMs ?? 100;
    this.copyRate = options.copyRate ?? 512 * MiB;
    // Nothing throws: bad options make a simulator whose every call reports them.
    if (!(this.copyRate > 0) || !(this.tickMs > 0) || !Number.isFinite(this.tickMs)) {
      this.optionsError = `copyRate and tickMs must be positive (copyRate ${this.copyRate}, tickMs ${this.tickMs})`;
      this.copyRate = 512 * MiB;
      this.tickMs = 100;
      this.closed = true;
    }
    this.noise = new EventNoise(options.random ?? seededRandom(0x5eed));
    this.events$ = this.subject.asObservable();
    for (const dir of options.directories ?? [DEFAULT_IMAGE_DIR, '/tmp']) this.images.addDir(dir);
    for (const spec of options.images ?? []) this.images.put(makeImage(spec));
    for (const domain of options.domains ?? defaultDomains()) this.addDomain(domain);
    this.host = this.makeHost();
    this.wake(); // disks configured with a guest write rate
  }

  // ------------------------------------------------------------------ port: domains and files

  getDomain(domain: string): ResultAsync<DomainInfo | null, HypervisorError> {
    return this.call('query-status', true, () => {
      const d = this.domains.get(domain);
      if (d === undefined) return ok(null);
      return ok({ name: d.name, running: d.running, persistent: d.persistent, disks: [...d.disks.keys()] });
    });
  }

  /** query-block's view: each disk by its one name (the device), its chain and its live job. */
  listDisks(domain: string): ResultAsync<readonly DiskNames[] | null, HypervisorError> {
    return this.call('query-block', true, () => {
      const d = this.domains.get(domain);
      if (d === undefined) return ok(null);
      return ok(
        [...d.disks.values()].map((disk): DiskNames => {
          const chain: ImageInfo[] = [];
          for (const path of disk.chain) {
            const image = this.images.get(path);
            if (image !== undefined) chain.push(imageInfo(image));
          }
          const job = disk.job?.live === true ? disk.job : null;
          return {
            domain,
            disk: disk.name,
            device: disk.device,
            drive: disk.drive,
            nodeName: this.nodeNames.get(disk.chain[0] ?? '') ?? null,
            exportId: null,
            source: disk.chain[0] ?? '',
            chain,
            job: job
              ? {
                  jobId: job.id,
                  type: job.stream ? 'stream' : 'mirror',
                  status: job.status,
                  offset: job.offset,
                  len: job.len,
                }
              : null,
          };
        }),
      );
    });
  }

  describeDisk(domain: string, disk: string): ResultAsync<DiskInfo | null, HypervisorError> {
    return this.call('query-block', true, () => {
      const d = this.domains.get(domain)?.disks.get(disk);
      if (d === undefined) return ok(null);
      const chain: ImageInfo[] = [];
      for (const path of d.chain) {
        const image = this.images.get(path);
        if (image !== undefined) chain.push(imageInfo(image));
      }
      return ok({ domain, disk, chain });
    });
  }

  /** A local stat + qemu-img info: works while the monitor is down or QEMU is gone. */
  probeDestination(path: string): ResultAsync<DestinationProbe, HypervisorError> {
    return this.call('probeDestination', false, () => ok(this.images.probe(path)));
  }

  createDestination(spec: CreateDestinationSpec): ResultAsync<void, HypervisorError> {
    const command = 'createDestination';
    return this.call(command, false, () => {
      if (spec.type === 'block') return this.formatDevice(command, spec);
      if (!Number.isSafeInteger(spec.virtualSize) || spec.virtualSize < 0)
        return err(invalidError(command, `invalid virtual size ${spec.virtualSize}`));
      if (spec.format === 'raw' && spec.backing !== null)
        return err(invalidError(command, "Backing file not supported for file format 'raw'"));
      const user = this.chainUser(spec.path);
      if (user !== null) return err(ioError(command, `'${spec.path}' is in use by ${user}`));
      // qemu-img create cannot make a file in a directory that does not exist.
      if (!this.images.isDir(parentDir(spec.path)))
        return err(ioError(command, `Could not create '${spec.path}': No such file or directory`));
      const existing = this.images.get(spec.path);
      if (existing !== undefined) {
        // A retry after a crash must not truncate a destination the mirror already filled.
        if (sameHeader(existing, spec)) return ok(undefined);
        return err(ioError(command, `Refusing to overwrite existing file '${spec.path}'`));
      }
      if (spec.backing !== null) {
        const backing = this.images.get(spec.backing.path);
        if (backing === undefined)
          return err(ioError(command, `Could not open backing file '${spec.backing.path}': No such file or directory`));
        if (backing.format !== spec.backing.format)
          return err(ioError(command, `Backing file '${spec.backing.path}' is not in ${spec.backing.format} format`));
      }
      this.images.put(makeImage({ ...spec, allocated: 0 }));
      return ok(undefined);
    });
  }

  /**
   * COPY_DEV without REUSE_EXT, as the QMP adapter does it: a qcow2 header written onto an
   * existing block device (qemu-img create, which image locking stops while QEMU writes to it);
   * raw: nothing to write. The device itself is never created.
   */
  private formatDevice(command: string, spec: CreateDestinationSpec): Result<void, HypervisorError> {
    const device = this.images.get(spec.path);
    if (device?.kind !== 'block') return err(invalidError(command, `'${spec.path}' is not a block device`));
    if (spec.format === 'raw') return ok(undefined);
    if (this.chainUser(spec.path) !== null || this.jobWithTarget(spec.path) !== null)
      return err(ioError(command, `Failed to get "write" lock on '${spec.path}'`));
    this.images.put(makeImage({ ...spec, kind: 'block', deviceSize: fileSize(device), allocated: 0 }));
    return ok(undefined);
  }

  removeDestination(path: string): ResultAsync<void, HypervisorError> {
    const command = 'removeDestination';
    return this.call(command, false, () => {
      // Like the QMP adapter: the node is detached first, and QEMU refuses while a device reads it.
      if (this.chainUser(path) !== null) return err(qmpError('blockdev-del', `Node ${path} is in use`));
      // Until job-dismiss the job still holds its target node.
      if (this.targets.has(path)) return err(qmpError('blockdev-del', `Node ${path} is in use`));
      // A block device is never removed (the QMP adapter detaches its nodes and never unlinks it).
      if (this.images.get(path)?.kind !== 'block') this.images.delete(path);
      return ok(undefined);
    });
  }

  // ------------------------------------------------------------------ port: jobs

  /**
   * blockdev-mirror. Idempotence vs. QEMU's duplicate-id error: the simulator keeps each job's
   * MirrorSpec; a start with an id that is still known (up to job-dismiss) and an *equal* spec is a
   * retry of the same request and succeeds without side effects; any difference is a conflicting
   * request and gets QEMU's `Job ID 'X' already in use`.
   */
  startMirror(spec: MirrorSpec): ResultAsync<void, HypervisorError> {
    return this.call('blockdev-mirror', true, () =>
      this.mirror(spec, 'blockdev-mirror', {
        ...(spec.granularity === undefined ? {} : { granularity: spec.granularity }),
        ...(spec.bufSize === undefined ? {} : { bufSize: spec.bufSize }),
      }),
    );
  }

  /**
   * block-stream, with QEMU 7.2's refusals in its words (measured: an unknown base node, a base
   * that is not below the top, a disk whose node a job holds, also a concluded one until it is
   * dismissed, a negative speed). Idempotent like startMirror: the same request again is fine.
   */
  startStream(spec: StreamSpec): ResultAsync<void, HypervisorError> {
    const command = 'block-stream';
    return this.call(command, true, () => {
      const existing = this.jobs.get(spec.jobId);
      if (existing?.stream === true && existing.spec.disk === spec.disk && existing.spec.domain === spec.domain)
        return ok(undefined);
      const disk = this.domains.get(spec.domain)?.disks.get(spec.disk);
      if (disk === undefined) return err(deviceNotFound(command, spec.disk));
      const top = disk.chain[0] ?? '';
      const topNode = this.nodeNames.get(top) ?? top;
      if (spec.base !== null) {
        // An image QEMU has not opened has no node: the adapter names it by its path.
        const baseNode = this.nodeNames.get(spec.base.path) ?? spec.base.path;
        if (this.readers.get(spec.base.path) === undefined)
          return err(qmpError(command, `Cannot find device='' nor node-name='${baseNode}'`));
        if (disk.chain.indexOf(spec.base.path) < 1)
          return err(qmpError(command, `Node '${baseNode}' is not a backing image of '${topNode}'`));
      }
      if (disk.job !== null)
        return err(
          qmpError(
            command,
            `Node '${topNode}' is busy: block device is in use by block job: ${disk.job.stream ? 'stream' : 'mirror'}`,
          ),
        );
      const speedType = checkSpeedType(command, spec.speed);
      if (speedType.isErr()) return err(speedType.error);
      const id = this.checkJobId(command, spec.jobId);
      if (id.isErr()) return err(id.error);
      if (spec.speed < 0) {
        // As for a mirror: the job flashes into existence before the speed check (measured on 7.2).
        this.emit({ kind: 'job-status', jobId: spec.jobId, status: 'created' });
        this.emit({ kind: 'job-status', jobId: spec.jobId, status: 'null' });
        return err(qmpError(command, "Parameter 'speed' expects a non-negative value"));
      }
      const image = this.images.get(top);
      const job = new MirrorJob(
        {
          spec: {
            jobId: spec.jobId,
            domain: spec.domain,
            disk: spec.disk,
            destination: { path: top, format: image?.format ?? 'qcow2' },
            destinationBacking: spec.base,
            sync: 'full',
            speed: spec.speed,
            onTargetError: 'report',
            onSourceError: 'report',
            copyMode: 'background',
          },
          // stream_run copies over the whole virtual disk (len = virtual size, measured).
          len: image?.virtualSize ?? 0,
          sourcePaths: [...disk.chain],
          stream: true,
        },
        this.host,
      );
      this.jobs.set(spec.jobId, job);
      disk.job = job;
      job.start();
      this.streamBacking.set(spec.jobId, spec.backingFile);
      return ok(undefined);
    });
  }

  /** Backing names as written in each header of the disk's chain (the simulator keeps them as given). */
  backingNames(domain: string, disk: string): ResultAsync<readonly (string | null)[], HypervisorError> {
    return this.call('qemu-img info', false, () => {
      const d = this.domains.get(domain)?.disks.get(disk);
      if (d === undefined) return err(deviceNotFound('qemu-img info', disk));
      return ok(d.chain.map((path) => this.images.get(path)?.backing?.path ?? null));
    });
  }

  queryJob(jobId: string): ResultAsync<HypervisorJobInfo | null, HypervisorError> {
    return this.call('query-block-jobs', true, () => ok(this.jobs.get(jobId)?.info() ?? null));
  }

  /** block-job-complete. Idempotent for the port: a completion under way or done (pivoted) is fine. */
  completeJob(jobId: string): ResultAsync<void, HypervisorError> {
    return this.call('block-job-complete', true, () =>
      this.jobVerb('block-job-complete', jobId, 'block-job', (j) =>
        j.status === 'waiting' || j.status === 'pending' || j.pivoted ? null : j.complete(),
      ),
    );
  }

  /**
   * block-job-cancel. Idempotent for the port: no such job, a job already aborting, or one that
   * concluded without a pivot has nothing left to cancel. A pivoted job keeps QEMU's refusal.
   */
  cancelJob(jobId: string, force: boolean): ResultAsync<void, HypervisorError> {
    return this.call('block-job-cancel', true, () => {
      const job = this.jobs.get(jobId);
      if (job === undefined || job.status === 'aborting' || (job.status === 'concluded' && !job.pivoted))
        return ok(undefined);
      return this.jobVerb('block-job-cancel', jobId, 'block-job', (j) => j.cancel(force));
    });
  }

  /** block-job-pause. Idempotent for the port: an already paused job is fine. */
  pauseJob(jobId: string): ResultAsync<void, HypervisorError> {
    return this.call('block-job-pause', true, () =>
      this.jobVerb('block-job-pause', jobId, 'block-job', (j) => j.pause()).orElse((e) =>
        e.desc === ALREADY_PAUSED ? ok(undefined) : err(e),
      ),
    );
  }

  /** block-job-resume. Idempotent for the port: a job that is not paused is fine. */
  resumeJob(jobId: string): ResultAsync<void, HypervisorError> {
    return this.call('block-job-resume', true, () =>
      this.jobVerb('block-job-resume', jobId, 'block-job', (j) => j.resume()).orElse((e) =>
        e.desc === NOT_PAUSED ? ok(undefined) : err(e),
      ),
    );
  }

  setJobSpeed(jobId: string, bytesPerSecond: number): ResultAsync<void, HypervisorError> {
    const command = 'block-job-set-speed';
    return this.call(command, true, () =>
      checkSpeedType(command, bytesPerSecond).andThen(() =>
        this.jobVerb(command, jobId, 'block-job', (j) => j.setSpeed(bytesPerSecond)),
      ),
    );
  }

  /** job-dismiss. Idempotent for the port: an unknown (already dismissed) job is fine. */
  dismissJob(jobId: string): ResultAsync<void, HypervisorError> {
    return this.call('job-dismiss', true, () => {
      if (!this.jobs.has(jobId)) return ok(undefined);
      return this.jobVerb('job-dismiss', jobId, 'job', (j) => j.dismiss());
    });
  }

  activeImage(domain: string, disk: string): ResultAsync<string, HypervisorError> {
    const command = 'query-block';
    return this.call(command, true, () => {
      const d = this.domains.get(domain);
      if (d === undefined) return err(invalidError(command, `Domain '${domain}' not found`));
      const state = d.disks.get(disk);
      const top = state?.chain[0];
      return top === undefined ? err(deviceNotFound(command, disk)) : ok(top);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopTimers();
    this.subject.complete();
  }

  // ------------------------------------------------------------------ control: the guest

  /**
   * The guest writes `bytes` to a disk: the active image gains data and a mirror on the disk gets
   * dirty data (background mode: len grows when the job loop next runs; write-blocking: len and
   * offset grow at once). Fails with kind 'connection' when QEMU is gone.
   */
  guestWrite(domain: string, disk: string, bytes: number): Result<void, HypervisorError> {
    const state = this.domains.get(domain)?.disks.get(disk);
    if (state === undefined) return err(deviceNotFound('guestWrite', disk));
    if (!this.alive || this.closed) return err(connectionError('guestWrite', 'the hypervisor is gone'));
    if (!(bytes > 0)) return ok(undefined);
    this.batch(() => this.write(state, bytes));
    return ok(undefined);
  }

  /** A steady guest write load on a disk in bytes per second (0 stops it), applied every tick. */
  setGuestWriteRate(domain: string, disk: string, bytesPerSecond: number): Result<void, HypervisorError> {
    const state = this.domains.get(domain)?.disks.get(disk);
    if (state === undefined) return err(deviceNotFound('setGuestWriteRate', disk));
    state.writeRate = Math.max(0, bytesPerSecond);
    state.writeCredit = 0;
    state.lastWrite = this.clock.now();
    if (state.writeRate > 0) this.writers.add(state);
    else this.writers.delete(state);
    this.wake();
    return ok(undefined);
  }

  /** Change the copy engine's rate (bytes/s) from now on. */
  setCopyRate(bytesPerSecond: number): void {
    if (bytesPerSecond > 0) this.copyRate = bytesPerSecond;
  }

  // ------------------------------------------------------------------ control: faults

  /**
   * blkdebug-style error on target writes. The job's policy (MirrorSpec.onTargetError) decides:
   * report → job-error{write,report}, aborting, job-completed{error: strerror}, concluded;
   * stop → job-error{write,stop}, paused (standby if ready), ioStatus failed|nospace, resume retries;
   * enospc → stop for ENOSPC, report for EIO; ignore → job-error{write,ignore}, region retried.
   */
  injectTargetError(spec: IoFaultSpec): void {
    this.faults.arm('target', spec);
  }

  /** The same for source reads (operation 'read', policy MirrorSpec.onSourceError). */
  injectSourceError(spec: IoFaultSpec): void {
    this.faults.arm('source', spec);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  /** Lose job events: with probability p (drawn from the random source) or where `rule` says so. */
  setEventLoss(rule: number | EventPredicate | null): void {
    this.noise.setLoss(rule);
  }

  /** Deliver job events twice: with probability p or where `rule` says so. */
  setEventDuplication(rule: number | EventPredicate | null): void {
    this.noise.setDuplication(rule);
  }

  // ------------------------------------------------------------------ control: connection, process

  get isConnected(): boolean {
    return this.connected && this.alive && !this.closed;
  }

  get isAlive(): boolean {
    return this.alive && !this.closed;
  }

  /** The monitor connection drops: `connection-lost`; jobs go on, their events are lost (§0.11). */
  disconnect(reason = 'monitor connection closed'): void {
    if (!this.connected || !this.alive || this.closed) return;
    this.connected = false;
    this.batch(() => this.emit({ kind: 'connection-lost', reason }));
  }

  /** The connection is back: `connection-restored`; missed events are not replayed (j). */
  reconnect(): void {
    if (this.connected || !this.alive || this.closed) return;
    this.connected = true;
    this.batch(() => this.emit({ kind: 'connection-restored' }));
  }

  /**
   * QEMU is SIGKILLed (k2): `hypervisor-gone`, every job vanishes without events, queries fail with
   * kind 'connection'. A qcow2 target is left consistent but empty (its metadata was never flushed).
   */
  kill(reason = 'QEMU process killed'): void {
    if (!this.alive || this.closed) return;
    for (const job of this.jobs.values()) {
      const target = this.images.get(job.spec.destination.path);
      // A stream writes into the disk's own (flushed) image, not into a fresh target.
      if (job.live && !job.stream && target !== undefined && target.format === 'qcow2') target.allocated = 0;
    }
    this.die(reason);
  }

  /** `quit` (k1): every job flaps paused/running three times, is cancelled and removed; then gone. */
  shutdown(reason = 'QEMU quit'): void {
    if (!this.alive || this.closed) return;
    this.batch(() => {
      for (const job of this.jobs.values()) job.quit();
    });
    this.die(reason);
  }

  /** A new QEMU process for the domains (after kill/shutdown): no jobs, `connection-restored`. */
  restart(): void {
    if (this.alive || this.closed) return;
    this.alive = true;
    this.connected = true;
    for (const d of this.domains.values()) for (const disk of d.disks.values()) disk.lastWrite = this.clock.now();
    this.batch(() => this.emit({ kind: 'connection-restored' }));
    this.wake();
  }

  /** JobSTT violations the jobs attempted (always empty unless the simulator has a bug). */
  get sttViolations(): readonly string[] {
    return this.violations;
  }

  // ------------------------------------------------------------------ internal API (qmp.ts, tests)

  /** @internal blockdev-mirror without the monitor checks (see startMirror). */
  mirror(spec: MirrorSpec, command = 'blockdev-mirror', tuning: MirrorTuning = {}): Result<void, HypervisorError> {
    const existing = this.jobs.get(spec.jobId);
    if (existing !== undefined && sameSpec(existing.spec, spec)) return ok(undefined);
    // The QAPI visitor checks argument types before the command runs.
    const speedType = checkSpeedType(command, spec.speed);
    if (speedType.isErr()) return err(speedType.error);
    const domain = this.domains.get(spec.domain);
    if (domain === undefined) return err(invalidError(command, `Domain '${spec.domain}' not found`));
    if (!domain.running) return err(invalidError(command, `Domain '${spec.domain}' is not running`));
    const disk = domain.disks.get(spec.disk);
    if (disk === undefined) return err(deviceNotFound(command, spec.disk));
    // Same order as qmp_blockdev_mirror: source node, target node, then the job id.
    if (disk.job?.live === true) return err(qmpError(command, 'Need a root block node'));
    const target = this.checkMirrorTarget(
      command,
      spec.destination.path,
      spec.destination.format,
      disk,
      spec.destination.path,
      spec.destination.type === 'block' ? 'host_device' : 'file',
    );
    if (target.isErr()) return err(target.error);
    const tuned = checkMirrorTuning(command, tuning);
    if (tuned.isErr()) return err(tuned.error);
    const id = this.checkJobId(command, spec.jobId);
    if (id.isErr()) return err(id.error);
    if (spec.speed < 0) {
      // block_job_create fails after job_create: the job flashes into existence (created, null).
      this.emit({ kind: 'job-status', jobId: spec.jobId, status: 'created' });
      this.emit({ kind: 'job-status', jobId: spec.jobId, status: 'null' });
      return err(qmpError(command, "Parameter 'speed' expects a non-negative value"));
    }
    this.createJob(spec, disk, target.value);
    return ok(undefined);
  }

  /** @internal Names a format node (SimQmp's blockdev-add). */
  nameNode(path: string, name: string): void {
    this.nodeNames.set(path, name);
  }

  /** @internal The VM disks, for SimQmp's query-block and device names (v traces). */
  vmDisks(): {
    domain: string;
    disk: string;
    device: string | null;
    drive: string | null;
    chain: string[];
    nodes: (string | null)[];
  }[] {
    const out = [];
    for (const d of this.domains.values())
      for (const disk of d.disks.values())
        if (disk.vm)
          out.push({
            domain: d.name,
            disk: disk.name,
            device: disk.device,
            drive: disk.drive,
            chain: [...disk.chain],
            nodes: disk.chain.map((p) => this.nodeNames.get(p) ?? null),
          });
    return out;
  }

  /** @internal Jobs known to QEMU (until dismissed), in creation order. */
  listJobs(): MirrorJob[] {
    return [...this.jobs.values()];
  }

  /** @internal The disk whose guest currently reads `path` as its top image. */
  diskWithTop(path: string): { domain: string; disk: string } | null {
    const disk = this.readers.get(path);
    return disk?.chain[0] === path ? { domain: disk.domain, disk: disk.name } : null;
  }

  /** @internal The live mirror job of the disk whose chain contains `path`, if any. */
  diskBusyWith(path: string): MirrorJob | null {
    const job = this.readers.get(path)?.job;
    return job?.live === true ? job : null;
  }

  /** @internal The live job writing into `path`, if any. */
  jobWithTarget(path: string): MirrorJob | null {
    for (const job of this.targets.get(path) ?? []) if (job.live) return job;
    return null;
  }

  /**
   * @internal Target checks of blockdev-mirror/blockdev-add. `name` is how errors name the node;
   * returns the virtual size QEMU would see through the requested driver.
   */
  checkMirrorTarget(
    command: string,
    path: string,
    format: 'qcow2' | 'raw',
    source: { chain: readonly string[] } | null,
    name = path,
    driver: 'file' | 'host_device' | null = null,
  ): Result<number, HypervisorError> {
    const image = this.images.get(path);
    if (image === undefined) return err(qmpError(command, `Could not open '${path}': No such file or directory`));
    if (image.kind === 'other') return err(qmpError(command, `Could not open '${path}': Is a directory`));
    // The adapter's blockdev-add of the protocol node (null: SimQmp checked it at its blockdev-add).
    const driverError = driver === null ? null : protocolDriverError(driver, image.kind, path);
    if (driverError !== null) return err(qmpError('blockdev-add', driverError));
    if (format === 'qcow2' && image.format !== 'qcow2') return err(qmpError(command, 'Image is not in qcow2 format'));
    if (this.jobWithTarget(path) !== null)
      return err(qmpError(command, `Node '${name}' is busy: block device is in use by block job: mirror`));
    if (source?.chain.includes(path) === true) return err(qmpError(command, "Can't mirror node into itself"));
    const user = this.chainUser(path);
    if (user !== null)
      return err(qmpError(command, `Conflicts with use by ${user} as 'root', which does not allow 'write' on ${name}`));
    // The raw driver over a qcow2 file sees the file's bytes, not the image inside.
    return ok(format === 'raw' && image.format === 'qcow2' ? fileSize(image) : image.virtualSize);
  }

  /** @internal job_create's id checks. */
  checkJobId(command: string, jobId: string): Result<void, HypervisorError> {
    if (!JOB_ID.test(jobId)) return err(qmpError(command, `Invalid job ID '${jobId}'`));
    if (this.jobs.has(jobId)) return err(qmpError(command, `Job ID '${jobId}' already in use`));
    return ok(undefined);
  }

  /** @internal Run a verb on a job, with the not-found error of the command's family. */
  jobVerb(
    command: string,
    jobId: string,
    flavour: CommandFlavour,
    verb: (job: MirrorJob) => string | null,
  ): Result<void, HypervisorError> {
    const job = this.jobs.get(jobId);
    if (job === undefined) return err(flavour === 'job' ? jobNotFound(command) : blockJobNotFound(command, jobId));
    const refusal = verb(job);
    if (refusal !== null) return err(qmpError(command, refusal));
    if (job.status === 'null') this.forget(job);
    return ok(undefined);
  }

  /**
   * @internal Wrap a command: refuse it when the monitor is unusable, run it with events batched
   * (delivered before the reply), and never throw.
   */
  call<T>(
    command: string,
    needsMonitor: boolean,
    fn: () => Result<T, HypervisorError>,
  ): ResultAsync<T, HypervisorError> {
    if (this.optionsError !== null) return errAsync(invalidError(command, this.optionsError));
    if (this.closed) return errAsync(connectionError(command, 'the simulator is closed'));
    if (needsMonitor && !this.alive) return errAsync(connectionError(command, 'the hypervisor is gone'));
    if (needsMonitor && !this.connected) return errAsync(connectionError(command, 'monitor disconnected'));
    let result: Result<T, HypervisorError>;
    try {
      result = this.batch(fn);
    } catch (e) {
      result = err(invalidError(command, `simulator error: ${e instanceof Error ? e.message : String(e)}`));
    }
    return result.isOk() ? okAsync(result.value) : errAsync(result.error);
  }

  // ------------------------------------------------------------------ internals

  private addDomain(spec: SimDomainSpec): void {
    const disks = new Map<string, DiskState>();
    for (const disk of spec.disks) {
      const paths = disk.chain.map((l) => l.path);
      disk.chain.forEach((layer, i) => {
        const below = disk.chain[i + 1];
        const backing: BackingRef | null =
          below === undefined ? null : { path: below.path, format: below.format ?? 'qcow2' };
        this.images.put(
          makeImage({
            path: layer.path,
            format: layer.format ?? 'qcow2',
            virtualSize: disk.virtualSize,
            backing,
            ...(layer.allocated === undefined ? {} : { allocated: layer.allocated }),
          }),
        );
      });
      const vm = disk.device !== undefined || disk.drive !== undefined;
      disk.chain.forEach((layer) => {
        // A legacy -drive names every node automatically (#blockNNN); -blockdev names them.
        const name = layer.nodeName ?? (disk.drive != null ? this.autoNodeName() : undefined);
        if (name !== undefined) this.nodeNames.set(layer.path, name);
      });
      const state: DiskState = {
        domain: spec.name,
        name: disk.name,
        device: disk.device === undefined ? disk.name : disk.device,
        drive: disk.drive ?? null,
        vm,
        chain: [],
        job: null,
        writeRate: 0,
        writeCredit: 0,
        lastWrite: this.clock.now(),
      };
      this.setChain(state, paths);
      disks.set(disk.name, state);
      if ((disk.guestWriteRate ?? 0) > 0) {
        state.writeRate = disk.guestWriteRate ?? 0;
        this.writers.add(state);
      }
    }
    this.domains.set(spec.name, {
      name: spec.name,
      running: spec.running ?? true,
      persistent: spec.persistent ?? false,
      disks,
    });
  }

  /** QEMU's automatic node names: "#block" and three digits, unique in the process. */
  private autoNodeName(): string {
    const name = `#block${String(this.nextAutoNode).padStart(3, '0')}`;
    this.nextAutoNode += 101;
    return name;
  }

  private createJob(spec: MirrorSpec, disk: DiskState, targetSize: number): void {
    const top = this.images.get(disk.chain[0] ?? '');
    const virtualSize = top?.virtualSize ?? 0;
    // sync=full: the whole disk is dirty from the start (len = virtual size, measured on a 64 MiB
    // chain holding 6 MiB of data); sync=top: the top layer's data (b: 68 MiB of 256); without a
    // backing file sync=top is sync=full (§3 i).
    const shallow = spec.sync === 'top' && disk.chain.length > 1;
    const data = shallow ? Math.min(virtualSize, this.images.get(disk.chain[0] ?? '')?.allocated ?? 0) : virtualSize;
    const mismatch = targetSize !== virtualSize;
    const job = new MirrorJob(
      {
        spec,
        len: mismatch ? 0 : data,
        sourcePaths: [...disk.chain],
        ...(mismatch ? { failure: 'Source and target image have different sizes' } : {}),
      },
      this.host,
    );
    this.jobs.set(spec.jobId, job);
    const users = this.targets.get(spec.destination.path);
    if (users === undefined) this.targets.set(spec.destination.path, new Set([job]));
    else users.add(job);
    disk.job = job;
    job.start();
  }

  private write(disk: DiskState, bytes: number): void {
    const top = disk.chain[0];
    if (top !== undefined) this.images.addData(top, bytes);
    if (disk.job?.live === true) disk.job.guestWrite(bytes);
  }

  /** Which disk reads `path` ("domain/disk"), or null. */
  private chainUser(path: string): string | null {
    const disk = this.readers.get(path);
    return disk === undefined ? null : `${disk.domain}/${disk.name}`;
  }

  private setChain(disk: DiskState, chain: string[]): void {
    for (const path of disk.chain) if (this.readers.get(path) === disk) this.readers.delete(path);
    disk.chain = chain;
    for (const path of chain) this.readers.set(path, disk);
  }

  private diskOf(job: MirrorJob): DiskState | undefined {
    return this.domains.get(job.spec.domain)?.disks.get(job.spec.disk);
  }

  /** Forget a dismissed (or killed) job. */
  private forget(job: MirrorJob): void {
    this.jobs.delete(job.id);
    this.active.delete(job);
    const set = this.targets.get(job.spec.destination.path);
    set?.delete(job);
    if (set?.size === 0) this.targets.delete(job.spec.destination.path);
    const disk = this.diskOf(job);
    if (disk?.job === job) disk.job = null;
  }

  private pivot(job: MirrorJob): void {
    const disk = this.diskOf(job);
    if (disk === undefined) return;
    if (job.stream) {
      // The pull's end: the top keeps base (or nothing) as its backing, in its header too.
      const top = disk.chain[0];
      const image = top === undefined ? undefined : this.images.get(top);
      const base = job.spec.destinationBacking;
      const at = base === null ? -1 : disk.chain.indexOf(base.path);
      if (top === undefined || image === undefined) return;
      const written = this.streamBacking.get(job.id) ?? null;
      this.images.put({
        ...image,
        backing: base === null ? null : { path: written ?? base.path, format: base.format },
      });
      this.setChain(disk, at < 0 ? [top] : [top, ...disk.chain.slice(at)]);
      this.streamBacking.delete(job.id);
      return;
    }
    // MIRROR_LEAVE_BACKING_CHAIN: the target keeps exactly the backing it was attached with (b, b2).
    const below = backingChain(job.spec.destinationBacking, disk.chain, this.images);
    this.setChain(disk, [job.spec.destination.path, ...below]);
    // The target node the job was started with is now the disk's root node.
    if (disk.vm && !this.nodeNames.has(job.spec.destination.path))
      this.nodeNames.set(job.spec.destination.path, targetNodeName(job.id));
  }

  private die(reason: string): void {
    // A QMP client sees EOF first (connection-lost), then fails to reconnect (hypervisor-gone).
    const wasConnected = this.connected;
    this.alive = false;
    this.stopTimers();
    for (const job of [...this.jobs.values()]) this.forget(job);
    this.batch(() => {
      if (wasConnected) this.emit({ kind: 'connection-lost', reason });
      this.emit({ kind: 'hypervisor-gone', reason });
    });
  }

  private stopTimers(): void {
    this.epoch++;
    if (this.loopTimer !== undefined) this.clock.clearTimeout(this.loopTimer);
    if (this.soonTimer !== undefined) this.clock.clearTimeout(this.soonTimer);
    if (this.laterTimer !== undefined) this.clock.clearTimeout(this.laterTimer);
    this.laterTimer = undefined;
    this.later = [];
    this.loopTimer = undefined;
    this.soonTimer = undefined;
    this.soon = [];
  }

  private makeHost(): JobHost {
    return {
      now: () => this.clock.now(),
      copyRate: () => this.copyRate,
      emit: (event) => this.emit(event),
      setActive: (job, on) => {
        if (on) {
          this.active.add(job);
          this.wake();
        } else this.active.delete(job);
      },
      defer: (job, fn, ms = 0) => {
        const guarded = () => {
          if (this.jobs.get(job.id) === job) fn();
        };
        if (ms <= 0) this.defer(guarded);
        else this.after(guarded, ms);
      },
      fault: (job, from, to): FaultHit | null =>
        this.faults.take(job.id, job.sourcePaths, job.spec.destination.path, from, to),
      wrote: (job, bytes) => this.images.addData(job.spec.destination.path, bytes),
      pivot: (job) => this.pivot(job),
      illegal: (job, from, to) => this.violations.push(`${job.id}: ${from} -> ${to}`),
    };
  }

  private defer(fn: () => void): void {
    this.soon.push(fn);
    if (this.soonTimer !== undefined) return;
    const epoch = this.epoch;
    this.soonTimer = this.clock.setTimeout(() => {
      if (epoch !== this.epoch) return;
      this.soonTimer = undefined;
      const due = this.soon;
      this.soon = [];
      this.batch(() => {
        for (const f of due) f();
      });
    }, 0);
  }

  /**
   * Run `fn` in `ms`. All delayed actions share one clock timer for the earliest of them (a
   * VirtualClock scans its timers on every step, so 10,000 endings must not be 10,000 timers).
   */
  private after(fn: () => void, ms: number): void {
    const at = this.clock.now() + ms;
    let i = this.later.length;
    while (i > 0 && this.later[i - 1]!.at > at) i--;
    this.later.splice(i, 0, { at, fn });
    this.armLater();
  }

  private armLater(): void {
    const first = this.later[0];
    if (first === undefined || this.closed || !this.alive) return;
    if (this.laterTimer !== undefined) {
      if (this.laterAt <= first.at) return;
      this.clock.clearTimeout(this.laterTimer);
    }
    const epoch = this.epoch;
    this.laterAt = first.at;
    this.laterTimer = this.clock.setTimeout(
      () => {
        if (epoch !== this.epoch) return;
        this.laterTimer = undefined;
        const now = this.clock.now();
        let n = 0;
        while (n < this.later.length && this.later[n]!.at <= now) n++;
        const due = this.later.splice(0, n);
        this.batch(() => {
          for (const d of due) d.fn();
        });
        this.armLater();
      },
      Math.max(0, first.at - this.clock.now()),
    );
  }

  private wake(): void {
    if (this.loopTimer !== undefined || !this.alive || this.closed) return;
    if (this.active.size === 0 && this.writers.size === 0) return;
    const epoch = this.epoch;
    this.loopTimer = this.clock.setTimeout(() => {
      if (epoch !== this.epoch) return;
      this.loopTimer = undefined;
      this.batch(() => {
        const now = this.clock.now();
        for (const disk of this.writers) {
          disk.writeCredit += (disk.writeRate * Math.max(0, now - disk.lastWrite)) / 1000;
          disk.lastWrite = now;
          const bytes = Math.floor(disk.writeCredit);
          disk.writeCredit -= bytes;
          if (bytes > 0) this.write(disk, bytes);
        }
        for (const job of [...this.active]) job.tick();
      });
      this.wake();
    }, this.tickMs);
  }

  /** Run `fn` with events queued; they go out, in order, when the outermost batch ends. */
  private batch<T>(fn: () => T): T {
    this.depth++;
    try {
      return fn();
    } finally {
      this.depth--;
      if (this.depth === 0) this.flush();
    }
  }

  private emit(event: HypervisorEvent): void {
    this.queue.push(event);
    if (this.depth === 0) this.flush();
  }

  private flush(): void {
    // A subscriber reacting to an event (even by calling a command) only appends to the queue.
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (let i = 0; i < this.queue.length; i++) this.deliver(this.queue[i]!);
    } finally {
      this.queue = [];
      this.flushing = false;
    }
  }

  private deliver(event: HypervisorEvent): void {
    if (this.closed) return;
    const jobEvent =
      event.kind !== 'connection-lost' && event.kind !== 'connection-restored' && event.kind !== 'hypervisor-gone';
    if (!jobEvent) {
      this.subject.next(event);
      return;
    }
    if (!this.connected || !this.alive) return; // nobody is listening: QEMU does not replay (j)
    const copies = this.noise.copies(event);
    for (let i = 0; i < copies; i++) this.subject.next(event);
  }
}

/** The QMP adapter's target node name for a job (targetNodeNames in adapters/qmp, short ids). */
function targetNodeName(jobId: string): string {
  return /^[A-Za-z][A-Za-z0-9_.-]*$/.test(jobId) && jobId.length <= 25 ? `${jobId}-dst` : `#${jobId}-dst`;
}

function sameSpec(a: MirrorSpec, b: MirrorSpec): boolean {
  return (
    a.jobId === b.jobId &&
    a.domain === b.domain &&
    a.disk === b.disk &&
    a.destination.path === b.destination.path &&
    a.destination.format === b.destination.format &&
    sameBacking(a.destinationBacking, b.destinationBacking) &&
    a.sync === b.sync &&
    a.speed === b.speed &&
    a.onTargetError === b.onTargetError &&
    a.onSourceError === b.onSourceError &&
    a.copyMode === b.copyMode &&
    a.granularity === b.granularity &&
    a.bufSize === b.bufSize
  );
}

function sameHeader(image: SimImage, spec: CreateDestinationSpec): boolean {
  return (
    image.kind === 'file' &&
    image.format === spec.format &&
    image.virtualSize === spec.virtualSize &&
    sameBacking(image.backing, spec.backing)
  );
}

/** The chain below a pivoted target: the attached backing node and what is under it. */
function backingChain(ref: BackingRef | null, oldChain: readonly string[], images: ImageStore): string[] {
  if (ref === null) return [];
  const at = oldChain.indexOf(ref.path);
  if (at >= 0) return oldChain.slice(at);
  const chain: string[] = [];
  let path: string | undefined = ref.path;
  while (path !== undefined && !chain.includes(path)) {
    const image = images.get(path);
    if (image === undefined) break;
    chain.push(path);
    path = image.backing?.path;
  }
  return chain;
}
