/**
 * The real-QEMU implementation of the engine's HypervisorPort: block copy through QMP
 * (`blockdev-add` + `blockdev-mirror`, libvirt-style) against one QEMU process, plus the local
 * file work around it (`qemu-img info/map/create`, stat, unlink).
 *
 * Model: one QEMU process (typically a qemu-storage-daemon) is one domain, always running and
 * transient. A DISK is either a block-export id (the guest device; preferred, because it still
 * names the disk after a pivot) or the node name of the disk's root format node (e.g. `snap2`).
 *
 * The QEMU behaviour this relies on is measured in qemu-mirror.md in the reference notes §0; the numbers
 * below (§0.x) refer to it. Every method returns a ResultAsync that never rejects, and every
 * mutating method is idempotent so that a restored engine job can run it again.
 */
import { type Res, invalid, ioError, wrap } from '../hypervisor-results.js';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { err, ok, ResultAsync, type Result } from 'neverthrow';
import { Subject, type Observable, type Subscription } from 'rxjs';
import type { Clock } from '../../src/core/clock.js';
import { LocalImages, parseJson, removeFile, samePath } from '../local-images.js';
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
  JobStatus,
  MirrorSpec,
  StreamSpec,
} from '../../src/core/hypervisor-port.js';
import { isJobStatus } from '../../src/core/hypervisor-port.js';
import { resolveDisk as resolveDiskName } from '../../src/core/disk-identity.js';
import { QmpClient, type QmpEvent, type QmpLifecycleEvent, type QmpReconnectOptions } from './client.js';

export interface QemuHypervisorOptions {
  /** QMP unix socket of the QEMU process. */
  readonly socket: string;
  /** The name this process answers to as a domain. Default 'qemu'. */
  readonly domain?: string;
  readonly clock?: Clock;
  /** Per-command reply deadline (default 30 s). */
  readonly commandTimeoutMs?: number;
  /** Greeting + capabilities deadline per (re)connect (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Cap for one QMP line (default 1 MiB); a longer reply fails its command with `invalid`. */
  readonly maxLineBytes?: number;
  /** Reconnect policy after a dropped connection; false: a drop means hypervisor-gone. */
  readonly reconnect?: false | QmpReconnectOptions;
  /** qemu-img binary (default: from PATH). */
  readonly qemuImg?: string;
  /** Deadline for each qemu-img run, in ms (default 120 s). */
  readonly toolTimeoutMs?: number;
  /**
   * QEMU's working directory, if it was given relative file names (scenarios.py does that):
   * they are reported absolute against it. Without it relative names are reported as they are.
   */
  readonly qemuCwd?: string;
}

/** Connects to QEMU's QMP socket and returns a ready adapter. */
export function connectQemu(options: QemuHypervisorOptions): ResultAsync<QemuHypervisor, HypervisorError> {
  return QmpClient.connect({
    socket: options.socket,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.commandTimeoutMs !== undefined ? { commandTimeoutMs: options.commandTimeoutMs } : {}),
    ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
    ...(options.reconnect !== undefined ? { reconnect: options.reconnect } : {}),
    ...(options.maxLineBytes !== undefined ? { maxLineBytes: options.maxLineBytes } : {}),
  }).map((client) => new QemuHypervisor(client, options));
}

/**
 * Node names the adapter gives a job's destination: `<jobId>-dst` (format) over `<jobId>-dst-f`
 * (file). Deterministic, so that a retried startMirror finds what an interrupted one attached,
 * and dismissJob/removeDestination know what to detach. QEMU caps node names at 31 characters
 * and wants them to start with a letter, so other job ids are hashed.
 */
export function targetNodeNames(jobId: string): { readonly format: string; readonly file: string } {
  const base =
    /^[A-Za-z][A-Za-z0-9_.-]*$/.test(jobId) && jobId.length <= 25
      ? jobId
      : `bc${createHash('sha256').update(jobId).digest('hex').slice(0, 16)}`;
  return { format: `${base}-dst`, file: `${base}-dst-f` };
}

// ---------------------------------------------------------------- QMP reply shapes (7.2)

interface NamedNode {
  readonly 'node-name': string;
  readonly drv: string;
  /** bs->filename; a `json:{…}` pseudo name for format nodes whose backing was overridden. */
  readonly file: string;
  readonly image: { readonly 'virtual-size': number };
}

interface GraphNode {
  readonly id: number;
  readonly type: 'block-backend' | 'block-job' | 'block-driver';
  readonly name: string;
}

interface GraphEdge {
  readonly parent: number;
  readonly child: number;
  readonly name: string;
}

interface BlockExport {
  readonly id: string;
  readonly 'node-name': string;
  readonly 'shutting-down': boolean;
}

/** One block backend of query-block (a guest device's drive, or a legacy -drive). */
interface QueryBlockEntry {
  /** The BlockBackend name: the legacy -drive id, '' for a -blockdev disk's anonymous backend. */
  readonly device: string;
  /** The device's qdev id, or its QOM path ("/machine/peripheral/vda/virtio-backend"). */
  readonly qdev?: string;
  /** The root node the backend reads (implicit filters hidden); absent for an empty drive. */
  readonly inserted?: { readonly 'node-name': string; readonly file: string };
}

interface QueryJob {
  readonly id: string;
  readonly status: JobStatus;
  readonly 'current-progress': number;
  readonly 'total-progress': number;
  readonly error?: string;
}

interface QueryBlockJob {
  readonly device: string;
  readonly type?: string;
  readonly status: JobStatus;
  readonly len: number;
  readonly offset: number;
  readonly speed: number;
  readonly ready: boolean;
  readonly paused: boolean;
  readonly 'io-status': 'ok' | 'failed' | 'nospace';
  readonly error?: string;
}

/** Drivers that only pass I/O through to one child (the implicit `#blockNNN` mirror_top, etc.). */
const FILTER_DRIVERS = new Set([
  'mirror_top',
  'commit_top',
  'copy-on-read',
  'throttle',
  'preallocate',
  'compress',
  'copy-before-write',
]);

/** One consistent-enough snapshot of the block graph (named nodes + edges + exports). */
class BlockGraph {
  private readonly byName = new Map<string, NamedNode>();
  private readonly graphByName = new Map<string, GraphNode>();
  private readonly graphById = new Map<number, GraphNode>();

  constructor(
    nodes: readonly NamedNode[],
    private readonly gnodes: readonly GraphNode[],
    private readonly edges: readonly GraphEdge[],
    readonly exports: readonly BlockExport[],
    private readonly cwd: string | undefined,
  ) {
    for (const n of nodes) this.byName.set(n['node-name'], n);
    for (const g of gnodes) {
      this.graphById.set(g.id, g);
      if (g.type === 'block-driver' && g.name) this.graphByName.set(g.name, g);
    }
  }

  /** Every named node. */
  nodeNames(): string[] {
    return [...this.byName.keys()];
  }

  node(name: string): NamedNode | undefined {
    return this.byName.get(name);
  }

  /** A block-driver node of this name is in the graph (x-debug-query-block-graph's names). */
  has(name: string): boolean {
    return this.graphByName.has(name);
  }

