/**
 * `blockcopy blockjob DISK --info | --pivot | --abort [--async] | --bandwidth N | --resume`:
 * virsh blockjob's verbs on any copy job on the disk, whoever started it: through the daemon
 * when one runs, else in this process (recovering the job from the store, or adopting a mirror
 * that blockcopy did not start). Exit codes: 0 done, 1 refused or failed, 2 usage.
 */
import { AbortFlags } from '../core/flags.js';
import { callDaemon } from '../daemon/client.js';
import type { ControlAnswer, ControlRequest } from '../daemon/protocol.js';
import { createController } from '../daemon/server.js';
import type { Output } from './copy.js';
import { daemonRuns, defaultDomainOf, openStore, socketPath, storePath } from './durable.js';
import { HYPERVISOR_ENV, hypervisorName, noHypervisor, openHypervisorByName } from './hypervisor.js';
import { connectOption } from './virsh-options.js';
import { readCommandArgs, usageFailure } from './command-args.js';

export const BLOCKJOB_USAGE = `usage: blockcopy blockjob DISK [--domain NAME] [--hypervisor sim|qmp:SOCKET | --connect URI] [--store PATH]
                         [--socket PATH] (--info | --pivot | --abort [--async] [--force] |
                         --bandwidth MIB | --pause | --resume) [--json]`;

export const BLOCKJOB_HELP = `${BLOCKJOB_USAGE}

Acts on the block job of DISK (any name of the disk), as virsh blockjob does: a job this host's
blockcopy started (from the store, or through the daemon when one runs) or one another tool
started (adopted).
  --info             the job's type, progress and bandwidth (the default verb)
  --pivot            switch the disk to the copy (only when the copy is ready)
  --abort            end the job; a ready copy is kept, the disk stays on its source
  --async            return once the request is sent (with --abort or --pivot)
  --force            with --abort: cancel at once, even a job that is finishing
  --bandwidth MIB    the job's speed limit in MiB/s (0 = unlimited)
  --pause, --resume  pause or resume the job
The hypervisor: --hypervisor sim|qmp:SOCKET, --connect URI --domain NAME, or the
${HYPERVISOR_ENV} environment variable. Exit codes: 0 done, 1 refused or failed, 2 usage.`;

export async function runBlockjobCommand(
  argv: readonly string[],
  out: Output,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<number> {
  const parsed = readCommandArgs('blockjob', argv, {
    options: {
      domain: { type: 'string' },
      hypervisor: { type: 'string' },
      connect: { type: 'string' },
      store: { type: 'string' },
      socket: { type: 'string' },
      info: { type: 'boolean', default: false },
      pivot: { type: 'boolean', default: false },
      abort: { type: 'boolean', default: false },
      async: { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      bandwidth: { type: 'string' },
      pause: { type: 'boolean', default: false },
      resume: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: true,
  });
  if (parsed.isErr()) return usageFailure(out, 'blockjob', parsed.error.message);
  if (parsed.value === 'help') {
    out.line(BLOCKJOB_HELP);
    return 0;
  }
  const { values, positionals } = parsed.value;
  const usage = (message: string) => usageFailure(out, 'blockjob', message);
  if (positionals.length !== 1) return usage('blockjob expects one DISK');
  const disk = positionals[0]!;
  const actions = [
    values.info,
    values.pivot,
    values.abort,
    values.bandwidth !== undefined,
    values.pause,
    values.resume,
  ];
  if (actions.filter(Boolean).length > 1)
    return usage('choose one of --info, --pivot, --abort, --bandwidth, --pause, --resume');
  if (values.async && !values.abort && !values.pivot) return usage('--async goes with --abort or --pivot');
  if (values.force && !values.abort) return usage('--force goes with --abort');
  if (values.bandwidth !== undefined && !/^\d+$/.test(values.bandwidth))
    return usage(`--bandwidth expects a whole number of MiB/s, got '${values.bandwidth}'`);
  // --connect URI drives libvirtd, as virsh -c does (the daemon knows it as libvirt:URI).
  const connect = connectOption(values);
  if (connect.isErr()) return usage(connect.error.message);
  // As for copy: no hypervisor named is a usage error, never a silent simulator.
  const hypervisor = hypervisorName({ connect: connect.value, option: values.hypervisor, env });
  if (hypervisor === undefined) return usage(noHypervisor('blockjob'));
  const domain = values.domain ?? defaultDomainOf(hypervisor);
  const async = values.async ? AbortFlags.ASYNC : 0;
  const request: ControlRequest = values.pivot
    ? { verb: 'abort', hypervisor, args: { domain, disk, flags: AbortFlags.PIVOT | async } }
    : values.abort
      ? { verb: 'abort', hypervisor, args: { domain, disk, flags: async, force: values.force } }
      : values.bandwidth !== undefined
        ? { verb: 'speed', hypervisor, args: { domain, disk, bandwidth: Number(values.bandwidth), flags: 0 } }
        : values.pause
          ? { verb: 'pause', hypervisor, args: { domain, disk } }
          : values.resume
            ? { verb: 'resume', hypervisor, args: { domain, disk } }
            : { verb: 'info', hypervisor, args: { domain, disk, flags: 0 } };

  const store = storePath(values.store);
  const socket = socketPath(values.socket, store);
  let answer: ControlAnswer | null = null;
  if (await daemonRuns(socket))
    answer = await callDaemon(socket, request.verb, request.hypervisor, { ...request.args });
  if (answer === null) {
    const opened = openStore(store);
    if (opened.isErr()) {
      out.error(`error: ${opened.error}`);
      return 1;
    }
    const controller = createController({
      store: opened.value,
      open: (spec) => openHypervisorByName(spec),
      pollIntervalMs: 200,
      // One shot: only the verb acts, not the recorded intent of a job this process recovers.
      actOnIntents: false,
    });
    try {
      const r = await controller.dispatch(request);
      answer = r.isOk() ? { ok: true, value: r.value } : { ok: false, error: r.error };
    } finally {
      await controller.close();
      opened.value.close();
    }
  }
  return report(answer, request, disk, values.json, out);
}

function report(answer: ControlAnswer, request: ControlRequest, disk: string, json: boolean, out: Output): number {
  if (json) out.line(JSON.stringify(answer));
  if (!answer.ok) {
    if (!json) out.error(`error: ${answer.error.message}`);
    return 1;
  }
  if (json) return 0;
  const value = answer.value as {
    info?: { type: number; cur: number; end: number; bandwidth: number } | null;
    job?: { jobId: string; state: string };
    jobId?: string;
    state?: string;
  } | null;
  switch (request.verb) {
    case 'info':
      if (value === null || !value.info) out.line(`No current block job for ${disk}`);
      else {
        const { cur, end } = value.info;
        const pct = end > 0 ? Math.floor((cur * 100) / end) : 0;
        out.line(
          `${value.info.type === 1 ? 'Block Pull' : 'Block Copy'}: [${String(pct).padStart(3)} %]    ${value.job?.state ?? ''} (job ${value.job?.jobId ?? '?'})`,
        );
      }
      return 0;
    case 'abort':
      out.line(
        request.args['flags'] !== undefined && ((request.args['flags'] as number) & AbortFlags.PIVOT) !== 0
          ? (request.args['flags'] as number) & AbortFlags.ASYNC
            ? 'Pivot requested'
            : 'Successfully pivoted'
          : (request.args['flags'] as number) & AbortFlags.ASYNC
            ? 'Abort requested'
            : 'Job aborted',
      );
      return 0;
    default:
      out.line('done');
      return 0;
  }
}
