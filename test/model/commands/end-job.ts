/** virDomainBlockJobAbort: pivot or abort, synchronous or ASYNC, soft or forced. */
import { expect } from 'vitest';
import { AbortFlags } from '../../../src/core/flags.js';
import type { Fate, Model, Status } from '../model.js';
import { LATENCY_MS } from '../model.js';
import type { System } from '../system.js';
import { split } from '../system.js';
import { Command, UNREACHABLE, codeOf } from './base.js';

interface Prediction {
  readonly code: string;
  /** How the job ends when the request is taken. */
  readonly end?: { status: Status; fate: Fate };
}

export class EndJob extends Command {
  constructor(
    readonly disk: string,
    readonly pivot: boolean,
    readonly async: boolean,
    readonly force: boolean,
  ) {
    super();
  }

  /** libvirt's answer and the job's end, or null where timing would decide. */
  predict(m: Readonly<Model>): Prediction | null {
    const job = m.disk(this.disk).job;
    if (job === null) return { code: 'VIR_ERR_INVALID_ARG' };
    if (!m.settled(job)) return null;
    const view = m.view(job);
    if (this.pivot) {
      if (view === 'unknown') return null;
      if (view === 'copying') return { code: 'VIR_ERR_BLOCK_COPY_ACTIVE' };
      // A paused job's pivot would wait for a resume: refused (issue 11).
      if (job.paused !== null) return { code: 'VIR_ERR_OPERATION_INVALID' };
      if (!m.connected) return { code: UNREACHABLE };
      return { code: 'ok', end: { status: 'COMPLETED', fate: 'keep' } };
    }
    // A soft cancel after ready leaves a consistent copy; before ready, or of a paused job,
    // every cancel is a forced one.
    const soft = !this.force && job.paused === null && view === 'ready';
    if (!this.force && job.paused === null && view === 'unknown') return null;
    if (!m.connected) return { code: UNREACHABLE };
    return { code: 'ok', end: { status: 'CANCELED', fate: soft ? 'keep' : 'remove' } };
  }

  check(m: Readonly<Model>): boolean {
    return this.predict(m) !== null;
  }

  async exec(m: Model, s: System): Promise<void> {
    const [domain, disk] = split(this.disk);
    const want = this.predict(m)!;
    const flags = (this.pivot ? AbortFlags.PIVOT : 0) | (this.async ? AbortFlags.ASYNC : 0);
    const result = await s.await(s.engine.blockJobAbort(domain, disk, flags, { force: this.force }));
    expect(codeOf(result), this.toString()).toBe(want.code);
    const job = m.disk(this.disk).job;
    if (want.end && job) {
      // A synchronous call returns after the job ended; an ASYNC one once QEMU took the command.
      job.ending = { ...want.end, by: this.async ? m.now + 300 + LATENCY_MS : m.now };
    }
  }

  toString(): string {
    return `${this.pivot ? 'pivot' : 'abort'}(${this.disk}${this.async ? ', async' : ''}${this.force ? ', force' : ''})`;
  }
}