  /** The node under `name` through the child role (`backing`, `file`, `image`, …). */
  child(name: string, role: string): string | undefined {
    const g = this.graphByName.get(name);
    if (!g) return undefined;
    const e = this.edges.find((x) => x.parent === g.id && x.name === role);
    const c = e ? this.graphById.get(e.child) : undefined;
    return c?.type === 'block-driver' ? c.name : undefined;
  }

  parents(name: string): { readonly node: GraphNode; readonly role: string }[] {
    const g = this.graphByName.get(name);
    if (!g) return [];
    return this.edges
      .filter((e) => e.child === g.id)
      .flatMap((e) => {
        const p = this.graphById.get(e.parent);
        return p ? [{ node: p, role: e.name }] : [];
      });
  }

  isFilter(name: string): boolean {
    const n = this.byName.get(name);
    return n !== undefined && FILTER_DRIVERS.has(n.drv);
  }

  /** From a node down through filter nodes to the first non-filter node. */
  skipFilters(name: string | undefined): string | undefined {
    let cur = name;
    for (let i = 0; cur !== undefined && i < 64 && this.isFilter(cur); i++)
      cur = this.child(cur, 'backing') ?? this.child(cur, 'file');
    return cur;
  }

  /**
   * The file a format node stores its data in: down through `file`/`image` children (a blkdebug
   * layer sits in between in the error-injection tests) to the protocol node, whose filename is
   * plain. The format node's own `file` can be a `json:{…}` pseudo name (backing given by node).
   */
  protocolFile(name: string): string | undefined {
    let cur = name;
    for (let i = 0; i < 64; i++) {
      const next = this.child(cur, 'file') ?? this.child(cur, 'image');
      if (next === undefined) break;
      cur = next;
    }
    const file = this.byName.get(cur)?.file;
    return file === undefined || file.startsWith('json:') ? undefined : this.absolute(file);
  }

  /** A relative file name made absolute against QEMU's cwd (URIs such as nbd:… stay as they are). */
  absolute(file: string): string {
    return this.cwd !== undefined && !isAbsolute(file) && !/^[a-z+]+:/.test(file) ? resolvePath(this.cwd, file) : file;
  }

  /** Nodes above `name` reached through `file`/`image` edges, topmost (the format node) first. */
  formatStackAbove(name: string): string[] {
    const stack = [name];
    let cur = name;
    for (let i = 0; i < 64; i++) {
      const up = this.parents(cur).find(
        (p) => p.node.type === 'block-driver' && (p.role === 'file' || p.role === 'image'),
      );
      if (!up) break;
      cur = up.node.name;
      stack.unshift(cur);
    }
    return stack;
  }

  /** Leaf protocol nodes (no file/image child) whose filename is `path`. */
  protocolNodesFor(path: string): string[] {
    const out: string[] = [];
    for (const [name, n] of this.byName)
      if (
        this.child(name, 'file') === undefined &&
        this.child(name, 'image') === undefined &&
        samePath(this.absolute(n.file), path)
      )
        out.push(name);
    return out;
  }

  /** True when something other than a block job reads from the node (an export, a device, a parent node). */
  inUse(name: string): boolean {
    return this.parents(name).some((p) => p.node.type !== 'block-job');
  }

  /** The node and every node below it (backing, file, … children), by name. */
  below(name: string): Set<string> {
    const out = new Set<string>();
    const todo = [name];
    while (todo.length > 0) {
      const cur = todo.pop()!;
      if (out.has(cur)) continue;
      out.add(cur);
      const g = this.graphByName.get(cur);
      if (!g) continue;
      for (const e of this.edges) {
        const c = e.parent === g.id ? this.graphById.get(e.child) : undefined;
        if (c?.type === 'block-driver' && c.name) todo.push(c.name);
      }
    }
    return out;
  }

  /**
   * The nodes under `top` (itself included) that nothing outside them uses, parents first: what
   * blockdev-del may remove once `top` is no disk any more. A node with a parent elsewhere (a
   * shallow copy's backing, an export, a device, a job) stays, and so does everything below it.
   * `dismissed`: a job dismissed before the blockdev-dels run, whose hold (if any) does not count.
   */
  releasable(top: string, dismissed?: string): string[] {
    const set = this.below(top);
    const kept = new Set<string>();
    for (const name of set) {
      if (kept.has(name)) continue;
      const outside = this.parents(name).some(
        (p) =>
          !(p.node.type === 'block-job' && p.node.name === dismissed) &&
          (p.node.type !== 'block-driver' || !set.has(p.node.name)),
      );
      if (outside) for (const n of this.below(name)) kept.add(n);
    }
    // Breadth-first from the top: a parent is deleted before its children.
    const order: string[] = [];
    const seen = new Set<string>();
    const queue = [top];
    while (queue.length > 0) {
      const cur = queue.shift()!;
      if (seen.has(cur)) continue;
      seen.add(cur);
      if (!kept.has(cur)) order.push(cur);
      const g = this.graphByName.get(cur);
      if (!g) continue;
      for (const e of this.edges) {
        const c = e.parent === g.id ? this.graphById.get(e.child) : undefined;
        if (c?.type === 'block-driver' && c.name) queue.push(c.name);
      }
    }
    return order;
  }

  /** Filter nodes stacked above `name` (a running mirror's mirror_top, …). */
  filtersAbove(name: string): string[] {
    const out: string[] = [];
    let cur = name;
    for (let i = 0; i < 64; i++) {
      const up = this.parents(cur).find((p) => p.node.type === 'block-driver' && this.isFilter(p.node.name));
      if (!up) break;
      cur = up.node.name;
      out.push(cur);
    }
    return out;
  }

  /** Block jobs (by id) that hold one of these nodes. */
  jobsOn(nodes: ReadonlySet<string>): string[] {
    const ids = new Set<string>();
    for (const e of this.edges) {
      const p = this.graphById.get(e.parent);
      const c = this.graphById.get(e.child);
      if (p?.type === 'block-job' && c?.type === 'block-driver' && nodes.has(c.name)) ids.add(p.name);
    }
    return [...ids];
  }

  /** Root block-driver nodes (no parents at all), by name. */
  roots(): string[] {
    return this.gnodes
      .filter(
        (g) => g.type === 'block-driver' && g.name && !g.name.startsWith('#') && this.parents(g.name).length === 0,
      )
      .map((g) => g.name);
  }
}

/** The format nodes whose image is one of `paths` (the topmost node above each file's protocol node). */
function formatNodesOf(g: BlockGraph, paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const path of paths)
    for (const leaf of g.protocolNodesFor(path)) {
      const top = g.formatStackAbove(leaf)[0];
      if (top !== undefined && !out.includes(top)) out.push(top);
    }
  return out;
}

/** QMP commands that change nothing (sharing a view across them is safe). */
const READ_ONLY_COMMANDS = new Set([
  'query-named-block-nodes',
  'x-debug-query-block-graph',
  'query-block-exports',
  'query-block',
  'query-block-jobs',
  'query-jobs',
  'query-status',
]);

