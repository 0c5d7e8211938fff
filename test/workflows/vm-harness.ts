/**
 * Harness for whole-chain migrations on a real TCG VM (adapters/qmp/vm-lab.ts): the VM with one
 * or two disks on seed chains, an engine with a SQLite store over the QMP adapter, the local
 * chain files, a DEST-DIR, and the checks every test makes: sha256 of every old file, what the
 * guest reads (HMP qemu-io through the device), the chain query-block reports.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient } from '../../adapters/qmp/client.js';
import { hex, MiB, must, run, seedExpected } from '../../adapters/qmp/lab.js';
import { QemuHypervisor, connectQemu } from '../../adapters/qmp/qemu-adapter.js';
import { VmLab } from '../../adapters/qmp/vm-lab.js';
import { LocalChainFiles } from '../../adapters/local-chain-files.js';
import { openSqliteStore, type SqliteJobStore } from '../../adapters/store/sqlite.js';
import type { HypervisorPort } from '../../src/core/hypervisor-port.js';
import { createEngine, type BlockCopyEngine } from '../../src/engine/engine.js';
import type { MigrationSetup } from '../../src/workflows/migrate-storage.js';

export const VM_SIZE = 64 * MiB;
export { MiB };

export const sha256 = async (path: string) =>
  createHash('sha256')
    .update(await fs.readFile(path))
    .digest('hex');

export class MigrationVm {
  readonly files = new LocalChainFiles();
  private engines: BlockCopyEngine[] = [];
  private stores: SqliteJobStore[] = [];
  private hvs: QemuHypervisor[] = [];
  /** The port's view of the VM on the harness monitor (listDisks: the chain each device reads). */
  readonly view: QemuHypervisor;

  private constructor(
    readonly lab: VmLab,
    readonly harness: QmpClient,
    /** DEST-DIR (a fresh directory, or a mount point given by the test). */
    readonly destDir: string,
    readonly storePath: string,
  ) {
    this.view = new QemuHypervisor(harness, { socket: lab.socket('harness'), domain: 'qemu' });
  }

  static async start(options: { secondDisk?: boolean; destDir?: string } = {}): Promise<MigrationVm> {
    const lab = await VmLab.start({
      style: 'blockdev',
      monitors: ['qmp', 'harness'],
      size: VM_SIZE,
      ...(options.secondDisk ? { secondDisk: true } : {}),
    });
    try {
      const harness = (await QmpClient.connect({ socket: lab.socket('harness'), reconnect: false }))._unsafeUnwrap();
      const destDir = options.destDir ?? join(lab.dir, 'new');
      if (options.destDir === undefined) await fs.mkdir(destDir);
      return new MigrationVm(lab, harness, destDir, join(lab.dir, 'store', 'jobs.db'));
    } catch (e) {
      await lab.dispose();
      throw e;
    }
  }

  /** Old chain files of a disk ('vda' or 'vdb'), top first. */
  oldChain(disk = 'vda'): string[] {
    const p = disk === 'vda' ? '' : `${disk}-`;
    return ['snap2', 'snap1', 'base'].map((n) => join(this.lab.dir, `${p}${n}.qcow2`));
  }

  newChain(disk = 'vda', dest = this.destDir): string[] {
    const p = disk === 'vda' ? '' : `${disk}-`;
    return ['snap2', 'snap1', 'base'].map((n) => join(dest, `${p}${n}.qcow2`));
  }

  /** An engine (a "process") on the VM's engine monitor and the SQLite store. */
  async engine(wrap: (hv: HypervisorPort) => HypervisorPort = (hv) => hv): Promise<MigrationSetup> {
    const hv = (await connectQemu({ socket: this.lab.socket('qmp'), reconnect: false }))._unsafeUnwrap();
    this.hvs.push(hv);
    const store = openSqliteStore(this.storePath)._unsafeUnwrap();
    this.stores.push(store);
    const port = wrap(hv);
    const engine = createEngine({ hypervisor: port, pollIntervalMs: 100, store });
    this.engines.push(engine);
    return { engine, hypervisor: port, files: this.files };
  }

  /** sha256 of every old file, by path. */
  async oldDigests(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const f of (await fs.readdir(this.lab.dir)).filter((n) => n.endsWith('.qcow2')).sort())
      out[f] = await sha256(join(this.lab.dir, f));
    return out;
  }

  /** Everything in DEST-DIR (hidden claim files included). */
  async destEntries(dest = this.destDir): Promise<string[]> {
    return (await fs.readdir(dest)).sort();
  }

  /** The chain the device reads (the port's listDisks over query-block), top first. */
  async guestChain(device = 'vda'): Promise<string[]> {
    const disks = (await this.view.listDisks('qemu'))._unsafeUnwrap() ?? [];
    return disks.find((d) => d.device === device)?.chain.map((i) => i.path) ?? [];
  }

  /** Guest I/O through the device (HMP qemu-io on its backend). */
  async guestIo(device: string, command: string): Promise<string> {
    const blocks = (await this.harness.execute<{ qdev?: string }[]>('query-block'))._unsafeUnwrap();
    const qdev = blocks.find((b) => b.qdev?.includes(`/${device}/`))?.qdev ?? device;
    return (
      await this.harness.execute<string>('human-monitor-command', {
        'command-line': `qemu-io -d ${qdev} "${command}"`,
      })
    )._unsafeUnwrap();
  }

  /** True when the guest reads the seed's data through the device (every region). */
  async guestReadsSeed(device = 'vda'): Promise<boolean> {
    for (const r of seedExpected(VM_SIZE)) {
      const out = await this.guestIo(device, `read -P ${hex(r.pattern)} ${r.offset} ${r.len}`);
      if (/fail|error/i.test(out)) return false;
    }
    return true;
  }

  async backingName(path: string): Promise<string | null> {
    const j = JSON.parse(await must('qemu-img', ['info', '-U', '--output=json', path])) as Record<string, unknown>;
    return (j['backing-filename'] as string | undefined) ?? null;
  }

  async compare(a: string, b: string): Promise<boolean> {
    return (await run('qemu-img', ['compare', '-U', a, b])).code === 0;
  }

  async closeEngines(): Promise<void> {
    for (const e of this.engines.splice(0)) await e.shutdown();
    for (const h of this.hvs.splice(0)) await h.close();
    for (const s of this.stores.splice(0)) s.close();
  }

  async dispose(): Promise<void> {
    await this.closeEngines();
    await this.harness.close();
    await this.lab.dispose();
  }
}

export async function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(join(tmpdir(), prefix));
}
