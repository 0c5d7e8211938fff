/**
 * A HypervisorPort that answers from a recorded QMP session instead of a QEMU process.
 *
 * The replay driver (driver.ts) walks the trace and hands this port every recorded line from the
 * hypervisor side (greeting, replies, events) in recorded order. Each is re-serialized to a QMP
 * line and pushed through the adapter's QmpDecoder, and events are normalized with the adapter's
 * own mapEvent, so the decoding under test is the real one; a line the decoder rejects becomes a
 * decode error value and is otherwise dropped.
 *
 * Port calls are answered as follows:
 * - startMirror / completeJob / cancelJob / pauseJob / resumeJob / setJobSpeed: the driver says
 *   which recorded command the engine's call stands for (`expect`), and the call returns what
 *   QEMU answered to that command id, once the replay reaches the reply (with the QMP adapter's
 *   idempotence rules: "already paused" is fine, a complete of a job that is already completing
 *   is fine, …). A call the recording has no command for fails with `invalid`.
 * - queryJob: from the job as the replay knows it at that moment: the most recent recorded
 *   query-jobs/query-block-jobs reply, updated by every event replayed since.
 * - getDomain / describeDisk / probeDestination: from the setup the recording made (setup.ts).
 * - createDestination / removeDestination / dismissJob: succeed (file work and clean-up the
 *   recording has no trace of; dismissing is harmless in QEMU either way).
 * - activeImage: the destination once the job completed after a complete QEMU accepted, else
 *   the source (the recorded graph queries agree in every trace).
 * When the recording ends, calls still waiting for a reply fail with a connection error.
 */
import { err, ok, ResultAsync, type Result } from 'neverthrow';
import { Subject } from 'rxjs';
import type {
  CreateDestinationSpec,
  DestinationProbe,
  DiskInfo,
  DiskNames,
  DomainInfo,
  HypervisorError,
  HypervisorEvent,
  HypervisorJobInfo,
  HypervisorPort,
  JobStatus,
  MirrorSpec,
} from '../core/hypervisor-port.js';
import { isJobStatus } from '../core/hypervisor-port.js';
import { QmpDecoder, type QmpDecodeError } from '../../adapters/qmp/decoder.js';
import { mapEvent } from '../../adapters/qmp/qemu-adapter.js';
import type { ReplaySetup } from './setup.js';
import type { RecordedCommand, TraceLine } from './trace.js';

/** The port calls that stand for a recorded client command. */
export type RecordedCall = 'start' | 'complete' | 'cancel' | 'pause' | 'resume' | 'speed';

export interface DecodeFailure {
  /** Line number in the trace file. */
  readonly line: number;
  readonly kind: QmpDecodeError['kind'];
  readonly detail: string;
}

type Reply = Result<unknown, { readonly errorClass: string; readonly desc: string }>;

interface JobView {
  present: boolean;
  status: JobStatus;
  offset: number;
  len: number;
  speed: number;
  ready: boolean;
  paused: boolean;
  ioStatus: 'ok' | 'failed' | 'nospace';
  error: string | undefined;
}

function qmpError(command: string, e: { errorClass: string; desc: string }): HypervisorError {
  return { kind: 'qmp', errorClass: e.errorClass, command, desc: e.desc };
}

function num(v: unknown, fallback: number): number {
  return typeof v === 'number' ? v : fallback;
}

export class ReplayHypervisor implements HypervisorPort {
  readonly name: string;
  readonly decodeErrors: DecodeFailure[] = [];
  private readonly subject = new Subject<HypervisorEvent>();
  readonly events$ = this.subject.asObservable();
  private readonly decoder = new QmpDecoder();
  private readonly commands = new Map<string, RecordedCommand>();
  private readonly replies = new Map<string, Reply>();
  private readonly waiting = new Map<string, (reply: Reply | null) => void>();
  private readonly expected = new Map<RecordedCall, string>();
  private readonly skipped = new Set<string>();
  private readonly job: JobView = {
    present: false,
    status: 'undefined',
    offset: 0,
    len: 0,
    speed: 0,
    ready: false,
    paused: false,
    ioStatus: 'ok',
    error: undefined,
  };
  /** The last end command QEMU accepted for the job, and whether the job then pivoted. */
  private lastEnd: 'complete' | 'cancel' | null = null;
  private pivoted = false;
  private ended = false;

