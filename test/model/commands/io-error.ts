/** A target I/O error (EIO or ENOSPC, once or persistent): each job's policy decides. */
import type { Errno } from '../../../adapters/sim/index.js';
import type { Model } from '../model.js';
import { unfreeze } from '../model.js';
import type { System } from '../system.js';
import { Command } from './base.js';

export class IoError extends Command {
  constructor(
    readonly errno: Errno,
    readonly once: boolean,
  ) {
    super();
  }
  check(m: Readonly<Model>): boolean {
    if (!m.alive || !m.connected || m.fault !== null) return false;
    // Every job either certainly copies now (it meets the fault) or certainly does not.
    const jobs = m.jobs();
    if (!jobs.every((j) => m.settled(j) && (m.copying(j) || j.synced || j.paused !== null))) return false;
    return !this.once || jobs.filter((j) => m.copying(j)).length <= 1;
  }
  async exec(m: Model, s: System): Promise<void> {
    s.sim.injectTargetError({ errno: this.errno, once: this.once });
    m.fault = { errno: this.errno, once: this.once };
    m.applyFault();
    await Promise.resolve();
  }
  toString(): string {
    return `ioError(${this.errno}${this.once ? ', once' : ''})`;
  }
}

/** The faults are fixed (the admin freed space); jobs stopped on an error stay paused. */
export class ClearFaults extends Command {
  check(m: Readonly<Model>): boolean {
    // Not while a job is about to meet the fault.
    return (m.fault !== null || m.jobs().some((j) => j.frozen)) && m.jobs().every((j) => m.settled(j));
  }
  async exec(m: Model, s: System): Promise<void> {
    s.sim.clearFaults();
    m.fault = null;
    for (const job of m.jobs()) if (job.frozen) unfreeze(job);
    await Promise.resolve();
  }
  toString(): string {
    return 'clearFaults';
  }
}
