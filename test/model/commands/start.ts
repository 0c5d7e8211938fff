/** Start a copy (virDomainBlockRebase COPY) with random flags onto a destination in a random state. */
import { expect } from 'vitest';
import { MiB } from '../../../adapters/sim/index.js';
import { RebaseFlags } from '../../../src/core/flags.js';
import type { FileState, Model, Policy } from '../model.js';
import { DISK_SIZE, Model as M } from '../model.js';
import type { System } from '../system.js';
import { split } from '../system.js';
import { Command, UNREACHABLE, codeOf } from './base.js';

export const POLICIES = ['report', 'stop', 'ignore', 'enospc'] as const;

export interface StartArgs {
  readonly shallow: boolean;
  readonly reuse: boolean;
  readonly raw: boolean;
}

export function destPath(disk: string, n: number): string {
  return `/dst/${disk.replace('/', '-')}-${n}.qcow2`;
}

/** The backing image of a disk's active layer (the chain is snap2 → snap1 → base). */
export function backingOf(disk: string): string {
  return `/img/${disk}/snap1.qcow2`;
}

/**
 * The seed's rules for a new copy: one job per disk; without REUSE_EXT the destination must not
 * exist; with it, it must exist, match the disk's size and be empty (full copy) or be backed by
 * the source's backing file (shallow); a shallow copy cannot create a raw file. 'unknown' where
 * the model does not know the destination's contents well enough.
 */
export function startRule(args: StartArgs, dest: FileState | undefined, backing: string): string {
  if (dest === undefined) {
    if (args.reuse) return 'VIR_ERR_SYSTEM_ERROR';
    if (args.shallow && args.raw) return 'VIR_ERR_CONFIG_UNSUPPORTED';
    return 'ok';
  }
  if (!args.reuse) return 'VIR_ERR_CONFIG_UNSUPPORTED';
  const format = args.raw ? 'raw' : dest.format;
  if (format === 'raw') return dest.format === 'raw' ? 'ok' : 'VIR_ERR_CONFIG_UNSUPPORTED';
  if (!args.shallow) return dest.empty === 'unknown' ? 'unknown' : dest.empty ? 'ok' : 'VIR_ERR_CONFIG_UNSUPPORTED';
  return dest.backing === backing ? 'ok' : 'VIR_ERR_CONFIG_UNSUPPORTED';
}

export class StartCopy extends Command {
  constructor(
    readonly disk: string,
    readonly args: StartArgs,
    /** Which of the disk's destinations (1 and 2 exist beforehand, see the runner's setup). */
    readonly dest: number,
    readonly policy: Policy,
    readonly bandwidthMiB: number,
  ) {
    super();
  }

  expected(m: Readonly<Model>): string {
    const d = m.disk(this.disk);
    if (d.job !== null) return 'VIR_ERR_BLOCK_COPY_ACTIVE';
    if (!m.alive || !m.connected) return UNREACHABLE;
    return startRule(this.args, m.files.get(destPath(this.disk, this.dest)), backingOf(this.disk));
  }

  check(m: Readonly<Model>): boolean {
    const d = m.disk(this.disk);
    if (d.pivoted) return false;
    if (d.job !== null) return m.settled(d.job);
    const code = this.expected(m);
    if (code === 'unknown') return false;
    // A once-fault hits exactly one job: the new one only if no other copies.
    if (code === 'ok' && m.fault?.once === true && m.jobs().some((j) => m.copying(j))) return false;
    return true;
  }

  async exec(m: Model, s: System): Promise<void> {
    const [domain, disk] = split(this.disk);
    const path = destPath(this.disk, this.dest);
    const before = s.sim.images.get(path);
    const expected = this.expected(m);
    const flags =
      RebaseFlags.COPY |
      (this.args.shallow ? RebaseFlags.SHALLOW : 0) |
      (this.args.reuse ? RebaseFlags.REUSE_EXT : 0) |
      (this.args.raw ? RebaseFlags.COPY_RAW : 0);
    const t0 = s.clock.now();
    const result = await s.await(
      s.engine.blockRebase(domain, disk, path, this.bandwidthMiB, flags, { onTargetError: this.policy }),
    );
    expect(codeOf(result), this.toString()).toBe(expected);
    if (result.isErr()) {
      // A refused request touches nothing.
      expect(s.sim.images.get(path)).toEqual(before);
      return;
    }
    const jobId = result.value.jobId;
    // Other jobs went on while the call ran; this one started somewhere in [t0, now].
    m.advanceTo(s.clock.now());
    const elapsed = s.clock.now() - t0;
    s.rec.started.set(jobId, path);
    const existing = m.files.get(path);
    if (existing) existing.empty = 'unknown';
    else
      m.files.set(path, {
        format: this.args.raw ? 'raw' : 'qcow2',
        empty: 'unknown',
        backing: this.args.shallow ? backingOf(this.disk) : null,
        created: true,
      });
    const d = m.disk(this.disk);
    const len = this.args.shallow ? d.topAllocated : DISK_SIZE;
    const bw = this.bandwidthMiB * MiB;
    const bounds = M.copyBounds(len, bw);
    d.job = {
      jobId,
      disk: this.disk,
      dest: path,
      created: existing === undefined,
      shallow: this.args.shallow,
      raw: this.args.raw,
      policy: this.policy,
      len,
      bw,
      minLeft: bounds.min - elapsed,
      maxLeft: bounds.max,
      readyKnownAt: null,
      synced: false,
      paused: null,
      frozen: false,
      ending: null,
      unsettledUntil: 0,
      frozenView: null,
    };
    // An armed fault meets the new job's first write: it cannot have synchronised.
    if (m.fault) {
      const { errno, once } = m.fault;
      if (once) m.fault = null;
      m.hit(d.job, errno);
    }
  }

  toString(): string {
    return `start(${this.disk}, ${JSON.stringify(this.args)}, dest${this.dest}, ${this.policy}, ${this.bandwidthMiB})`;
  }
}