  constructor(
    private readonly setup: ReplaySetup,
    name = 'replay',
  ) {
    this.name = name;
  }

  // ------------------------------------------------------------- driver side

  /** A recorded client command (so that its reply can be interpreted). */
  noteCommand(command: RecordedCommand): void {
    if (command.id !== null) this.commands.set(command.id, command);
  }

  /** The engine's next `call` stands for the recorded command `id`. */
  expect(call: RecordedCall, id: string): void {
    this.expected.set(call, id);
  }

  /**
   * Ends an expectation. Returns true if the engine made the call; if it did not (it refused the
   * request itself), QEMU's recorded reply to that command is skipped.
   */
  settleExpectation(call: RecordedCall, id: string): boolean {
    if (this.expected.get(call) !== id) return true;
    this.expected.delete(call);
    this.skipped.add(id);
    this.replies.delete(id);
    return false;
  }

  /** Delivers a recorded line from the hypervisor side, through the QMP decoder. */
  deliver(line: TraceLine): void {
    const raw = typeof line.msg === 'string' ? line.msg : JSON.stringify(line.msg);
    for (const decoded of this.decoder.push(`${raw}\n`)) {
      if (decoded.isErr()) {
        this.decodeErrors.push({ line: line.line, kind: decoded.error.kind, detail: decoded.error.detail });
        continue;
      }
      const msg = decoded.value;
      switch (msg.type) {
        case 'greeting':
          break;
        case 'event': {
          const event = mapEvent(msg);
          if (event === null) break;
          this.observe(event);
          this.subject.next(event);
          break;
        }
        case 'return':
          this.reply(msg.id, ok(msg.value));
          break;
        case 'error':
          this.reply(msg.id, err({ errorClass: msg.errorClass, desc: msg.desc }));
          break;
      }
    }
  }

  /**
   * The recording is over: `gone` (QEMU quit or died) or the connection simply ends. Calls still
   * waiting for a reply fail.
   */
  endOfRecording(gone: boolean): void {
    if (this.ended) return;
    this.ended = true;
    for (const decoded of this.decoder.end())
      if (decoded.isErr()) this.decodeErrors.push({ line: 0, kind: decoded.error.kind, detail: decoded.error.detail });
    const reason = gone ? 'QEMU quit (end of recording)' : 'end of recording';
    this.subject.next(gone ? { kind: 'hypervisor-gone', reason } : { kind: 'connection-lost', reason });
    for (const resolve of this.waiting.values()) resolve(null);
    this.waiting.clear();
  }

  // ------------------------------------------------------------- what the replay knows

  private mine(jobId: unknown): boolean {
    return jobId === this.setup.jobId;
  }

  private observe(event: HypervisorEvent): void {
    const j = this.job;
    if (!('jobId' in event) || !this.mine(event.jobId)) return;
    switch (event.kind) {
      case 'job-status':
        if (event.status === 'null') {
          j.present = false;
          break;
        }
        j.present = true;
        j.status = event.status;
        j.paused = event.status === 'paused' || event.status === 'standby';
        if (event.status === 'ready') j.ready = true;
        if (event.status === 'running') j.ioStatus = 'ok';
        break;
      case 'job-ready':
        Object.assign(j, { ready: true, offset: event.offset, len: event.len, speed: event.speed });
        break;
      case 'job-completed':
        Object.assign(j, { offset: event.offset, len: event.len, speed: event.speed, error: event.error });
        if (event.error === undefined && this.lastEnd === 'complete') this.pivoted = true;
        break;
      case 'job-cancelled':
        Object.assign(j, { offset: event.offset, len: event.len, speed: event.speed });
        break;
      case 'job-error':
        if (event.action === 'stop') j.ioStatus = 'failed';
        break;
    }
  }

  private reply(id: unknown, reply: Reply): void {
    if (typeof id !== 'string' || this.skipped.has(id)) return;
    const command = this.commands.get(id);
    if (command && reply.isOk()) this.learn(command, reply.value);
    const resolve = this.waiting.get(id);
    if (resolve) {
      this.waiting.delete(id);
      resolve(reply);
    } else this.replies.set(id, reply);
  }

