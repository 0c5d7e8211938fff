/**
 * Convergence of a mirror: the policy a caller sets (how long to wait, how to escalate) and the
 * detector that turns the job's high-rate progress samples into one verdict, "not converging".
 *
 * remaining = len - offset. A mirror converges while remaining keeps reaching new lows; a guest
 * that writes faster than the mirror copies keeps it from ever doing so (QEMU 7.2 becomes ready
 * only at remaining 0, qemu-mirror.md §0.6). The detector is O(1) per sample and keeps no
 * history: the lowest remaining seen and when it was reached. Time comes with each sample (the
 * engine's injectable clock), so virtual-clock tests drive it exactly.
 */
import type { Result } from 'neverthrow';
import { err, ok } from 'neverthrow';
import type { BlockCopyError } from './errors.js';
import { blockCopyError } from './errors.js';

/** What the engine does for a copy that does not converge. */
export interface ConvergencePolicy {
  /** Give up (cancel, guest stays on its source) when the copy is not ready this long after it started (ms). */
  readonly timeoutMs: number;
  /** "Not converging" when remaining reaches no new low for this long (ms). Default 10 s. */
  readonly windowMs?: number;
  /**
   * Step 1: raise the bandwidth limit to this many bytes/s (block-job-set-speed); 0 = unlimited
   * (the default). Skipped when the copy already runs unthrottled or at least this fast.
   */
  readonly raiseBandwidthTo?: number;
  /** Step 2: restart the copy in QEMU's write-blocking mode (default true). */
  readonly writeBlocking?: boolean;
  /**
   * A new low counts only if it is this many bytes below the previous one (default 0: any
   * shrink). Keeps a copy that creeps by a few bytes per window from counting as converging.
   */
  readonly minShrinkBytes?: number;
}

export const DEFAULT_CONVERGENCE_WINDOW_MS = 10_000;

/** The policy with its defaults filled in. */
export interface ResolvedConvergencePolicy {
  readonly timeoutMs: number;
  readonly windowMs: number;
  readonly raiseBandwidthTo: number;
  readonly writeBlocking: boolean;
  readonly minShrinkBytes: number;
}

const MAX_MS = 2_147_483_647; // a timer's range

const invalid = (detail: string) => blockCopyError('VIR_ERR_INVALID_ARG', detail);

function msOk(v: unknown, min: number): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= min && v <= MAX_MS;
}

/** Checks a caller's policy; bad values are refused with VIR_ERR_INVALID_ARG before anything starts. */
export function checkConvergencePolicy(policy: unknown): Result<ResolvedConvergencePolicy, BlockCopyError> {
  if (typeof policy !== 'object' || policy === null) return err(invalid('convergence policy must be an object'));
  const p = policy as Record<string, unknown>;
  if (!msOk(p['timeoutMs'], 1))
    return err(invalid(`convergence timeoutMs must be a number of milliseconds from 1 to ${MAX_MS}`));
  const windowMs = p['windowMs'] ?? DEFAULT_CONVERGENCE_WINDOW_MS;
  if (!msOk(windowMs, 1))
    return err(invalid(`convergence windowMs must be a number of milliseconds from 1 to ${MAX_MS}`));
  const raise = p['raiseBandwidthTo'] ?? 0;
  if (typeof raise !== 'number' || !Number.isSafeInteger(raise) || raise < 0)
    return err(invalid('convergence raiseBandwidthTo must be a non-negative whole number of bytes/s'));
  const writeBlocking = p['writeBlocking'] ?? true;
  if (typeof writeBlocking !== 'boolean') return err(invalid('convergence writeBlocking must be a boolean'));
  const minShrink = p['minShrinkBytes'] ?? 0;
  if (typeof minShrink !== 'number' || !Number.isSafeInteger(minShrink) || minShrink < 0)
    return err(invalid('convergence minShrinkBytes must be a non-negative whole number of bytes'));
  return ok({
    timeoutMs: p['timeoutMs'],
    windowMs,
    raiseBandwidthTo: raise,
    writeBlocking,
    minShrinkBytes: minShrink,
  });
}

/**
 * The detector. `sample()` answers true exactly once per stall: when remaining has reached no
 * new low for a whole window. It then starts a fresh window, so a caller that does nothing
 * hears it again one window later. `reset()` forgets everything (after a pause, an escalation,
 * a restart: the old numbers say nothing about the new regime).
 */
export class ConvergenceDetector {
  private low = Number.POSITIVE_INFINITY;
  private lowAt = 0;
  private started = false;

  constructor(
    private readonly windowMs: number,
    private readonly minShrinkBytes = 0,
  ) {}

  /** One progress sample at clock time `at` (ms). True: not converging. */
  sample(cur: number, end: number, at: number): boolean {
    const remaining = end - cur;
    if (!this.started) {
      this.started = true;
      this.low = remaining;
      this.lowAt = at;
      return false;
    }
    if (remaining <= 0 || remaining < this.low - this.minShrinkBytes) {
      this.low = remaining;
      this.lowAt = at;
      return false;
    }
    if (at - this.lowAt >= this.windowMs) {
      // A new window from here, measured against what is left now.
      this.low = remaining;
      this.lowAt = at;
      return true;
    }
    return false;
  }

  reset(): void {
    this.started = false;
    this.low = Number.POSITIVE_INFINITY;
    this.lowAt = 0;
  }
}

/** The give-up error: libvirt's timeout code, saying what was tried and what is left. */
export function notConverging(
  disk: string,
  timeoutMs: number,
  tried: string,
  remaining: number | null,
): BlockCopyError {
  const left = remaining === null ? '' : `, ${remaining} bytes still to copy`;
  return blockCopyError(
    'VIR_ERR_OPERATION_TIMEOUT',
    `block copy of disk '${disk}' did not converge within ${timeoutMs} ms (${tried}${left}); the copy was cancelled and the guest stays on its source`,
  );
}
