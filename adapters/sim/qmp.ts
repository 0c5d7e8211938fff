/**
 * A QMP-flavoured face of the simulator: `execute(command, arguments)` with QEMU's command names,
 * node names and exact error classes and texts. The port hides some QMP details (job-dismiss of an
 * unknown job is fine for the port, here it is QEMU's `GenericError "Job not found"`; `job-*` and
 * `block-job-*` report an unknown job differently). The trace tests replay recorded QMP sessions
 * through it, and it documents how the port maps onto QMP.
 *
 * Modelled: blockdev-add (file, qcow2, raw, blkdebug inject-error on a target), blockdev-del,
 * blockdev-mirror, block-job-{complete,cancel,pause,resume,set-speed,dismiss,finalize},
 * job-{complete,cancel,pause,resume,dismiss,finalize}, query-block-jobs, query-jobs,
 * query-block-exports (one export per disk), qmp_capabilities, quit.
 * Not modelled: auto-finalize=false (refused), auto-dismiss=true (ignored: jobs always wait for
 * job-dismiss, as libvirt runs them), drive-mirror, transactions.
 */
import { err, ok, type Result, type ResultAsync } from 'neverthrow';
import type { HypervisorError, ImageFormat, IoErrorPolicy, MirrorSpec } from '../../src/core/hypervisor-port.js';
import { deviceNotFound, qmpError } from './errors.js';
import { protocolDriverError } from './images.js';
import { checkSpeedType, type SimulatedHypervisor } from './hypervisor.js';
import type { MirrorJob } from './job.js';

export interface QmpErrorReply {
  readonly class: string;
  readonly desc: string;
}

type Args = Readonly<Record<string, unknown>>;

interface FormatNode {
  readonly path: string;
  readonly format: ImageFormat;
  /** Backing node name; null = none; undefined = opened from the image header. */
  readonly backing: string | null | undefined;
}

export class SimQmp {
  private readonly formatNodes = new Map<string, FormatNode>();
  private readonly fileNodes = new Map<string, string>();
  private readonly filterNames = new WeakMap<MirrorJob, string>();
  private nextFilter = 0;

  /** `dir`: where relative file names (as in the traces) live in the simulator's file system. */
  constructor(
    private readonly sim: SimulatedHypervisor,
    private readonly dir = '',
  ) {
    // A VM's nodes exist from the start (-blockdev or the legacy -drive's automatic names).
    for (const disk of sim.vmDisks())
      disk.chain.forEach((path, i) => {
        const name = disk.nodes[i];
        const image = sim.images.get(path);
        if (name === null || name === undefined || image === undefined) return;
        this.formatNodes.set(name, { path, format: image.format, backing: disk.nodes[i + 1] ?? null });
        // -blockdev style (libvirt, v1): each format node over a file node "<name>-file".
        if (disk.drive === null) this.fileNodes.set(`${name}-file`, path);
      });
  }

  execute(command: string, args: Args = {}): ResultAsync<unknown, QmpErrorReply> {
    const needsMonitor = true;
    return this.sim
      .call(command, needsMonitor, () => this.run(command, args))
      .mapErr((e) => ({ class: e.errorClass ?? (e.kind === 'connection' ? 'ConnectionError' : e.kind), desc: e.desc }));
  }