/** What the guest reads the disk through: a device's block backend or an NBD export. */
type Consumer =
  | { readonly kind: 'backend'; readonly drive: string; readonly qdev: string }
  | { readonly kind: 'export'; readonly id: string }
  | { readonly kind: 'node' };

/** One snapshot of the block graph with the disks read from it. */
interface View {
  readonly g: BlockGraph;
  readonly disks: readonly VmDisk[];
}

/** A disk as listDisks reports it, plus what the adapter needs to act on it. */
interface VmDisk extends DiskNames {
  /** The disk's top format node (filters skipped): the blockdev-mirror `device`. */
  readonly top: string;
  readonly consumer: Consumer;
}

/** The qdev id in a query-block `qdev` ("/machine/peripheral/vda/virtio-backend" → vda). */
export function qdevId(qdev: string | undefined): string | null {
  if (qdev === undefined || qdev === '') return null;
  if (!qdev.startsWith('/')) return qdev;
  const m = /^\/machine\/peripheral\/([^/]+)/.exec(qdev);
  return m ? m[1]! : null;
}

export class QemuHypervisor implements HypervisorPort {
  readonly name: string;
  readonly domain: string;
  private readonly subject = new Subject<HypervisorEvent>();
  readonly events$: Observable<HypervisorEvent> = this.subject.asObservable();
  private readonly subscriptions: Subscription[] = [];
  /** qemu-img and the destination's file, shared with the libvirt adapter. */
  private readonly images: LocalImages;
  private readonly qemuCwd: string | undefined;
  /** A disk's names → the consumer the guest read it through when first used; survives the pivot. */
  private readonly consumers = new Map<string, Consumer>();
  /** Job id → the source's top node when the job started: the old chain to release after a pivot. */
  private readonly sources = new Map<string, string>();
  /** Stream job → the format nodes it pulls out of the chain (released after it completed). */
  private readonly streams = new Map<string, string[]>();
  /** Destination node (format) → its file, for the destinations this adapter attached. */
  private readonly targetPaths = new Map<string, string>();
  /** Commands sent that may change the block graph or the jobs (a view asked before is stale). */
  private mutations = 0;
  /** The view on its way, and the mutation count when it was asked. */
  private pendingView: { readonly mutations: number; readonly answer: Res<View> } | null = null;
  /**
   * The block graph read together with a pivot's confirmation (activeImage found the guest on a
   * destination this adapter attached), and the mutation count when it was asked: dismissJob,
   * which comes right behind, releases the old chain from it in the same batch as job-dismiss.
   */
  private confirmedGraph: { readonly mutations: number; readonly graph: BlockGraph } | null = null;
  /**
   * startMirror's queries (query-jobs and the view), sent when createDestination begins: they
   * travel while qemu-img creates the file, and startMirror, which comes right behind, uses them
   * if no command that changes something was sent since (else it asks again).
   */
  private prefetchedStart: {
    readonly mutations: number;
    readonly answer: Promise<[Awaited<Res<QueryJob[]>>, Awaited<Res<View>>]>;
  } | null = null;

  constructor(
    readonly client: QmpClient,
    options: QemuHypervisorOptions,
  ) {
    this.name = `qmp:${options.socket}`;
    this.domain = options.domain ?? 'qemu';
    this.images = new LocalImages(options.qemuImg ?? 'qemu-img', options.toolTimeoutMs ?? 120_000);
    this.qemuCwd = options.qemuCwd;
    this.subscriptions.push(
      client.events$.subscribe((e) => {
        const mapped = mapEvent(e);
        if (mapped) this.subject.next(mapped);
      }),
      client.lifecycle$.subscribe((e) => {
        const mapped = mapLifecycle(e);
        if (mapped) this.subject.next(mapped);
      }),
    );
  }

  // ------------------------------------------------------------------ domain and disks

  getDomain(domain: string): ResultAsync<DomainInfo | null, HypervisorError> {
    return wrap('getDomain', async () => {
      if (domain !== this.domain) return ok(null);
      const v = await this.view();
      if (v.isErr()) return err(v.error);
      return ok({
        name: this.domain,
        running: true,
        persistent: false,
        disks: v.value.disks.map((d) => d.disk).sort(),
      });
    });
  }

  listDisks(domain: string): ResultAsync<readonly DiskNames[] | null, HypervisorError> {
    return wrap('listDisks', async () => {
      if (domain !== this.domain) return ok(null);
      const v = await this.view();
      if (v.isErr()) return err(v.error);
      return ok(v.value.disks.map(publicNames));
    });
  }

  describeDisk(domain: string, disk: string): ResultAsync<DiskInfo | null, HypervisorError> {
    return wrap('describeDisk', async () => {
      if (domain !== this.domain) return ok(null);
      const v = await this.view();
      if (v.isErr()) return err(v.error);
      const d = findDisk(v.value.disks, disk);
      if (!d) return ok(null);
      const chain = chainOf(v.value.g, d.top);
      if (chain.isErr()) return err(chain.error);
      return ok({ domain, disk: d.disk, chain: chain.value });
    });
  }

  /** Every file a named node has open (query-named-block-nodes): what no one may delete now. */
  openFiles(domain: string): ResultAsync<readonly string[], HypervisorError> {
    return wrap('openFiles', async () => {
      if (domain !== this.domain) return err(invalid('openFiles', `no domain '${domain}'`));
      const g = await this.graph();
      if (g.isErr()) return err(g.error);
      const files = new Set<string>();
      for (const name of g.value.nodeNames()) {
        const file = g.value.node(name)?.file;
        if (file !== undefined && file !== '' && !file.startsWith('json:')) files.add(g.value.absolute(file));
        const protocol = g.value.protocolFile(name);
        if (protocol !== undefined) files.add(protocol);
      }
      return ok([...files].sort());
    });
  }

  /**
   * The image the guest reads now, asked of the consumer the disk was first seen through (its
   * device's backend, or its export): one QMP round trip (query-block, or query-block-exports,
   * with x-debug-query-block-graph alongside for dismissJob) when the node it reads is a
   * destination this adapter attached.
   */
  activeImage(domain: string, disk: string): ResultAsync<string, HypervisorError> {
    return wrap('activeImage', async () => {
      if (domain !== this.domain) return err(invalid('activeImage', `no domain '${domain}'`));
      const consumer = this.consumers.get(disk);
      if (consumer && consumer.kind !== 'node') {
        // The graph goes along in the same round trip: after a pivot, dismissJob needs it.
        const mutations = this.mutations;
        const [node, edges] = await Promise.all([this.consumerNode(consumer), this.edgesOnly()]);
        if (node.isErr()) return err(node.error);
        const known = node.value === undefined ? undefined : this.targetPaths.get(node.value);
        if (known !== undefined) {
          this.confirmedGraph = edges.isOk() ? { mutations, graph: edges.value } : null;
          return ok(known);
        }
      }
      const v = await this.view();
      if (v.isErr()) return err(v.error);
      const d = findDisk(v.value.disks, disk, consumer);
      if (!d) return err(invalid('activeImage', `disk '${disk}' not found`));
      return ok(d.source);
    });
  }

