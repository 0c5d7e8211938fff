/** virDomainBlockJobSetSpeed, in MiB/s or bytes/s. */
import { expect } from 'vitest';
import type { Model } from '../model.js';
import type { System } from '../system.js';
import { split } from '../system.js';
import { Command, codeOf } from './base.js';

export class SetSpeed extends Command {
  constructor(
    readonly disk: string,
    readonly bandwidth: number,
    readonly bytes: boolean,
  ) {
    super();
  }
  check(): boolean {
    return true;
  }
  async exec(m: Model, s: System): Promise<void> {
    const [domain, disk] = split(this.disk);
    const result = await s.await(s.engine.blockJobSetSpeed(domain, disk, this.bandwidth, this.bytes ? 1 : 0));
    const code = codeOf(result);
    const job = m.disk(this.disk).job;
    if (!job) expect(code).toBe('VIR_ERR_INVALID_ARG');
    else if (!job.hvMayEnd && !job.hvTrouble && job.end === null && m.alive && m.connected && !m.noisy)
      expect(code).toBe('ok');
  }
  toString(): string {
    return `setSpeed(${this.disk}, ${this.bandwidth}${this.bytes ? ' B/s' : ' MiB/s'})`;
  }
}
