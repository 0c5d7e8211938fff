/** save, snapshot, detach or define while jobs run: refused exactly while a copy is active. */
import { expect } from 'vitest';
import type { DomainOperation } from '../../../src/engine/engine.js';
import type { Model } from '../model.js';
import type { System } from '../system.js';
import { split } from '../system.js';
import { Command, codeOf } from './base.js';

export class DomainOp extends Command {
  constructor(
    readonly disk: string,
    readonly op: DomainOperation,
  ) {
    super();
  }
  check(): boolean {
    return true;
  }
  async exec(m: Model, s: System): Promise<void> {
    const [domain, disk] = split(this.disk);
    // The answer is due for the state right now (before any time passes).
    const active = this.op === 'detach' ? m.disk(this.disk).job !== null : m.activeOn(domain);
    const result = await s.engine.checkDomainOperation(domain, this.op, disk);
    const code = codeOf(result);
    // define asks the hypervisor whether the domain is transient: unreachable, it is refused
    // with the hypervisor's error instead (still refused, never allowed).
    if (active && this.op === 'define' && (!m.alive || !m.connected)) expect(code, this.toString()).not.toBe('ok');
    else if (active) expect(code, this.toString()).toBe('VIR_ERR_BLOCK_COPY_ACTIVE');
    else expect(code, this.toString()).toBe('ok');
  }
  toString(): string {
    return `${this.op}(${this.disk})`;
  }
}
