/**
 * Local image files as both real adapters (QMP and libvirt) see them: probing a destination
 * (stat, `qemu-img info` and `map`, all with -U because QEMU may hold the image open), reading an
 * image's format, size and backing, and running qemu-img. Nothing here writes.
 */
import { type Res, ioError } from './hypervisor-results.js';
import { execFile } from 'node:child_process';
import { promises as fs, realpathSync, type Stats } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import { err, ok } from 'neverthrow';
import type { BackingRef, DestinationProbe, ImageInfo } from '../src/core/hypervisor-port.js';

export class LocalImages {
  constructor(
    private readonly qemuImg: string,
    private readonly toolTimeoutMs: number,
  ) {}

  async probe(path: string): Res<DestinationProbe> {
    let st: Stats;
    try {
      st = await fs.stat(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok({ exists: false });
      return err(ioError('stat', e));
    }
    const kind = st.isFile() ? 'file' : st.isBlockDevice() ? 'block' : 'other';
    if (kind === 'other') return ok({ exists: true, kind, size: st.size, image: null, empty: false });
    // stat's st_size is 0 for a block device: its size is in sysfs (512-byte sectors).
    const size = kind === 'block' ? await blockDeviceSize(st.rdev) : st.size;
    if (size === null)
      return err({ kind: 'io', command: 'stat', desc: `cannot read the size of block device '${path}'` });
    const info = await this.imageInfo(path);
    let empty = kind === 'file' && st.size === 0;
    if (!empty && info !== null) {
      const map = await this.tool('qemu-img map', ['map', '-U', '-f', info.format, '--output=json', path]);
      const extents = map.isOk() ? (parseJson(map.value) as MapExtent[] | undefined) : undefined;
      if (Array.isArray(extents)) {
        // Only the image's own clusters count: a fresh overlay reads its backing's data.
        const own = extents.filter((x) => x.data === true && x.depth === 0);
        // `qemu-img create -f raw` writes the first 4 KiB (zeros) to probe the alignment, so a
        // raw extent with data may still be all zeros: read small ones.
        empty = own.length === 0 || (info.format === 'raw' && (await rawExtentsAreZero(path, own)));
      }
    }
    return ok({ exists: true, kind, size, image: info, empty });
  }

  /** qemu-img info of one image: format, virtual size, backing (absolute); null if unprobeable. */
  async imageInfo(path: string): Promise<ImageInfo | null> {
    const r = await this.tool('qemu-img info', ['info', '-U', '--output=json', path]);
    if (r.isErr()) return null;
    const j = parseJson(r.value) as Record<string, unknown> | undefined;
    const format = j?.['format'];
    const size = j?.['virtual-size'];
    if ((format !== 'qcow2' && format !== 'raw') || typeof size !== 'number') return null;
    let backing: BackingRef | null = null;
    const bname = j?.['full-backing-filename'] ?? j?.['backing-filename'];
    if (typeof bname === 'string') {
      const bpath = resolvePath(dirname(path), bname);
      const bformat = j?.['backing-filename-format'] ?? (await this.imageInfo(bpath))?.format;
      if (bformat !== 'qcow2' && bformat !== 'raw') return null;
      backing = { path: bpath, format: bformat };
    }
    return { path, format, virtualSize: size, backing };
  }

  tool(command: string, argv: readonly string[]): Res<string> {
    return new Promise((resolve) => {
      execFile(
        this.qemuImg,
        argv,
        { timeout: this.toolTimeoutMs, maxBuffer: 64 * 1024 * 1024 },
        (e, stdout, stderr) => {
          if (e) resolve(err({ kind: 'io', command, desc: (String(stderr).trim() || e.message).slice(0, 2000) }));
          else resolve(ok(String(stdout)));
        },
      );
    });
  }
}

interface MapExtent {
  readonly start: number;
  readonly length: number;
  readonly depth?: number;
  readonly data?: boolean;
}

/** A block device's size in bytes, from /sys/dev/block/MAJOR:MINOR/size; null if unreadable. */
export async function blockDeviceSize(rdev: number): Promise<number | null> {
  // Linux's dev_t encoding (glibc gnu_dev_major / gnu_dev_minor).
  const major = (rdev >>> 8) & 0xfff;
  const minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
  try {
    const sectors = Number((await fs.readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8')).trim());
    return Number.isSafeInteger(sectors) ? sectors * 512 : null;
  } catch {
    return null;
  }
}

/** True when `path` is a block device (a COPY_DEV destination: never unlinked). */
export async function isBlockDevice(path: string): Promise<boolean> {
  try {
    return (await fs.stat(path)).isBlockDevice();
  } catch {
    return false;
  }
}

/**
 * Removes a file; one already gone is fine (removal is idempotent, as the port requires). A block
 * device is never removed: the engine did not create it, and its node in /dev is not its data.
 */
export async function removeFile(path: string): Res<void> {
  if (await isBlockDevice(path)) return ok(undefined);
  try {
    await fs.unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return err(ioError('unlink', e));
  }
  return ok(undefined);
}

/** True when the raw file's bytes in these extents are all zero (false beyond 1 MiB to read). */
async function rawExtentsAreZero(path: string, extents: readonly MapExtent[]): Promise<boolean> {
  const total = extents.reduce((n, x) => n + x.length, 0);
  if (total > 1024 * 1024) return false;
  const fh = await fs.open(path, 'r');
  try {
    for (const x of extents) {
      const buf = Buffer.alloc(x.length);
      const { bytesRead } = await fh.read(buf, 0, x.length, x.start);
      if (buf.subarray(0, bytesRead).some((b) => b !== 0)) return false;
    }
    return true;
  } finally {
    await fh.close();
  }
}

export function samePath(a: string, b: string): boolean {
  if (resolvePath(a) === resolvePath(b)) return true;
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
