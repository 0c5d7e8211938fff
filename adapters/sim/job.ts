/**
 * One simulated QEMU 7.2 mirror job (block/mirror.c + job.c), as a small state machine that follows
 * JobSTT and JobVerbTable (jobstt.ts). It knows nothing of timers or images: the hypervisor drives
 * it through `tick()` and the JobHost callbacks, so one job is a handful of numbers (cheap enough
 * for 10,000-job benchmarks) and its behaviour is deterministic given the host.
 *
 * What a job models (qemu-mirror.md §0): progress offset/len, the speed limit honoured only before
 * READY (in 16 MiB chunks), sticky READY, guest writes raising len (background mode: while the job
 * runs, and only after resume while it is paused; write-blocking: len and offset at once), user and
 * error pauses, the complete/cancel semantics of mirror_cancel(), and the on-target-error /
 * on-source-error policies.
 */
import type { HypervisorEvent, HypervisorJobInfo, JobStatus, MirrorSpec } from '../../src/core/hypervisor-port.js';
import { ERRNO_TEXT, errorAction, type FaultHit } from './faults.js';
import { canTransition, isReadyStatus, verbAllowed, verbErrorText, type JobVerb } from './jobstt.js';

/** What a job needs from the hypervisor that runs it. */
export interface JobHost {
  now(): number;
  /** Bytes per second the copy engine can move (it may change between ticks). */
  copyRate(): number;
  emit(event: HypervisorEvent): void;
  /** Join (true) or leave (false) the copy loop that calls tick() periodically. */
  setActive(job: MirrorJob, active: boolean): void;
  /**
   * Run `fn` after the current command has replied (QEMU: the job coroutine or a bottom half),
   * `ms` clock milliseconds later (default 0).
   */
  defer(job: MirrorJob, fn: () => void, ms?: number): void;
  /** The injected fault, if any, that copying job bytes [from, to) runs into. */
  fault(job: MirrorJob, from: number, to: number): FaultHit | null;
  /** `bytes` of data landed in the target image. */
  wrote(job: MirrorJob, bytes: number): void;
  /** Switch the guest onto the target (block-job-complete, at pending → concluded). */
  pivot(job: MirrorJob): void;
  /** A transition JobSTT forbids was attempted: a simulator bug, reported to tests. */
  illegal(job: MirrorJob, from: JobStatus, to: JobStatus): void;
}

/** Largest chunk a rate-limited mirror copies in one go before sleeping (QEMU's bursts, §0.7). */
export const RATE_BURST = 16 * 1024 * 1024;

/** Clock ms between an accepted complete / soft cancel and the job's waiting → … → concluded. */
export const END_DELAY_MS = 10;

export interface MirrorJobInit {
  readonly spec: MirrorSpec;
  /** Bytes to copy at the start: the dirty bitmap after mirror_dirty_init. */
  readonly len: number;
  /** Paths of the source chain when the job started (top first). */
  readonly sourcePaths: readonly string[];
  /** Set when the target's size differs from the source's: the job fails right after starting. */
  readonly failure?: string;
  /**
   * A block-stream (block pull) instead of a mirror: the "target" is the disk's own top image, the
   * speed limit applies throughout, there is no READY, and the job ends by itself (waiting,
   * pending, the chain rewritten, BLOCK_JOB_COMPLETED, concluded). Guest writes add nothing to do.
   */
  readonly stream?: boolean;
}

export class MirrorJob {
  readonly id: string;
  readonly spec: MirrorSpec;
  readonly sourcePaths: readonly string[];
  readonly stream: boolean;
  status: JobStatus = 'undefined';
  offset = 0;
  len: number;
  speed: number;
  /** job->user_paused: set by block-job-pause and by an error 'stop'; resume clears it. */
  userPaused = false;
  ioStatus: 'ok' | 'failed' | 'nospace' = 'ok';
  error: string | undefined;

