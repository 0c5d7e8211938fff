/**
 * A small QEMU lab for the demo, the benchmark and the real-QEMU tests: a qemu-storage-daemon
 * in a temp dir holding the chain base <- snap1 <- snap2 (distinct data per layer, a zero
 * cluster in the top), attached libvirt-style with explicit node names and exported read-write
 * over NBD as `vda` (the "guest"), plus guest I/O with qemu-io and verification with qemu-img.
 *
 * Everything here spawns programs (never a shell) and is for local, disposable setups only.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export const MiB = 1024 * 1024;

export interface Region {
  /** Byte pattern (0 = zeros). */
  readonly pattern: number;
  readonly offset: number;
  readonly len: number;
}

export interface Layer {
  readonly name: string;
  readonly backing: string | null;
  /** What the layer writes; pattern 0 regions are written with `write -z`. */
  readonly writes: readonly Region[];
}

/**
 * The seed's chain scaled to `size` (a multiple of 64 MiB): base 0x11 everywhere, snap1 0x22 on
 * [1/4, 1/2), snap2 0x33 on [3/8, 5/8) and zeros on [50/64, 51/64).
 */
export function seedLayers(size: number): readonly Layer[] {
  const u = size / 64;
  return [
    { name: 'base', backing: null, writes: [{ pattern: 0x11, offset: 0, len: size }] },
    { name: 'snap1', backing: 'base', writes: [{ pattern: 0x22, offset: 16 * u, len: 16 * u }] },
    {
      name: 'snap2',
      backing: 'snap1',
      writes: [
        { pattern: 0x33, offset: 24 * u, len: 16 * u },
        { pattern: 0x00, offset: 50 * u, len: 1 * u },
      ],
    },
  ];
}

/** The guest's view of the seed chain of `size` (what snap2 reads as). */
export function seedExpected(size: number): readonly Region[] {
  const u = size / 64;
  return [
    { pattern: 0x11, offset: 0, len: 16 * u },
    { pattern: 0x22, offset: 16 * u, len: 8 * u },
    { pattern: 0x33, offset: 24 * u, len: 16 * u },
    { pattern: 0x11, offset: 40 * u, len: 10 * u },
    { pattern: 0x00, offset: 50 * u, len: 1 * u },
    { pattern: 0x11, offset: 51 * u, len: 13 * u },
  ];
}

