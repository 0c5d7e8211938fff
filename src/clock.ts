/**
 * Time through an injectable clock. The engine, its pollers and the simulated hypervisor never
 * call setTimeout or Date.now directly, so tests can run whole copies in virtual time.
 */
import { Observable } from 'rxjs';

export interface Clock {
  /** Milliseconds since an arbitrary origin. */
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

interface Timer {
  id: number;
  at: number;
  callback: () => void;
}

/**
 * Virtual time. `advance(ms)` fires every timer due within the window in time order, letting
 * promise callbacks settle between timers, so async IO chains behave as they would in real time.
 */
export class VirtualClock implements Clock {
  private current = 0;
  private nextId = 1;
  private timers: Timer[] = [];

  now(): number {
    return this.current;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const timer = { id: this.nextId++, at: this.current + Math.max(0, ms), callback };
    this.timers.push(timer);
    return timer.id;
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  /** Number of timers still waiting. */
  get pending(): number {
    return this.timers.length;
  }

  async advance(ms: number): Promise<void> {
    const end = this.current + ms;
    await settle();
    for (;;) {
      const next = this.earliest();
      if (next === undefined || next.at > end) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.current = Math.max(this.current, next.at);
      next.callback();
      await settle();
    }
    this.current = end;
    await settle();
  }

  /** Advance in steps until `done()` holds or `limitMs` of virtual time has passed. */
  async runUntil(done: () => boolean, limitMs = 3_600_000, stepMs = 10): Promise<boolean> {
    const end = this.current + limitMs;
    await settle();
    while (!done()) {
      if (this.current >= end) return false;
      await this.advance(stepMs);
    }
    return true;
  }

  private earliest(): Timer | undefined {
    let best: Timer | undefined;
    for (const t of this.timers)
      if (best === undefined || t.at < best.at || (t.at === best.at && t.id < best.id)) best = t;
    return best;
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** A periodic tick on the given clock, starting after one period. */
export function interval$(clock: Clock, periodMs: number): Observable<number> {
  return new Observable<number>((subscriber) => {
    let n = 0;
    let handle: unknown;
    const arm = () => {
      handle = clock.setTimeout(() => {
        subscriber.next(n++);
        if (!subscriber.closed) arm();
      }, periodMs);
    };
    arm();
    return () => {
      clock.clearTimeout(handle);
    };
  });
}
