/**
 * The copy's QMP path on a real TCG VM, in round trips: startMirror's queries travel while
 * qemu-img creates the destination; the pivot's confirmation asks the guest's device
 * (query-block) with the block graph alongside, and job-dismiss goes out with the release of the
 * old chain in one batch. Also what must hold whatever the path: queries read before something
 * changed are asked again, a pivot whose QEMU events are lost is still confirmed through
 * query-block, and a node of the old chain that another QMP client starts using between the
 * confirmation and the release is kept, without an error.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { filter, firstValueFrom } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { targetNodeNames } from '../../adapters/qmp/qemu-adapter.js';
import { must } from '../../adapters/qmp/lab.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import type { HypervisorPort } from '../../src/core/hypervisor-port.js';
import { createEngine } from '../../src/engine/engine.js';
import { whenReady } from '../qemu-engine/helpers.js';
import { CHAIN_SIZE, useVm, type VmFixture } from './harness.js';

const vm = useVm();
const { COPY } = RebaseFlags;

/** Every command the adapter sends and every answer it gets, in order; `onSend` sees each command. */
function recordQmp(fx: VmFixture, onSend: (command: string) => void = () => {}): string[] {
  const log: string[] = [];
  const execute = fx.hv.client.execute.bind(fx.hv.client);
  fx.hv.client.execute = ((command: string, args?: Record<string, unknown>) => {
    onSend(command);
    log.push(`sent ${command}`);
    const r = execute(command, args);
    void r.then(() => log.push(`answered ${command}`));
    return r;
  }) as typeof fx.hv.client.execute;
  return log;
}

/** The disk is on the job's destination, identical to the chain, and nothing of the old chain is left. */
async function expectPivoted(fx: VmFixture, jobId: string, dest: string): Promise<void> {
  expect((await fx.block()).inserted?.['node-name']).toBe(targetNodeNames(jobId).format);
  expect(await fx.lab.compareWithChain(dest, 'qcow2')).toMatchObject({ identical: true });
  expect((await fx.nodes()).map((n) => n['node-name']).sort()).toEqual(Object.values(targetNodeNames(jobId)).sort());
  expect(await fx.cmd('query-jobs')).toEqual([]);
}

const mirrorSpec = (jobId: string, dest: string) =>
  ({
    jobId,
    domain: 'qemu',
    disk: 'vda',
    destination: { path: dest, format: 'qcow2' },
    destinationBacking: null,
    sync: 'full',
    speed: 0,
    onTargetError: 'report',
    onSourceError: 'report',
    copyMode: 'background',
  }) as const;

