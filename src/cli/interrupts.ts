/**
 * Ctrl-C and SIGTERM for a one-shot run. Both mean "stop the copy" (virsh aborts the job on
 * SIGINT; a service manager stops with SIGTERM). The first one runs the registered handler (the
 * abort, then the normal clean-up); every later one only prints "cleaning up, please wait": the
 * clean-up that dismisses the job and removes what the engine created must not be cut short, or
 * the hypervisor keeps a concluded job and a stray target node.
 */
import type { Output } from './copy.js';

export type InterruptSignal = 'SIGINT' | 'SIGTERM';

/** The part of `process` this needs (tests pass an EventEmitter). */
export interface SignalSource {
  on(event: InterruptSignal, listener: () => void): unknown;
  removeListener(event: InterruptSignal, listener: () => void): unknown;
}

export interface Interrupts {
  /** The first signal caught, or null. */
  readonly caught: InterruptSignal | null;
  /** Resolves with the first signal. */
  readonly interrupted: Promise<InterruptSignal>;
  /**
   * What the first signal does. If it already came, the handler runs now. Returns a disposer;
   * after it, a signal only marks the run as interrupted.
   */
  onInterrupt(handler: (signal: InterruptSignal) => void): () => void;
  /** Stops trapping the signals (the process's default handling is back). */
  dispose(): void;
}

export const CLEANING_UP = 'cleaning up, please wait';

export function trapInterrupts(out: Output, source: SignalSource = process): Interrupts {
  let caught: InterruptSignal | null = null;
  let handler: ((signal: InterruptSignal) => void) | null = null;
  let resolveInterrupted: (signal: InterruptSignal) => void = () => {};
  const interrupted = new Promise<InterruptSignal>((resolve) => (resolveInterrupted = resolve));
  const listeners = new Map<InterruptSignal, () => void>();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const listener = () => {
      if (caught !== null) {
        out.error(CLEANING_UP);
        return;
      }
      caught = signal;
      resolveInterrupted(signal);
      handler?.(signal);
    };
    listeners.set(signal, listener);
    source.on(signal, listener);
  }
  return {
    get caught() {
      return caught;
    },
    interrupted,
    onInterrupt(h) {
      handler = h;
      if (caught !== null) h(caught);
      return () => {
        if (handler === h) handler = null;
      };
    },
    dispose() {
      for (const [signal, listener] of listeners) source.removeListener(signal, listener);
      listeners.clear();
    },
  };
}
