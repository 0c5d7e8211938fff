/**
 * A real virtual machine for the tests and the benchmark: qemu-system-x86_64 (TCG, stopped with
 * -S, no default devices, no display) in a temp dir, its disk on the seed chain
 * base <- snap1 <- snap2, attached either libvirt-style (-blockdev nodes + -device
 * virtio-blk-pci,id=vda) or the legacy way (-drive if=virtio,id=drive0, automatic node names).
 * Each name in `monitors` gets its own QMP socket (QEMU serves one client per monitor), so a
 * test can act as "another QMP client". Guest I/O goes through HMP's qemu-io on the device.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildChain,
  compareImages,
  MiB,
  seedExpected,
  seedLayers,
  trackExit,
  waitUntilListening,
  type Layer,
  type Region,
} from './lab.js';

export type VmDiskStyle = 'blockdev' | 'drive';

export interface VmLabOptions {
  readonly style: VmDiskStyle;
  /** QMP monitors (default ['qmp']): each is `dir/<name>.sock`. */
  readonly monitors?: readonly string[];
  /** Virtual size of the chain (multiple of 64 MiB). Default 64 MiB. */
  readonly size?: number;
  /** A built chain to copy instead of building one (its dir). */
  readonly template?: string;
  /**
   * A second disk (blockdev style only): device `vdb` on its own seed chain
   * vdb-base.qcow2 <- vdb-snap1.qcow2 <- vdb-snap2.qcow2 in the same dir (nodes vdb-base, …).
   */
  readonly secondDisk?: boolean;
}

/** The second disk's chain: the seed's layers under `vdb-` names. */
export function secondDiskLayers(size: number): readonly Layer[] {
  return seedLayers(size).map((l) => ({
    ...l,
    name: `vdb-${l.name}`,
    backing: l.backing === null ? null : `vdb-${l.backing}`,
  }));
}

/** -blockdev nodes and the device of the second disk (vdb) of a VM in `dir`. */
function secondDiskArgs(dir: string): string[] {
  const abs = (f: string) => join(dir, f);
  const blockdev = (o: object) => ['-blockdev', JSON.stringify(o)];
  const layer = (name: string, backing: string | null, readOnly: boolean) => [
    ...blockdev({ driver: 'file', 'node-name': `${name}-file`, filename: abs(`${name}.qcow2`), 'read-only': readOnly }),
    ...blockdev({ driver: 'qcow2', 'node-name': name, file: `${name}-file`, backing, 'read-only': readOnly }),
  ];
  return [
    ...layer('vdb-base', null, true),
    ...layer('vdb-snap1', 'vdb-base', true),
    ...layer('vdb-snap2', 'vdb-snap1', false),
    '-device',
    'virtio-blk-pci,drive=vdb-snap2,id=vdb',
  ];
}

/** qemu-system-x86_64 arguments for a stopped TCG VM with the chain in `dir` as its one disk. */
export function vmArgs(dir: string, style: VmDiskStyle, monitors: readonly string[], secondDisk = false): string[] {
  const abs = (f: string) => join(dir, f);
  const blockdev = (o: object) => ['-blockdev', JSON.stringify(o)];
  const disk =
    style === 'blockdev'
      ? [
          ...blockdev({ driver: 'file', 'node-name': 'base-file', filename: abs('base.qcow2'), 'read-only': true }),
          ...blockdev({ driver: 'qcow2', 'node-name': 'base', file: 'base-file', backing: null, 'read-only': true }),
          ...blockdev({ driver: 'file', 'node-name': 'snap1-file', filename: abs('snap1.qcow2'), 'read-only': true }),
          ...blockdev({
            driver: 'qcow2',
            'node-name': 'snap1',
            file: 'snap1-file',
            backing: 'base',
            'read-only': true,
          }),
          ...blockdev({ driver: 'file', 'node-name': 'snap2-file', filename: abs('snap2.qcow2') }),
          ...blockdev({ driver: 'qcow2', 'node-name': 'snap2', file: 'snap2-file', backing: 'snap1' }),
          '-device',
          'virtio-blk-pci,drive=snap2,id=vda',
        ]
      : ['-drive', `file=${abs('snap2.qcow2')},format=qcow2,if=virtio,id=drive0`];
  return [
    '-machine',
    'pc,accel=tcg',
    '-S',
    '-nodefaults',
    '-display',
    'none',
    '-m',
    '64',
    ...disk,
    ...(secondDisk ? secondDiskArgs(dir) : []),
    ...monitors.flatMap((m, i) => [
      '-chardev',
      `socket,id=mon${i},path=${abs(`${m}.sock`)},server=on,wait=off`,
      '-mon',
      `chardev=mon${i},mode=control`,
    ]),
  ];
}

