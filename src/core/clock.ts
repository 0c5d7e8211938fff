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
  readonly id: number;
  readonly at: number;
  readonly callback: () => void;
}

/** Timers ordered by due time, then by creation (a binary min-heap: fleets have many timers). */
class TimerHeap {
  private readonly items: Timer[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): Timer | undefined {
    return this.items[0];
  }

  push(timer: Timer): void {
    const items = this.items;
    items.push(timer);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  pop(): Timer | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let smallest = i;
        if (l < items.length && before(items[l]!, items[smallest]!)) smallest = l;
        if (r < items.length && before(items[r]!, items[smallest]!)) smallest = r;
        if (smallest === i) break;
        [items[i], items[smallest]] = [items[smallest]!, items[i]!];
        i = smallest;
      }
    }
    return top;
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.id < b.id);
}

/**
 * Virtual time. `advance(ms)` fires every timer due within the window in time order, letting
 * promise callbacks settle between timers, so async IO chains behave as they would in real time.
 */
export class VirtualClock implements Clock {
  private current = 0;
  private nextId = 1;
  private readonly timers = new TimerHeap();
  /** Cleared timers stay in the heap until they come up (lazy deletion). */
  private readonly cleared = new Set<number>();

  now(): number {
    return this.current;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const timer = { id: this.nextId++, at: this.current + Math.max(0, ms), callback };
    this.timers.push(timer);
    return timer.id;
  }

  clearTimeout(handle: unknown): void {
    if (typeof handle === 'number') this.cleared.add(handle);
  }

  /** Number of timers still waiting. */
  get pending(): number {
    return this.timers.size - this.cleared.size;
  }

  async advance(ms: number): Promise<void> {
    const end = this.current + ms;
    await settle();
    for (;;) {
      const next = this.timers.peek();
      if (next === undefined || next.at > end) break;
      this.timers.pop();
      if (this.cleared.delete(next.id)) continue;
      this.current = Math.max(this.current, next.at);
      next.callback();
      // Node drains microtasks between timer callbacks: let promise chains run.
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
