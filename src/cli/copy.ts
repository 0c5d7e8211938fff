/**
 * `blockcopy copy`: one copy job from the command line, like virsh blockcopy (start, wait for
 * the mirroring phase, then pivot or finish, with a progress bar and a --timeout that aborts).
 * Returns the report that --json prints and the exit code; IO is the caller's.
 */
import type { InspectionEvent } from 'xstate';
import type { HypervisorPort } from '../core/hypervisor-port.js';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { createEngine } from '../engine/engine.js';
import type { BlockCopyEngine, BlockCopyJob } from '../engine/engine.js';
import type { BlockCopyError } from '../core/errors.js';
import { AbortFlags, RebaseFlags } from '../core/flags.js';
import type { JobResult } from '../engine/job-runner.js';
import type { JobStore } from '../core/job-store.js';
import type { CopyPlan } from '../core/plan.js';
import type { CopyCommand } from './args.js';
import { formatBytes, progressLine } from './progress.js';

export interface CopyReport {
  readonly status: 'completed' | 'canceled' | 'failed' | 'ready' | 'running' | 'planned' | 'detached';
  readonly pivoted: boolean;
  readonly destinationConsistent: boolean;
  readonly error: null | { readonly code: string; readonly number: number; readonly message: string };
  readonly states: readonly string[];
  readonly plan?: CopyPlan;
}

export interface Output {
  /** Normal output (stdout). */
  line(text: string): void;
  /** Rewrites the current terminal line (progress bar); only called when `tty`. */
  overwrite(text: string): void;
  /** Diagnostics (stderr). */
  error(text: string): void;
  readonly tty: boolean;
}

export interface CopyRun {
  readonly report: CopyReport;
  readonly exitCode: number;
}

function errorJson(error: BlockCopyError | null): CopyReport['error'] {
  return error ? { code: error.code, number: error.number, message: error.message } : null;
}

function fromResult(result: JobResult): CopyReport {
  return {
    status: result.outcome,
    pivoted: result.pivoted,
    destinationConsistent: result.destinationConsistent,
    error: errorJson(result.error),
    states: result.states,
  };
}

export function describePlan(plan: CopyPlan): string {
  const what = plan.sync === 'top' ? 'shallow copy (top image only)' : 'full copy (whole chain flattened)';
  const backing = plan.backing ? `, backing ${plan.backing.path}` : '';
  return `${what} of ${plan.domain}/${plan.disk} (${formatBytes(plan.virtualSize)}) from ${plan.source} to ${plan.destination.path} (${plan.destination.format}, ${plan.destinationAction}${backing})`;
}

export interface CopyDependencies {
  readonly hypervisor: HypervisorPort;
  readonly clock?: Clock;
  readonly out: Output;
  readonly pollIntervalMs?: number;
  /** The live inspector, if one serves this run: its observer goes into the engine. */
  readonly inspector?: {
    readonly inspect: (event: InspectionEvent) => void;
    attach(engine: BlockCopyEngine): () => void;
  };
  /** Called once the job has started, e.g. to install a SIGINT handler; returns a disposer. */
  readonly onStarted?: (abort: () => void) => () => void;
  /** Job store: the job is recorded and outlives this process (blockjob/recover pick it up). */
  readonly store?: JobStore;
}

/** An Output whose progress bar is ended before any other line, so lines never share it. */
function barAware(out: Output): Output {
  let onBar = false;
  let lastBar = '';
  const endBar = () => {
    if (onBar) {
      out.line('');
      onBar = false;
    }
  };
  return {
    tty: out.tty,
    line: (text) => {
      endBar();
      out.line(text);
    },
    error: (text) => {
      endBar();
      out.error(text);
    },
    overwrite: (text) => {
      if (onBar && text === lastBar) return;
      out.overwrite(text);
      onBar = true;
      lastBar = text;
    },
  };
}