export interface ToolResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program (never a shell); resolves with its exit code and output. */
export function run(cmd: string, args: readonly string[], cwd?: string, timeoutMs = 120_000): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, maxBuffer: 64 * MiB, timeout: timeoutMs }, (e, stdout, stderr) => {
      const code = e ? (typeof e.code === 'number' ? e.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Like run, but throws with the tool's output when it fails. */
export async function must(cmd: string, args: readonly string[], cwd?: string): Promise<string> {
  const r = await run(cmd, args, cwd);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

export const hex = (p: number): string => `0x${p.toString(16).padStart(2, '0')}`;

/** True when every program is found on PATH. */
export function onPath(...programs: readonly string[]): boolean {
  const dirs = (process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== '');
  return programs.every((p) => dirs.some((d) => existsSync(join(d, p))));
}

/** Builds the chain in `dir` (relative backing names in the headers, so the files can be copied). */
export async function buildChain(
  dir: string,
  size: number,
  layers: readonly Layer[] = seedLayers(size),
): Promise<void> {
  for (const layer of layers) {
    const file = `${layer.name}.qcow2`;
    const args = ['create', '-q', '-f', 'qcow2'];
    if (layer.backing) args.push('-b', `${layer.backing}.qcow2`, '-F', 'qcow2');
    await must('qemu-img', [...args, file, String(size)], dir);
    const cmds = layer.writes.flatMap((w) => [
      '-c',
      w.pattern === 0 ? `write -z ${w.offset} ${w.len}` : `write -P ${hex(w.pattern)} ${w.offset} ${w.len}`,
    ]);
    if (cmds.length > 0) await must('qemu-io', ['-f', 'qcow2', ...cmds, file], dir);
  }
}

/**
 * qemu-storage-daemon arguments for the chain `base <- snap1 <- snap2` in `dir` (nodes `base`,
 * `snap1`, `snap2` over `<name>-file`), the NBD server on `dir/nbd.sock` exporting snap2 as
 * `vda`, then `extraArgs`, then one QMP monitor per name in `monitors` (`dir/<name>.sock`).
 * The daemon handles its options in order: once the last monitor socket exists, all is set up.
 */
export function daemonArgs(dir: string, monitors: readonly string[], extraArgs: readonly string[] = []): string[] {
  const abs = (f: string) => join(dir, f);
  const blockdev = (o: object) => ['--blockdev', JSON.stringify(o)];
  return [
    ...blockdev({ driver: 'file', 'node-name': 'base-file', filename: abs('base.qcow2'), 'read-only': true }),
    ...blockdev({ driver: 'qcow2', 'node-name': 'base', file: 'base-file', backing: null, 'read-only': true }),
    ...blockdev({ driver: 'file', 'node-name': 'snap1-file', filename: abs('snap1.qcow2'), 'read-only': true }),
    ...blockdev({ driver: 'qcow2', 'node-name': 'snap1', file: 'snap1-file', backing: 'base', 'read-only': true }),
    ...blockdev({ driver: 'file', 'node-name': 'snap2-file', filename: abs('snap2.qcow2') }),
    ...blockdev({ driver: 'qcow2', 'node-name': 'snap2', file: 'snap2-file', backing: 'snap1' }),
    '--nbd-server',
    `addr.type=unix,addr.path=${abs('nbd.sock')}`,
    '--export',
    'type=nbd,id=vda,node-name=snap2,name=vda,writable=on',
    ...extraArgs,
    ...monitors.flatMap((m, i) => [
      '--chardev',
      `socket,id=mon${i},path=${abs(`${m}.sock`)},server=on,wait=off`,
      '--monitor',
      `chardev=mon${i}`,
    ]),
  ];
}

/**
 * Spawns qemu-storage-daemon in `dir` (log in dir/daemon.log). `detached`: in its own process
 * group, so that a Ctrl-C in the terminal reaches the caller (which aborts and cleans up) and not
 * QEMU.
 */
export async function spawnDaemon(dir: string, args: readonly string[], detached = false): Promise<ChildProcess> {
  const log = await fs.open(join(dir, 'daemon.log'), 'w');
  try {
    return spawn('qemu-storage-daemon', args, { cwd: dir, stdio: ['ignore', log.fd, log.fd], detached });
  } finally {
    await log.close();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits until a unix socket accepts connections. QEMU creates the socket file when it binds,
 * a moment before it listens: a connect in between is refused (ECONNREFUSED).
 */
export async function waitUntilListening(
  path: string,
  deadline: number,
  alive: () => boolean,
  log: () => Promise<string>,
): Promise<void> {
  for (;;) {
    if (!alive()) throw new Error(`qemu-storage-daemon exited: ${await log()}`);
    if (existsSync(path) && (await accepts(path))) return;
    if (Date.now() > deadline) throw new Error(`qemu-storage-daemon is not listening on ${path}`);
    await sleep(10);
  }
}

function accepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Guest write through an NBD export (a separate NBD connection per call). */
export async function nbdWrite(nbdUri: string, pattern: number, offset: number, len: number): Promise<void> {
  await must('qemu-io', ['-f', 'raw', '-c', `write -P ${hex(pattern)} ${offset} ${len}`, nbdUri]);
}

/** Guest read through an NBD export; true when every byte matches the pattern. */
export async function nbdRead(nbdUri: string, pattern: number, offset: number, len: number): Promise<boolean> {
  const r = await run('qemu-io', ['-r', '-f', 'raw', '-c', `read -P ${hex(pattern)} ${offset} ${len}`, nbdUri]);
  return r.code === 0 && !/verification failed|error/i.test(r.stdout + r.stderr);
}

/** `qemu-img compare -U` of two images; identical when it exits 0. */
export async function compareImages(
  a: { readonly path: string; readonly format: 'qcow2' | 'raw' },
  b: { readonly path: string; readonly format: 'qcow2' | 'raw' },
): Promise<{ identical: boolean; output: string }> {
  const r = await run('qemu-img', ['compare', '-U', '-f', a.format, '-F', b.format, a.path, b.path]);
  return { identical: r.code === 0, output: (r.stdout + r.stderr).trim() };
}

export interface LabOptions {
  /** Virtual size of the chain (multiple of 64 MiB). Default 64 MiB. */
  readonly size?: number;
  /** Parent of the temp dir (default: the OS temp dir). */
  readonly parentDir?: string;
  /** QMP monitors to open (default ['qmp']): each is `dir/<name>.sock`. */
  readonly monitors?: readonly string[];
  readonly extraArgs?: readonly string[];
  /** Run the daemon in its own process group (see spawnDaemon). */
  readonly detached?: boolean;
}

/**
 * One disposable daemon + chain in its own temp dir. `dispose()` kills the daemon (if still
 * running) and removes the dir; it is safe to call twice.
 */
/** Where a daemon started in `dir` keeps its sockets and the seed chain's images. */
export function labLayout(dir: string) {
  const nbdSocket = join(dir, 'nbd.sock');
  return {
    qmpSocket: join(dir, 'qmp.sock'),
    nbdSocket,
    nbdUri: `nbd+unix:///vda?socket=${nbdSocket}`,
    paths: { base: join(dir, 'base.qcow2'), snap1: join(dir, 'snap1.qcow2'), snap2: join(dir, 'snap2.qcow2') },
  } as const;
}

/** Tracks a daemon's exit: `code()` is undefined while it runs; `exited` resolves with it. */
export function trackExit(daemon: ChildProcess): { code(): number | null | undefined; exited: Promise<number | null> } {
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    daemon.once('exit', (code, signal) => {
      exitCode = code ?? (signal ? -1 : null);
      resolve(exitCode);
    });
  });
  return { code: () => exitCode, exited };
}

export class QemuLab {
  readonly qmpSocket: string;
  readonly nbdSocket: string;
  readonly nbdUri: string;
  readonly paths: { readonly base: string; readonly snap2: string; readonly snap1: string };
  private readonly exit: ReturnType<typeof trackExit>;

  private constructor(
    readonly dir: string,
    readonly size: number,
    readonly daemon: ChildProcess,
  ) {
    ({ qmpSocket: this.qmpSocket, nbdSocket: this.nbdSocket, nbdUri: this.nbdUri, paths: this.paths } = labLayout(dir));
    this.exit = trackExit(daemon);
  }

  static async start(options: LabOptions = {}): Promise<QemuLab> {
    const size = options.size ?? 64 * MiB;
    const monitors = options.monitors ?? ['qmp'];
    const dir = await fs.mkdtemp(join(options.parentDir ?? tmpdir(), 'blockcopy-lab-'));
    let lab: QemuLab | null = null;
    try {
      await buildChain(dir, size);
      const daemon = await spawnDaemon(dir, daemonArgs(dir, monitors, options.extraArgs), options.detached ?? false);
      lab = new QemuLab(dir, size, daemon);
      const deadline = Date.now() + 15_000;
      const started = lab;
      for (const m of monitors) {
        await waitUntilListening(
          join(dir, `${m}.sock`),
          deadline,
          () => started.alive,
          () => started.daemonLog(),
        );
      }
      return lab;
    } catch (e) {
      if (lab) await lab.dispose();
      else await fs.rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  get alive(): boolean {
    return this.exit.code() === undefined;
  }

  /** What the guest should read (before any guest write). */
  expected(): readonly Region[] {
    return seedExpected(this.size);
  }

  guestWrite(pattern: number, offset: number, len: number): Promise<void> {
    return nbdWrite(this.nbdUri, pattern, offset, len);
  }

  guestRead(pattern: number, offset: number, len: number): Promise<boolean> {
    return nbdRead(this.nbdUri, pattern, offset, len);
  }

  /** Guest reads of every region; returns the regions that did not match. */
  async guestVerify(regions: readonly Region[]): Promise<Region[]> {
    const bad: Region[] = [];
    for (const r of regions) if (!(await this.guestRead(r.pattern, r.offset, r.len))) bad.push(r);
    return bad;
  }

  /** qemu-img compare of the chain (snap2) with `dest` (stop the daemon first if the guest wrote). */
  compareWithChain(dest: string, format: 'qcow2' | 'raw'): Promise<{ identical: boolean; output: string }> {
    return compareImages({ path: this.paths.snap2, format: 'qcow2' }, { path: dest, format });
  }

  /** SIGKILL the daemon and wait for it to exit. */
  async kill(): Promise<void> {
    if (this.alive) this.daemon.kill('SIGKILL');
    await this.exit.exited;
  }

  /** Graceful stop (SIGTERM makes qemu-storage-daemon quit and flush its images). */
  async stop(): Promise<void> {
    if (!this.alive) return;
    this.daemon.kill('SIGTERM');
    const t = setTimeout(() => this.daemon.kill('SIGKILL'), 10_000);
    await this.exit.exited;
    clearTimeout(t);
  }

  daemonLog(): Promise<string> {
    return fs.readFile(join(this.dir, 'daemon.log'), 'utf8').catch(() => '');
  }

  async dispose(): Promise<void> {
    if (this.alive) {
      this.daemon.kill('SIGCONT');
      this.daemon.kill('SIGKILL');
    }
    await this.exit.exited;
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
