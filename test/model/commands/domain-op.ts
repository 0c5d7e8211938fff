/** save, snapshot, detach or define while jobs run: refused exactly while a copy is active. */
import { expect } from 'vitest';
import type { DomainOperation } from '../../../src/engine/engine.js';
import type { Model } from '../model.js';
import type { System } from '../system.js';
import { split } from '../system.js';
import { Command, UNREACHABLE, codeOf } from './base.js';

export class DomainOp extends Command {
  constructor(
    readonly disk: string,
    readonly op: DomainOperation,
  ) {
    super();
  }
  expected(m: Readonly<Model>): string {
    const [domain] = split(this.disk);
    const active = this.op === 'detach' ? m.disk(this.disk).job !== null : m.activeOn(domain);
    if (!active) return 'ok';
    // define asks the hypervisor whether the domain is transient (the model's domains are).
    if (this.op === 'define' && (!m.alive || !m.connected)) return UNREACHABLE;
    return 'VIR_ERR_BLOCK_COPY_ACTIVE';
  }
  check(m: Readonly<Model>): boolean {
    const [domain] = split(this.disk);
    return [...m.disks.entries()].every(
      ([k, d]) => !k.startsWith(`${domain}/`) || d.job === null || d.job.ending === null,
    );
  }
  async exec(m: Model, s: System): Promise<void> {
    const [domain, disk] = split(this.disk);
    const want = this.expected(m);
    expect(codeOf(await s.await(s.engine.checkDomainOperation(domain, this.op, disk))), this.toString()).toBe(want);
  }
  toString(): string {
    return `${this.op}(${this.disk})`;
  }
}
