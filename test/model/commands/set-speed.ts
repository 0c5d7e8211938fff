/** virDomainBlockJobSetSpeed, in MiB/s or bytes/s. */
import { expect } from 'vitest';
import { MiB } from '../../../adapters/sim/index.js';
import type { Model } from '../model.js';
import { Model as M } from '../model.js';
import type { System } from '../system.js';
import { split } from '../system.js';
import { Command, UNREACHABLE, codeOf } from './base.js';

export class SetSpeed extends Command {
  constructor(
    readonly disk: string,
    readonly bandwidth: number,
    readonly bytes: boolean,
  ) {
    super();
  }
  expected(m: Readonly<Model>): string {
    const job = m.disk(this.disk).job;
    if (job === null) return 'VIR_ERR_INVALID_ARG';
    return m.alive && m.connected ? 'ok' : UNREACHABLE;
  }
  check(m: Readonly<Model>): boolean {
    return m.settled(m.disk(this.disk).job);
  }
  async exec(m: Model, s: System): Promise<void> {
    const [domain, disk] = split(this.disk);
    const want = this.expected(m);
    const result = await s.await(s.engine.blockJobSetSpeed(domain, disk, this.bandwidth, this.bytes ? 1 : 0));
    expect(codeOf(result), this.toString()).toBe(want);
    const job = m.disk(this.disk).job;
    if (want === 'ok' && job) {
      job.bw = this.bytes ? this.bandwidth : this.bandwidth * MiB;
      // The limit applies before ready; what is left is at most the whole length.
      if (!job.synced) job.maxLeft = Math.max(job.maxLeft, M.copyBounds(job.len, job.bw).max);
    }
  }
  toString(): string {
    return `setSpeed(${this.disk}, ${this.bandwidth}${this.bytes ? ' B/s' : ' MiB/s'})`;
  }
}
