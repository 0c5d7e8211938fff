/**
 * `blockcopy copy`: one copy job from the command line, like virsh blockcopy (start, wait for
 * the mirroring phase, then pivot or finish, with a progress bar and a --timeout that aborts).
 * A one-shot process owns its job: it stays until the job is dismissed and the engine's nodes
 * and files are cleaned up, even with --async or after Ctrl-C; where it does leave a running job
 * (no --wait, or --wait alone) it says so. Returns the report that --json prints and the exit
 * code; IO is the caller's.
 */
import type { InspectionEvent } from 'xstate';
import type { Subscription } from 'rxjs';
import type { HypervisorPort } from '../core/hypervisor-port.js';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { createEngine } from '../engine/engine.js';
import type { BlockCopyEngine, BlockCopyJob } from '../engine/engine.js';
import type { BlockCopyError } from '../core/errors.js';
import { AbortFlags } from '../core/flags.js';
import type { JobResult } from '../engine/job-runner.js';
import type { JobStore } from '../core/job-store.js';
import type { CopyPlan } from '../core/plan.js';
import type { CopyCommand } from './args.js';
import { copyCall, planCopy, startCopy } from './copy-call.js';
import { defaultDomain } from './hypervisor.js';
import type { InterruptSignal, Interrupts } from './interrupts.js';
import { CLEANING_UP } from './interrupts.js';
import { formatBytes, progressLine } from './progress.js';

export type CopyStatus = 'completed' | 'canceled' | 'failed' | 'ready' | 'running' | 'planned';

/** A libvirt-style error as --json prints it. */
export interface ReportError {
  readonly code: string;
  readonly number: number;
  readonly message: string;
}

