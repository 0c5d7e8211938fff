/**
 * The simulator's in-memory file system: image files by path, with the header facts qemu-img
 * would report (format, virtual size, backing) and how much data the layer holds. No bytes are
 * stored: a mirror only needs sizes, so a 1 GiB image costs a few numbers.
 */
import type { BackingRef, DestinationProbe, ImageFormat, ImageInfo } from '../../src/core/hypervisor-port.js';

/** st_size of a freshly created empty qcow2 (qemu-img create, 64 KiB clusters). */
export const QCOW2_EMPTY_FILE_BYTES = 196_624;

export interface SimImage {
  readonly path: string;
  readonly kind: 'file' | 'block' | 'other';
  readonly format: ImageFormat;
  readonly virtualSize: number;
  /** The backing file named in the image header (qcow2 only). */
  readonly backing: BackingRef | null;
  /** Bytes of guest data held in this layer (allocated clusters), at most virtualSize. */
  allocated: number;
}

export interface SimImageSpec {
  readonly path: string;
  readonly format?: ImageFormat;
  readonly virtualSize: number;
  readonly backing?: BackingRef | null;
  /** Default: 0 for qcow2 (empty overlay), virtualSize for raw (a raw file is all data). */
  readonly allocated?: number;
  readonly kind?: 'file' | 'block' | 'other';
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
  };
}

/** Bytes the file occupies. Raw: its data (0 when empty; sparse); qcow2: header + data. */
export function fileSize(image: SimImage): number {
  return image.format === 'raw' ? image.allocated : QCOW2_EMPTY_FILE_BYTES + image.allocated;
}

export function imageInfo(image: SimImage): ImageInfo {
  return { path: image.path, format: image.format, virtualSize: image.virtualSize, backing: image.backing };
}

export function sameBacking(a: BackingRef | null, b: BackingRef | null): boolean {
  return a === b || (a !== null && b !== null && a.path === b.path && a.format === b.format);
}

export class ImageStore {
  private readonly files = new Map<string, SimImage>();

  get(path: string): SimImage | undefined {
    return this.files.get(path);
  }

  put(image: SimImage): void {
    this.files.set(image.path, image);
  }

  delete(path: string): boolean {
    return this.files.delete(path);
  }

  paths(): string[] {
    return [...this.files.keys()];
  }

  probe(path: string): DestinationProbe {
    const image = this.files.get(path);
    if (image === undefined) return { exists: false };
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
