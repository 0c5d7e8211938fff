/**
 * Harness for the real-VM tests: one stopped TCG qemu-system-x86_64 per test (the seed chain is
 * built once per file and copied), with three QMP monitors: `qmp` for the engine, `harness` for
 * inspection and guest I/O (HMP qemu-io on the device), `other` for "another QMP client". The
 * engine runs on the public API (createEngine) over a QemuHypervisor. Everything is cleaned up
 * after each test, even a failing one.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach } from 'vitest';
import { QmpClient } from '../../adapters/qmp/client.js';
import { buildChain, hex, MiB, must, run } from '../../adapters/qmp/lab.js';
import { connectQemu, type QemuHypervisor } from '../../adapters/qmp/qemu-adapter.js';
import { VmLab, type VmDiskStyle } from '../../adapters/qmp/vm-lab.js';
import { createEngine, type BlockCopyEngine } from '../../src/engine/engine.js';
import { countingPort } from '../qemu-engine/helpers.js';
import type { HypervisorPort } from '../../src/core/hypervisor-port.js';

export const CHAIN_SIZE = 64 * MiB;
export { MiB };

let template: Promise<string> | null = null;
function chainTemplate(): Promise<string> {
  template ??= (async () => {
    const dir = await fs.mkdtemp(join(tmpdir(), 'blockcopy-vmchain-'));
    await buildChain(dir, CHAIN_SIZE);
    return dir;
  })();
  return template;
}

export interface QueryBlockEntry {
  readonly device: string;
  readonly qdev?: string;
  readonly inserted?: { readonly 'node-name': string; readonly file: string };
}

export interface NamedNode {
  readonly 'node-name': string;
  readonly drv: string;
  readonly file: string;
}

export class VmFixture {
  readonly engine: BlockCopyEngine;
  readonly calls = new Map<string, number>();
  readonly port: HypervisorPort;

  constructor(
    readonly lab: VmLab,
    readonly hv: QemuHypervisor,
    readonly harness: QmpClient,
    readonly other: QmpClient,
  ) {
    this.port = countingPort(hv, this.calls);
    this.engine = createEngine({ hypervisor: this.port, pollIntervalMs: 100 });
  }

  get dir(): string {
    return this.lab.dir;
  }
  get paths() {
    return this.lab.paths;
  }
  /** The device's name: vda (qdev id) or drive0 (legacy drive id). */
  get device(): string {
    return this.lab.device;
  }

  async cmd<T = unknown>(command: string, args?: Record<string, unknown>, client = this.harness): Promise<T> {
    const r = await client.execute<T>(command, args);
    if (r.isErr()) throw new Error(`${command}: ${r.error.desc}`);
    return r.value;
  }

  /** The query-block entry of the VM's one disk. */
  async block(): Promise<QueryBlockEntry> {
    const all = await this.cmd<QueryBlockEntry[]>('query-block');
    const b = all.find((x) => x.inserted !== undefined);
    if (!b) throw new Error('no disk in query-block');
    return b;
  }

  async nodes(): Promise<NamedNode[]> {
    return this.cmd<NamedNode[]>('query-named-block-nodes', { flat: true });
  }

  /** Guest I/O through the device (HMP qemu-io on the block backend). */
  async guestIo(command: string): Promise<string> {
    // -d takes the qdev path of the device that owns the backend (virtio-blk-pci's inner device).
    const dev = this.lab.style === 'blockdev' ? `-d ${(await this.block()).qdev ?? this.device}` : this.device;
    return this.cmd<string>('human-monitor-command', { 'command-line': `qemu-io ${dev} "${command}"` });
  }

  async guestWrite(pattern: number, offset: number, len: number): Promise<void> {
    const out = await this.guestIo(`write -P ${hex(pattern)} ${offset} ${len}`);
    if (/error|fail/i.test(out)) throw new Error(`guest write: ${out}`);
  }

  /** Offline pattern check of an image (-U: it may still be open); true when it matches. */
  async imageHas(path: string, format: 'qcow2' | 'raw', pattern: number, offset: number, len: number) {
    const out = await run('qemu-io', [
      '-r',
      '-U',
      '-f',
      format,
      '-c',
      `read -P ${hex(pattern)} ${offset} ${len}`,
      path,
    ]);
    return out.code === 0 && !/verification failed|error/i.test(out.stdout + out.stderr);
  }

  async imageInfo(path: string): Promise<Record<string, unknown>> {
    return JSON.parse(await must('qemu-img', ['info', '-U', '--output=json', path])) as Record<string, unknown>;
  }

  async createImage(name: string, format: 'qcow2' | 'raw', size = CHAIN_SIZE, backing?: string): Promise<string> {
    const path = join(this.dir, name);
    const args = ['create', '-q', '-f', format];
    if (backing) args.push('-b', backing, '-F', 'qcow2');
    await must('qemu-img', [...args, path, String(size)]);
    return path;
  }

  async dispose(): Promise<void> {
    this.engine.close();
    await this.hv.close();
    await this.harness.close();
    await this.other.close();
    await this.lab.dispose();
  }
}

/** `const vm = useVm()` in a test file; `await vm('blockdev')` in a test. */
export function useVm(): (style: VmDiskStyle) => Promise<VmFixture> {
  const live: VmFixture[] = [];
  const labs: VmLab[] = [];
  afterEach(async () => {
    for (const f of live.splice(0)) await f.dispose();
    for (const l of labs.splice(0)) await l.dispose();
  });
  afterAll(async () => {
    if (template) await fs.rm(await template, { recursive: true, force: true });
    template = null;
  });
  return async (style) => {
    const lab = await VmLab.start({
      style,
      template: await chainTemplate(),
      monitors: ['qmp', 'harness', 'other'],
    });
    labs.push(lab);
    const connect = (m: string) => QmpClient.connect({ socket: lab.socket(m), reconnect: false });
    const hv = (await connectQemu({ socket: lab.socket('qmp'), reconnect: false }))._unsafeUnwrap();
    const harness = (await connect('harness'))._unsafeUnwrap();
    const other = (await connect('other'))._unsafeUnwrap();
    const fx = new VmFixture(lab, hv, harness, other);
    labs.pop();
    live.push(fx);
    return fx;
  };
}
