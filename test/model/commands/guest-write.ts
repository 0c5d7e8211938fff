/** The guest writes a burst to a disk: the copy has more to do, but ready stays ready. */
import { expect } from 'vitest';
import { MiB } from '../../../adapters/sim/index.js';
import type { Model } from '../model.js';
import { COPY_RATE, Model as M } from '../model.js';
import type { System } from '../system.js';
import { split } from '../system.js';
import { Command } from './base.js';

export class GuestWrite extends Command {
  constructor(
    readonly disk: string,
    readonly mib: number,
  ) {
    super();
  }
  check(m: Readonly<Model>): boolean {
    // Writes under an armed fault would meet it at a time the model does not know.
    return m.alive && m.fault === null && m.settled(m.disk(this.disk).job);
  }
  async exec(m: Model, s: System): Promise<void> {
    const [domain, disk] = split(this.disk);
    const bytes = this.mib * MiB;
    expect(s.sim.guestWrite(domain, disk, bytes).isOk()).toBe(true);
    const d = m.disk(this.disk);
    d.topAllocated += bytes;
    const job = d.job;
    if (!job) return;
    // The dirty data is copied within a tick or two (a ready job stays ready).
    job.unsettledUntil = Math.max(job.unsettledUntil, m.now + 300);
    if (job.synced) return;
    job.len += bytes;
    // Only a copy certainly not yet synchronised is certainly held back by the new data.
    if (job.minLeft > 0) job.minLeft += (bytes / COPY_RATE) * 1000;
    job.maxLeft += (bytes / M.effectiveRate(job.bw)) * 1000 + (bytes / COPY_RATE) * 1000;
  }
  toString(): string {
    return `guestWrite(${this.disk}, ${this.mib} MiB)`;
  }
}
