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
  /**
   * The layer's format node name (`-blockdev …,node-name=snap2`). Default: none; on a legacy
   * `-drive` disk QEMU names every node automatically (`#block174`, v2).
   */
  readonly nodeName?: string;
}

export interface SimDiskSpec {
  /** The canonical name: the device id ("vda"), else the legacy drive id ("drive0"). */
  readonly name: string;
  /**
   * A VM's guest device: its qdev id (`-device virtio-blk-pci,drive=snap2,id=vda`, v1), or null
   * for an anonymous device (legacy `-drive …,if=virtio`, v2). Default: `name`. Setting this or
   * `drive` makes the disk a VM disk: query-block lists it and its nodes exist without blockdev-add.
   */
  readonly device?: string | null;
  /** A legacy `-drive …,id=drive0`: the BlockBackend name QMP commands accept (v2). Default none. */
  readonly drive?: string | null;
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

/**
 * The VMs of the v* traces, on `dir`'s seed chain of `size`: `-blockdev` nodes base/snap1/snap2
 * under `-device virtio-blk-pci,drive=snap2,id=vda` (v1, v3, v5), or one legacy
 * `-drive file=snap2.qcow2,format=qcow2,if=virtio,id=drive0` with automatic node names (v2).
 */
export function vmDisk(
  kind: 'device' | 'drive',
  dir: string,
  size: number,
  data = { top: 17 * MiB, mid: 16 * MiB },
): SimDiskSpec {
  const layers = [
    { name: 'snap2', allocated: data.top },
    { name: 'snap1', allocated: data.mid },
    { name: 'base', allocated: size },
  ];
  return kind === 'device'
    ? {
        name: 'vda',
        device: 'vda',
        drive: null,
        virtualSize: size,
        chain: layers.map((l) => ({ path: `${dir}/${l.name}.qcow2`, allocated: l.allocated, nodeName: l.name })),
      }
    : {
        name: 'drive0',
        device: null,
        drive: 'drive0',
        virtualSize: size,
        chain: layers.map((l) => ({ path: `${dir}/${l.name}.qcow2`, allocated: l.allocated })),
      };
}

export function defaultDomains(): SimDomainSpec[] {
  return [{ name: 'demo', running: true, persistent: false, disks: [demoDisk()] }];
}