  /** Background-mode guest writes made while paused: the job loop adds them to len on resume. */
  private dirty = 0;
  /** Fraction of a byte of copy budget carried to the next tick. */
  private carry = 0;
  /** Rate-limit balance in bytes (QEMU's ratelimit): a new chunk may start while it is >= 0. */
  private tokens = 0;
  /** Bytes of started chunks the rate limiter has let through but that are not copied yet. */
  private paid = 0;
  private lastTick: number;
  /** How the job should end once synced: 'pivot' (complete) or 'soft' (cancel after READY). */
  private ending: 'pivot' | 'soft' | null = null;
  /** The ending may act only from a step that runs after the command's reply (§0.2). */
  private endArmed = false;
  private forceCancel = false;
  private readonly failure: string | undefined;

  constructor(
    init: MirrorJobInit,
    private readonly host: JobHost,
  ) {
    this.id = init.spec.jobId;
    this.spec = init.spec;
    this.sourcePaths = init.sourcePaths;
    this.len = init.len;
    this.speed = init.spec.speed;
    this.failure = init.failure;
    this.stream = init.stream ?? false;
    this.lastTick = host.now();
  }

  /** created → running inside blockdev-mirror: these events precede the command's reply (§0.1). */
  start(): void {
    this.to('created');
    this.to('running');
    if (this.failure !== undefined) {
      const failure = this.failure;
      this.host.defer(this, () => this.fail(failure, 0, 0));
      return;
    }
    this.host.setActive(this, true);
    // A zero-length job becomes ready at once, after the reply.
    this.host.defer(this, () => this.tick());
  }

  /** The job concluded by switching the guest onto its target (block-job-complete). */
  get pivoted(): boolean {
    return this.status === 'concluded' && this.ending === 'pivot' && this.error === undefined;
  }

  /** Not yet concluded: the job still holds its source and target. */
  get live(): boolean {
    return this.status !== 'concluded' && this.status !== 'null';
  }

  info(): HypervisorJobInfo {
    const base = {
      jobId: this.id,
      status: this.status,
      offset: this.offset,
      len: this.len,
      speed: this.speed,
      ready: isReadyStatus(this.status),
      paused: this.userPaused,
      ioStatus: this.ioStatus,
    };
    return this.error === undefined ? base : { ...base, error: this.error };
  }

  /** One iteration of mirror_run(): fold in new dirty data, copy, detect READY, end if asked. */
  tick(): void {
    const now = this.host.now();
    const dt = Math.max(0, now - this.lastTick);
    this.lastTick = now;
    if (!this.copying || this.forceCancel) {
      if (!this.copying) this.host.setActive(this, false);
      return;
    }
    if (this.dirty > 0) {
      this.len += this.dirty;
      this.dirty = 0;
    }
    const remaining = this.len - this.offset;
    const budget = this.carry + (this.host.copyRate() * dt) / 1000;
    let n = Math.min(Math.floor(budget), remaining);
    // Budget the copy engine could not use is gone; only the fraction of a byte carries over.
    this.carry = n === Math.floor(budget) ? budget - n : 0;
    // §0.7: the speed limit applies only before READY, chunk-wise like QEMU's ratelimit: a chunk
    // of up to 16 MiB goes at full rate, then the job sleeps until the limit allows the next one
    // (d, e1: 16 MiB copied after 0.3–1 s at 8 MiB/s).
    const limited = this.status === 'running' && this.speed > 0;
    if (limited) {
      this.tokens += (this.speed * dt) / 1000;
      while (this.tokens >= 0 && this.paid < remaining) {
        const chunk = Math.min(RATE_BURST, remaining - this.paid);
        this.paid += chunk;
        this.tokens -= chunk;
      }
      if (this.tokens > 0) this.tokens = 0; // nothing left to let through: no banking
      n = Math.min(n, this.paid);
    }
    if (n > 0) {
      const hit = this.host.fault(this, this.offset, this.offset + n);
      const done = hit === null ? n : hit.at - this.offset;
      this.copy(done);
      if (limited) this.paid -= done;
      if (hit !== null) {
        this.ioError(hit);
        return;
      }
    }
    if (!limited) this.paid = 0;
    if (this.offset < this.len) return;
    if (this.stream) {
      // stream_run() ends by itself: the chain is rewritten at pending (the "pivot" of a pull).
      this.ending = 'pivot';
      this.finish();
      return;
    }
    if (this.status === 'running') {
      // JSC(ready) always just before BLOCK_JOB_READY; READY is never repeated (sticky).
      this.to('ready');
      this.emit({ kind: 'job-ready', jobId: this.id, len: this.len, offset: this.offset, speed: this.speed });
    }
    if (this.ending !== null && this.endArmed) {
      this.finish();
      return;
    }
    if (this.dirty === 0) this.host.setActive(this, false); // idle until the guest writes
  }

