/**
 * Domain and disk configuration for the simulator, and the default domain the engine's demo and
 * property tests run on: `demo` (running, transient) with disk `vda` on the seed's chain
 * base.qcow2 <- snap1.qcow2 <- snap2.qcow2 (qemu-mirror.md §2.1, scaled to 1 GiB).
 */
import type { ImageFormat } from '../../src/core/hypervisor-port.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

export const DEFAULT_IMAGE_DIR = '/var/lib/blockcopy';

/** One layer of a disk's chain. */
export interface SimLayerSpec {
  readonly path: string;
  /** Default qcow2. A raw layer can only be the base (raw has no backing). */
  readonly format?: ImageFormat;
  /** Guest data held in this layer. Default: 0 for qcow2, the whole virtual size for raw. */
  readonly allocated?: number;
}

export interface SimDiskSpec {
  /** Target name, e.g. "vda". */
  readonly name: string;
  /** Guest-visible size of every layer. */
  readonly virtualSize: number;
  /** Top (active) image first, base last, like DiskInfo.chain. */
  readonly chain: readonly SimLayerSpec[];
  /** A steady guest write load in bytes/s from the start (see setGuestWriteRate). */
  readonly guestWriteRate?: number;
}

export interface SimDomainSpec {
  readonly name: string;
  /** Default true. A stopped domain has no QEMU: mirror commands are refused. */
  readonly running?: boolean;
  /** Default false (block copy needs a transient domain in libvirt's contract). */
  readonly persistent?: boolean;
  readonly disks: readonly SimDiskSpec[];
}

/** The seed's chain base <- snap1 <- snap2 with distinct data per layer. */
export function demoDisk(name = 'vda', dir = DEFAULT_IMAGE_DIR): SimDiskSpec {
  return {
    name,
    virtualSize: GiB,
    chain: [
      { path: `${dir}/snap2.qcow2`, allocated: 128 * MiB },
      { path: `${dir}/snap1.qcow2`, allocated: 256 * MiB },
      { path: `${dir}/base.qcow2`, allocated: GiB },
    ],
  };
}

export function defaultDomains(): SimDomainSpec[] {
  return [{ name: 'demo', running: true, persistent: false, disks: [demoDisk()] }];
}
