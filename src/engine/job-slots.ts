/**
 * Concurrency limits: at most N copies per host, and at most M per destination filesystem, run
 * at once; the others wait in a queue and start in order (FIFO by the time they were asked for)
 * as slots free. One JobSlots may be shared by several engines (the daemon has one engine per
 * hypervisor connection, and the limit is the host's). With a per-filesystem limit, the oldest
 * queued copy whose filesystem has room starts: a full filesystem does not hold up the others.
 *
 * Hand-written: a counter and a sorted array; a scheduling library would add more than it saves.
 */
import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';
import type { Result } from 'neverthrow';
import { err, ok } from 'neverthrow';
import type { BlockCopyError } from '../core/errors.js';
import { blockCopyError } from '../core/errors.js';

export interface JobSlotLimits {
  /** Copies running at once on this host (default: no limit). */
  readonly maxJobs?: number;
  /** Copies running at once per destination filesystem (default: no limit). */
  readonly maxJobsPerFilesystem?: number;
  /**
   * The filesystem a destination path is on (default: the device of its nearest existing
   * directory, `stat().dev`).
   */
  readonly filesystemOf?: (path: string) => Promise<string>;
}

/** One copy, as the slots see it. */
export interface SlotTicket {
  readonly jobId: string;
  readonly filesystem: string;
  /** Queue order: when the copy was asked for (epoch ms), then arrival. */
  readonly order: number;
  /** Called when a queued ticket gets its slot. */
  readonly start: () => void;
}

interface Entry extends SlotTicket {
  readonly seq: number;
}

/** The device of the nearest existing directory above `path`. */
export async function filesystemOfPath(path: string): Promise<string> {
  let dir = dirname(path);
  for (;;) {
    try {
      return `dev:${(await fs.stat(dir)).dev}`;
    } catch {
      const up = dirname(dir);
      if (up === dir) return `dir:${dirname(path)}`;
      dir = up;
    }
  }
}

const limitOk = (v: unknown) => v === undefined || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 1);

export function checkSlotLimits(limits: JobSlotLimits): Result<void, BlockCopyError> {
  if (!limitOk(limits.maxJobs))
    return err(blockCopyError('VIR_ERR_INVALID_ARG', 'maxJobs must be a whole number of at least 1'));
  if (!limitOk(limits.maxJobsPerFilesystem))
    return err(blockCopyError('VIR_ERR_INVALID_ARG', 'maxJobsPerFilesystem must be a whole number of at least 1'));
  if (limits.filesystemOf !== undefined && typeof limits.filesystemOf !== 'function')
    return err(blockCopyError('VIR_ERR_INVALID_ARG', 'filesystemOf must be a function (path) => Promise<string>'));
  return ok(undefined);
}

export class JobSlots {
  private readonly running = new Map<string, Entry>();
  private readonly perFs = new Map<string, number>();
  private queue: Entry[] = [];
  private seq = 0;
  /** Most copies ever running at once (tests and reports). */
  peak = 0;

  constructor(private readonly limits: JobSlotLimits = {}) {}

  /** Whether admission depends on the destination's filesystem (else it need not be looked up). */
  get perFilesystem(): boolean {
    return this.limits.maxJobsPerFilesystem !== undefined;
  }

  filesystemOf(path: string): Promise<string> {
    if (!this.perFilesystem) return Promise.resolve('');
    return (this.limits.filesystemOf ?? filesystemOfPath)(path).catch(() => `dir:${dirname(path)}`);
  }

  /**
   * Runs the ticket now (true; its start() is not called) or queues it (false; start() is called
   * when its turn comes). A copy asked for later never overtakes a queued one that fits.
   */
  admit(ticket: SlotTicket): boolean {
    const entry: Entry = { ...ticket, seq: this.seq++ };
    let i = this.queue.length;
    while (i > 0 && before(entry, this.queue[i - 1]!)) i--;
    this.queue.splice(i, 0, entry);
    return this.pump(entry);
  }

  /** A copy that runs whatever the limits (recovered already running on the hypervisor). */
  occupy(ticket: SlotTicket): void {
    this.take({ ...ticket, seq: this.seq++ });
  }

  /** The copy ended, or a queued one was cancelled: its slot or place goes to the next. */
  release(jobId: string): void {
    const entry = this.running.get(jobId);
    if (entry) {
      this.running.delete(jobId);
      this.perFs.set(entry.filesystem, (this.perFs.get(entry.filesystem) ?? 1) - 1);
    } else this.queue = this.queue.filter((e) => e.jobId !== jobId);
    this.pump(null);
  }

  isQueued(jobId: string): boolean {
    return this.queue.some((e) => e.jobId === jobId);
  }

  /** Queued job ids, in the order they will start. */
  queued(): readonly string[] {
    return this.queue.map((e) => e.jobId);
  }

  runningCount(): number {
    return this.running.size;
  }

  private fits(entry: Entry): boolean {
    const { maxJobs, maxJobsPerFilesystem } = this.limits;
    if (maxJobs !== undefined && this.running.size >= maxJobs) return false;
    if (maxJobsPerFilesystem !== undefined && (this.perFs.get(entry.filesystem) ?? 0) >= maxJobsPerFilesystem)
      return false;
    return true;
  }

  private take(entry: Entry): void {
    this.running.set(entry.jobId, entry);
    this.perFs.set(entry.filesystem, (this.perFs.get(entry.filesystem) ?? 0) + 1);
    this.peak = Math.max(this.peak, this.running.size);
  }

  /** Starts every queued ticket that fits, oldest first; true when `self` was among them. */
  private pump(self: Entry | null): boolean {
    let selfStarted = false;
    const started: Entry[] = [];
    for (const entry of [...this.queue]) {
      if (this.limits.maxJobs !== undefined && this.running.size >= this.limits.maxJobs) break;
      if (!this.fits(entry)) continue;
      this.queue = this.queue.filter((e) => e !== entry);
      this.take(entry);
      if (entry === self) selfStarted = true;
      else started.push(entry);
    }
    for (const entry of started) entry.start();
    return selfStarted;
  }
}

function before(a: Entry, b: Entry): boolean {
  return a.order < b.order || (a.order === b.order && a.seq < b.seq);
}