  // ------------------------------------------------------------------ destination files

  probeDestination(path: string): ResultAsync<DestinationProbe, HypervisorError> {
    return wrap('probeDestination', () => this.images.probe(path));
  }

  createDestination(spec: CreateDestinationSpec): ResultAsync<void, HypervisorError> {
    return wrap('createDestination', async () => {
      if (spec.type === 'block') return this.formatDevice(spec);
      // startMirror's queries go out now, to travel while the file is made (see prefetchedStart).
      if (spec.claim !== undefined) this.prefetchedStart = { mutations: this.mutations, answer: this.startQueries() };
      // With a claim the image is made under a hidden name derived from it and linked into place;
      // the claim link stays until releaseDestination, so a rerun after a crash can tell "the file
      // this job created" (same inode as its claim) from a file someone else put there.
      const claim = spec.claim === undefined ? null : claimPath(spec.path, spec.claim);
      const existing = await this.images.probe(spec.path);
      if (existing.isErr()) return err(existing.error);
      if (existing.value.exists) {
        if (claim === null) return this.sameAsSpec(existing.value, spec);
        if (await sameFile(claim, spec.path)) return ok(undefined);
        return err(invalid('createDestination', `'${spec.path}' exists and was not created by this job`));
      }
      // qemu-img's own message would name the temporary file below, not the user's path.
      const dir = await fs.stat(dirname(spec.path)).catch(() => null);
      if (dir === null || !dir.isDirectory())
        return err({
          kind: 'io',
          command: 'createDestination',
          desc: `Could not create '${spec.path}': ${dir === null ? 'No such file or directory' : 'Not a directory'}`,
        });
      // Create under a temporary name, then link(2) it into place: link never replaces an
      // existing file, so a file that appears meanwhile is never overwritten.
      const tmp =
        claim ?? join(dirname(spec.path), `.${basename(spec.path)}.${randomBytes(6).toString('hex')}.blockcopy-tmp`);
      if (claim !== null) await fs.rm(claim, { force: true }); // left by a run killed before its link
      const args = ['create', '-q', '-f', spec.format];
      if (spec.backing) args.push('-b', spec.backing.path, '-F', spec.backing.format);
      args.push(tmp, String(spec.virtualSize));
      const created = await this.images.tool('qemu-img create', args);
      if (created.isErr()) {
        await fs.rm(tmp, { force: true });
        // The temporary name is ours: the caller asked for spec.path and must read that.
        return err({ ...created.error, desc: created.error.desc.split(tmp).join(spec.path) });
      }
      try {
        await fs.link(tmp, spec.path);
      } catch (e) {
        await fs.rm(tmp, { force: true });
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return err(ioError('link', e));
        const raced = await this.images.probe(spec.path);
        if (raced.isErr()) return err(raced.error);
        if (claim !== null)
          return err(invalid('createDestination', `'${spec.path}' appeared while it was being created`));
        return raced.value.exists ? this.sameAsSpec(raced.value, spec) : err(ioError('link', e));
      }
      if (claim === null) await fs.rm(tmp, { force: true });
      return ok(undefined);
    });
  }

  /**
   * COPY_DEV without REUSE_EXT: the image header written onto an existing block device, as
   * libvirt's blockdev-create does (raw: nothing to write). Never creates, truncates or removes
   * the device; qemu-img's image locking refuses a device that QEMU has open for writing.
   */
  private async formatDevice(spec: CreateDestinationSpec): Res<void> {
    const probe = await this.images.probe(spec.path);
    if (probe.isErr()) return err(probe.error);
    if (!probe.value.exists || probe.value.kind !== 'block')
      return err(invalid('createDestination', `'${spec.path}' is not a block device`));
    if (spec.format === 'raw') return ok(undefined);
    const args = ['create', '-q', '-f', spec.format];
    if (spec.backing) args.push('-b', spec.backing.path, '-F', spec.backing.format);
    args.push(spec.path, String(spec.virtualSize));
    const r = await this.images.tool('qemu-img create', args);
    return r.map(() => undefined);
  }

  releaseDestination(path: string, claim: string): ResultAsync<void, HypervisorError> {
    return wrap('releaseDestination', async () => {
      try {
        await fs.unlink(claimPath(path, claim));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return err(ioError('unlink', e));
      }
      return ok(undefined);
    });
  }

  removeDestination(path: string): ResultAsync<void, HypervisorError> {
    return wrap('removeDestination', async () => {
      // Detach first: never unlink a file QEMU still writes to (or, after a pivot, the disk).
      const g = await this.graph();
      if (g.isErr()) return err(g.error);
      for (const leaf of g.value.protocolNodesFor(path)) {
        for (const node of g.value.formatStackAbove(leaf)) {
          const del = await this.blockdevDel(node);
          if (del.isErr()) return err(del.error);
        }
      }
      return removeFile(path);
    });
  }

  // ------------------------------------------------------------------ the mirror job

