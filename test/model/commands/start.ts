/** Start a copy (virDomainBlockRebase COPY) with random flags onto a destination in a random state. */
import { expect } from 'vitest';
import { RebaseFlags } from '../../../src/core/flags.js';
import type { Model, StartArgs } from '../model.js';
import type { System } from '../system.js';
import { split } from '../system.js';
import { Command, codeOf } from './base.js';

export const POLICIES = ['report', 'stop', 'ignore', 'enospc'] as const;

export class StartCopy extends Command {
  constructor(
    readonly disk: string,
    readonly args: StartArgs,
    /** Which of the disk's destinations (some exist beforehand, see the runner's setup). */
    readonly dest: number,
    readonly policy: (typeof POLICIES)[number],
    readonly bandwidthMiB: number,
  ) {
    super();
  }
  check(): boolean {
    return true;
  }
  async exec(m: Model, s: System): Promise<void> {
    const [domain, disk] = split(this.disk);
    const path = destPath(this.disk, this.dest);
    const image = s.sim.images.get(path);
    // The disk's chain as it is now (a pivot changed it); unreadable while the hypervisor is down.
    const described = await s.sim.describeDisk(domain, disk);
    const chain = described.isOk() ? (described.value?.chain ?? []) : [];
    const expected = m.expectStart(
      this.disk,
      this.args,
      image
        ? {
            exists: true,
            format: image.format,
            virtualSize: image.virtualSize,
            empty: image.allocated === 0,
            backing: image.backing?.path ?? null,
          }
        : { exists: false },
      { size: chain[0]?.virtualSize ?? 0, backing: chain[1]?.path ?? chain[0]?.backing?.path ?? null },
    );
    const flags =
      RebaseFlags.COPY |
      (this.args.shallow ? RebaseFlags.SHALLOW : 0) |
      (this.args.reuse ? RebaseFlags.REUSE_EXT : 0) |
      (this.args.raw ? RebaseFlags.COPY_RAW : 0);
    const result = await s.await(
      s.engine.blockRebase(domain, disk, path, this.bandwidthMiB, flags, { onTargetError: this.policy }),
    );
    const code = codeOf(result);
    if (expected === 'any-error') expect(code).not.toBe('ok');
    else expect(code, `${this.toString()} on ${image ? JSON.stringify(image) : 'no file'}`).toBe(expected);
    if (result.isOk()) {
      const job = result.value;
      s.rec.started.set(job.jobId, path);
      m.disk(this.disk).job = {
        jobId: job.jobId,
        dest: path,
        created: image === undefined,
        readySeen: (s.rec.ready.get(job.jobId) ?? 0) > 0,
        end: null,
        hvMayEnd: m.faultArmed || !m.alive,
        hvTrouble: m.faultArmed || m.noisy || !m.alive || !m.connected,
      };
      // The job may have ended while the call returned (an armed I/O error under report).
      const finals = s.rec.finals.get(job.jobId);
      if (finals) {
        expect(m.faultArmed || !m.alive || m.noisy, `${job.jobId} ended at once: ${finals[0]?.status}`).toBe(true);
        expect(m.allowedFinal(m.disk(this.disk).job!)).toContain(finals[0]?.status);
        m.disk(this.disk).job = null;
      }
    }
    // A refused request touches nothing.
    if (result.isErr() && expected !== 'any-error') expect(s.sim.images.get(path)).toEqual(image);
  }
  toString(): string {
    return `start(${this.disk}, ${JSON.stringify(this.args)}, dest${this.dest}, ${this.policy}, ${this.bandwidthMiB})`;
  }
}

export function destPath(disk: string, n: number): string {
  return `/dst/${disk.replace('/', '-')}-${n}.qcow2`;
}
