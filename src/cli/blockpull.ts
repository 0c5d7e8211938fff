/**
 * `blockcopy blockpull DISK [--base PATH] [--bandwidth N] [--bytes] [--wait] [--async]
 * [--keep-relative] [--verbose] [--json]`: virsh blockpull on the engine. Without --base it is
 * virDomainBlockPull (the whole chain into the active image), with --base or --keep-relative
 * virDomainBlockRebase without COPY. Without --wait it returns once the pull has started
 * ("Block Pull started"): on QMP and libvirt the job is recorded in the store, and `blockcopy
 * blockjob DISK` (--info, --abort, --bandwidth) takes it up from there. With --wait it waits for
 * the end; an interrupt aborts the pull (synchronously, or with --async without waiting).
 * Exit codes: 0 done, 1 refused or failed, 2 usage.
 */
import { AbortFlags, RebaseFlags } from '../core/flags.js';
import { PullFlags } from '../core/pull.js';
import type { BlockCopyError } from '../core/errors.js';
import type { Output } from './copy.js';
import { readCommandArgs, usageFailure } from './command-args.js';
import type { MainEnvironment } from './main.js';
import { SIMULATOR_NOTICE, describeSpec, openHypervisor, selectHypervisor } from './hypervisor.js';
import { connectOption } from './virsh-options.js';
import { defaultDomainOf, openStore, storePath } from './durable.js';
import { trapInterrupts } from './interrupts.js';

export const BLOCKPULL_USAGE = `usage: blockcopy blockpull DISK [--domain NAME] --hypervisor sim|qmp:SOCKET | --connect URI
                          [--base PATH] [--bandwidth N [--bytes]] [--keep-relative]
                          [--wait [--verbose] [--async]] [--store PATH] [--json]`;

export const BLOCKPULL_HELP = `${BLOCKPULL_USAGE}

Pulls the data of DISK's backing images into its active image while the guest runs, as virsh
blockpull does (QEMU block-stream): the whole chain, or the images above --base, which then
becomes the active image's backing. The job ends by itself; there is nothing to pivot.

  --base PATH        keep PATH (an image of DISK's chain) as the backing; default: pull everything
  --bandwidth N      speed limit in MiB/s (bytes/s with --bytes)
  --keep-relative    write --base's name relative, as the chain names it (every link relative)
  --wait             wait until the pull has ended
  --verbose          with --wait: progress and every state change
  --async            with --wait: on Ctrl-C, abort without waiting for the end of the job
  --store PATH       the job store (default as for copy)
  --json             print one JSON object (the report) on stdout`;

interface PullReport {
  readonly status: 'started' | 'completed' | 'canceled' | 'failed' | 'detached';
  readonly jobId: string | null;
  readonly plan: unknown;
  readonly states: readonly string[];
  readonly error: BlockCopyError | null;
  readonly hypervisor: string;
}