export async function runCopy(cmd: CopyCommand, deps: CopyDependencies): Promise<CopyRun> {
  const clock = deps.clock ?? systemClock;
  const out = barAware(deps.out);
  const engine: BlockCopyEngine = createEngine({
    hypervisor: deps.hypervisor,
    clock,
    pollIntervalMs: deps.pollIntervalMs ?? 200,
    ...(deps.inspector ? { inspect: deps.inspector.inspect } : {}),
    ...(deps.store ? { store: deps.store } : {}),
  });
  const detachInspector = deps.inspector?.attach(engine);
  const domain = cmd.domain ?? defaultDomain(deps.hypervisor);
  const flags =
    RebaseFlags.COPY |
    (cmd.shallow ? RebaseFlags.SHALLOW : 0) |
    (cmd.reuseExternal ? RebaseFlags.REUSE_EXT : 0) |
    (cmd.raw ? RebaseFlags.COPY_RAW : 0);
  const options = { onTargetError: cmd.onTargetError, endIntent: cmd.end };
  const refused = (error: BlockCopyError): CopyRun => {
    if (!cmd.json) out.error(`error: ${error.message}`);
    return {
      report: { status: 'failed', pivoted: false, destinationConsistent: false, error: errorJson(error), states: [] },
      exitCode: 1,
    };
  };

  try {
    if (cmd.dryRun) {
      const plan = await engine.planRebase(domain, cmd.disk, cmd.destination, cmd.bandwidth, flags, options);
      if (plan.isErr()) return refused(plan.error);
      if (!cmd.json) out.line(`Plan: ${describePlan(plan.value)}`);
      return {
        report: {
          status: 'planned',
          pivoted: false,
          destinationConsistent: false,
          error: null,
          states: [],
          plan: plan.value,
        },
        exitCode: 0,
      };
    }

    const started = await engine.blockRebase(domain, cmd.disk, cmd.destination, cmd.bandwidth, flags, options);
    if (started.isErr()) return refused(started.error);
    const job = started.value;
    if (!cmd.json) out.line(`Block Copy started: ${describePlan(job.plan)}`);
    const running = (status: 'ready' | 'running'): CopyRun => ({
      report: {
        status,
        pivoted: false,
        destinationConsistent: false,
        error: null,
        states: job.states(),
        plan: job.plan,
      },
      exitCode: 0,
    });
    if (!cmd.wait) return running('running');

    const stopWatching = watch(job, cmd, out);
    let timedOut = false;
    // The abort's answer is used: a refusal other than "already being ended" (a pivot or abort
    // in flight, whose end we then wait for) means the job will not end by our hand.
    let refuseAbort: (error: BlockCopyError) => void = () => {};
    const abortRefused = new Promise<BlockCopyError>((resolve) => (refuseAbort = resolve));
    const abort = () => {
      void engine.blockJobAbort(domain, cmd.disk, AbortFlags.ASYNC).then((r) => {
        if (r.isErr() && r.error.code !== 'VIR_ERR_OPERATION_INVALID') refuseAbort(r.error);
      });
    };
    const disposeSignal = deps.onStarted?.(abort);
    const timer =
      cmd.timeout !== null
        ? clock.setTimeout(() => {
            timedOut = true;
            abort();
          }, cmd.timeout * 1000)
        : undefined;
    try {
      const reached = await Promise.race([
        waitForReady(job).then(() => 'ready' as const),
        job.result.then(() => 'ended' as const),
      ]);
      if (reached === 'ready' && !timedOut) {
        if (!cmd.json) out.line('Now in mirroring phase');
        if (cmd.end === null) return running('ready');
        const endFlags = (cmd.end === 'pivot' ? AbortFlags.PIVOT : 0) | (cmd.async ? AbortFlags.ASYNC : 0);
        const ended = await engine.blockJobAbort(domain, cmd.disk, endFlags);
        if (ended.isErr()) {
          if (!cmd.json) out.error(`error: ${ended.error.message}`);
          const result = await raceResult(job);
          return {
            report: { ...fromResult(result ?? pendingResult(job)), error: errorJson(ended.error) },
            exitCode: 1,
          };
        }
        if (cmd.async) return running('running');
      }
      const ended = await Promise.race([job.result, abortRefused]);
      if (!('outcome' in ended)) {
        if (!cmd.json) out.error(`error: could not abort the copy: ${ended.message}`);
        return { report: { ...fromResult(pendingResult(job)), error: errorJson(ended) }, exitCode: 1 };
      }
      const result = ended;
      const report = fromResult(result);
      if (!cmd.json) {
        if (result.outcome === 'completed') out.line('Successfully pivoted');
        else if (result.outcome === 'canceled' && cmd.end === 'finish' && !timedOut) out.line('Successfully copied');
        else if (result.outcome === 'canceled') out.line('Copy aborted');
        else out.error(`error: ${result.error?.message ?? 'block copy failed'}`);
      }
      const success =
        result.outcome === 'completed' || (result.outcome === 'canceled' && cmd.end === 'finish' && !timedOut);
      return { report, exitCode: success ? 0 : 1 };
    } finally {
      if (timer !== undefined) clock.clearTimeout(timer);
      disposeSignal?.();
      stopWatching();
    }
  } finally {
    detachInspector?.();
    await engine.shutdown();
  }
}

function defaultDomain(hypervisor: HypervisorPort): string {
  return hypervisor.name === 'sim' ? 'demo' : 'qemu';
}

function pendingResult(job: BlockCopyJob): JobResult {
  return {
    outcome: 'failed',
    pivoted: false,
    destinationConsistent: false,
    error: null,
    jobId: job.jobId,
    domain: job.domain,
    disk: job.disk,
    states: job.states(),
  };
}

/** The result if the job has already ended (e.g. right after a refused pivot it has not). */
async function raceResult(job: BlockCopyJob): Promise<JobResult | null> {
  return Promise.race([job.result, new Promise<null>((resolve) => setImmediate(() => resolve(null)))]);
}

function waitForReady(job: BlockCopyJob): Promise<void> {
  return new Promise((resolve) => {
    if (job.state().startsWith('ready')) {
      resolve();
      return;
    }
    const sub = job.stateChanges$.subscribe((state) => {
      if (state.startsWith('ready')) {
        resolve();
        queueMicrotask(() => sub.unsubscribe());
      }
    });
  });
}

/** --verbose: a progress bar on a terminal, plain lines otherwise, and every state change. */
function watch(job: BlockCopyJob, cmd: CopyCommand, out: Output): () => void {
  if (!cmd.verbose || cmd.json) return () => {};
  let lastPercent = -1;
  // The states entered before watching began (validating … mirroring).
  for (const state of job.states()) out.line(`state: ${state}`);
  const progress = job.progress$.subscribe((p) => {
    const line = progressLine(p, job.state().startsWith('ready') || job.state() === 'pivoting');
    if (out.tty) {
      out.overwrite(line);
    } else {
      const percent = p.end > 0 ? Math.floor((p.cur * 10) / p.end) : 0;
      if (percent !== lastPercent) {
        lastPercent = percent;
        out.line(line);
      }
    }
  });
  const states = job.stateChanges$.subscribe((state) => out.line(`state: ${state}`));
  return () => {
    progress.unsubscribe();
    states.unsubscribe();
  };
}