  /** Updates the job from a successful reply (queries, and accepted end commands). */
  private learn(command: RecordedCommand, value: unknown): void {
    const j = this.job;
    const target = command.args['device'] ?? command.args['id'];
    switch (command.execute) {
      case 'block-job-complete':
      case 'job-complete':
        if (this.mine(target)) this.lastEnd = 'complete';
        return;
      case 'block-job-cancel':
      case 'job-cancel':
        if (this.mine(target)) this.lastEnd = 'cancel';
        return;
      case 'query-block-jobs': {
        if (!Array.isArray(value)) return;
        const b = (value as Record<string, unknown>[]).find((x) => this.mine(x['device']));
        if (!b) {
          j.present = false;
          return;
        }
        j.present = true;
        if (isJobStatus(b['status'])) j.status = b['status'];
        j.offset = num(b['offset'], j.offset);
        j.len = num(b['len'], j.len);
        j.speed = num(b['speed'], j.speed);
        j.ready = b['ready'] === true;
        j.paused = b['paused'] === true;
        const io = b['io-status'];
        j.ioStatus = io === 'failed' || io === 'nospace' ? io : 'ok';
        if (typeof b['error'] === 'string') j.error = b['error'];
        return;
      }
      case 'query-jobs': {
        if (!Array.isArray(value)) return;
        const q = (value as Record<string, unknown>[]).find((x) => this.mine(x['id']));
        if (!q) {
          j.present = false;
          return;
        }
        j.present = true;
        if (isJobStatus(q['status'])) j.status = q['status'];
        j.offset = num(q['current-progress'], j.offset);
        j.len = num(q['total-progress'], j.len);
        if (typeof q['error'] === 'string') j.error = q['error'];
        return;
      }
    }
  }

  /** The recorded reply to the command the engine's call stands for. */
  private call(call: RecordedCall, what: string): ResultAsync<{ command: string; reply: Reply }, HypervisorError> {
    const id = this.expected.get(call);
    if (id === undefined)
      return new ResultAsync(
        Promise.resolve(err({ kind: 'invalid', command: what, desc: `the recording has no ${what} command here` })),
      );
    this.expected.delete(call);
    const command = this.commands.get(id)?.execute ?? what;
    const stored = this.replies.get(id);
    if (stored !== undefined) {
      this.replies.delete(id);
      return new ResultAsync(Promise.resolve(ok({ command, reply: stored })));
    }
    if (this.ended) return new ResultAsync(Promise.resolve(err(this.noReply(command))));
    return new ResultAsync(
      new Promise<Result<{ command: string; reply: Reply }, HypervisorError>>((resolve) => {
        this.waiting.set(id, (reply) => resolve(reply === null ? err(this.noReply(command)) : ok({ command, reply })));
      }),
    );
  }

  private noReply(command: string): HypervisorError {
    return { kind: 'connection', command, desc: 'the recording ended before QEMU replied' };
  }

  /** A recorded command's outcome; the listed error texts count as done (the adapter's idempotence). */
  private command(call: RecordedCall, what: string, alreadyDone: readonly string[] = []) {
    return this.call(call, what).andThen(({ command, reply }) =>
      reply.isOk() || alreadyDone.includes(reply.error.desc) ? ok(undefined) : err(qmpError(command, reply.error)),
    );
  }

  // ------------------------------------------------------------- HypervisorPort

  getDomain(domain: string): ResultAsync<DomainInfo | null, HypervisorError> {
    const info: DomainInfo | null =
      domain === this.setup.domain
        ? { name: domain, running: !this.ended, persistent: false, disks: [this.setup.disk] }
        : null;
    return new ResultAsync(Promise.resolve(ok(info)));
  }

  /** The recorded setup's one disk, under its one name; its job while the replay shows one live. */
  listDisks(domain: string): ResultAsync<readonly DiskNames[] | null, HypervisorError> {
    if (domain !== this.setup.domain) return new ResultAsync(Promise.resolve(ok(null)));
    const j = this.job;
    const live = j.present && j.status !== 'concluded' && j.status !== 'null' && j.status !== 'undefined';
    const disk: DiskNames = {
      domain,
      disk: this.setup.disk,
      device: this.setup.disk,
      drive: null,
      nodeName: null,
      exportId: null,
      source: this.pivoted ? this.setup.destination.path : (this.setup.chain[0]?.path ?? ''),
      chain: this.setup.chain,
      job: live ? { jobId: this.setup.jobId, type: 'mirror', status: j.status } : null,
    };
    return new ResultAsync(Promise.resolve(ok([disk])));
  }