export async function runBlockpullCommand(
  argv: readonly string[],
  out: Output,
  environment: MainEnvironment,
): Promise<number> {
  const parsed = readCommandArgs('blockpull', argv, {
    options: {
      domain: { type: 'string' },
      hypervisor: { type: 'string' },
      connect: { type: 'string' },
      base: { type: 'string' },
      bandwidth: { type: 'string' },
      bytes: { type: 'boolean', default: false },
      'keep-relative': { type: 'boolean', default: false },
      wait: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      async: { type: 'boolean', default: false },
      store: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: true,
  });
  if (parsed.isErr()) return usageFailure(out, 'blockpull', parsed.error.message);
  if (parsed.value === 'help') {
    out.line(BLOCKPULL_HELP);
    return 0;
  }
  const { values, positionals } = parsed.value;
  const usage = (message: string) => usageFailure(out, 'blockpull', message);
  if (positionals.length !== 1) return usage('blockpull expects one DISK');
  if (values.bandwidth !== undefined && !/^\d+$/.test(values.bandwidth))
    return usage(`--bandwidth expects a whole number, got '${values.bandwidth}'`);
  if (values.bytes && values.bandwidth === undefined) return usage('--bytes goes with --bandwidth');
  if ((values.verbose || values.async) && !values.wait) return usage('--verbose and --async go with --wait');
  const connect = connectOption(values);
  if (connect.isErr()) return usage(connect.error.message);
  const spec = selectHypervisor('blockpull', {
    option: values.hypervisor,
    connect: values.connect,
    env: environment.env,
  });
  if (spec.isErr()) return usage(spec.error.message);
  const disk = positionals[0]!;
  const hypervisorName = describeSpec(spec.value);
  const domain =
    values.domain ??
    (spec.value.kind === 'libvirt' ? undefined : defaultDomainOf(spec.value.kind === 'sim' ? 'sim' : 'qmp'));
  if (domain === undefined) return usage('--connect needs --domain NAME');
  if (spec.value.kind === 'sim') out.error(SIMULATOR_NOTICE);

  const hv = await openHypervisor(spec.value);
  if (hv.isErr()) {
    out.error(`error: ${hv.error}`);
    return 1;
  }
  // Recorded like a copy, unless on the in-process simulator without --store.
  const opened = spec.value.kind !== 'sim' || values.store !== undefined ? openStore(storePath(values.store)) : null;
  if (opened?.isErr()) {
    out.error(`error: ${opened.error}`);
    await hv.value.close();
    return 1;
  }
  const store = opened?.isOk() ? opened.value : undefined;
  const interrupts = trapInterrupts(out, environment.signals);
  const { createEngine } = await import('../engine/engine.js');
  const engine = createEngine({ hypervisor: hv.value, pollIntervalMs: 200, ...(store ? { store } : {}) });
  const bandwidth = values.bandwidth === undefined ? 0 : Number(values.bandwidth);
  const report = (r: Omit<PullReport, 'hypervisor'>, code: number) => {
    if (values.json) out.line(JSON.stringify({ ...r, hypervisor: hypervisorName }));
    else if (r.error) out.error(`error: ${r.error.message}`);
    return code;
  };
  try {
    const started =
      values.base === undefined && !values['keep-relative']
        ? await engine.blockPull(domain, disk, bandwidth, values.bytes ? PullFlags.BANDWIDTH_BYTES : 0)
        : await engine.blockPullRebase(
            domain,
            disk,
            values.base ?? null,
            bandwidth,
            (values.bytes ? RebaseFlags.BANDWIDTH_BYTES : 0) | (values['keep-relative'] ? RebaseFlags.RELATIVE : 0),
          );
    if (started.isErr())
      return report({ status: 'failed', jobId: null, plan: null, states: [], error: started.error }, 1);
    const job = started.value;
    if (!values.json) out.line('Block Pull started');
    if (!values.wait)
      return report({ status: 'started', jobId: job.jobId, plan: job.plan, states: job.states(), error: null }, 0);
    if (values.verbose) {
      job.stateChanges$.subscribe((s) => out.error(`state: ${s}`));
      job.progress$.subscribe((p) => {
        const pct = p.end > 0 ? Math.floor((p.cur * 100) / p.end) : 0;
        if (out.tty) out.overwrite(`Block Pull: [${String(pct).padStart(3)} %]`);
        else out.error(`Block Pull: [${String(pct).padStart(3)} %]`);
      });
    }
    void interrupts.interrupted.then(() => {
      void engine.blockJobAbort(domain, job.disk, values.async ? AbortFlags.ASYNC : 0);
    });
    const result = await job.result;
    if (!values.json) {
      if (out.tty && values.verbose) out.line('');
      out.line(
        result.outcome === 'completed'
          ? 'Pull complete'
          : result.outcome === 'canceled'
            ? 'Pull aborted'
            : result.outcome === 'detached'
              ? 'Pull detached'
              : 'Pull failed',
      );
    }
    return report(
      { status: result.outcome, jobId: job.jobId, plan: job.plan, states: result.states, error: result.error },
      result.outcome === 'completed' ? 0 : 1,
    );
  } finally {
    interrupts.dispose();
    await engine.shutdown();
    await hv.value.close();
    store?.close();
  }
}
