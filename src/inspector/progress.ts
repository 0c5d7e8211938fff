/**
 * Copy rate and time to ready from a job's progress samples. A mirror is ready when it has caught
 * up with the guest, and the guest keeps writing (QEMU's `len` grows), so the estimate divides what
 * is left (end − cur) by how fast that shrinks, not by the raw copy rate: a mirror that copies fast
 * but falls behind the guest never gets ready, and says so (null).
 */

export interface ProgressSample {
  readonly cur: number;
  readonly end: number;
  /** Clock ms of the observation. */
  readonly at: number;
}

export interface ProgressEstimate {
  /** Bytes copied per second over the window, null until two samples at different times. */
  readonly rate: number | null;
  /** Ms until cur reaches end, 0 when it has; null when the gap does not shrink. */
  readonly etaMs: number | null;
}

export class ProgressMeter {
  private samples: ProgressSample[] = [];

  /** @param windowMs how much history the rates average over. */
  constructor(private readonly windowMs = 3000) {}

  push(sample: ProgressSample): ProgressEstimate {
    const last = this.samples[this.samples.length - 1];
    // A sample from the past (clock reset, restored job) starts the history again.
    if (last && sample.at < last.at) this.samples = [];
    this.samples.push(sample);
    // Keep one sample older than the window, so the window is always fully spanned.
    while (this.samples.length > 2 && sample.at - this.samples[1]!.at >= this.windowMs) this.samples.shift();
    return this.estimate();
  }

  estimate(): ProgressEstimate {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last) return { rate: null, etaMs: null };
    const remaining = Math.max(0, last.end - last.cur);
    if (remaining === 0 && last.end > 0) return { rate: this.rate(first, last), etaMs: 0 };
    const dt = last.at - first.at;
    if (dt <= 0) return { rate: null, etaMs: null };
    const rate = this.rate(first, last);
    const closing = (first.end - first.cur - remaining) / (dt / 1000);
    return { rate, etaMs: closing > 0 ? Math.round((remaining / closing) * 1000) : null };
  }

  private rate(first: ProgressSample, last: ProgressSample): number | null {
    const dt = last.at - first.at;
    return dt > 0 ? Math.max(0, ((last.cur - first.cur) * 1000) / dt) : null;
  }
}
