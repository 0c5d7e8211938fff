/** Virtual time passes: the mirror copies, polls run, delayed completions land. */
import type { Model } from '../model.js';
import type { System } from '../system.js';
import { Command } from './base.js';

export class Advance extends Command {
  constructor(readonly ms: number) {
    super();
  }
  check(): boolean {
    return true;
  }
  async exec(_m: Model, s: System): Promise<void> {
    await s.clock.advance(this.ms);
  }
  toString(): string {
    return `advance(${this.ms})`;
  }
}
