/**
 * Engine-on-QEMU helpers: the public engine API (createEngine) over a QemuHypervisor on the
 * harness's daemon, with a wrapping port that counts the calls that reach QEMU.
 */
import type { HypervisorPort } from '../../src/core/hypervisor-port.js';
import type { QemuHypervisorOptions } from '../../adapters/qmp/qemu-adapter.js';
import { createEngine, type BlockCopyEngine, type BlockCopyJob } from '../../src/engine/engine.js';
import type { QemuFixture } from '../qemu/harness.js';

export interface EngineOnQemu {
  readonly engine: BlockCopyEngine;
  readonly hv: HypervisorPort;
  /** Port method name → how many times the engine called it. */
  readonly calls: Map<string, number>;
}

/** Counts every method call on the port (a transparent wrapper). */
export function countingPort(hv: HypervisorPort, calls: Map<string, number>): HypervisorPort {
  return new Proxy(hv, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      return (...args: unknown[]) => {
        calls.set(prop, (calls.get(prop) ?? 0) + 1);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

export async function engineOn(
  fx: QemuFixture,
  options: Partial<QemuHypervisorOptions> = {},
  engineOptions: { readonly pollIntervalMs?: number; readonly jobId?: string } = {},
): Promise<EngineOnQemu> {
  const { hv } = await fx.adapter(options);
  const calls = new Map<string, number>();
  const port = countingPort(hv, calls);
  const jobId = engineOptions.jobId;
  const engine = createEngine({
    hypervisor: port,
    pollIntervalMs: engineOptions.pollIntervalMs ?? 100,
    ...(jobId !== undefined ? { jobId: () => jobId } : {}),
  });
  fx.defer(async () => engine.close());
  return { engine, hv: port, calls };
}

/** Resolves once the job is in `ready` (or rejects if it ended first). */
export function whenReady(job: BlockCopyJob, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (job.state().startsWith('ready')) return resolve();
    const timer = setTimeout(
      () => reject(new Error(`not ready after ${timeoutMs} ms: ${job.states().join(' ')}`)),
      timeoutMs,
    );
    const sub = job.stateChanges$.subscribe((s) => {
      if (s.startsWith('ready')) {
        clearTimeout(timer);
        resolve();
        queueMicrotask(() => sub.unsubscribe());
      }
    });
    void job.result.then((r) => {
      clearTimeout(timer);
      if (!job.states().some((s) => s.startsWith('ready')))
        reject(new Error(`job ended before ready: ${JSON.stringify(r)}`));
    });
  });
}

/** Resolves once the job enters a state starting with `prefix`. */
export function whenState(job: BlockCopyJob, prefix: string, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (job.states().some((s) => s.startsWith(prefix))) return resolve();
    const timer = setTimeout(
      () => reject(new Error(`no ${prefix} after ${timeoutMs} ms: ${job.states().join(' ')}`)),
      timeoutMs,
    );
    const sub = job.stateChanges$.subscribe((s) => {
      if (s.startsWith(prefix)) {
        clearTimeout(timer);
        resolve();
        queueMicrotask(() => sub.unsubscribe());
      }
    });
  });
}
