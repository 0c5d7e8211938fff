/** Lost, duplicated and reordered hypervisor events: only timing changes, never outcomes. */
import type { Model } from '../model.js';
import { LATENCY_MS } from '../model.js';
import type { System } from '../system.js';
import { Command } from './base.js';

export class EventNoise extends Command {
  constructor(
    readonly loss: number,
    readonly duplication: number,
  ) {
    super();
  }
  check(): boolean {
    return true;
  }
  async exec(_m: Model, s: System): Promise<void> {
    s.sim.setEventLoss(this.loss > 0 ? this.loss : null);
    s.sim.setEventDuplication(this.duplication > 0 ? this.duplication : null);
    await Promise.resolve();
  }
  toString(): string {
    return `noise(loss ${this.loss}, dup ${this.duplication})`;
  }
}

/** Hold job events back for a while, then deliver them in reverse order. */
export class ReorderEvents extends Command {
  constructor(readonly holdMs: number) {
    super();
  }
  check(): boolean {
    return true;
  }
  async exec(m: Model, s: System): Promise<void> {
    s.holding = true;
    await s.clock.advance(this.holdMs);
    s.releaseHeld();
    // Stale events may sway the chart until the next poll sets it right.
    for (const job of m.jobs()) job.unsettledUntil = Math.max(job.unsettledUntil, s.clock.now() + LATENCY_MS);
  }
  toString(): string {
    return `reorder(${this.holdMs} ms)`;
  }
}