  /** A guest write to the source while the job runs. */
  guestWrite(bytes: number): void {
    if (!this.live || this.status === 'aborting' || bytes <= 0 || this.stream) return;
    if (this.spec.copyMode === 'write-blocking') {
      // Active mirroring: the write is copied synchronously, even while paused (g2).
      this.len += bytes;
      this.offset += bytes;
      this.host.wrote(this, bytes);
      return;
    }
    // Background mode: the dirty bitmap grows; len follows when the job loop runs (§0.6), which
    // for a running job is during the write itself (e3: len +4 MiB right after the write).
    if (this.copying) {
      this.len += bytes;
      this.host.setActive(this, true);
    } else this.dirty += bytes;
  }

  // ---- verbs: each returns null when accepted, else QEMU's GenericError text ----

  pause(): string | null {
    if (!verbAllowed('pause', this.status)) return this.verbError('pause');
    if (this.userPaused) return 'Job is already paused';
    this.userPaused = true;
    this.to(this.status === 'ready' ? 'standby' : 'paused');
    this.host.setActive(this, false);
    return null;
  }

  resume(): string | null {
    // job_user_resume_locked checks user_paused before the verb table.
    if (!this.userPaused) return "Can't resume a job that was not paused";
    if (!verbAllowed('resume', this.status)) return this.verbError('resume');
    this.unpause();
    this.host.setActive(this, true);
    // A complete accepted in standby acts only now (§0.5), after the resume's reply.
    if (this.ending !== null) this.kickEnding();
    return null;
  }

  complete(): string | null {
    if (!verbAllowed('complete', this.status)) return this.verbError('complete');
    if (this.forceCancel || this.ending === 'soft') return `The active block job '${this.id}' cannot be completed`;
    this.ending = 'pivot';
    if (!this.userPaused) this.kickEnding();
    return null;
  }

  cancel(force: boolean): string | null {
    // blockdev.c qmp_block_job_cancel refuses a soft cancel of a (user or error) paused job first.
    if (!force && this.userPaused) return `The block job for device '${this.id}' is currently paused`;
    if (!verbAllowed('cancel', this.status)) return this.verbError('cancel');
    // mirror_cancel(): before READY every cancel is a force cancel.
    if (force || !isReadyStatus(this.status)) {
      if (!this.forceCancel) {
        this.forceCancel = true;
        this.host.defer(this, () => this.abort());
      }
      return null;
    }
    this.ending = 'soft';
    this.kickEnding();
    return null;
  }

  setSpeed(speed: number): string | null {
    if (!verbAllowed('set-speed', this.status)) return this.verbError('set-speed');
    if (speed < 0) return "Parameter 'speed' expects a non-negative value";
    this.speed = speed;
    this.tokens = 0; // block_job_set_speed resets the rate limit: the next chunk may start at once
    return null;
  }

  /** Only reachable through QMP (auto-finalize is always true here, so never in 'pending'). */
  finalize(): string | null {
    return verbAllowed('finalize', this.status) ? null : this.verbError('finalize');
  }

  dismiss(): string | null {
    if (!verbAllowed('dismiss', this.status)) return this.verbError('dismiss');
    this.to('null');
    return null;
  }

  /** `quit` (k1): drain flaps paused/running three times, then a force cancel; the job is removed. */
  quit(): void {
    if (this.status === 'concluded') {
      this.to('null');
      return;
    }
    if (!this.live || this.status === 'aborting') return;
    if (this.userPaused) this.unpause();
    const ready = isReadyStatus(this.status);
    for (let i = 0; i < 3; i++) {
      this.to(ready ? 'standby' : 'paused');
      this.to(ready ? 'ready' : 'running');
    }
    this.abortNow();
    this.to('null');
  }