export class VmLab {
  readonly paths: { readonly base: string; readonly snap1: string; readonly snap2: string };
  private readonly exit: ReturnType<typeof trackExit>;

  private constructor(
    readonly dir: string,
    readonly style: VmDiskStyle,
    readonly size: number,
    readonly vm: ChildProcess,
  ) {
    this.paths = { base: join(dir, 'base.qcow2'), snap1: join(dir, 'snap1.qcow2'), snap2: join(dir, 'snap2.qcow2') };
    this.exit = trackExit(vm);
  }

  /** The name the disk's device answers to: the qdev id, or the legacy drive id. */
  get device(): string {
    return this.style === 'blockdev' ? 'vda' : 'drive0';
  }

  socket(monitor = 'qmp'): string {
    return join(this.dir, `${monitor}.sock`);
  }

  static async start(options: VmLabOptions): Promise<VmLab> {
    const size = options.size ?? 64 * MiB;
    const monitors = options.monitors ?? ['qmp'];
    const dir = await fs.mkdtemp(join(tmpdir(), 'blockcopy-vm-'));
    let lab: VmLab | null = null;
    try {
      if (options.template !== undefined)
        for (const f of ['base.qcow2', 'snap1.qcow2', 'snap2.qcow2'])
          await fs.copyFile(join(options.template, f), join(dir, f));
      else await buildChain(dir, size);
      if (options.secondDisk === true) {
        if (options.style !== 'blockdev') throw new Error('a second disk needs the blockdev style');
        await buildChain(dir, size, secondDiskLayers(size));
      }
      const log = await fs.open(join(dir, 'vm.log'), 'w');
      let vm: ChildProcess;
      try {
        vm = spawn('qemu-system-x86_64', vmArgs(dir, options.style, monitors, options.secondDisk === true), {
          cwd: dir,
          stdio: ['ignore', log.fd, log.fd],
        });
      } finally {
        await log.close();
      }
      lab = new VmLab(dir, options.style, size, vm);
      const started = lab;
      const deadline = Date.now() + 30_000;
      for (const m of monitors)
        await waitUntilListening(
          started.socket(m),
          deadline,
          () => started.alive,
          () => started.log(),
        );
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

  /** qemu-img compare of the seed chain (snap2) with `dest`. */
  compareWithChain(dest: string, format: 'qcow2' | 'raw'): Promise<{ identical: boolean; output: string }> {
    return compareImages({ path: this.paths.snap2, format: 'qcow2' }, { path: dest, format });
  }

  log(): Promise<string> {
    return fs.readFile(join(this.dir, 'vm.log'), 'utf8').catch(() => '');
  }

  /** SIGTERM (QEMU quits cleanly and flushes its images), SIGKILL after 10 s. */
  async stop(): Promise<void> {
    if (!this.alive) return;
    this.vm.kill('SIGTERM');
    const t = setTimeout(() => this.vm.kill('SIGKILL'), 10_000);
    await this.exit.exited;
    clearTimeout(t);
  }

  async dispose(): Promise<void> {
    if (this.alive) this.vm.kill('SIGKILL');
    await this.exit.exited;
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
