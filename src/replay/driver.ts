/**
 * Replays a recorded QMP session through the engine: the hypervisor side of the recording
 * (greeting, replies, events, and its end) goes through ReplayHypervisor into the job machine, in
 * recorded order and in virtual time (the engine's polls tick on a VirtualClock advanced by the
 * recorded timestamps), and the user's requests are taken from the recorded client commands:
 *
 *   blockdev-mirror / drive-mirror (the first one)  → virDomainBlockCopy (starts the job)
 *   block-job-complete, job-complete                → blockJobAbort(PIVOT)
 *   block-job-cancel                                → blockJobAbort, force → {force: true}
 *   job-cancel (QEMU: always force)                 → blockJobAbort {force: true}
 *   block-job-pause/-resume, job-pause/-resume      → blockJobPause / blockJobResume
 *   block-job-set-speed                             → blockJobSetSpeed (bytes/s)
 *
 * A request naming another job than the replayed one is sent for a disk of that name (the engine
 * refuses it: no such job). A request the engine refuses is listed under `refused`, and QEMU's
 * recorded answer to it is skipped; one the engine accepts makes the port call that consumes it.
 * A request that QEMU refused (its error comes back through the API) is listed too. Every other
 * command (blockdev-add, exports, the recorder's own queries and probes, job-finalize,
 * job-dismiss, further mirrors) is the recorder's, not the user's: its reply is decoded and, for
 * query-jobs/query-block-jobs, used to answer the engine's polls. After the recorded `quit` was
 * answered the end of the recording is QEMU gone (hypervisor-gone); a recording that just stops
 * is a lost connection (the job is then reported as still running/ready).
 */
import { err, ok, type Result, type ResultAsync } from 'neverthrow';
import { VirtualClock } from '../core/clock.js';
import { createEngine, type BlockCopyJob } from '../engine/engine.js';
import type { BlockCopyError } from '../core/errors.js';
import { AbortFlags, BandwidthFlags } from '../core/flags.js';
import type { JobResult } from '../engine/job-runner.js';
import { ReplayHypervisor, type DecodeFailure, type RecordedCall } from './hypervisor.js';
import { deriveSetup, type ReplaySetup } from './setup.js';
import { commandOf, type RecordedCommand, type TraceLine } from './trace.js';

export type ReplayRequest = 'pivot' | 'abort' | 'abort-force' | 'pause' | 'resume' | 'set-speed';

export interface ErrorJson {
  readonly code: string;
  readonly number: number;
  readonly message: string;
}

export interface RefusedRequest {
  readonly request: ReplayRequest;
  /** The recorded command, e.g. "block-job-complete". */
  readonly command: string;
  /** Its recorded id, e.g. "c14". */
  readonly id: string;
  readonly error: ErrorJson;
}

/** The CLI's copy report (src/cli/copy.ts CopyReport, without a plan) plus what the replay saw. */
export interface ReplayReport {
  readonly status: 'completed' | 'canceled' | 'failed' | 'ready' | 'running' | 'detached';
  readonly pivoted: boolean;
  readonly destinationConsistent: boolean;
  readonly error: ErrorJson | null;
  readonly states: readonly string[];
  /** Requests refused, in recorded order. */
  readonly refused: readonly RefusedRequest[];
  /** Recorded hypervisor lines the QMP decoder rejected (they were not replayed). */
  readonly decodeErrors: readonly DecodeFailure[];
}

export interface ReplayOptions {
  /** Name of the port (default "replay"). */
  readonly name?: string;
  /** The engine's poll interval in virtual ms (default 500, the engine's default). */
  readonly pollIntervalMs?: number;
}

export interface ReplaySetupFailure {
  readonly detail: string;
}

const SETTLE_ROUNDS = 3;

