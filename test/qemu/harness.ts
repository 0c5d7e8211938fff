/**
 * Test harness for the real-QEMU tests: one qemu-storage-daemon per test in a fresh temp dir,
 * holding the chain base <- snap1 <- snap2 (distinct data per layer, a zero cluster in the top,
 * as in the trace recorder's scenarios.py but 64 MiB), attached with explicit node names
 * and exported read-write over NBD as `vda` (the "guest"). Exported for reuse by engine-level
 * tests: `useQemu()` in a vitest file gives every test its own daemon and cleans up after it,
 * even when the test fails.
 *
 * The daemon has two QMP monitors: `qmp.sock` for the code under test and `harness.sock` for
 * the harness itself (inspection, error-injection targets), because one QMP socket serves one
 * client at a time.
 */
import type { ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach } from 'vitest';
import type { Observable, Subscription } from 'rxjs';
import { QmpClient } from '../../adapters/qmp/client.js';
import {
  MiB,
  buildChain as buildLabChain,
  daemonArgs,
  hex,
  must,
  run,
  seedExpected,
  seedLayers,
  labLayout,
  spawnDaemon,
  trackExit,
  waitUntilListening,
  type Region,
} from '../../adapters/qmp/lab.js';
import { connectQemu, type QemuHypervisor, type QemuHypervisorOptions } from '../../adapters/qmp/qemu-adapter.js';
import type { HypervisorEvent, MirrorSpec } from '../../src/core/hypervisor-port.js';

export { MiB, run, type Region, type ToolResult } from '../../adapters/qmp/lab.js';
export const CHAIN_SIZE = 64 * MiB;

/** The guest's view of snap2 (the whole chain). */
export const EXPECTED: readonly Region[] = seedExpected(CHAIN_SIZE);

/** Bytes of data in the top layer alone (what a shallow copy moves). */
export const TOP_LAYER_BYTES = 17 * MiB;

const LAYERS = seedLayers(CHAIN_SIZE);

/** Builds the chain (relative backing names in the headers, so the files can be copied). */
export function buildChain(dir: string): Promise<void> {
  return buildLabChain(dir, CHAIN_SIZE, LAYERS);
}

let template: Promise<string> | null = null;

/** The chain is built once per test file and copied for every test (a copy takes ~60 ms). */
function chainTemplate(): Promise<string> {
  template ??= (async () => {
    const dir = await fs.mkdtemp(join(tmpdir(), 'blockcopy-chain-'));
    await buildChain(dir);
    return dir;
  })();
  return template;
}

export interface BlkdebugRule {
  readonly event: string;
  readonly errno: number;
  readonly once?: boolean;
  readonly sector?: number;
}

export interface StartOptions {
  /** Extra qemu-storage-daemon arguments (before the monitors). */
  readonly extraArgs?: readonly string[];
}

/** One running qemu-storage-daemon with the chain attached and exported. */
export class QemuFixture {
  readonly qmpSocket: string;
  readonly harnessSocket: string;
  readonly nbdSocket: string;
  readonly nbdUri: string;
  readonly paths: { readonly base: string; readonly snap1: string; readonly snap2: string };
  /** The harness's own QMP connection (second monitor). */
  qmp!: QmpClient;
  private readonly exit: ReturnType<typeof trackExit>;
  private proxies: QmpProxy[] = [];
  private deferred: (() => Promise<void>)[] = [];

  private constructor(
    readonly dir: string,
    readonly daemon: ChildProcess,
  ) {
    ({ qmpSocket: this.qmpSocket, nbdSocket: this.nbdSocket, nbdUri: this.nbdUri, paths: this.paths } = labLayout(dir));
    this.harnessSocket = join(dir, 'harness.sock');
    this.exit = trackExit(daemon);
  }

