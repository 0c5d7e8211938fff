/** The guest writes to a disk (one burst, or a steady rate that may outrun the mirror). */
import { expect } from 'vitest';
import { MiB } from '../../../adapters/sim/index.js';
import type { Model } from '../model.js';
import type { System } from '../system.js';
import { split } from '../system.js';
import { Command } from './base.js';

export class GuestWrite extends Command {
  constructor(
    readonly disk: string,
    readonly mib: number,
    readonly steady: boolean,
  ) {
    super();
  }
  check(m: Readonly<Model>): boolean {
    return m.alive;
  }
  async exec(_m: Model, s: System): Promise<void> {
    const [domain, disk] = split(this.disk);
    const r = this.steady
      ? s.sim.setGuestWriteRate(domain, disk, this.mib * MiB)
      : s.sim.guestWrite(domain, disk, this.mib * MiB);
    expect(r.isOk()).toBe(true);
    await s.clock.advance(50);
  }
  toString(): string {
    return `guestWrite(${this.disk}, ${this.mib} MiB${this.steady ? '/s' : ''})`;
  }
}
