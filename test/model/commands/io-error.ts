/** A target I/O error (EIO or ENOSPC, once or persistent): the job's policy decides. */
import type { Errno } from '../../../adapters/sim/index.js';
import type { Model } from '../model.js';
import type { System } from '../system.js';
import { Command } from './base.js';

export class IoError extends Command {
  constructor(
    readonly errno: Errno,
    readonly once: boolean,
  ) {
    super();
  }
  check(): boolean {
    return true;
  }
  async exec(m: Model, s: System): Promise<void> {
    s.sim.injectTargetError({ errno: this.errno, once: this.once });
    m.faultArmed = true;
    for (const d of m.disks.values())
      if (d.job) {
        d.job.hvMayEnd = true;
        d.job.hvTrouble = true;
      }
    await s.clock.advance(200);
  }
  toString(): string {
    return `ioError(${this.errno}${this.once ? ', once' : ''})`;
  }
}

/** The faults are fixed (the admin freed space); stopped jobs may be resumed. */
export class ClearFaults extends Command {
  check(m: Readonly<Model>): boolean {
    return m.faultArmed;
  }
  async exec(m: Model, s: System): Promise<void> {
    s.sim.clearFaults();
    m.faultArmed = false;
    await s.clock.advance(10);
  }
  toString(): string {
    return 'clearFaults';
  }
}
