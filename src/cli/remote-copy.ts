/**
 * `blockcopy copy` through the daemon: the job is submitted with the caller's end intent
 * (--pivot/--finish) and followed by polling its state, so that it goes on, and is ended as
 * asked, even if this shell goes away (the daemon does what the intent says at ready).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AbortFlags, RebaseFlags } from '../core/flags.js';
import type { BlockCopyError } from '../core/errors.js';
import type { JobEnd } from '../core/job-store.js';
import { callDaemon } from '../daemon/client.js';
import type { CopyCommand } from './args.js';
import type { Output } from './copy.js';
import { defaultDomainOf } from './durable.js';

const POLL_MS = 250;

export async function runRemoteCopy(
  cmd: CopyCommand,
  hypervisor: string,
  socket: string,
  out: Output,
): Promise<number> {
  const domain = cmd.domain ?? defaultDomainOf(hypervisor);
  const flags =
    RebaseFlags.COPY |
    (cmd.shallow ? RebaseFlags.SHALLOW : 0) |
    (cmd.reuseExternal ? RebaseFlags.REUSE_EXT : 0) |
    (cmd.format === 'raw' ? RebaseFlags.COPY_RAW : 0);
  const fail = (error: BlockCopyError) => {
    if (cmd.json) out.line(JSON.stringify({ status: 'failed', error }));
    else out.error(`error: ${error.message}`);
    return 1;
  };
  const started = await callDaemon(socket, 'copy', hypervisor, {
    domain,
    disk: cmd.disk,
    destination: cmd.destination,
    bandwidth: cmd.bandwidth,
    flags,
    endIntent: cmd.end,
    onTargetError: cmd.onTargetError,
    ...(cmd.convergeTimeout ? { convergeTimeoutMs: cmd.convergeTimeout * 1000 } : {}),
  });
  if (started === null)
    return fail({
      code: 'VIR_ERR_INTERNAL_ERROR',
      number: 1,
      message: 'internal error: the daemon went away',
      detail: 'the daemon went away',
    });
  if (!started.ok) return fail(started.error);
  const job = started.value as { jobId: string; state: string };
  if (!cmd.json) out.line(`Block Copy started by the daemon: job ${job.jobId}`);
  if (!cmd.wait) {
    if (cmd.json) out.line(JSON.stringify({ status: 'running', jobId: job.jobId }));
    return 0;
  }
  let endSent = false;
  for (;;) {
    const polled = await callDaemon(socket, 'job', hypervisor, { domain, disk: cmd.disk, jobId: job.jobId });
    if (polled === null)
      return fail({
        code: 'VIR_ERR_INTERNAL_ERROR',
        number: 1,
        message: 'internal error: the daemon went away',
        detail: 'the daemon went away',
      });
    if (!polled.ok) return fail(polled.error);
    const now = polled.value as { state: string; end: JobEnd | null };
    if (now.end) {
      const good = now.end.outcome === 'completed' || (now.end.outcome === 'canceled' && cmd.end === 'finish');
      if (cmd.json) out.line(JSON.stringify({ status: now.end.outcome, ...now.end, jobId: job.jobId }));
      else
        out.line(
          now.end.outcome === 'completed'
            ? 'Successfully pivoted'
            : now.end.outcome === 'canceled'
              ? 'Successfully copied'
              : `error: ${now.end.error?.message ?? 'failed'}`,
        );
      return good ? 0 : 1;
    }
    if (now.state.startsWith('ready') && !endSent) {
      if (!cmd.json) out.line('Now in mirroring phase');
      if (cmd.end === null) {
        if (cmd.json) out.line(JSON.stringify({ status: 'ready', jobId: job.jobId }));
        return 0;
      }
      endSent = true;
      const endFlags = (cmd.end === 'pivot' ? AbortFlags.PIVOT : 0) | AbortFlags.ASYNC;
      const ended = await callDaemon(socket, 'abort', hypervisor, { domain, disk: cmd.disk, flags: endFlags });
      if (ended !== null && !ended.ok) return fail(ended.error);
    }
    await sleep(POLL_MS);
  }
}