  static async start(options: StartOptions = {}): Promise<QemuFixture> {
    const dir = await fs.mkdtemp(join(tmpdir(), 'blockcopy-qemu-'));
    try {
      const tpl = await chainTemplate();
      for (const l of LAYERS) await fs.copyFile(join(tpl, `${l.name}.qcow2`), join(dir, `${l.name}.qcow2`));
    } catch (e) {
      await fs.rm(dir, { recursive: true, force: true });
      throw e;
    }
    const daemon = await spawnDaemon(dir, daemonArgs(dir, ['qmp', 'harness'], options.extraArgs));
    const fx = new QemuFixture(dir, daemon);
    live.add(fx);
    try {
      const deadline = Date.now() + 15_000;
      for (const socket of [fx.qmpSocket, fx.harnessSocket]) {
        await waitUntilListening(
          socket,
          deadline,
          () => fx.exit.code() === undefined,
          () => fx.daemonLog(),
        );
      }
      const c = await QmpClient.connect({ socket: fx.harnessSocket, reconnect: false });
      if (c.isErr()) throw new Error(`harness QMP: ${c.error.desc}`);
      fx.qmp = c.value;
    } catch (e) {
      await fx.cleanup();
      throw e;
    }
    return fx;
  }

  get pid(): number {
    return this.daemon.pid ?? -1;
  }

  get alive(): boolean {
    return this.exit.code() === undefined;
  }