  describeDisk(domain: string, disk: string): ResultAsync<DiskInfo | null, HypervisorError> {
    const found = domain === this.setup.domain && disk === this.setup.disk && this.setup.chain.length > 0;
    return new ResultAsync(Promise.resolve(ok(found ? { domain, disk, chain: this.setup.chain } : null)));
  }

  probeDestination(path: string): ResultAsync<DestinationProbe, HypervisorError> {
    const probe: DestinationProbe = path === this.setup.destination.path ? this.setup.probe : { exists: false };
    return new ResultAsync(Promise.resolve(ok(probe)));
  }

  createDestination(_spec: CreateDestinationSpec): ResultAsync<void, HypervisorError> {
    return new ResultAsync(Promise.resolve(ok(undefined)));
  }

  removeDestination(_path: string): ResultAsync<void, HypervisorError> {
    return new ResultAsync(Promise.resolve(ok(undefined)));
  }

  startMirror(_spec: MirrorSpec): ResultAsync<void, HypervisorError> {
    return this.command('start', 'blockdev-mirror');
  }

  queryJob(jobId: string): ResultAsync<HypervisorJobInfo | null, HypervisorError> {
    const j = this.job;
    if (this.ended) return new ResultAsync(Promise.resolve(err(this.noReply('query-jobs'))));
    const info: HypervisorJobInfo | null =
      this.mine(jobId) && j.present
        ? {
            jobId,
            status: j.status,
            offset: j.offset,
            len: j.len,
            speed: j.speed,
            ready: j.ready,
            paused: j.paused,
            ioStatus: j.ioStatus,
            ...(j.error !== undefined ? { error: j.error } : {}),
          }
        : null;
    return new ResultAsync(Promise.resolve(ok(info)));
  }

  completeJob(_jobId: string): ResultAsync<void, HypervisorError> {
    return this.call('complete', 'block-job-complete').andThen(({ command, reply }) => {
      if (reply.isOk()) return ok(undefined);
      // As the QMP adapter: a completion already under way, or already done (pivoted), is fine.
      const s = this.job.present ? this.job.status : null;
      if (s === 'waiting' || s === 'pending' || (s === 'concluded' && this.job.error === undefined && this.pivoted))
        return ok(undefined);
      return err(qmpError(command, reply.error));
    });
  }

  cancelJob(_jobId: string, _force: boolean): ResultAsync<void, HypervisorError> {
    return this.call('cancel', 'block-job-cancel').andThen(({ command, reply }) => {
      if (reply.isOk() || reply.error.errorClass === 'DeviceNotActive') return ok(undefined);
      const s = this.job.present ? this.job.status : null;
      if (s === 'aborting' || (s === 'concluded' && !this.pivoted)) return ok(undefined);
      return err(qmpError(command, reply.error));
    });
  }

  pauseJob(_jobId: string): ResultAsync<void, HypervisorError> {
    return this.command('pause', 'block-job-pause', ['Job is already paused']);
  }

  resumeJob(_jobId: string): ResultAsync<void, HypervisorError> {
    return this.command('resume', 'block-job-resume', ["Can't resume a job that was not paused"]);
  }

  setJobSpeed(_jobId: string, _bytesPerSecond: number): ResultAsync<void, HypervisorError> {
    return this.command('speed', 'block-job-set-speed');
  }

  dismissJob(_jobId: string): ResultAsync<void, HypervisorError> {
    return new ResultAsync(Promise.resolve(ok(undefined)));
  }

  activeImage(_domain: string, _disk: string): ResultAsync<string, HypervisorError> {
    const path = this.pivoted ? this.setup.destination.path : (this.setup.chain[0]?.path ?? '');
    return new ResultAsync(Promise.resolve(ok(path)));
  }

  close(): Promise<void> {
    this.subject.complete();
    return Promise.resolve();
  }
}