  startMirror(spec: MirrorSpec): ResultAsync<void, HypervisorError> {
    return wrap('startMirror', async () => {
      const cmd = 'blockdev-mirror';
      if (spec.domain !== this.domain) return err(invalid(cmd, `no domain '${spec.domain}'`));
      // The idempotence check and the disk's graph in one batch, sent during createDestination
      // if nothing was changed since, else now.
      const prefetched = this.prefetchedStart;
      this.prefetchedStart = null;
      const early = prefetched !== null && prefetched.mutations === this.mutations ? await prefetched.answer : null;
      const [jobs, vr] = early !== null && early[0].isOk() && early[1].isOk() ? early : await this.startQueries();
      if (jobs.isErr()) return err(jobs.error);
      if (jobs.value.some((j) => j.id === spec.jobId)) return ok(undefined);
      if (vr.isErr()) return err(vr.error);
      const g = vr.value.g;
      const d = findDisk(vr.value.disks, spec.disk);
      if (!d) return err(invalid(cmd, `disk '${spec.disk}' not found`));
      this.remember(d);
      this.sources.set(spec.jobId, d.top);

      // §0.14 (b2): for sync=top the target must get the source's backing *node*; with
      // backing:null QEMU accepts the job and the guest reads zeros after the pivot.
      let backingNode: string | null = null;
      /** The destination's own backing file, opened by QEMU from its header (openDestinationBacking). */
      let ownChain: string | null = null;
      if (spec.sync === 'top') {
        backingNode = g.skipFilters(g.child(d.top, 'backing')) ?? null;
        // A raw target has no backing: the seed's REUSE_EXT|SHALLOW|COPY_RAW case, a raw volume
        // that already holds the backing chain's data, gets only the top layer copied into it.
        if (spec.destination.format === 'raw') backingNode = null;
        if (spec.destinationBacking && spec.openDestinationBacking === true && spec.destination.format === 'qcow2') {
          // Whole-chain migration (libvirt's reused shallow copy): QEMU opens the chain the
          // destination's header names, which must be the one the caller verified.
          const header = await this.images.imageInfo(spec.destination.path);
          if (header?.backing == null || !samePath(header.backing.path, spec.destinationBacking.path))
            return err(
              invalid(
                cmd,
                `destination '${spec.destination.path}' does not name '${spec.destinationBacking.path}' as its backing (${header?.backing?.path ?? 'none'})`,
              ),
            );
          ownChain = spec.destinationBacking.path;
          backingNode = null;
        } else if (spec.destinationBacking) {
          const actual = backingNode === null ? undefined : g.protocolFile(backingNode);
          if (actual === undefined || !samePath(actual, spec.destinationBacking.path))
            return err(
              invalid(
                cmd,
                `destination backing '${spec.destinationBacking.path}' is not the source's backing (${actual ?? 'none'})`,
              ),
            );
        }
      }

      const names = targetNodeNames(spec.jobId);
      this.targetPaths.set(names.format, spec.destination.path);
      let attach: Record<string, unknown> | null = null;
      const existing = g.node(names.format);
      if (existing) {
        // Attached by an interrupted earlier attempt (or by a test, with blkdebug in between).
        const file = g.protocolFile(names.format);
        if (file === undefined || !samePath(file, spec.destination.path))
          return err(invalid(cmd, `node '${names.format}' is attached to ${file ?? 'another file'}`));
        if (existing.drv !== spec.destination.format)
          return err(invalid(cmd, `node '${names.format}' has format ${existing.drv}`));
        const b = g.skipFilters(g.child(names.format, 'backing')) ?? null;
        const bFile = b === null ? undefined : g.protocolFile(b);
        if (ownChain !== null ? bFile === undefined || !samePath(bFile, ownChain) : b !== backingNode)
          return err(
            invalid(
              cmd,
              `node '${names.format}' has backing ${b ?? 'none'}, needs ${ownChain ?? backingNode ?? 'none'}`,
            ),
          );
      } else {
        // One blockdev-add: the format node with its protocol node inline (deleting the format
        // node takes the inline one along). A protocol node left by an earlier attempt is reused.
        const fileNode = g.node(names.file);
        if (fileNode && !samePath(g.absolute(fileNode.file), spec.destination.path))
          return err(invalid(cmd, `node '${names.file}' is attached to ${fileNode.file}`));
        attach = {
          driver: spec.destination.format,
          'node-name': names.format,
          file: fileNode
            ? names.file
            : {
                // COPY_DEV: QEMU's `file` driver refuses a block device; host_device opens it.
                driver: spec.destination.type === 'block' ? 'host_device' : 'file',
                'node-name': names.file,
                filename: spec.destination.path,
              },
        };
        // Without a `backing` key QEMU opens the chain named in the image header (ownChain).
        if (spec.destination.format === 'qcow2' && ownChain === null) attach['backing'] = backingNode;
      }

      const args: Record<string, unknown> = {
        'job-id': spec.jobId, // §0.13: mandatory with node names
        device: d.top,
        target: names.format,
        sync: spec.sync,
        'on-target-error': spec.onTargetError,
        'on-source-error': spec.onSourceError,
        'copy-mode': spec.copyMode,
        // §0.9/§0.10: libvirt's choice. The outcome stays readable in query-jobs until dismissed,
        // and the pivot happens without a drained PENDING period.
        'auto-finalize': true,
        'auto-dismiss': false,
      };
      // Any non-zero speed goes to QEMU, which refuses a negative one (never drop it silently).
      if (spec.speed !== 0) args['speed'] = spec.speed;
      if (spec.granularity !== undefined) args['granularity'] = spec.granularity;
      if (spec.bufSize !== undefined) args['buf-size'] = spec.bufSize;
      // blockdev-mirror goes out right behind blockdev-add, without waiting for its answer: QEMU
      // runs one monitor's commands in order, so the mirror finds the node, or fails for want of
      // it when blockdev-add failed (then blockdev-add's error is the one reported).
      const added = attach === null ? null : this.qmp('blockdev-add', attach);
      const [add, r] = await Promise.all([added ?? Promise.resolve(ok(undefined)), this.qmp(cmd, args)]);
      if (add.isErr()) return err(add.error);
      if (r.isErr()) {
        if (r.error.kind === 'qmp' && r.error.desc === `Job ID '${spec.jobId}' already in use`) return ok(undefined);
        return err(await this.rollback(attach === null ? [] : [names.format], r.error));
      }
      return ok(undefined);
    });
  }

  /**
   * block-stream into the disk's top node from `base-node` (or the whole chain), libvirt-style:
   * explicit job id, auto-finalize, auto-dismiss off, `backing-file` only for RELATIVE.
   */
  startStream(spec: StreamSpec): ResultAsync<void, HypervisorError> {
    return wrap('startStream', async () => {
      const cmd = 'block-stream';
      if (spec.domain !== this.domain) return err(invalid(cmd, `no domain '${spec.domain}'`));
      const jobs = await this.qmp<QueryJob[]>('query-jobs');
      if (jobs.isErr()) return err(jobs.error);
      if (jobs.value.some((j) => j.id === spec.jobId)) return ok(undefined);
      const vr = await this.view();
      if (vr.isErr()) return err(vr.error);
      const g = vr.value.g;
      const d = findDisk(vr.value.disks, spec.disk);
      if (!d) return err(invalid(cmd, `disk '${spec.disk}' not found`));
      this.remember(d);
      // The nodes between the top and base: what the stream copies and then drops.
      const between: string[] = [];
      let baseNode: string | null = null;
      for (let cur = g.skipFilters(g.child(d.top, 'backing')); cur !== undefined;) {
        const file = g.protocolFile(cur);
        if (spec.base !== null && file !== undefined && samePath(file, spec.base.path)) {
          baseNode = cur;
          break;
        }
        between.push(cur);
        cur = g.skipFilters(g.child(cur, 'backing'));
      }
      // A base elsewhere in the graph, or not opened at all (then named by its path): QEMU's words.
      if (spec.base !== null && baseNode === null) {
        const wanted = spec.base.path;
        baseNode =
          g.nodeNames().find((n) => {
            const file = g.protocolFile(n);
            return g.node(n)?.drv !== 'file' && file !== undefined && samePath(file, wanted);
          }) ?? wanted;
      }
      const args: Record<string, unknown> = {
        'job-id': spec.jobId,
        device: d.top,
        'auto-finalize': true,
        'auto-dismiss': false,
      };
      if (baseNode !== null) args['base-node'] = baseNode;
      if (spec.backingFile !== null) args['backing-file'] = spec.backingFile;
      if (spec.speed !== 0) args['speed'] = spec.speed;
      const r = await this.qmp(cmd, args);
      if (r.isErr()) {
        if (r.error.kind === 'qmp' && r.error.desc === `Job ID '${spec.jobId}' already in use`) return ok(undefined);
        return err(r.error);
      }
      this.streams.set(spec.jobId, between);
      return ok(undefined);
    });
  }