  /** Runs a QMP command on the harness monitor; throws on error (test code). */
  async cmd<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    const r = await this.qmp.execute<T>(command, args);
    if (r.isErr()) throw new Error(`${command}: ${r.error.errorClass ?? r.error.kind}: ${r.error.desc}`);
    return r.value;
  }

  /** The node the export `vda` (the guest) reads from: snap2, a #blockNNN filter, or the pivot target. */
  async exportNode(): Promise<string> {
    const exps = await this.cmd<{ id: string; 'node-name': string }[]>('query-block-exports');
    const e = exps.find((x) => x.id === 'vda');
    if (!e) throw new Error('export vda is gone');
    return e['node-name'];
  }

  /** Guest write through the NBD export (a separate NBD connection per call). */
  async guestWrite(pattern: number, offset: number, len: number): Promise<void> {
    await must('qemu-io', ['-f', 'raw', '-c', `write -P ${hex(pattern)} ${offset} ${len}`, this.nbdUri]);
  }

  /** Guest read through the export; true when every byte matches the pattern. */
  async guestRead(pattern: number, offset: number, len: number): Promise<boolean> {
    const r = await run('qemu-io', ['-r', '-f', 'raw', '-c', `read -P ${hex(pattern)} ${offset} ${len}`, this.nbdUri]);
    return r.code === 0 && !/verification failed|error/i.test(r.stdout + r.stderr);
  }

  /** Guest reads for every region; returns the regions that did not match. */
  async guestVerify(regions: readonly Region[]): Promise<Region[]> {
    const bad: Region[] = [];
    for (const r of regions) if (!(await this.guestRead(r.pattern, r.offset, r.len))) bad.push(r);
    return bad;
  }

  /** Offline pattern check of an image file (-U: it may still be open); returns mismatching regions. */
  async verifyImage(path: string, format: 'qcow2' | 'raw', regions: readonly Region[]): Promise<Region[]> {
    const bad: Region[] = [];
    for (const r of regions) {
      const out = await run('qemu-io', [
        '-r',
        '-U',
        '-f',
        format,
        '-c',
        `read -P ${hex(r.pattern)} ${r.offset} ${r.len}`,
        path,
      ]);
      if (out.code !== 0 || /verification failed|error/i.test(out.stdout + out.stderr)) bad.push(r);
    }
    return bad;
  }

  /**
   * `qemu-img compare` of the chain (snap2) with `dest`. Stop the daemon first when the guest
   * wrote to the source: QEMU's qcow2 metadata cache is only flushed on quit.
   */
  async compareWithChain(dest: string, format: 'qcow2' | 'raw'): Promise<{ identical: boolean; output: string }> {
    const r = await run('qemu-img', ['compare', '-U', '-f', 'qcow2', '-F', format, this.paths.snap2, dest]);
    return { identical: r.code === 0, output: (r.stdout + r.stderr).trim() };
  }

  /** qemu-img info (-U) as JSON. */
  async imageInfo(path: string): Promise<Record<string, any>> {
    return JSON.parse(await must('qemu-img', ['info', '-U', '--output=json', path])) as Record<string, any>;
  }

  /** Creates an image file in the test dir (outside QEMU), like the engine would. */
  async createImage(name: string, format: 'qcow2' | 'raw', size = CHAIN_SIZE, backing?: string): Promise<string> {
    const path = join(this.dir, name);
    const args = ['create', '-q', '-f', format];
    if (backing) args.push('-b', backing, '-F', 'qcow2');
    await must('qemu-img', [...args, path, String(size)]);
    return path;
  }

  /**
   * Attaches a destination with a blkdebug layer between the format node and its file, under
   * the node names the adapter derives for the job (targetNodeNames), so that the adapter's
   * startMirror adopts it. `backing` is the backing node name (null for none).
   */
  async attachBlkdebugTarget(o: {
    readonly formatNode: string;
    readonly fileNode: string;
    readonly path: string;
    readonly format: 'qcow2' | 'raw';
    readonly rules: readonly BlkdebugRule[];
    readonly backing?: string | null;
  }): Promise<void> {
    const spec: Record<string, unknown> = {
      driver: o.format,
      'node-name': o.formatNode,
      file: {
        driver: 'blkdebug',
        'node-name': `${o.formatNode.slice(0, 24)}-dbg`,
        image: { driver: 'file', 'node-name': o.fileNode, filename: o.path },
        'inject-error': o.rules,
      },
    };
    if (o.format === 'qcow2') spec['backing'] = o.backing ?? null;
    await this.cmd('blockdev-add', spec);
  }

  /** A proxy socket in front of qmp.sock whose connections the test can cut (see QmpProxy). */
  async proxy(): Promise<QmpProxy> {
    const p = await QmpProxy.start(join(this.dir, `proxy${this.proxies.length}.sock`), this.qmpSocket);
    this.proxies.push(p);
    return p;
  }

  /** SIGKILL the daemon (the one this fixture started) and wait for it to exit. */
  async kill(): Promise<void> {
    if (this.alive) this.daemon.kill('SIGKILL');
    await this.exit.exited;
  }

  /** Freeze / thaw the daemon (to make commands time out). */
  freeze(): void {
    this.daemon.kill('SIGSTOP');
  }

  thaw(): void {
    this.daemon.kill('SIGCONT');
  }

  /** Graceful `quit` (flushes every image), then wait for the exit. */
  async stop(): Promise<void> {
    if (!this.alive) return;
    await this.qmp.execute('quit', undefined, { timeoutMs: 10_000 });
    const t = setTimeout(() => this.daemon.kill('SIGKILL'), 10_000);
    await this.exit.exited;
    clearTimeout(t);
  }

  async daemonLog(): Promise<string> {
    return fs.readFile(join(this.dir, 'daemon.log'), 'utf8').catch(() => '');
  }

  /** Registers work for cleanup() (e.g. closing an adapter), run before the daemon is killed. */
  defer(fn: () => Promise<void>): void {
    this.deferred.push(fn);
  }

  /**
   * A QemuHypervisor on this daemon's qmp.sock (or `socket`), closed at cleanup, with a recorder
   * of its events started before anything can happen.
   */
  async adapter(
    options: Partial<QemuHypervisorOptions> = {},
  ): Promise<{ hv: QemuHypervisor; events: Recorder<HypervisorEvent> }> {
    const r = await connectQemu({ socket: this.qmpSocket, ...options });
    if (r.isErr()) throw new Error(`connectQemu: ${r.error.desc}`);
    const hv = r.value;
    const events = new Recorder(hv.events$);
    this.defer(async () => {
      events.stop();
      await hv.close();
    });
    return { hv, events };
  }

  /** A MirrorSpec for the disk `vda` of domain `qemu` (full copy, no limits), with overrides. */
  mirrorSpec(jobId: string, destination: string, overrides: Partial<MirrorSpec> = {}): MirrorSpec {
    return {
      jobId,
      domain: 'qemu',
      disk: 'vda',
      destination: { path: destination, format: 'qcow2' },
      destinationBacking: null,
      sync: 'full',
      speed: 0,
      onTargetError: 'report',
      onSourceError: 'report',
      copyMode: 'background',
      ...overrides,
    };
  }

  /** Kills the daemon if it still runs and removes the temp dir. Safe to call twice. */
  async cleanup(): Promise<void> {
    live.delete(this);
    for (const fn of this.deferred.splice(0)) await fn().catch(() => undefined);
    for (const p of this.proxies) await p.close();
    this.proxies = [];
    if (this.alive) {
      this.thaw();
      this.daemon.kill('SIGKILL');
    }
    await this.exit.exited;
    await this.qmp?.close();
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}