/** Lets every promise chain the last step started run to its end (nothing here uses real timers). */
async function settle(): Promise<void> {
  for (let i = 0; i < SETTLE_ROUNDS; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

function errorJson(error: BlockCopyError | null): ErrorJson | null {
  return error ? { code: error.code, number: error.number, message: error.message } : null;
}

interface Request {
  readonly request: ReplayRequest;
  readonly call: RecordedCall;
  /** The job the command names. */
  readonly target: string;
}

/** A recorded client command as a user request, or null for the recorder's own commands. */
export function requestOf(command: RecordedCommand): Request | null {
  const a = command.args;
  const named = a['device'] ?? a['id'];
  const target = typeof named === 'string' ? named : '';
  switch (command.execute) {
    case 'block-job-complete':
    case 'job-complete':
      return { request: 'pivot', call: 'complete', target };
    case 'block-job-cancel':
      return { request: a['force'] === true ? 'abort-force' : 'abort', call: 'cancel', target };
    case 'job-cancel':
      return { request: 'abort-force', call: 'cancel', target };
    case 'block-job-pause':
    case 'job-pause':
      return { request: 'pause', call: 'pause', target };
    case 'block-job-resume':
    case 'job-resume':
      return { request: 'resume', call: 'resume', target };
    case 'block-job-set-speed':
      return { request: 'set-speed', call: 'speed', target };
    default:
      return null;
  }
}

/** Replays a parsed trace; an error only when the trace holds no copy to replay. */
export async function replayTrace(
  lines: readonly TraceLine[],
  options: ReplayOptions = {},
): Promise<Result<ReplayReport, ReplaySetupFailure>> {
  const derived = deriveSetup(lines);
  if (derived.isErr()) return err(derived.error);
  return ok(await run(lines, derived.value, options));
}

async function run(lines: readonly TraceLine[], setup: ReplaySetup, options: ReplayOptions): Promise<ReplayReport> {
  const clock = new VirtualClock();
  const hv = new ReplayHypervisor(setup, options.name ?? 'replay');
  const engine = createEngine({
    hypervisor: hv,
    clock,
    pollIntervalMs: options.pollIntervalMs ?? 500,
    jobId: () => setup.jobId,
  });
  const states: string[] = [];
  const stateSub = engine.jobStates$.subscribe((change) => {
    if (change.jobId === setup.jobId) states.push(change.state);
  });
  const refused: { order: number; entry: RefusedRequest }[] = [];
  let job: BlockCopyJob | null = null;
  let startError: BlockCopyError | null = null;
  let result: JobResult | null = null;
  let quitAnswered = false;
  let quitId: string | null = null;

  const refuse = (order: number, command: RecordedCommand, request: ReplayRequest, error: BlockCopyError) => {
    refused.push({
      order,
      entry: { request, command: command.execute, id: command.id ?? '', error: errorJson(error)! },
    });
  };

  const dispatch = async (order: number, command: RecordedCommand, req: Request): Promise<void> => {
    const disk = req.target === setup.jobId ? setup.disk : req.target;
    const id = command.id ?? '';
    hv.expect(req.call, id);
    let call: ResultAsync<void, BlockCopyError>;
    switch (req.request) {
      case 'pivot':
        call = engine.blockJobAbort(setup.domain, disk, AbortFlags.ASYNC | AbortFlags.PIVOT);
        break;
      case 'abort':
      case 'abort-force':
        call = engine.blockJobAbort(setup.domain, disk, AbortFlags.ASYNC, { force: req.request === 'abort-force' });
        break;
      case 'pause':
        call = engine.blockJobPause(setup.domain, disk);
        break;
      case 'resume':
        call = engine.blockJobResume(setup.domain, disk);
        break;
      case 'set-speed': {
        const speed = command.args['speed'];
        call = engine.blockJobSetSpeed(
          setup.domain,
          disk,
          typeof speed === 'number' ? speed : Number.NaN,
          BandwidthFlags.BYTES,
        );
        break;
      }
    }
    // Whenever it comes (at once for the engine's own refusal, at QEMU's reply otherwise).
    void call.then((r) => {
      if (r.isErr()) refuse(order, command, req.request, r.error);
    });
    await settle();
    hv.settleExpectation(req.call, id);
  };

  for (const [index, line] of lines.entries()) {
    const previous = index > 0 ? lines[index - 1]!.t : line.t;
    const dt = Math.max(0, Math.round((line.t - previous) * 1000));
    if (dt > 0) await clock.advance(dt);
    switch (line.kind) {
      case 'command': {
        const command = commandOf(line)!;
        hv.noteCommand(command);
        if (command.execute === 'quit') quitId = command.id;
        if (index === setup.mirrorIndex) {
          hv.expect('start', setup.mirrorCommand);
          void engine
            .blockCopy(
              setup.domain,
              setup.disk,
              setup.destination,
              { bandwidth: setup.bandwidth },
              setup.flags,
              setup.options,
            )
            .then((r) => {
              if (r.isOk()) {
                job = r.value;
                void job.result.then((res) => (result = res));
              } else startError = r.error;
            });
          await settle();
          hv.settleExpectation('start', setup.mirrorCommand);
          break;
        }
        const req = requestOf(command);
        if (req !== null) await dispatch(index, command, req);
        break;
      }
      case 'greeting':
      case 'return':
      case 'error':
      case 'event': {
        hv.deliver(line);
        const id = (line.msg as Record<string, unknown> | null)?.['id'];
        if (quitId !== null && id === quitId) quitAnswered = true;
        break;
      }
      case 'note':
        break;
    }
    await settle();
  }
  hv.endOfRecording(quitAnswered);
  await settle();

  const finished = result as JobResult | null;
  const started = job as BlockCopyJob | null;
  const failedToStart = startError as BlockCopyError | null;
  let report: Omit<ReplayReport, 'refused' | 'decodeErrors'>;
  if (finished) {
    report = {
      status: finished.outcome,
      pivoted: finished.pivoted,
      destinationConsistent: finished.destinationConsistent,
      error: errorJson(finished.error),
      states: finished.states,
    };
  } else if (started) {
    report = {
      status: started.state().startsWith('ready') ? 'ready' : 'running',
      pivoted: false,
      destinationConsistent: false,
      error: null,
      states: started.states(),
    };
  } else {
    report = {
      status: 'failed',
      pivoted: false,
      destinationConsistent: false,
      error: errorJson(failedToStart),
      states: [...states],
    };
  }
  stateSub.unsubscribe();
  engine.close();
  await hv.close();
  return {
    ...report,
    refused: refused.sort((a, b) => a.order - b.order).map((r) => r.entry),
    decodeErrors: [...hv.decodeErrors],
  };
}
