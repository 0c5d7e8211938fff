/**
 * Reads what blockcopy needs from libvirt's live domain XML (fast-xml-parser): each disk's
 * target, source, format and `<backingStore>` chain, and the `<mirror>` element of a running
 * copy, whose `ready='yes'` is libvirt's authoritative word that the copy is synchronised (also
 * after a daemon restart, when the READY event was lost). Builds the `<disk>` destination XML
 * for virDomainBlockCopy.
 */
import { XMLParser } from 'fast-xml-parser';
import { err, ok, type Result } from 'neverthrow';
import type { ImageFormat, ImageInfo } from '../../src/core/hypervisor-port.js';

export interface MirrorState {
  /** 'copy' or 'active-commit'. */
  readonly job: string;
  readonly path: string | null;
  readonly format: string | null;
  /** absent (null): not yet synchronised; 'yes': ready; 'abort' / 'pivot': being ended. */
  readonly ready: 'yes' | 'abort' | 'pivot' | null;
}

export interface ChainElement {
  readonly path: string;
  readonly format: string | null;
}

export interface DomainDisk {
  /** The target, e.g. "vda" (libvirt's name for the disk in every block-job API). */
  readonly target: string;
  readonly device: string;
  readonly type: string;
  /** libvirt's device alias (QEMU's qdev id), e.g. "virtio-disk0"; null when offline. */
  readonly alias: string | null;
  /** Active image, top first, then its backing chain. */
  readonly chain: readonly ChainElement[];
  readonly mirror: MirrorState | null;
}

export interface DomainXml {
  readonly name: string;
  readonly uuid: string;
  readonly disks: readonly DomainDisk[];
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  isArray: (name) => name === 'disk',
  parseAttributeValue: false,
  parseTagValue: false,
});

type Node = Record<string, unknown>;

const attr = (n: Node | undefined, name: string): string | null => {
  const v = n?.[`@${name}`];
  return typeof v === 'string' ? v : null;
};
const child = (n: Node | undefined, name: string): Node | undefined => {
  const v = n?.[name];
  return typeof v === 'object' && v !== null ? (v as Node) : undefined;
};
const sourcePath = (n: Node | undefined): string | null => {
  const s = child(n, 'source');
  return attr(s, 'file') ?? attr(s, 'dev') ?? attr(s, 'name');
};

export function parseDomainXml(xml: string): Result<DomainXml, string> {
  let doc: Node;
  try {
    doc = parser.parse(xml) as Node;
  } catch (e) {
    return err(`unparseable domain XML: ${String(e)}`);
  }
  const dom = child(doc, 'domain');
  if (!dom) return err('domain XML has no <domain> element');
  const name = dom['name'];
  const uuid = dom['uuid'];
  const disks: DomainDisk[] = [];
  const rawDisks = child(dom, 'devices')?.['disk'];
  for (const d of Array.isArray(rawDisks) ? (rawDisks as Node[]) : []) {
    const target = attr(child(d, 'target'), 'dev');
    if (target === null) continue;
    const chain: ChainElement[] = [];
    const top = sourcePath(d);
    if (top !== null) {
      chain.push({ path: top, format: attr(child(d, 'driver'), 'type') });
      let b = child(d, 'backingStore');
      for (let i = 0; b !== undefined && i < 256; i++) {
        const p = sourcePath(b);
        if (p === null) break;
        chain.push({ path: p, format: attr(child(b, 'format'), 'type') });
        b = child(b, 'backingStore');
      }
    }
    const m = child(d, 'mirror');
    const ready = attr(m, 'ready');
    disks.push({
      target,
      device: attr(d, 'device') ?? 'disk',
      type: attr(d, 'type') ?? 'file',
      alias: attr(child(d, 'alias'), 'name'),
      chain,
      mirror: m
        ? {
            job: attr(m, 'job') ?? 'copy',
            path: sourcePath(m) ?? attr(m, 'file'),
            format: attr(child(m, 'format'), 'type') ?? attr(m, 'format'),
            ready: ready === 'yes' || ready === 'abort' || ready === 'pivot' ? ready : null,
          }
        : null,
    });
  }
  return ok({ name: typeof name === 'string' ? name : '', uuid: typeof uuid === 'string' ? uuid : '', disks });
}

/** The disk libvirt would pick for `disk`: by target, else by the active image's path. */
export function findDisk(x: DomainXml, disk: string): DomainDisk | undefined {
  return x.disks.find((d) => d.target === disk) ?? x.disks.find((d) => d.chain[0]?.path === disk);
}

/** The chain as the port's ImageInfo list (virtual size filled in by the caller). */
export function chainInfo(d: DomainDisk, sizes: readonly number[]): ImageInfo[] | null {
  const out: ImageInfo[] = [];
  for (let i = 0; i < d.chain.length; i++) {
    const el = d.chain[i]!;
    const format = asFormat(el.format);
    if (format === null) return null;
    const next = d.chain[i + 1];
    const nextFormat = next ? asFormat(next.format) : null;
    out.push({
      path: el.path,
      format,
      virtualSize: sizes[i] ?? 0,
      backing: next && nextFormat ? { path: next.path, format: nextFormat } : null,
    });
  }
  return out;
}

export function asFormat(f: string | null): ImageFormat | null {
  return f === 'qcow2' || f === 'raw' ? f : null;
}

const escapeXml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');

/** virDomainBlockCopy's destination: a file (or block device) disk with an explicit format (never probed). */
export function destinationXml(path: string, format: ImageFormat, type: 'file' | 'block' = 'file'): string {
  const source = type === 'block' ? `dev='${escapeXml(path)}'` : `file='${escapeXml(path)}'`;
  return `<disk type='${type}'><source ${source}/><driver type='${format}'/></disk>`;
}
