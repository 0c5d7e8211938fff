/**
 * Checks createEngine's options before anything starts (a negative or zero poll interval would
 * spin the poll timer forever, a missing port would fail every call later). An engine built from
 * bad options is a refusing engine: every call answers with the option's typed error, nothing
 * throws and nothing runs. `tryCreateEngine` returns the error up front instead.
 */
import type { Result } from 'neverthrow';
import { err, errAsync, ok } from 'neverthrow';
import { EMPTY } from 'rxjs';
import type { BlockCopyError } from '../core/errors.js';
import { blockCopyError } from '../core/errors.js';
import { checkConvergencePolicy } from '../core/convergence.js';
import { JobSlots, checkSlotLimits } from './job-slots.js';

/** Bounds of the poll interval, in ms: at least 1 ms, at most a day (a timer's range). */
export const POLL_INTERVAL_RANGE = { min: 1, max: 86_400_000 } as const;

interface CheckedOptions {
  readonly hypervisor?: unknown;
  readonly clock?: unknown;
  readonly pollIntervalMs?: unknown;
  readonly jobId?: unknown;
  readonly inspect?: unknown;
  readonly convergence?: unknown;
  readonly maxJobs?: unknown;
  readonly maxJobsPerFilesystem?: unknown;
  readonly slots?: unknown;
}

const invalid = (detail: string) => blockCopyError('VIR_ERR_INVALID_ARG', detail);

export function checkEngineOptions(options: CheckedOptions | null | undefined): Result<void, BlockCopyError> {
  if (typeof options !== 'object' || options === null) return err(invalid('engine options must be an object'));
  const h = options.hypervisor as { events$?: unknown } | null | undefined;
  if (typeof h !== 'object' || h === null || typeof h.events$ !== 'object' || h.events$ === null)
    return err(invalid('engine option hypervisor must be a hypervisor port'));
  const poll = options.pollIntervalMs;
  if (
    poll !== undefined &&
    (typeof poll !== 'number' ||
      !Number.isFinite(poll) ||
      poll < POLL_INTERVAL_RANGE.min ||
      poll > POLL_INTERVAL_RANGE.max)
  )
    return err(
      invalid(
        `pollIntervalMs must be a number of milliseconds from ${POLL_INTERVAL_RANGE.min} to ${POLL_INTERVAL_RANGE.max}, not ${JSON.stringify(poll) ?? typeof poll}`,
      ),
    );
  const clock = options.clock as { now?: unknown; setTimeout?: unknown; clearTimeout?: unknown } | null | undefined;
  if (
    clock !== undefined &&
    (typeof clock !== 'object' ||
      clock === null ||
      typeof clock.now !== 'function' ||
      typeof clock.setTimeout !== 'function' ||
      typeof clock.clearTimeout !== 'function')
  )
    return err(invalid('engine option clock must have now, setTimeout and clearTimeout'));
  if (options.jobId !== undefined && typeof options.jobId !== 'function')
    return err(invalid('engine option jobId must be a function (domain, disk) => string'));
  if (options.inspect !== undefined && typeof options.inspect !== 'function')
    return err(invalid('engine option inspect must be a function'));
  const limits = checkSlotLimits({
    ...(options.maxJobs !== undefined ? { maxJobs: options.maxJobs as number } : {}),
    ...(options.maxJobsPerFilesystem !== undefined
      ? { maxJobsPerFilesystem: options.maxJobsPerFilesystem as number }
      : {}),
  });
  if (limits.isErr()) return err(limits.error);
  if (options.slots !== undefined && !(options.slots instanceof JobSlots))
    return err(invalid('engine option slots must be a JobSlots'));
  if (options.convergence !== undefined) {
    const checked = checkConvergencePolicy(options.convergence);
    if (checked.isErr()) return err(checked.error);
  }
  return ok(undefined);
}

/** A job id from the caller's factory is used only if it is a non-empty string without control characters. */
export function checkJobId(id: unknown): Result<string, BlockCopyError> {
  // eslint-disable-next-line no-control-regex
  if (typeof id !== 'string' || id.length === 0 || id.length > 128 || /[\u0000-\u001f]/.test(id))
    return err(invalid(`job id factory returned an unusable id: ${JSON.stringify(id) ?? String(id)}`));
  return ok(id);
}

/**
 * The engine of bad options: every call returns the error, no job ever exists, the observables
 * complete at once. A Proxy so that it answers every method of the engine's interface.
 */
export function refusingEngine<E extends object>(error: BlockCopyError): E {
  const fixed: Record<string, unknown> = {
    events$: EMPTY,
    jobStates$: EMPTY,
    job: () => undefined,
    jobs: () => [],
    close: () => undefined,
  };
  return new Proxy({} as E, {
    get: (_target, prop) => {
      if (typeof prop === 'string' && prop in fixed) return fixed[prop];
      if (prop === 'then') return undefined; // not a thenable
      return () => errAsync(error);
    },
  });
}