  // ---- internals ----

  private get copying(): boolean {
    return this.status === 'running' || this.status === 'ready';
  }

  private unpause(): void {
    this.userPaused = false;
    this.ioStatus = 'ok';
    this.lastTick = this.host.now();
    this.tokens = 0; // the rate-limit slice expired while paused: the next chunk starts at once (f)
    this.to(this.status === 'standby' ? 'ready' : 'running');
  }

  private kickEnding(): void {
    this.endArmed = false;
    // The final sync and target flush take QEMU a few ms (2–6 ms in a–h, 30 ms in g2).
    this.host.defer(
      this,
      () => {
        this.endArmed = true;
        if (this.copying) {
          this.host.setActive(this, true);
          this.tick();
        }
      },
      END_DELAY_MS,
    );
  }

  private copy(bytes: number): void {
    if (bytes <= 0) return;
    this.offset += bytes;
    this.host.wrote(this, bytes);
  }

  private ioError(hit: FaultHit): void {
    const policy = hit.side === 'target' ? this.spec.onTargetError : this.spec.onSourceError;
    const action = errorAction(policy, hit.errno);
    this.emit({ kind: 'job-error', jobId: this.id, operation: hit.side === 'target' ? 'write' : 'read', action });
    switch (action) {
      case 'ignore':
        // The region is re-dirtied and retried on the next iteration; the job goes on.
        this.carry = 0;
        return;
      case 'stop':
        // block_job_error_action: job_pause + user_paused, so resume retries and soft cancel fails.
        this.userPaused = true;
        this.ioStatus = hit.errno === 'ENOSPC' ? 'nospace' : 'failed';
        this.carry = 0;
        this.to(this.status === 'ready' ? 'standby' : 'paused');
        this.host.setActive(this, false);
        return;
      case 'report':
        this.fail(ERRNO_TEXT[hit.errno], this.len, this.offset);
        return;
    }
  }

  /** The job fails: aborting, BLOCK_JOB_COMPLETED with an error, concluded. */
  private fail(error: string, len: number, offset: number): void {
    if (!this.live) return;
    this.error = error;
    this.len = len;
    this.offset = offset;
    this.to('aborting');
    this.emit({ kind: 'job-completed', jobId: this.id, len, offset, speed: this.speed, error });
    this.to('concluded');
    this.host.setActive(this, false);
  }

  /** Synced and asked to end: waiting, pending, (pivot), BLOCK_JOB_COMPLETED, concluded. */
  private finish(): void {
    this.to('waiting');
    this.to('pending');
    if (this.ending === 'pivot') this.host.pivot(this);
    this.emit({ kind: 'job-completed', jobId: this.id, len: this.len, offset: this.offset, speed: this.speed });
    this.to('concluded');
    this.host.setActive(this, false);
  }

  /** Deferred force cancel. A paused job is resumed first to die (h4: running, aborting, …). */
  private abort(): void {
    if (!this.live || this.status === 'aborting') return;
    if (this.userPaused) this.unpause();
    this.abortNow();
  }

  private abortNow(): void {
    // query-jobs / query-block-jobs report a cancelled job's error as ECANCELED's text (v5).
    this.error = 'Operation canceled';
    this.to('aborting');
    this.emit({ kind: 'job-cancelled', jobId: this.id, len: this.len, offset: this.offset, speed: this.speed });
    this.to('concluded');
    this.host.setActive(this, false);
  }

  private to(next: JobStatus): void {
    if (next === this.status) return; // job.c emits only on a change
    if (!canTransition(this.status, next)) this.host.illegal(this, this.status, next);
    this.status = next;
    this.emit({ kind: 'job-status', jobId: this.id, status: next });
  }

  private emit(event: HypervisorEvent): void {
    this.host.emit(event);
  }

  private verbError(verb: JobVerb): string {
    return verbErrorText(this.id, this.status, verb);
  }
}