const live = new Set<QemuFixture>();

/** Starts a daemon; it is cleaned up in afterEach when useQemu() is active in the file. */
export function startQemu(options: StartOptions = {}): Promise<QemuFixture> {
  return QemuFixture.start(options);
}

/**
 * Registers a fresh daemon per test (beforeEach) and the cleanup of every daemon started in the
 * test (afterEach, also on failure). Returns an accessor for the current test's fixture.
 */
export function useQemu(options: StartOptions = {}): () => QemuFixture {
  let current: QemuFixture | null = null;
  beforeEach(async () => {
    current = await startQemu(options);
  });
  afterEach(async () => {
    current = null;
    for (const fx of [...live]) await fx.cleanup();
  });
  afterAll(async () => {
    if (template) {
      const dir = await template.catch(() => null);
      template = null;
      if (dir) await fs.rm(dir, { recursive: true, force: true });
    }
  });
  return () => {
    if (!current) throw new Error('no QEMU fixture (useQemu outside a test?)');
    return current;
  };
}

/**
 * A unix-socket proxy in front of QEMU's QMP socket: `drop()` cuts every connection (the client
 * sees EOF while QEMU and its jobs live on), `hold()` parks new connections without connecting
 * them upstream until `release()`, so a test can keep a client disconnected for a while.
 */
export class QmpProxy {
  private pairs = new Set<{ client: Socket; upstream: Socket | null }>();
  private held: Socket[] = [];
  private holding = false;
  connections = 0;

  private constructor(
    readonly path: string,
    private readonly upstreamPath: string,
    private readonly server: Server,
  ) {}

  static start(path: string, upstreamPath: string): Promise<QmpProxy> {
    return new Promise((resolve, reject) => {
      const server = createServer();
      const proxy = new QmpProxy(path, upstreamPath, server);
      server.on('connection', (c) => proxy.accept(c));
      server.once('error', reject);
      server.listen(path, () => resolve(proxy));
    });
  }

  private accept(client: Socket): void {
    this.connections++;
    if (this.holding) {
      this.held.push(client);
      client.on('error', () => undefined);
      return;
    }
    this.pipe(client);
  }

  private pipe(client: Socket): void {
    const upstream = createConnection(this.upstreamPath);
    const pair = { client, upstream };
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Cuts every piped connection. */
  drop(): void {
    for (const p of [...this.pairs]) {
      p.client.destroy();
      p.upstream?.destroy();
    }
  }

  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    for (const c of this.held.splice(0)) if (!c.destroyed) this.pipe(c);
  }

  async close(): Promise<void> {
    this.drop();
    for (const c of this.held.splice(0)) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Records what an Observable emits; `waitFor` finds past or future items. */
export class Recorder<T> {
  readonly items: T[] = [];
  private readonly sub: Subscription;
  private waiters: { pred: (t: T) => boolean; resolve: (t: T) => void }[] = [];

  constructor(source: Observable<T>) {
    this.sub = source.subscribe((t) => {
      this.items.push(t);
      for (const w of [...this.waiters])
        if (w.pred(t)) {
          this.waiters = this.waiters.filter((x) => x !== w);
          w.resolve(t);
        }
    });
  }

  /** The first recorded item (from `from` on) matching `pred`, waiting up to `timeoutMs`. */
  waitFor(pred: (t: T) => boolean, timeoutMs = 30_000, from = 0): Promise<T> {
    const found = this.items.slice(from).find(pred);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (t: T) => {
          clearTimeout(timer);
          resolve(t);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`timed out after ${timeoutMs} ms; recorded: ${JSON.stringify(this.items)}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  stop(): void {
    this.sub.unsubscribe();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` until it returns a value satisfying `pred` (real time). */
export async function pollUntil<T>(probe: () => Promise<T>, pred: (t: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (pred(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; last: ${JSON.stringify(v)}`);
    await sleep(50);
  }
}
