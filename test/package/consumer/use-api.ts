/**
 * A TypeScript consumer (NodeNext, strict) of the installed package: the packaging test copies this
 * into a fresh project and type-checks it against the published .d.ts files. The
 * `@ts-expect-error` lines fail the check if the misuse they mark stops being an error.
 */
import type { Result, ResultAsync } from 'neverthrow';
import {
  AbortFlags,
  RebaseFlags,
  createEngine,
  type BlockCopyEngine,
  type BlockCopyError,
  type BlockCopyJob,
  type BlockJobInfo,
  type CopyPlan,
  type ErrorCode,
  type HypervisorPort,
  type JobResult,
} from 'blockcopy';
import { SimulatedHypervisor } from 'blockcopy/adapters/sim';
import { connectQemu, type QemuHypervisor } from 'blockcopy/adapters/qmp';
import type { HypervisorError } from 'blockcopy';

export async function copyAndPivot(engine: BlockCopyEngine): Promise<JobResult | BlockCopyError> {
  const started: Result<BlockCopyJob, BlockCopyError> = await engine.blockRebase(
    'demo',
    'vda',
    '/var/lib/blockcopy/copy.qcow2',
    0,
    RebaseFlags.COPY,
  );
  if (started.isErr()) {
    const code: ErrorCode = started.error.code;
    const num: number = started.error.number;
    return { ...started.error, code, number: num };
  }
  const info: Result<BlockJobInfo | null, BlockCopyError> = await engine.getBlockJobInfo('demo', 'vda', 0);
  info.map((i) => i?.cur);
  const pivot: ResultAsync<void, BlockCopyError> = engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT);
  await pivot;
  return started.value.result;
}

export function dryRun(): ResultAsync<CopyPlan, BlockCopyError> {
  const hypervisor: HypervisorPort = new SimulatedHypervisor();
  return createEngine({ hypervisor }).planRebase('demo', 'vda', '/x.qcow2', 0, RebaseFlags.COPY);
}

export function onQemu(socket: string): ResultAsync<QemuHypervisor, HypervisorError> {
  return connectQemu({ socket, domain: 'vm1' });
}

export function misuse(engine: BlockCopyEngine): void {
  // @ts-expect-error: the Result must be checked before its value is used.
  void engine.planRebase('demo', 'vda', '/x.qcow2', 0, RebaseFlags.COPY).then((r) => r.value.source);
  // @ts-expect-error: error codes are libvirt's names, not any string.
  const code: ErrorCode = 'VIR_ERR_NO_SUCH_THING';
  void code;
}

export async function internals(): Promise<unknown> {
  // @ts-expect-error: only the exports map's entries are reachable, not the files behind them.
  return import('blockcopy/dist/src/core/errors.js');
}