export interface CopyReport {
  /** The job's outcome, or where it is: always the state `states` ends in. */
  readonly status: CopyStatus;
  readonly pivoted: boolean;
  readonly destinationConsistent: boolean;
  readonly error: ReportError | null;
  readonly states: readonly string[];
  /** The hypervisor the copy ran on: "sim" (the simulator) or "qmp:SOCKET". */
  readonly hypervisor: string;
  /** What the run leaves running on the hypervisor, and why; null when it leaves nothing. */
  readonly left: null | { readonly jobId: string; readonly destination: string; readonly reason: string };
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

function errorJson(error: BlockCopyError | null): ReportError | null {
  return error ? { code: error.code, number: error.number, message: error.message } : null;
}

/** libvirt's VIR_ERR_OPERATION_TIMEOUT (68), for a --timeout abort. */
function timeoutError(disk: string, seconds: number): ReportError {
  return {
    code: 'VIR_ERR_OPERATION_TIMEOUT',
    number: 68,
    message: `Timed out during operation: block copy of disk '${disk}' did not finish within --timeout ${seconds} s and was aborted`,
  };
}

/** libvirt's VIR_ERR_OPERATION_ABORTED (78), for Ctrl-C or SIGTERM. */
function interruptError(disk: string, signal: InterruptSignal): ReportError {
  return {
    code: 'VIR_ERR_OPERATION_ABORTED',
    number: 78,
    message: `operation aborted: block copy of disk '${disk}' was interrupted by ${signal}`,
  };
}

/** Why blockcopy itself aborted the copy. */
type StopRequest = { readonly why: 'timeout' } | { readonly why: 'signal'; readonly signal: InterruptSignal };

/** The status a list of states stands for: the outcome once ended, else ready or running. */
export function statusOf(states: readonly string[]): CopyStatus {
  const last = states[states.length - 1] ?? '';
  if (last === 'completed' || last === 'canceled' || last === 'failed') return last;
  return last.startsWith('ready') ? 'ready' : 'running';
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
  /** Ctrl-C and SIGTERM (main traps them for the whole run); none: the run is not interruptible. */
  readonly interrupts?: Interrupts;
  /** The engine's job id factory (default: the engine's own), e.g. to know a job's node names. */
  readonly jobId?: (domain: string, disk: string) => string;
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
  const hypervisor = deps.hypervisor;
  const say = (text: string) => {
    if (!cmd.json) out.line(text);
  };
  const engine: BlockCopyEngine = createEngine({
    hypervisor,
    clock,
    pollIntervalMs: deps.pollIntervalMs ?? 200,
    ...(deps.inspector ? { inspect: deps.inspector.inspect } : {}),
    ...(deps.jobId ? { jobId: deps.jobId } : {}),
    ...(deps.store ? { store: deps.store } : {}),
  });
  const detachInspector = deps.inspector?.attach(engine);
  const domain = cmd.domain ?? defaultDomain(hypervisor);
  const call = copyCall(cmd, domain);
  const base = { hypervisor: hypervisor.name, left: null };
  const refused = (error: BlockCopyError): CopyRun => {
    if (!cmd.json) out.error(`error: ${error.message}`);
    return {
      report: {
        status: 'failed',
        pivoted: false,
        destinationConsistent: false,
        error: errorJson(error),
        states: [],
        ...base,
      },
      exitCode: 1,
    };
  };
  // Subscribed before the job starts, so that an I/O error event is seen before the pause it causes.
  const pauses = watchPauses(hypervisor, cmd, out);

  try {
    if (cmd.dryRun) {
      const plan = await planCopy(engine, call);
      if (plan.isErr()) return refused(plan.error);
      say(`Plan: ${describePlan(plan.value)}`);
      return {
        report: {
          status: 'planned',
          pivoted: false,
          destinationConsistent: false,
          error: null,
          states: [],
          ...base,
          plan: plan.value,
        },
        exitCode: 0,
      };
    }

    // A signal while the job starts aborts it as soon as it exists.
    // Set from callbacks (signal, timer): read through the holder, which TypeScript does not narrow.
    const stop: { request: StopRequest | null } = { request: null };
    let abortNow: (() => void) | null = null;
    // Once the pivot or finish was requested, a signal no longer aborts: that end is under way.
    let ending = false;
    const disposeInterrupt = deps.interrupts?.onInterrupt((signal) => {
      if (ending) {
        out.error(`blockcopy: ${signal}: the ${cmd.end ?? 'copy'} is already under way; ${CLEANING_UP}`);
        return;
      }
      stop.request ??= { why: 'signal', signal };
      out.error(`blockcopy: ${signal}: aborting the copy and cleaning up`);
      abortNow?.();
    });
    try {
      if (stop.request?.why === 'signal') return notStarted(cmd, out, base.hypervisor, stop.request.signal);
      const started = await startCopy(engine, call, cmd.end, cmd.convergeTimeout ?? null);
      if (started.isErr()) return refused(started.error);
      const job = started.value;
      pauses.follow(job);
      say(`Block Copy started: ${describePlan(job.plan)}`);
      // The abort's answer is used: a refusal other than "already being ended" (a pivot or abort
      // in flight, whose end is then awaited) means the job will not end by our hand.
      let refuseAbort: (error: BlockCopyError) => void = () => {};
      const abortRefused = new Promise<BlockCopyError>((resolve) => (refuseAbort = resolve));
      const abort = () => {
        void engine.blockJobAbort(domain, job.disk, AbortFlags.ASYNC).then((r) => {
          if (r.isErr() && r.error.code !== 'VIR_ERR_OPERATION_INVALID') refuseAbort(r.error);
        });
      };
      if (stop.request !== null) abort();

      if (!cmd.wait && stop.request === null) return leaveRunning(job, out, base.hypervisor, 'running');

      const stopWatching = watch(job, cmd, out);
      const timer =
        cmd.timeout !== null
          ? clock.setTimeout(() => {
              stop.request ??= { why: 'timeout' };
              abort();
            }, cmd.timeout * 1000)
          : undefined;
      abortNow = abort;
      let endError: BlockCopyError | null = null;
      try {
        const reached = await Promise.race([
          waitForReady(job).then(() => 'ready' as const),
          job.result.then(() => 'ended' as const),
        ]);
        // --timeout bounds the wait for the mirroring phase, as in virsh; the end request is not cut short.
        if (timer !== undefined) clock.clearTimeout(timer);
        if (reached === 'ready' && stop.request === null) {
          say('Now in mirroring phase');
          if (cmd.end === null) return leaveRunning(job, out, base.hypervisor, 'ready');
          const endFlags = (cmd.end === 'pivot' ? AbortFlags.PIVOT : 0) | (cmd.async ? AbortFlags.ASYNC : 0);
          ending = true;
          const ended = await engine.blockJobAbort(domain, job.disk, endFlags);
          if (ended.isErr()) {
            endError = ended.error;
            if (!cmd.json) {
              out.error(`error: failed to ${cmd.end} job for disk ${cmd.disk}`);
              out.error(`error: ${ended.error.message}`);
            }
            // Refused (e.g. QEMU would not pivot) and the mirror still runs: virsh leaves it to
            // libvirtd; a one-shot run has no one to leave it to, so it aborts and cleans up.
            if (!(await settled(job))) abort();
          }
        }
        // With --async too: the job is dismissed and the engine's nodes removed before exit.
        const ended = await Promise.race([job.result, abortRefused]);
        if (!('outcome' in ended)) return abortRefusedReport(job, ended, cmd, out, base.hypervisor);
        return finalReport(ended, cmd, out, base.hypervisor, stop.request, endError);
      } finally {
        if (timer !== undefined) clock.clearTimeout(timer);
        stopWatching();
      }
    } finally {
      disposeInterrupt?.();
    }
  } finally {
    pauses.stop();
    detachInspector?.();
    await engine.shutdown();
  }
}

function finalReport(
  result: JobResult,
  cmd: CopyCommand,
  out: Output,
  hypervisor: string,
  stopRequest: StopRequest | null,
  endError: BlockCopyError | null,
): CopyRun {
  const finished = result.outcome === 'canceled' && cmd.end === 'finish' && stopRequest === null && endError === null;
  const success = result.outcome === 'completed' || finished;
  let error = errorJson(result.error) ?? errorJson(endError);
  if (result.outcome === 'canceled' && error === null && stopRequest !== null) {
    error =
      stopRequest.why === 'timeout'
        ? timeoutError(cmd.disk, cmd.timeout ?? 0)
        : interruptError(cmd.disk, stopRequest.signal);
  }
  if (!cmd.json) {
    if (result.outcome === 'completed') out.line('Successfully pivoted');
    else if (finished) out.line('Successfully copied');
    else if (result.outcome === 'canceled') out.line('Copy aborted');
    else out.line('Copy failed');
    if (!success && error !== null && endError === null) out.error(`error: ${error.message}`);
  }
  return {
    report: {
      status: statusOf(result.states),
      pivoted: result.pivoted,
      destinationConsistent: result.destinationConsistent,
      error: success ? null : error,
      states: result.states,
      hypervisor,
      left: null,
    },
    exitCode: success ? 0 : 1,
  };
}

/** Interrupted before the job was started: nothing was started, nothing to clean up. */
function notStarted(cmd: CopyCommand, out: Output, hypervisor: string, signal: InterruptSignal): CopyRun {
  const error = interruptError(cmd.disk, signal);
  if (!cmd.json) {
    out.line('Copy aborted');
    out.error(`error: ${error.message}`);
  }
  return {
    report: {
      status: 'canceled',
      pivoted: false,
      destinationConsistent: false,
      error,
      states: [],
      hypervisor,
      left: null,
    },
    exitCode: 1,
  };
}

/** Ends the run with the job still going, and says what is left where, and why. */
/** The abort was refused: the job goes on, and the report says so instead of waiting forever. */
function abortRefusedReport(
  job: BlockCopyJob,
  error: BlockCopyError,
  cmd: CopyCommand,
  out: Output,
  hypervisor: string,
): CopyRun {
  if (!cmd.json) out.error(`error: ${error.message}`);
  out.error(`blockcopy: left running: the abort was refused; job '${job.jobId}' on disk ${cmd.disk} goes on`);
  const states = job.states();
  return {
    report: {
      status: statusOf(states),
      pivoted: false,
      destinationConsistent: false,
      error: errorJson(error),
      states,
      plan: job.plan,
      hypervisor,
      left: { jobId: job.jobId, destination: job.plan.destination.path, reason: 'the abort was refused' },
    },
    exitCode: 1,
  };
}

/** How blockjob names the hypervisor a copy ran on (the daemon's name 'libvirt:URI' is --connect). */
function hypervisorOption(hypervisor: string, domain: string): string {
  return hypervisor.startsWith('libvirt:')
    ? `--connect ${hypervisor.slice('libvirt:'.length)} --domain ${domain}`
    : `--hypervisor ${hypervisor}`;
}

function leaveRunning(job: BlockCopyJob, out: Output, hypervisor: string, phase: 'running' | 'ready'): CopyRun {
  const why =
    phase === 'ready'
      ? '--wait without --pivot or --finish stops watching in the mirroring phase'
      : 'without --wait, --pivot, --finish or --timeout blockcopy only starts the job';
  const simulated = hypervisor === 'sim';
  const reason = simulated
    ? `${why}; the simulated job ends with this process`
    : `${why}; QEMU job '${job.jobId}' into ${job.plan.destination.path} goes on, recorded in the job store: end it with 'blockcopy blockjob ${job.disk} --pivot' or '--abort' ${hypervisorOption(hypervisor, job.domain)} (or use --pivot, --finish or --timeout to have this command see it through)`;
  out.error(`blockcopy: left running: ${reason}`);
  const states = job.states();
  return {
    report: {
      status: statusOf(states),
      pivoted: false,
      destinationConsistent: false,
      error: null,
      states,
      hypervisor,
      left: simulated ? null : { jobId: job.jobId, destination: job.plan.destination.path, reason },
      plan: job.plan,
    },
    exitCode: 0,
  };
}

/** True when the job has already ended (e.g. right after a refused pivot it has not). */
async function settled(job: BlockCopyJob): Promise<boolean> {
  return Promise.race([
    job.result.then(() => true),
    new Promise<boolean>((resolve) => setImmediate(() => resolve(false))),
  ]);
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

/**
 * A job the hypervisor paused says so on stderr, in every output mode, with the reason: an I/O
 * error with --on-target-error stop|enospc (the job waits for a resume), or a pause by another
 * client. Waiting silently would look like a hang.
 */
function watchPauses(hypervisor: HypervisorPort, cmd: CopyCommand, out: Output) {
  const lastError = new Map<string, { operation: 'read' | 'write'; action: string }>();
  const subs: Subscription[] = [
    hypervisor.events$.subscribe((event) => {
      if (event.kind === 'job-error') lastError.set(event.jobId, { operation: event.operation, action: event.action });
    }),
  ];
  return {
    follow(job: BlockCopyJob): void {
      let paused = false;
      // The reason needs a query: lines go out through one chain, so they keep the states' order.
      let printing: Promise<void> = Promise.resolve();
      const print = (line: () => Promise<string> | string) => {
        printing = printing.then(async () => out.error(await line()));
      };
      subs.push(
        job.stateChanges$.subscribe((state) => {
          const ioError = lastError.get(job.jobId);
          const byError =
            state === 'mirroring.errorPaused' || (state === 'ready.standby' && ioError?.action === 'stop');
          if (byError || state === 'mirroring.paused' || state === 'ready.standby') {
            if (paused) return;
            paused = true;
            if (!byError) {
              print(() => 'Block Copy paused by a block-job-pause from another client: the job waits for a resume');
              return;
            }
            print(async () => {
              const info = await hypervisor.queryJob(job.jobId);
              const nospace = info.isOk() && info.value?.ioStatus === 'nospace';
              const what = nospace ? 'no space left on device' : 'I/O error';
              const where = ioError?.operation === 'read' ? 'reading the source' : 'writing the destination';
              return `Block Copy paused: ${what} ${where} (--on-target-error ${cmd.onTargetError}); the job waits for a resume, Ctrl-C aborts it`;
            });
          } else if (paused && (state === 'mirroring.running' || state === 'ready.synced')) {
            paused = false;
            print(() => 'Block Copy resumed');
          }
        }),
      );
    },
    stop(): void {
      for (const s of subs) s.unsubscribe();
    },
  };
}

/** --verbose: a progress bar on a terminal, plain lines otherwise, and every state change. */
function watch(job: BlockCopyJob, cmd: CopyCommand, out: Output): () => void {
  if (!cmd.verbose || cmd.json) return () => {};
  let lastPercent = -1;
  // The states entered before watching began (validating … mirroring); the current one comes
  // first from stateChanges$, which replays it to a late subscriber.
  for (const state of job.states().slice(0, -1)) out.line(`state: ${state}`);
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