describe('VM: the start path', () => {
  it("startMirror's queries go out before the destination exists; then blockdev-add and blockdev-mirror", async () => {
    const fx = await vm('blockdev');
    const dest = join(fx.dir, 'copy.qcow2');
    const existedAt = new Map<string, boolean>();
    const log = recordQmp(fx, (command) => {
      if (!existedAt.has(command)) existedAt.set(command, existsSync(dest));
    });
    const job = (await fx.engine.blockRebase('qemu', 'vda', dest, 0, COPY))._unsafeUnwrap();
    const sent = log.filter((l) => l.startsWith('sent ') && !/ query-block-jobs$/.test(l)).map((l) => l.slice(5));
    const view = ['query-named-block-nodes', 'x-debug-query-block-graph', 'query-block-exports', 'query-block'];
    // The busy check's view, then startMirror's idempotence check and view, then the mirror.
    expect(sent.slice(0, 11)).toEqual([...view, 'query-jobs', ...view, 'blockdev-add', 'blockdev-mirror']);
    expect(existedAt.get('query-jobs')).toBe(false);
    expect(existedAt.get('blockdev-add')).toBe(true);
    await whenReady(job);
    expect((await fx.engine.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
    expect(await job.result).toMatchObject({ outcome: 'completed', pivoted: true });
    await expectPivoted(fx, job.jobId, dest);
  });

  it('queries read before a command that changes something are asked again by startMirror', async () => {
    const fx = await vm('blockdev');
    const dest = join(fx.dir, 'copy.qcow2');
    const jobId = 'asked-again';
    (
      await fx.hv.createDestination({
        path: dest,
        format: 'qcow2',
        virtualSize: CHAIN_SIZE,
        backing: null,
        claim: jobId,
      })
    )._unsafeUnwrap();
    // A command that may change the graph, sent between the two (QEMU refuses it: no such job).
    expect((await fx.hv.pauseJob('no-such-job')).isErr()).toBe(true);
    const log = recordQmp(fx);
    const ready = firstValueFrom(fx.hv.events$.pipe(filter((e) => e.kind === 'job-ready' && e.jobId === jobId)));
    (await fx.hv.startMirror(mirrorSpec(jobId, dest)))._unsafeUnwrap();
    expect(log.filter((l) => l.startsWith('sent ')).slice(0, 2)).toEqual([
      'sent query-jobs',
      'sent query-named-block-nodes',
    ]);
    await ready;
    expect((await fx.cmd<{ device: string; status: string }[]>('query-block-jobs')).map((j) => j.device)).toEqual([
      jobId,
    ]);
  });
});

describe('VM: the pivot path', () => {
  it('confirms through query-block (graph alongside), then job-dismiss and the release of the old chain in one batch', async () => {
    const fx = await vm('blockdev');
    const dest = join(fx.dir, 'copy.qcow2');
    const job = (await fx.engine.blockRebase('qemu', 'vda', dest, 0, COPY))._unsafeUnwrap();
    await whenReady(job);
    const log = recordQmp(fx);
    expect((await fx.engine.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
    const result = await job.result;
    const pivotLog = [...log];
    expect(result).toMatchObject({ outcome: 'completed', pivoted: true, error: null });
    expect(result.states.slice(-4)).toEqual(['pivoting', 'confirmingPivot', 'finishing', 'completed']);

    // The polls (query-jobs, query-block-jobs) run beside the pivot; the rest is the pivot's path.
    const path = pivotLog.filter((l) => !/ query-(block-)?jobs$/.test(l));
    const sent = path.filter((l) => l.startsWith('sent ')).map((l) => l.slice(5));
    expect(sent).toEqual([
      'block-job-complete',
      'query-block',
      'x-debug-query-block-graph',
      'job-dismiss',
      ...Array<string>(6).fill('blockdev-del'),
    ]);
    // The graph went out with the confirmation, and every blockdev-del before job-dismiss's answer.
    expect(path.indexOf('sent x-debug-query-block-graph')).toBeLessThan(path.indexOf('answered query-block'));
    expect(path.lastIndexOf('sent blockdev-del')).toBeLessThan(path.indexOf('answered job-dismiss'));
    await expectPivoted(fx, job.jobId, dest);
  });

  it('a pivot whose QEMU events are all lost is still confirmed through query-block, and the old chain released', async () => {
    const fx = await vm('blockdev');
    // The engine sees no job event at all: ready, the conclusion and the pivot come from polls
    // (query-jobs / query-block-jobs) and the device's query-block.
    const deaf = new Proxy(fx.hv, {
      get(target, prop, receiver) {
        if (prop === 'events$') return target.events$.pipe(filter((e) => !('jobId' in e)));
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as HypervisorPort;
    const engine = createEngine({ hypervisor: deaf, pollIntervalMs: 100 });
    try {
      const dest = join(fx.dir, 'copy.qcow2');
      const job = (await engine.blockRebase('qemu', 'vda', dest, 0, COPY))._unsafeUnwrap();
      await whenReady(job);
      expect((await engine.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
      const result = await job.result;
      expect(result).toMatchObject({ outcome: 'completed', pivoted: true, error: null });
      expect(result.states).toContain('confirmingPivot');
      await expectPivoted(fx, job.jobId, dest);
    } finally {
      engine.close();
    }
  });

  it('a node of the old chain another client starts using after the confirmation is kept; the rest is released', async () => {
    const fx = await vm('blockdev');
    const dest = await fx.createImage('copy.qcow2', 'qcow2');
    const jobId = 'pivot-race';
    const concluded = firstValueFrom(
      fx.hv.events$.pipe(filter((e) => e.kind === 'job-status' && e.jobId === jobId && e.status === 'concluded')),
    );
    const ready = firstValueFrom(fx.hv.events$.pipe(filter((e) => e.kind === 'job-ready' && e.jobId === jobId)));
    (await fx.hv.startMirror(mirrorSpec(jobId, dest)))._unsafeUnwrap();
    await ready;
    (await fx.hv.completeJob(jobId))._unsafeUnwrap();
    await concluded;
    expect((await fx.hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(dest);
    // Another QMP client opens an overlay on snap1: snap1 and everything below it are in use now.
    const overlay = join(fx.dir, 'other.qcow2');
    await must('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '-b',
      fx.paths.snap1,
      '-F',
      'qcow2',
      overlay,
      String(CHAIN_SIZE),
    ]);
    await fx.cmd(
      'blockdev-add',
      {
        driver: 'qcow2',
        'node-name': 'other',
        file: { driver: 'file', 'node-name': 'other-file', filename: overlay },
        backing: 'snap1',
      },
      fx.other,
    );
    expect((await fx.hv.dismissJob(jobId)).isOk()).toBe(true);
    const names = (await fx.nodes()).map((n) => n['node-name']).sort();
    expect(names).toEqual(
      [
        'base',
        'base-file',
        'snap1',
        'snap1-file',
        'other',
        'other-file',
        ...Object.values(targetNodeNames(jobId)),
      ].sort(),
    );
    expect((await fx.block()).inserted?.['node-name']).toBe(targetNodeNames(jobId).format);
    expect(await fx.cmd('query-jobs')).toEqual([]);
    expect(await fx.lab.compareWithChain(dest, 'qcow2')).toMatchObject({ identical: true });
  });
});