  private run(command: string, a: Args): Result<unknown, HypervisorError> {
    const sim = this.sim;
    const verb = (flavour: 'job' | 'block-job', key: string, fn: (j: MirrorJob) => string | null) =>
      sim.jobVerb(command, str(a[key]), flavour, fn).map(() => ({}));
    switch (command) {
      case 'qmp_capabilities':
        return ok({});
      case 'blockdev-add':
        return this.blockdevAdd(command, a).map(() => ({}));
      case 'blockdev-del':
        return this.blockdevDel(command, str(a['node-name'])).map(() => ({}));
      case 'blockdev-mirror':
        return this.blockdevMirror(command, a).map(() => ({}));
      case 'block-job-complete':
        return verb('block-job', 'device', (j) => j.complete());
      case 'job-complete':
        return verb('job', 'id', (j) => j.complete());
      case 'block-job-cancel':
        return verb('block-job', 'device', (j) => j.cancel(a['force'] === true));
      case 'job-cancel':
        return verb('job', 'id', (j) => j.cancel(true)); // job-cancel is always a force cancel (§0.4)
      case 'block-job-pause':
        return verb('block-job', 'device', (j) => j.pause());
      case 'job-pause':
        return verb('job', 'id', (j) => j.pause());
      case 'block-job-resume':
        return verb('block-job', 'device', (j) => j.resume());
      case 'job-resume':
        return verb('job', 'id', (j) => j.resume());
      case 'block-job-set-speed': {
        const speed = a['speed'];
        if (typeof speed !== 'number')
          return err(qmpError(command, "Invalid parameter type for 'speed', expected: integer"));
        return checkSpeedType(command, speed).andThen(() => verb('block-job', 'device', (j) => j.setSpeed(speed)));
      }
      case 'job-dismiss':
        return verb('job', 'id', (j) => j.dismiss());
      case 'block-job-dismiss':
        return verb('block-job', 'id', (j) => j.dismiss());
      case 'job-finalize':
        return verb('job', 'id', (j) => j.finalize());
      case 'block-job-finalize':
        return verb('block-job', 'id', (j) => j.finalize());
      case 'query-block-jobs':
        return ok(sim.listJobs().map((j) => this.blockJobInfo(j)));
      case 'query-jobs':
        return ok(sim.listJobs().map((j) => jobInfo(j)));
      case 'query-block-exports':
        return ok(this.exports());
      case 'query-block':
        return ok(this.queryBlock());
      case 'quit':
        sim.shutdown();
        return ok({});
      default:
        return err(qmpError(command, `The command ${command} has not been found`, 'CommandNotFound'));
    }
  }

  private resolve(filename: string): string {
    return filename.startsWith('/') || this.dir === '' ? filename : `${this.dir}/${filename}`;
  }

  private blockdevAdd(command: string, a: Args): Result<void, HypervisorError> {
    const driver = str(a['driver']);
    const name = str(a['node-name']);
    if (name === '') return err(qmpError(command, 'A node name is required'));
    if (this.formatNodes.has(name) || this.fileNodes.has(name))
      return err(qmpError(command, `Duplicate nodes with node-name='${name}'`));
    if (driver === 'file' || driver === 'host_device') {
      const path = this.resolve(str(a['filename']));
      const image = this.sim.images.get(path);
      if (image === undefined) return err(qmpError(command, `Could not open '${path}': No such file or directory`));
      const driverError = protocolDriverError(driver, image.kind, path);
      if (driverError !== null) return err(qmpError(command, driverError));
      this.fileNodes.set(name, path);
      return ok(undefined);
    }
    if (driver !== 'qcow2' && driver !== 'raw') return err(qmpError(command, `Unknown driver '${driver}'`));
    const file = a['file'];
    let path: string | undefined;
    if (typeof file === 'string') path = this.fileNodes.get(file);
    else if (isRecord(file)) path = this.fileFromObject(command, file, name);
    if (path === undefined) return err(deviceNotFound(command, typeof file === 'string' ? file : name));
    const image = this.sim.images.get(path);
    if (image === undefined) return err(qmpError(command, `Could not open '${path}': No such file or directory`));
    if (driver === 'qcow2' && image.format !== 'qcow2') return err(qmpError(command, 'Image is not in qcow2 format'));
    const backing = a['backing'];
    if (typeof backing === 'string' && !this.formatNodes.has(backing)) return err(deviceNotFound(command, backing));
    this.sim.nameNode(path, name);
    this.formatNodes.set(name, {
      path,
      format: driver,
      backing: backing === null ? null : typeof backing === 'string' ? backing : undefined,
    });
    return ok(undefined);
  }

  /** An inline file child: {driver:file, filename} or blkdebug over one, with inject-error rules. */
  private fileFromObject(command: string, file: Args, owner: string): string | undefined {
    if (file['driver'] === 'file') {
      const path = this.resolve(str(file['filename']));
      const childName = str(file['node-name']);
      if (childName !== '') this.fileNodes.set(childName, path);
      return path;
    }
    if (file['driver'] === 'blkdebug' && isRecord(file['image'])) {
      const path = this.fileFromObject(command, file['image'], owner);
      if (path === undefined) return undefined;
      const rules = Array.isArray(file['inject-error']) ? (file['inject-error'] as unknown[]) : [];
      for (const rule of rules) {
        if (!isRecord(rule) || (rule['event'] !== undefined && rule['event'] !== 'write_aio')) continue;
        const sector = typeof rule['sector'] === 'number' ? rule['sector'] : undefined;
        this.sim.injectTargetError({
          errno: rule['errno'] === 28 ? 'ENOSPC' : 'EIO',
          once: rule['once'] === true,
          path,
          ...(sector === undefined ? {} : { atOffset: sector * 512 }),
        });
      }
      return path;
    }
    return undefined;
  }

