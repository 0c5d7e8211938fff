/**
 * What the conformance table (scenarios.ts) needs from a hypervisor adapter under test: a fresh
 * domain whose disk sits on the chain base <- snap1 <- snap2 (distinct data per layer, as
 * adapters/qmp/lab.ts builds it), the adapter's HypervisorPort on it with every event recorded,
 * and the few things only the test bench can do (inject an I/O error, cut the monitor, kill the
 * hypervisor, let time pass). One small driver per adapter implements it; see README
 * "Conformance" for how to add one.
 */
import type { Clock } from '../../src/core/clock.js';
import type { HypervisorEvent, HypervisorPort, ImageFormat } from '../../src/core/hypervisor-port.js';

export interface TargetErrorSpec {
  /** The job that will write into the target (QEMU: the blkdebug node is attached under its names). */
  readonly jobId: string;
  readonly path: string;
  readonly format: ImageFormat;
  readonly errno: 'EIO' | 'ENOSPC';
  /** true: the first write fails once; false: every write fails. */
  readonly once: boolean;
}

export interface ConformanceDomain {
  readonly port: HypervisorPort;
  readonly domain: string;
  /** The disk as the port names it (the guest device). */
  readonly disk: string;
  /** The names the domain was set up with, as listDisks must report them. */
  readonly names: {
    readonly device: string | null;
    readonly drive: string | null;
    readonly nodeName: string | null;
    readonly exportId: string | null;
  };
  /** Guest-visible size of every layer. */
  readonly size: number;
  /** Bytes of data (and zero clusters) in the top layer alone: what a shallow copy moves. */
  readonly topLayerBytes: number;
  readonly paths: { readonly base: string; readonly snap1: string; readonly snap2: string };
  /** A directory where destinations may be created. */
  readonly dir: string;
  /** The time the port runs on (the engine on top must use it): virtual for the simulator. */
  readonly clock: Clock;
  /** Every event the port emitted since the domain was made, in order. */
  readonly events: readonly HypervisorEvent[];
  /** Lets time pass (virtual or real) until `done` holds; fails with `what` after a generous limit. */
  until(what: string, done: () => boolean | Promise<boolean>): Promise<void>;
  /** Arms an I/O error on the target writes of a job that is about to start (blkdebug on QEMU). */
  injectTargetError(spec: TargetErrorSpec): Promise<void>;
  /** A guest write of `len` bytes at `offset` through the disk's device. */
  guestWrite(offset: number, len: number): Promise<void>;
  /** The monitor connection drops and stays down until reconnect() (QEMU and its jobs live on). */
  disconnect(): Promise<void>;
  reconnect(): Promise<void>;
  /** The hypervisor process dies (SIGKILL). */
  kill(): Promise<void>;
  fileExists(path: string): Promise<boolean>;
  /**
   * A block device of exactly `size` bytes (`name` tells several apart; QEMU: a loop device over a
   * sparse file in `dir`), released by dispose(). COPY_DEV destinations.
   */
  blockDevice(name: string, size: number): Promise<string>;
  /** True when `path` is a block device. */
  isBlockDevice(path: string): Promise<boolean>;
  /** Releases everything the domain holds (processes, sockets, files). */
  dispose(): Promise<void>;
}

export interface ConformanceDriver {
  /** Shown in test names: "sim", "qemu-storage-daemon", "vm (-device)", … */
  readonly name: string;
  newDomain(): Promise<ConformanceDomain>;
  /**
   * Rows of the table this adapter cannot express the same way, by scenario name, each with the
   * precise reason (what the adapter observes instead, and where that is tested). Never a silent
   * skip: the table checks that every name is a row of the table and every reason is given.
   */
  readonly notApplicable?: Readonly<Record<string, string>>;
}