  /** The backing names as written in each header (qemu-img info -U: QEMU holds the images). */
  backingNames(domain: string, disk: string): ResultAsync<readonly (string | null)[], HypervisorError> {
    return wrap('backingNames', async () => {
      const described = await this.describeDisk(domain, disk);
      if (described.isErr()) return err(described.error);
      const top = described.value?.chain[0]?.path;
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

  queryJob(jobId: string): ResultAsync<HypervisorJobInfo | null, HypervisorError> {
    return wrap('queryJob', async () => {
      // query-jobs has the error text, query-block-jobs has ready/paused/io-status/speed (§7).
      const [jobs, blockJobs] = await Promise.all([
        this.qmp<QueryJob[]>('query-jobs'),
        this.qmp<QueryBlockJob[]>('query-block-jobs'),
      ]);
      if (jobs.isErr()) return err(jobs.error);
      if (blockJobs.isErr()) return err(blockJobs.error);
      const j = jobs.value.find((x) => x.id === jobId);
      const b = blockJobs.value.find((x) => x.device === jobId);
      if (!j && !b) return ok(null);
      const error = j?.error ?? b?.error;
      return ok({
        jobId,
        status: j?.status ?? b?.status ?? 'undefined',
        offset: b?.offset ?? j?.['current-progress'] ?? 0,
        len: b?.len ?? j?.['total-progress'] ?? 0,
        speed: b?.speed ?? 0,
        ready: b?.ready ?? false,
        paused: b?.paused ?? false,
        ioStatus: b?.['io-status'] ?? 'ok',
        ...(error !== undefined ? { error } : {}),
      });
    });
  }

  completeJob(jobId: string): ResultAsync<void, HypervisorError> {
    return wrap('completeJob', async () => {
      const r = await this.qmp('block-job-complete', { device: jobId });
      if (r.isOk()) return ok(undefined);
      // Idempotence: a completion already under way (waiting/pending) or done (pivoted) is fine.
      const st = await this.jobState(jobId);
      if (st?.status === 'waiting' || st?.status === 'pending') return ok(undefined);
      if (st?.status === 'concluded' && st.error === undefined && (await this.pivotedTo(jobId))) return ok(undefined);
      return err(r.error);
    });
  }

  cancelJob(jobId: string, force: boolean): ResultAsync<void, HypervisorError> {
    return wrap('cancelJob', async () => {
      const r = await this.qmp('block-job-cancel', { device: jobId, force });
      if (r.isOk()) return ok(undefined);
      if (r.error.errorClass === 'DeviceNotActive') return ok(undefined); // no job: nothing to cancel
      // Idempotence: already aborting, or concluded without having pivoted (cancelled, failed, or
      // soft-cancelled). A job that pivoted was not cancelled: report QEMU's refusal.
      const st = await this.jobState(jobId);
      if (st?.status === 'aborting') return ok(undefined);
      if (st?.status === 'concluded' && !(await this.pivotedTo(jobId))) return ok(undefined);
      return err(r.error);
    });
  }

  pauseJob(jobId: string): ResultAsync<void, HypervisorError> {
    return this.command('block-job-pause', { device: jobId }, ['Job is already paused']);
  }

  resumeJob(jobId: string): ResultAsync<void, HypervisorError> {
    return this.command('block-job-resume', { device: jobId }, ["Can't resume a job that was not paused"]);
  }

  setJobSpeed(jobId: string, bytesPerSecond: number): ResultAsync<void, HypervisorError> {
    return this.command('block-job-set-speed', { device: jobId, speed: bytesPerSecond }, []);
  }

  dismissJob(jobId: string, hint?: { readonly pulledOut?: readonly string[] }): ResultAsync<void, HypervisorError> {
    return wrap('dismissJob', async () => {
      const confirmed = this.confirmedGraph;
      this.confirmedGraph = null;
      const names = targetNodeNames(jobId);
      const oldTop = this.sources.get(jobId);
      if (
        confirmed !== null &&
        confirmed.mutations === this.mutations &&
        oldTop !== undefined &&
        !this.streams.has(jobId) &&
        confirmed.graph.has(names.format) &&
        confirmed.graph.inUse(names.format)
      ) {
        // Pivoted, in the graph read with the confirmation, and nothing sent since: job-dismiss
        // and the release of the old chain go out together (QEMU runs them in order), one round
        // trip instead of two. QEMU refuses to delete a node that gained a user meanwhile (another
        // client); then the graph is read again below and only what nothing uses is released.
        const [r, released] = await Promise.all([
          this.qmp('job-dismiss', { id: jobId }),
          this.blockdevDelAll(confirmed.graph.releasable(oldTop, jobId)),
        ]);
        if (r.isErr() && !(r.error.kind === 'qmp' && r.error.desc === 'Job not found')) return err(r.error);
        if (released.isOk()) {
          this.sources.delete(jobId);
          return ok(undefined);
        }
      }
      // The graph is asked right behind job-dismiss (QEMU answers in order, so it shows the
      // graph without the job): one round trip for both.
      const [r, g] = await Promise.all([this.qmp('job-dismiss', { id: jobId }), this.graph()]);
      if (r.isErr() && !(r.error.kind === 'qmp' && r.error.desc === 'Job not found')) return err(r.error);
      if (g.isErr()) return err(g.error);
      // After a restart the stream is known only by what the pull's record says it pulled out.
      const pulled = this.streams.get(jobId) ?? (hint?.pulledOut ? formatNodesOf(g.value, hint.pulledOut) : undefined);
      if (pulled !== undefined) {
        // A completed pull left the pulled-out nodes attached but unused: release them, as libvirt
        // does. After a cancel they are still the disk's backing (in use) and stay.
        for (const top of pulled) {
          if (!g.value.node(top) || g.value.inUse(top)) continue;
          for (const node of g.value.releasable(top)) {
            const del = await this.blockdevDel(node);
            if (del.isErr()) return err(del.error);
          }
        }
        this.streams.delete(jobId);
        return ok(undefined);
      }
      // Detach the job's destination unless it is in use: after a pivot it *is* the disk.
      if (g.value.node(names.format) && g.value.inUse(names.format)) {
        // Pivoted: release the old chain, as libvirt does, but never a node still in use.
        if (oldTop === undefined) return ok(undefined);
        const released = await this.blockdevDelAll(g.value.releasable(oldTop));
        if (released.isErr()) return err(released.error);
        this.sources.delete(jobId);
        return ok(undefined);
      }
      this.sources.delete(jobId);
      return this.blockdevDelAll([names.format, names.file].filter((node) => g.value.node(node)));
    });
  }

  async close(): Promise<void> {
    for (const s of this.subscriptions) s.unsubscribe();
    await this.client.close();
    this.subject.complete();
  }

  // ------------------------------------------------------------------ helpers

  private qmp<T = unknown>(command: string, args?: Record<string, unknown>): Res<T> {
    if (!READ_ONLY_COMMANDS.has(command)) this.mutations++;
    return Promise.resolve(this.client.execute<T>(command, args));
  }

  /** A QMP command whose listed error texts count as "already done" (idempotence). */
  private command(command: string, args: Record<string, unknown>, alreadyDone: readonly string[]) {
    return wrap(command, async () => {
      const r = await this.qmp(command, args);
      if (r.isErr() && r.error.kind === 'qmp' && alreadyDone.includes(r.error.desc)) return ok(undefined);
      return r.map(() => undefined);
    });
  }

  private async graph(): Res<BlockGraph> {
    const [nodes, graph, exports] = await Promise.all([
      this.qmp<NamedNode[]>('query-named-block-nodes', { flat: true }),
      this.qmp<{ nodes: GraphNode[]; edges: GraphEdge[] }>('x-debug-query-block-graph'),
      this.qmp<BlockExport[]>('query-block-exports'),
    ]);
    if (nodes.isErr()) return err(nodes.error);
    if (graph.isErr()) return err(graph.error);
    if (exports.isErr()) return err(exports.error);
    return ok(new BlockGraph(nodes.value, graph.value.nodes, graph.value.edges, exports.value, this.qemuCwd));
  }

  /** startMirror's idempotence check and the disk's graph, in one batch. */
  private startQueries(): Promise<[Awaited<Res<QueryJob[]>>, Awaited<Res<View>>]> {
    return Promise.all([this.qmp<QueryJob[]>('query-jobs'), this.view()]);
  }

  /** The block graph's nodes and edges alone (x-debug-query-block-graph): enough for releasable(). */
  private async edgesOnly(): Res<BlockGraph> {
    const r = await this.qmp<{ nodes: GraphNode[]; edges: GraphEdge[] }>('x-debug-query-block-graph');
    if (r.isErr()) return err(r.error);
    return ok(new BlockGraph([], r.value.nodes, r.value.edges, [], this.qemuCwd));
  }

  /**
   * Every disk, with every name and its job, from one batch of queries sent together. Callers that
   * ask while a batch is on its way share it (getDomain and listDisks asked together cost one
   * batch), unless a command that changes something was sent since: then they get a fresh one.
   */
  private view(): Res<View> {
    const shared = this.pendingView;
    if (shared !== null && shared.mutations === this.mutations) return shared.answer;
    const answer = this.loadView().finally(() => {
      if (this.pendingView?.answer === answer) this.pendingView = null;
    });
    this.pendingView = { mutations: this.mutations, answer };
    return answer;
  }

  private async loadView(): Res<View> {
    const [g, blocks, blockJobs] = await Promise.all([
      this.graph(),
      this.qmp<QueryBlockEntry[]>('query-block'),
      this.qmp<QueryBlockJob[]>('query-block-jobs'),
    ]);
    if (g.isErr()) return err(g.error);
    if (blocks.isErr()) return err(blocks.error);
    if (blockJobs.isErr()) return err(blockJobs.error);
    return ok({ g: g.value, disks: disksOf(this.domain, g.value, blocks.value, blockJobs.value) });
  }

  /** Remembers how the guest reads the disk, under each of its names (pivot confirmation). */
  private remember(d: VmDisk): void {
    for (const name of [d.disk, d.device, d.drive, d.nodeName, d.exportId, d.source])
      if (name !== null) this.consumers.set(name, d.consumer);
  }

  /** The node a consumer reads now, filters skipped (one query). */
  private async consumerNode(c: Consumer): Res<string | undefined> {
    if (c.kind === 'backend') {
      const r = await this.qmp<QueryBlockEntry[]>('query-block');
      if (r.isErr()) return err(r.error);
      const b = r.value.find((x) => (c.drive !== '' ? x.device === c.drive : x.qdev === c.qdev));
      return ok(b?.inserted?.['node-name']);
    }
    if (c.kind === 'export') {
      const r = await this.qmp<BlockExport[]>('query-block-exports');
      if (r.isErr()) return err(r.error);
      const node = r.value.find((x) => x.id === c.id)?.['node-name'];
      // While the mirror runs the export reads the mirror_top filter, never a target node.
      return ok(node);
    }
    return ok(undefined);
  }

  private async jobState(jobId: string): Promise<QueryJob | undefined> {
    const jobs = await this.qmp<QueryJob[]>('query-jobs');
    return jobs.isOk() ? jobs.value.find((j) => j.id === jobId) : undefined;
  }

  /** Whether the job's destination node now has a consumer (export or device): it pivoted. */
  private async pivotedTo(jobId: string): Promise<boolean> {
    const g = await this.graph();
    if (g.isErr()) return false;
    const target = targetNodeNames(jobId).format;
    return g.value.exports.some((e) => g.value.skipFilters(e['node-name']) === target) || g.value.inUse(target);
  }

  /** blockdev-del; a node that is gone already, or went with its parent, counts as deleted. */
  private async blockdevDel(node: string): Res<void> {
    const r = await this.qmp('blockdev-del', { 'node-name': node });
    if (r.isOk()) return ok(undefined);
    const e = r.error;
    if (
      e.kind === 'qmp' &&
      (e.desc === `Failed to find node with node-name='${node}'` ||
        e.desc === `Node ${node} is not owned by the monitor`)
    )
      return ok(undefined);
    return err(e);
  }

  /**
   * blockdev-del of `nodes`, parents first, sent together: QEMU runs them in order and refuses
   * any node that still has a user, so nothing in use goes. The first refusal is reported.
   */
  private async blockdevDelAll(nodes: readonly string[]): Res<void> {
    const results = await Promise.all(nodes.map((node) => this.blockdevDel(node)));
    const failed = results.find((x) => x.isErr());
    return failed ?? ok(undefined);
  }

  /** Best-effort removal of nodes this call attached; returns the original error. */
  private async rollback(added: readonly string[], cause: HypervisorError): Promise<HypervisorError> {
    for (const node of added) await this.blockdevDel(node);
    return cause;
  }

  private sameAsSpec(
    p: Extract<DestinationProbe, { exists: true }>,
    spec: CreateDestinationSpec,
  ): Result<void, HypervisorError> {
    const img = p.image;
    const same =
      img !== null &&
      p.empty &&
      img.format === spec.format &&
      img.virtualSize === spec.virtualSize &&
      (img.backing === null
        ? spec.backing === null
        : spec.backing !== null &&
          img.backing.format === spec.backing.format &&
          samePath(img.backing.path, spec.backing.path));
    if (same) return ok(undefined);
    const what = img
      ? `${img.format}, ${img.virtualSize} bytes, backing ${img.backing?.path ?? 'none'}${p.empty ? '' : ', holds data'}`
      : `${p.kind}, ${p.size} bytes, not an image`;
    return err(invalid('createDestination', `'${spec.path}' exists and differs from the requested image (${what})`));
  }
}

// ---------------------------------------------------------------- pure helpers

/** One QMP event → the port's normalized HypervisorEvent (null: not about jobs). Exported for the trace replay. */
export function mapEvent(e: QmpEvent): HypervisorEvent | null {
  const d = e.data;
  const num = (k: string) => (typeof d[k] === 'number' ? d[k] : 0);
  switch (e.event) {
    case 'JOB_STATUS_CHANGE':
      return typeof d['id'] === 'string' && typeof d['status'] === 'string' && isJobStatus(d['status'])
        ? { kind: 'job-status', jobId: d['id'], status: d['status'] }
        : null;
  }
  // BLOCK_JOB_* name the job in `device` (= the job id with blockdev-mirror).
  const jobId = d['device'];
  if (typeof jobId !== 'string') return null;
  const progress = { jobId, len: num('len'), offset: num('offset'), speed: num('speed') };
  switch (e.event) {
    case 'BLOCK_JOB_READY':
      return { kind: 'job-ready', ...progress };
    case 'BLOCK_JOB_COMPLETED':
      // §0.3: "completed" is also the soft cancel; an error string means failure.
      return typeof d['error'] === 'string'
        ? { kind: 'job-completed', ...progress, error: d['error'] }
        : { kind: 'job-completed', ...progress };
    case 'BLOCK_JOB_CANCELLED':
      return { kind: 'job-cancelled', ...progress };
    case 'BLOCK_JOB_ERROR': {
      const op = d['operation'];
      const action = d['action'];
      if ((op !== 'read' && op !== 'write') || (action !== 'ignore' && action !== 'report' && action !== 'stop'))
        return null;
      return { kind: 'job-error', jobId, operation: op, action };
    }
    default:
      return null;
  }
}

function mapLifecycle(e: QmpLifecycleEvent): HypervisorEvent | null {
  switch (e.kind) {
    case 'connection-lost':
      return { kind: 'connection-lost', reason: e.reason };
    case 'connection-restored':
      return { kind: 'connection-restored' };
    case 'gone':
      return { kind: 'hypervisor-gone', reason: e.reason };
    case 'protocol-error':
      return null;
  }
}

/**
 * The disks of one QEMU process: every device's or legacy drive's block backend (query-block),
 * every export of a storage daemon, and, when there is neither, the root nodes (a bare daemon).
 */
function disksOf(
  domain: string,
  g: BlockGraph,
  blocks: readonly QueryBlockEntry[],
  blockJobs: readonly QueryBlockJob[],
): VmDisk[] {
  interface Draft {
    top: string;
    device: string | null;
    drive: string | null;
    exportId: string | null;
    consumer: Consumer;
    file: string | undefined;
  }
  const drafts: Draft[] = [];
  for (const b of blocks) {
    if (!b.inserted) continue;
    const top = g.skipFilters(b.inserted['node-name']) ?? b.inserted['node-name'];
    drafts.push({
      top,
      device: qdevId(b.qdev),
      drive: b.device === '' ? null : b.device,
      exportId: null,
      consumer: { kind: 'backend', drive: b.device, qdev: b.qdev ?? '' },
      file: b.inserted.file,
    });
  }
  for (const e of g.exports) {
    if (e['shutting-down']) continue;
    const top = g.skipFilters(e['node-name']);
    if (top === undefined) continue;
    const same = drafts.find((d) => d.top === top);
    if (same) same.exportId ??= e.id;
    else
      drafts.push({
        top,
        device: null,
        drive: null,
        exportId: e.id,
        consumer: { kind: 'export', id: e.id },
        file: undefined,
      });
  }
  if (drafts.length === 0)
    for (const top of g.roots())
      drafts.push({ top, device: null, drive: null, exportId: null, consumer: { kind: 'node' }, file: undefined });

  return drafts.map((d) => {
    const chain = chainOf(g, d.top);
    const nodes = g.below(d.top);
    for (const f of g.filtersAbove(d.top)) nodes.add(f);
    const jobId = g.jobsOn(nodes)[0];
    const bj = jobId === undefined ? undefined : blockJobs.find((j) => j.device === jobId);
    const plain = d.file !== undefined && !d.file.startsWith('json:') ? g.absolute(d.file) : undefined;
    return {
      domain,
      disk: d.device ?? d.drive ?? d.exportId ?? d.top,
      device: d.device,
      drive: d.drive,
      nodeName: d.top,
      exportId: d.exportId,
      source: g.protocolFile(d.top) ?? plain ?? '',
      chain: chain.unwrapOr([]),
      job:
        jobId === undefined
          ? null
          : {
              jobId,
              type: bj?.type ?? 'unknown',
              status: bj?.status ?? 'running',
              // Read in the same call: list shows a foreign job's progress too.
              ...(bj ? { offset: bj.offset, len: bj.len } : {}),
            },
      top: d.top,
      consumer: d.consumer,
    };
  });
}

/** The disk `typed` names; after a pivot a remembered consumer still finds it. */
function findDisk(disks: readonly VmDisk[], typed: string, consumer?: Consumer): VmDisk | undefined {
  const hit = resolveDiskName(disks, typed);
  if (hit.isOk()) return hit.value;
  if (consumer === undefined || consumer.kind === 'node') return undefined;
  return disks.find((d) => sameConsumer(d.consumer, consumer));
}

function sameConsumer(a: Consumer, b: Consumer): boolean {
  if (a.kind === 'backend' && b.kind === 'backend') return b.drive !== '' ? a.drive === b.drive : a.qdev === b.qdev;
  if (a.kind === 'export' && b.kind === 'export') return a.id === b.id;
  return false;
}

/** The port's view of a disk (without the adapter's extras). */
function publicNames(d: VmDisk): DiskNames {
  return {
    domain: d.domain,
    disk: d.disk,
    device: d.device,
    drive: d.drive,
    nodeName: d.nodeName,
    exportId: d.exportId,
    source: d.source,
    chain: d.chain,
    job: d.job,
  };
}

/** The image chain under a top node, top first, following backing children (filters skipped). */
function chainOf(g: BlockGraph, top: string): Result<ImageInfo[], HypervisorError> {
  const chain: ImageInfo[] = [];
  let cur: string | undefined = top;
  const seen = new Set<string>();
  while (cur !== undefined && !seen.has(cur)) {
    seen.add(cur);
    const info = imageOf(g, cur);
    if (info.isErr()) return err(info.error);
    const next = g.skipFilters(g.child(cur, 'backing'));
    let backing: BackingRef | null = null;
    if (next !== undefined) {
      const b = imageOf(g, next);
      if (b.isErr()) return err(b.error);
      backing = { path: b.value.path, format: b.value.format };
    }
    chain.push({ ...info.value, backing });
    cur = next;
  }
  return ok(chain);
}

function imageOf(g: BlockGraph, node: string): Result<Omit<ImageInfo, 'backing'>, HypervisorError> {
  const n = g.node(node);
  const path = g.protocolFile(node);
  if (!n || path === undefined) return err(invalid('describeDisk', `node '${node}' has no file`));
  if (n.drv !== 'qcow2' && n.drv !== 'raw')
    return err(invalid('describeDisk', `node '${node}' has unsupported format '${n.drv}'`));
  return ok({ path, format: n.drv, virtualSize: n.image['virtual-size'] });
}

/** The hidden link that marks a destination as created by the job `claim` (until released). */
export function claimPath(path: string, claim: string): string {
  const tag = createHash('sha256').update(claim).digest('hex').slice(0, 16);
  return join(dirname(path), `.${basename(path)}.${tag}.blockcopy-claim`);
}

/** Both names are links to one inode. */
async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [x, y] = await Promise.all([fs.stat(a), fs.stat(b)]);
    return x.ino === y.ino && x.dev === y.dev;
  } catch {
    return false;
  }
}
