/** QEMU block-job-pause / block-job-resume through the engine. */
import { expect } from 'vitest';
import type { Model } from '../model.js';
import type { System } from '../system.js';
import { split } from '../system.js';
import { Command, codeOf } from './base.js';

export class PauseResume extends Command {
  constructor(
    readonly disk: string,
    readonly pause: boolean,
  ) {
    super();
  }
  check(): boolean {
    return true;
  }
  async exec(m: Model, s: System): Promise<void> {
    const [domain, disk] = split(this.disk);
    const call = this.pause ? s.engine.blockJobPause(domain, disk) : s.engine.blockJobResume(domain, disk);
    const code = codeOf(await s.await(call));
    const job = m.disk(this.disk).job;
    if (!job) expect(code).toBe('VIR_ERR_INVALID_ARG');
    // A paused job is one the hypervisor may refuse a soft cancel or pivot for.
    else if (this.pause && code === 'ok') job.hvTrouble = true;
  }
  toString(): string {
    return `${this.pause ? 'pause' : 'resume'}(${this.disk})`;
  }
}
