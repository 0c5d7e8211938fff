/**
 * Real libvirt guests for the tests and the benchmark: transient, paused <domain type='qemu'>
 * TCG domains (no OS) on a base <- snap1 <- snap2 qcow2 chain with distinct data per layer, in
 * a world-executable directory (libvirt runs QEMU as libvirt-qemu, libvirt-rpc.md §2).
 * Everything created is destroyed and removed by cleanup().
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectLibvirt, type LibvirtHypervisor } from './adapter.js';
import { args, Proc, rets, type DomainRef } from './rpc/protocol.js';

export const MiB = 1024 * 1024;
export const CHAIN_SIZE = 32 * MiB;
/** VIR_DOMAIN_START_PAUSED: a copy needs no running vCPU, and a paused guest costs no CPU. */
const START_PAUSED = 1;

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(cmd: string, argv: readonly string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, argv, { timeout: timeoutMs, maxBuffer: 16 * MiB }, (e, stdout, stderr) => {
      const code = e ? (typeof e.code === 'number' ? e.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export const virsh = (...argv: string[]) => run('virsh', ['-c', 'qemu:///system', ...argv], 120_000);

/** What each layer writes: the guest sees base under snap1 under snap2. */
export const LAYERS = {
  base: [
    { pattern: 0x11, offset: 0, len: MiB },
    { pattern: 0x14, offset: 3 * MiB, len: MiB },
  ],
  snap1: [{ pattern: 0x22, offset: MiB, len: MiB }],
  snap2: [
    { pattern: 0x33, offset: 2 * MiB, len: MiB },
    { pattern: 0x35, offset: 3 * MiB, len: MiB / 2 },
  ],
} as const;

export interface Guest {
  readonly name: string;
  readonly dir: string;
  readonly dom: DomainRef;
  readonly paths: { readonly base: string; readonly snap1: string; readonly snap2: string };
}

async function must(cmd: string, argv: readonly string[]): Promise<string> {
  const r = await run(cmd, argv);
  if (r.code !== 0) throw new Error(`${cmd} ${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

export class LibvirtLab {
  readonly root = mkdtempSync(join(tmpdir(), 'blockcopy-libvirt-'));
  private readonly guests: Guest[] = [];
  private readonly cleanups: (() => Promise<void> | void)[] = [];

  private constructor(readonly hv: LibvirtHypervisor) {
    chmodSync(this.root, 0o755);
  }

  static async open(): Promise<LibvirtLab> {
    const hv = await connectLibvirt({
      uri: 'qemu:///system',
      // A loaded 2-core machine can take long to start a guest: generous, never a sync point.
      callTimeoutMs: 180_000,
      reconnect: { attempts: 200, initialDelayMs: 50, maxDelayMs: 500 },
    });
    if (hv.isErr()) throw new Error(`cannot connect to libvirtd: ${hv.error.desc}`);
    return new LibvirtLab(hv.value);
  }

  defer(fn: () => Promise<void> | void): void {
    this.cleanups.push(fn);
  }

  /** A world-executable directory with the three-layer chain. */
  async chain(name: string): Promise<Guest['paths'] & { dir: string }> {
    const dir = join(this.root, name);
    await must('mkdir', ['-m', '755', dir]);
    const paths = { base: join(dir, 'base.qcow2'), snap1: join(dir, 'snap1.qcow2'), snap2: join(dir, 'snap2.qcow2') };
    await must('qemu-img', ['create', '-q', '-f', 'qcow2', paths.base, String(CHAIN_SIZE)]);
    await must('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', paths.base, '-F', 'qcow2', paths.snap1]);
    await must('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', paths.snap1, '-F', 'qcow2', paths.snap2]);
    for (const layer of ['base', 'snap1', 'snap2'] as const)
      for (const w of LAYERS[layer])
        await must('qemu-io', ['-f', 'qcow2', '-c', `write -P ${w.pattern} ${w.offset} ${w.len}`, paths[layer]]);
    return { ...paths, dir };
  }

  /** A transient, paused TCG guest whose vda is the chain's snap2. */
  async guest(name: string): Promise<Guest> {
    return this.guestOn(name, await this.chain(name));
  }

  /** A transient, paused TCG guest on an existing chain (top = snap2). */
  async guestOn(name: string, chain: Guest['paths'] & { dir: string }): Promise<Guest> {
    const domName = `bc-${name}-${process.pid}`;
    const xml = `<domain type='qemu'><name>${domName}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><controller type='usb' model='none'/><memballoon model='none'/>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${chain.snap2}'/><target dev='vda' bus='virtio'/></disk>
</devices></domain>`;
    const r = await this.hv.client.call(Proc.DOMAIN_CREATE_XML, args.createXml(xml, START_PAUSED), rets.domain);
    if (r.isErr()) throw new Error(`cannot create guest ${domName}: ${JSON.stringify(r.error)}`);
    const guest = { name: domName, dir: chain.dir, dom: r.value, paths: chain };
    this.guests.push(guest);
    return guest;
  }

  async destroy(guest: Guest): Promise<void> {
    const i = this.guests.indexOf(guest);
    if (i >= 0) this.guests.splice(i, 1);
    await this.hv.client.call(Proc.DOMAIN_DESTROY, args.domain(guest.dom), rets.void);
  }

  /** The guest-visible contents of `image` equal the original chain's (qemu-img compare). */
  async sameAsChain(guest: Guest, image: string, format: 'qcow2' | 'raw'): Promise<Run> {
    return run('qemu-img', ['compare', '-U', '-f', 'qcow2', '-F', format, guest.paths.snap2, image]);
  }

  /** The disk's active source in the live domain XML. */
  async source(guest: Guest, disk = 'vda'): Promise<string | undefined> {
    const x = (await this.hv.domainXml(guest.name))._unsafeUnwrap();
    return x?.disks.find((d) => d.target === disk)?.chain[0]?.path;
  }

  async cleanup(): Promise<void> {
    for (const fn of this.cleanups.splice(0).reverse()) await fn();
    await Promise.all(
      this.guests.splice(0).map((g) => this.hv.client.call(Proc.DOMAIN_DESTROY, args.domain(g.dom), rets.void)),
    );
    // A start whose reply timed out may still have created its guest: destroy ours by name.
    const all = await this.hv.client.call(Proc.CONNECT_LIST_ALL_DOMAINS, args.listAllDomains(0), rets.listAllDomains);
    const ours = new RegExp(`^bc-.*-${process.pid}$`);
    for (const d of all.isOk() ? all.value : [])
      if (ours.test(d.name)) await this.hv.client.call(Proc.DOMAIN_DESTROY, args.domain(d), rets.void);
    await this.hv.close();
    rmSync(this.root, { recursive: true, force: true });
  }
}
