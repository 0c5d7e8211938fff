/**
 * The simulator's in-memory file system: image files by path, with the header facts qemu-img
 * would report (format, virtual size, backing) and how much data the layer holds. No bytes are
 * stored: a mirror only needs sizes, so a 1 GiB image costs a few numbers.
 */
import type { BackingRef, DestinationProbe, ImageFormat, ImageInfo } from '../../src/core/hypervisor-port.js';

/** st_size of a freshly created empty 1 GiB qcow2 (qemu-img create, 64 KiB clusters). */
export const QCOW2_EMPTY_FILE_BYTES = 196_624;

/**
 * st_size of an empty qcow2 made by `qemu-img create` (64 KiB clusters): header, refcount table
 * and refcount block (one cluster each), then the L1 table, one 8-byte entry per 512 MiB
 * (measured with qemu-img 7.2: 0 → 196608, 64 MiB → 196616, 1 GiB → 196624, 100 GiB → 198208).
 */
export function qcow2EmptyFileBytes(virtualSize: number): number {
  return 3 * 65536 + 8 * Math.ceil(virtualSize / (512 * 1024 * 1024));
}

export interface SimImage {
  readonly path: string;
  readonly kind: 'file' | 'block' | 'other';
  readonly format: ImageFormat;
  readonly virtualSize: number;
  /** The backing file named in the image header (qcow2 only). */
  readonly backing: BackingRef | null;
  /** Bytes of guest data held in this layer (allocated clusters), at most virtualSize. */
  allocated: number;
  /** A block device's own size (kind 'block'), whatever image its header describes. */
  readonly deviceSize?: number;
}

export interface SimImageSpec {
  readonly path: string;
  readonly format?: ImageFormat;
  readonly virtualSize: number;
  readonly backing?: BackingRef | null;
  /** Default: 0 for qcow2 (empty overlay), virtualSize for raw (a raw file is all data). */
  readonly allocated?: number;
  readonly kind?: 'file' | 'block' | 'other';
  /** kind 'block': the device's size (default: the virtual size). */
  readonly deviceSize?: number;
}

export function makeImage(spec: SimImageSpec): SimImage {
  const format = spec.format ?? 'qcow2';
  const allocated = spec.allocated ?? (format === 'raw' ? spec.virtualSize : 0);
  return {
    path: spec.path,
    kind: spec.kind ?? 'file',
    format,
    virtualSize: spec.virtualSize,
    backing: format === 'raw' ? null : (spec.backing ?? null),
    allocated: Math.min(Math.max(0, allocated), spec.virtualSize),
    ...(spec.kind === 'block' ? { deviceSize: spec.deviceSize ?? spec.virtualSize } : {}),
  };
}

/**
 * The file's st_size. Raw: the virtual size (qemu-img creates it sparse, with holes, so a fresh
 * raw file is as long as the disk while holding no data); qcow2: header + L1 + data.
 */
export function fileSize(image: SimImage): number {
  if (image.deviceSize !== undefined) return image.deviceSize;
  return image.format === 'raw' ? image.virtualSize : qcow2EmptyFileBytes(image.virtualSize) + image.allocated;
}

/** The directory part of an absolute path ('/a/b.qcow2' → '/a'; '/b' → '/'). */
export function parentDir(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function imageInfo(image: SimImage): ImageInfo {
  return { path: image.path, format: image.format, virtualSize: image.virtualSize, backing: image.backing };
}

export function sameBacking(a: BackingRef | null, b: BackingRef | null): boolean {
  return a === b || (a !== null && b !== null && a.path === b.path && a.format === b.format);
}

export class ImageStore {
  private readonly files = new Map<string, SimImage>();
  /** Directories that exist: every ancestor of a file ever stored, and those added explicitly. */
  private readonly dirs = new Set<string>(['/']);

  /** Makes a directory and its ancestors exist (mkdir -p). */
  addDir(path: string): void {
    for (let d = path; !this.dirs.has(d); d = parentDir(d)) this.dirs.add(d);
  }

  /** True for a directory: known as one, or an image of kind 'other' (a directory or socket). */
  isDir(path: string): boolean {
    return this.dirs.has(path) || this.files.get(path)?.kind === 'other';
  }

  get(path: string): SimImage | undefined {
    return this.files.get(path);
  }

  put(image: SimImage): void {
    this.files.set(image.path, image);
    this.addDir(parentDir(image.path));
  }

  delete(path: string): boolean {
    return this.files.delete(path);
  }

  paths(): string[] {
    return [...this.files.keys()];
  }

  probe(path: string): DestinationProbe {
    const image = this.files.get(path);
    // A directory stat()s as 'other' (st_size of one directory block).
    if (image === undefined)
      return this.dirs.has(path)
        ? { exists: true, kind: 'other', size: 4096, image: null, empty: false }
        : { exists: false };
    return {
      exists: true,
      kind: image.kind,
      size: fileSize(image),
      // A directory or socket cannot be probed as an image.
      image: image.kind === 'other' ? null : imageInfo(image),
      empty: image.allocated === 0,
    };
  }

  /** Record data written into a layer (guest writes, mirror copies), capped at the virtual size. */
  addData(path: string, bytes: number): void {
    const image = this.files.get(path);
    if (image !== undefined && bytes > 0) image.allocated = Math.min(image.virtualSize, image.allocated + bytes);
  }
}

/**
 * file-posix's check of the protocol driver against the file's type (QEMU ≥ 6.0, after open(2),
 * so a directory fails earlier with EISDIR): `file` opens only regular files, `host_device` only
 * devices. null: accepted.
 */
export function protocolDriverError(
  driver: 'file' | 'host_device',
  kind: 'file' | 'block' | 'other',
  path: string,
): string | null {
  if (driver === 'file' && kind === 'block') return `'file' driver requires '${path}' to be a regular file`;
  if (driver === 'host_device' && kind === 'file')
    return `'host_device' driver requires '${path}' to be either a character or block device`;
  return null;
}