  private blockdevDel(command: string, name: string): Result<void, HypervisorError> {
    if (this.fileNodes.delete(name)) return ok(undefined);
    const node = this.formatNodes.get(name);
    if (node === undefined) return err(deviceNotFound(command, name));
    if (this.sim.diskBusyWith(node.path) !== null)
      return err(qmpError(command, `Node '${name}' is busy: block device is in use by block job: mirror`));
    const users = this.sim.listJobs().some((j) => j.spec.destination.path === node.path);
    if (users || this.sim.diskWithTop(node.path) !== null) return err(qmpError(command, `Node ${name} is in use`));
    this.formatNodes.delete(name);
    return ok(undefined);
  }

  private blockdevMirror(command: string, a: Args): Result<void, HypervisorError> {
    const sim = this.sim;
    const types = qapiMirrorTypes(command, a);
    if (types.isErr()) return err(types.error);
    const deviceName = str(a['device']);
    const targetName = str(a['target']);
    // 1. the source must be a root node (under a running mirror it has the mirror_top filter above it)
    if (this.isFilterName(deviceName)) return err(qmpError(command, 'Need a root block node'));
    // bdrv_lookup_bs: a BlockBackend name (legacy -drive id) first, then a node name; never a qdev id (v3).
    const backend = sim.vmDisks().find((d) => d.drive !== null && d.drive === deviceName);
    const device =
      backend === undefined
        ? this.formatNodes.get(deviceName)
        : { path: backend.chain[0] ?? '', format: 'qcow2' as const, backing: undefined };
    if (device === undefined) return err(deviceNotFound(command, deviceName));
    const disk = sim.diskWithTop(device.path);
    if (sim.diskBusyWith(device.path) !== null || (disk === null && this.isBackingNode(device.path)))
      return err(qmpError(command, 'Need a root block node'));
    // 2. the target node
    const target = this.formatNodes.get(targetName);
    if (target === undefined) return err(deviceNotFound(command, targetName));
    const chain = disk === null ? null : { chain: [device.path] };
    const size = sim.checkMirrorTarget(command, target.path, target.format, chain, targetName);
    if (size.isErr()) return err(size.error);
    // 3. the job id (job_create); without one it is the BlockBackend's name, '' for a node (v2)
    const jobId = typeof a['job-id'] === 'string' ? a['job-id'] : backend === undefined ? '' : deviceName;
    const id = sim.checkJobId(command, jobId);
    if (id.isErr()) return err(id.error);
    if (a['auto-finalize'] === false) return err(qmpError(command, 'simulator: auto-finalize=false is not modelled'));
    if (disk === null) return err(qmpError(command, "simulator: only a disk's active image can be mirrored"));
    const sync = str(a['sync']);
    if (sync !== 'full' && sync !== 'top') return err(qmpError(command, `simulator: sync '${sync}' is not modelled`));
    const spec: MirrorSpec = {
      jobId,
      domain: disk.domain,
      disk: disk.disk,
      destination: { path: target.path, format: target.format },
      destinationBacking: this.backingOf(target),
      sync,
      speed: typeof a['speed'] === 'number' ? a['speed'] : 0,
      onTargetError: policy(a['on-target-error']),
      onSourceError: policy(a['on-source-error']),
      copyMode: a['copy-mode'] === 'write-blocking' ? 'write-blocking' : 'background',
    };
    return sim.mirror(spec, command, {
      ...(typeof a['granularity'] === 'number' ? { granularity: a['granularity'] } : {}),
      ...(typeof a['buf-size'] === 'number' ? { bufSize: a['buf-size'] } : {}),
    });
  }

  private backingOf(node: FormatNode): MirrorSpec['destinationBacking'] {
    if (node.backing === null) return null;
    if (node.backing !== undefined) {
      const b = this.formatNodes.get(node.backing);
      return b === undefined ? null : { path: b.path, format: b.format };
    }
    return this.sim.images.get(node.path)?.backing ?? null; // opened from the header
  }

  private isBackingNode(path: string): boolean {
    for (const node of this.formatNodes.values()) {
      if (node.backing === undefined || node.backing === null) continue;
      if (this.formatNodes.get(node.backing)?.path === path) return true;
    }
    return false;
  }

  private filterName(job: MirrorJob): string {
    let name = this.filterNames.get(job);
    if (name === undefined) {
      name = `#block${String(this.nextFilter++).padStart(3, '0')}`;
      this.filterNames.set(job, name);
    }
    return name;
  }

