/** QEMU block-job-pause / block-job-resume through the engine. */
import { expect } from 'vitest';
import type { Model } from '../model.js';
import { LATENCY_MS, resumed } from '../model.js';
import type { System } from '../system.js';
import { split } from '../system.js';
import { Command, QEMU_REFUSED, UNREACHABLE, codeOf } from './base.js';

export class PauseResume extends Command {
  constructor(
    readonly disk: string,
    readonly pause: boolean,
  ) {
    super();
  }
  expected(m: Readonly<Model>): string {
    const job = m.disk(this.disk).job;
    if (job === null) return 'VIR_ERR_INVALID_ARG';
    if (!m.alive || !m.connected) return UNREACHABLE;
    // QEMU: "Job is already paused" / "Can't resume a job that was not paused".
    if (this.pause === (job.paused !== null)) return QEMU_REFUSED;
    return 'ok';
  }
  check(m: Readonly<Model>): boolean {
    const job = m.disk(this.disk).job;
    if (!m.settled(job)) return false;
    // A resumed copy would run into an armed fault at a time the model does not know.
    return this.pause || m.fault === null || job === null || job.synced;
  }
  async exec(m: Model, s: System): Promise<void> {
    const [domain, disk] = split(this.disk);
    const want = this.expected(m);
    const call = this.pause ? s.engine.blockJobPause(domain, disk) : s.engine.blockJobResume(domain, disk);
    expect(codeOf(await s.await(call)), this.toString()).toBe(want);
    const job = m.disk(this.disk).job;
    if (want !== 'ok' || !job) return;
    if (this.pause) {
      job.paused = 'user';
      job.unsettledUntil = Math.max(job.unsettledUntil, m.now + LATENCY_MS);
    } else resumed(m, job);
  }
  toString(): string {
    return `${this.pause ? 'pause' : 'resume'}(${this.disk})`;
  }
}
