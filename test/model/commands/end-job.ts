/** virDomainBlockJobAbort: pivot or abort, synchronous or ASYNC, soft or forced. */
import { expect } from 'vitest';
import { AbortFlags } from '../../../src/core/flags.js';
import type { Model } from '../model.js';
import type { System } from '../system.js';
import { split } from '../system.js';
import { Command, codeOf } from './base.js';

export class EndJob extends Command {
  constructor(
    readonly disk: string,
    readonly pivot: boolean,
    readonly async: boolean,
    readonly force: boolean,
  ) {
    super();
  }
  check(): boolean {
    return true;
  }
  async exec(m: Model, s: System): Promise<void> {
    const [domain, disk] = split(this.disk);
    const allowed = m.expectEnd(this.disk, this.pivot);
    const job = m.disk(this.disk).job;
    const before = job?.end ?? null;
    const flags = (this.pivot ? AbortFlags.PIVOT : 0) | (this.async ? AbortFlags.ASYNC : 0);
    const call = s.engine.blockJobAbort(domain, disk, flags, { force: this.force });
    // The chart decides synchronously: an accepted request is the model's to record at once, so
    // that the final event (which may come while we wait) is judged against it.
    if (job && before === null && engine_accepted(s, job.jobId)) job.end = this.pivot ? 'pivot' : 'abort';
    const result = await s.await(call);
    const code = codeOf(result);
    if (!job || before !== null || job.end === null) {
      // Refused by the chart, or nothing to end: exactly the model's answer.
      expect(allowed, `${this.toString()} → ${code}`).toContain(code);
      return;
    }
    if (code === 'ok') return;
    // Accepted by the chart but failed: only when the hypervisor let it fail (it refused the
    // command, or the job failed instead of pivoting). A plain abort the hypervisor took
    // returns 0 whatever the outcome (libvirt).
    expect(job.hvMayEnd || job.hvTrouble || m.noisy || !m.connected || !m.alive, `${this.toString()} → ${code}`).toBe(
      true,
    );
    const now = s.engine.job(domain, disk);
    if (now?.jobId === job.jobId && /^(mirroring|ready)/.test(now.state())) {
      // QEMU refused the command: the chart backed off and the job runs on.
      job.end = null;
    }
  }
  toString(): string {
    return `${this.pivot ? 'pivot' : 'abort'}(${this.disk}${this.async ? ', async' : ''}${this.force ? ', force' : ''})`;
  }
}

/** Whether the job's chart took the request (it is now pivoting or aborting). */
function engine_accepted(s: System, jobId: string): boolean {
  const job = s.engine.jobs().find((j) => j.jobId === jobId);
  const state = job?.state() ?? '';
  return state === 'pivoting' || state === 'aborting';
}