  /** Names of the implicit mirror_top filters of the running jobs (query-named-block-nodes). */
  filterNodes(): string[] {
    return this.sim
      .listJobs()
      .filter((j) => j.live)
      .map((j) => this.filterName(j));
  }

  private isFilterName(name: string): boolean {
    return this.sim.listJobs().some((j) => j.live && this.filterNames.get(j) === name);
  }

  private nodeNameOf(path: string): string {
    for (const [name, node] of this.formatNodes) if (node.path === path) return name;
    return path;
  }

  /** One NBD-style export per disk, on the node its guest reads: the filter while a job runs. */
  private exports(): { id: string; 'node-name': string; type: string; 'shutting-down': boolean }[] {
    const out: { id: string; 'node-name': string; type: string; 'shutting-down': boolean }[] = [];
    for (const job of this.sim.listJobs()) if (job.live) this.filterName(job);
    let n = 0;
    for (const path of this.sim.images.paths()) {
      const disk = this.sim.diskWithTop(path);
      if (disk === null) continue;
      const job = this.sim.listJobs().find((j) => j.live && j.spec.domain === disk.domain && j.spec.disk === disk.disk);
      const node = job === undefined ? this.nodeNameOf(path) : this.filterName(job);
      out.push({ id: `exp${n++}`, 'node-name': node, type: 'nbd', 'shutting-down': false });
    }
    return out;
  }

  /** query-block: the VM's guest devices, each with its BlockBackend and root node (v1, v2). */
  private queryBlock(): Record<string, unknown>[] {
    let anonymous = 0;
    return this.sim.vmDisks().map((d) => {
      const top = d.chain[0] ?? '';
      const image = this.sim.images.get(top);
      const root = d.nodes[0] ?? this.nodeNameOf(top);
      return {
        device: d.drive ?? '',
        qdev:
          d.device === null
            ? `/machine/peripheral-anon/device[${anonymous++}]/virtio-backend`
            : `/machine/peripheral/${d.device}/virtio-backend`,
        'io-status': 'ok',
        locked: false,
        removable: false,
        inserted: {
          'node-name': root,
          file: this.relative(top),
          drv: image?.format ?? 'qcow2',
          backing_file_depth: d.chain.length - 1,
          image: {
            filename: this.relative(top),
            format: image?.format ?? 'qcow2',
            'virtual-size': image?.virtualSize ?? 0,
          },
        },
      };
    });
  }

  /** A path as QEMU reports it: relative to its working directory (the traces' `dir`). */
  private relative(path: string): string {
    return this.dir !== '' && path.startsWith(`${this.dir}/`) ? path.slice(this.dir.length + 1) : path;
  }

  private blockJobInfo(j: MirrorJob): Record<string, unknown> {
    const info = j.info();
    return {
      device: info.jobId,
      type: 'mirror',
      len: info.len,
      offset: info.offset,
      busy: false,
      paused: info.paused,
      speed: info.speed,
      ready: info.ready,
      status: info.status,
      'io-status': info.ioStatus,
      'auto-finalize': true,
      'auto-dismiss': false,
    };
  }
}

function jobInfo(j: MirrorJob): Record<string, unknown> {
  const info = j.info();
  return {
    id: info.jobId,
    type: 'mirror',
    status: info.status,
    'current-progress': info.offset,
    'total-progress': info.len,
    ...(info.error === undefined ? {} : { error: info.error }),
  };
}

/** The QAPI visitor's type checks of blockdev-mirror's tuning arguments (before the command runs). */
function qapiMirrorTypes(command: string, a: Args): Result<void, HypervisorError> {
  const g = a['granularity'];
  if (g !== undefined && !(typeof g === 'number' && Number.isInteger(g) && g >= 0 && g <= 0xffffffff))
    return err(qmpError(command, "Parameter 'granularity' expects uint32_t"));
  const b = a['buf-size'];
  if (b !== undefined && !(typeof b === 'number' && Number.isInteger(b) && Math.abs(b) < 2 ** 63))
    return err(qmpError(command, "Invalid parameter type for 'buf-size', expected: integer"));
  const mode = a['copy-mode'];
  if (mode !== undefined && mode !== 'background' && mode !== 'write-blocking')
    return err(
      qmpError(
        command,
        `Parameter 'copy-mode' does not accept value '${typeof mode === 'string' ? mode : JSON.stringify(mode)}'`,
      ),
    );
  return ok(undefined);
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function isRecord(v: unknown): v is Args {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function policy(v: unknown): IoErrorPolicy {
  return v === 'stop' || v === 'ignore' || v === 'enospc' ? v : 'report';
}
