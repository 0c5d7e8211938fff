/**
 * What the copy kill tests share (qemu-storage-daemon in kill.test.ts, a TCG VM in
 * vm-kill.test.ts): the kill points, the run of a killed child, the recovery by a new engine on
 * the same store, and the judgement of the end: jobs lost, wrong pivots, user files touched and
 * debris are counted, then asserted.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { ExpectStatic } from 'vitest';
import { connectQemu, type QemuHypervisor } from '../../adapters/qmp/qemu-adapter.js';
import { openSqliteStore } from '../../adapters/store/sqlite.js';
import { createEngine } from '../../src/engine/engine.js';
import type { JobResult } from '../../src/engine/job-runner.js';
import { childFailure, runChild } from './run-child.js';

export type Intent = 'pivot' | 'finish';

/** Every chart state and every side effect before its record, per intent. */
export const KILL_POINTS: Record<Intent, readonly string[]> = {
  pivot: [
    'state:validating',
    'state:preparingDestination',
    'after:createDestination',
    'state:starting',
    'after:startMirror',
    'state:mirroring.running',
    'state:ready.synced',
    'state:pivoting',
    'after:completeJob',
    'state:confirmingPivot',
    'state:finishing',
    'after:dismissJob',
  ],
  finish: [
    'state:preparingDestination',
    'after:createDestination',
    'after:startMirror',
    'state:ready.synced',
    'state:aborting',
    'after:cancelJob',
    'state:finishing',
    'after:dismissJob',
  ],
};
export const KILL_CASES = (['pivot', 'finish'] as const).flatMap((intent) =>
  KILL_POINTS[intent].map((p) => [intent, p] as const),
);

export const killCounts = { runs: 0, jobsLost: 0, wrongPivots: 0, userFilesTouched: 0, debris: 0 };

const child = new URL('./kill-child.ts', import.meta.url).pathname;

export const sha = async (path: string) =>
  createHash('sha256')
    .update(await fs.readFile(path))
    .digest('hex');

/** The lab a case runs on: the chain `base <- snap1 <- snap2` in `dir`, disk vda on snap2. */
export interface KillLab {
  readonly dir: string;
  readonly qmpSocket: string;
  readonly paths: { readonly base: string; readonly snap1: string; readonly snap2: string };
  readonly alive: boolean;
  daemonLog?(): Promise<string>;
  /** Regions the guest does not read as seeded (empty when all is well). */
  guestBad(): Promise<readonly unknown[]>;
  /** A QMP command on a second monitor the test owns (else through the recovering engine's). */
  execute?<T>(command: string, args?: Record<string, unknown>): Promise<T>;
}

/** Kills a child at `point`, recovers with a new engine on its store, counts and asserts the end. */
export async function killAndRecover(lab: KillLab, intent: Intent, point: string, expect: ExpectStatic): Promise<void> {
  killCounts.runs++;
  const dest = join(lab.dir, 'copy.qcow2');
  const storePath = join(lab.dir, 'state', 'jobs.db');
  const userFile = join(lab.dir, 'notes.txt');
  await fs.writeFile(userFile, 'the user keeps this\n');
  const chainBefore = await Promise.all([lab.paths.base, lab.paths.snap1].map(sha));
  const killed = await runChild(child, [lab.qmpSocket, storePath, dest, intent, point]);
  expect(killed.signal, childFailure(killed, lab.alive, await lab.daemonLog?.())).toBe('SIGKILL');

  let hv: QemuHypervisor | null = null;
  try {
    const port = (await connectQemu({ socket: lab.qmpSocket, domain: 'qemu' }))._unsafeUnwrap();
    hv = port;
    const store = openSqliteStore(storePath)._unsafeUnwrap();
    const engine = createEngine({ hypervisor: port, store, pollIntervalMs: 100 });
    const report = (await engine.recover())._unsafeUnwrap();
    let result: JobResult | null = null;
    const resumed = report.resumed[0];
    if (resumed) result = await engine.jobById(resumed.jobId)!.result;
    else if (report.finished[0]) result = { ...report.finished[0].end } as JobResult;
    await engine.shutdown();
    const records = (await store.list({ includeEnded: true }))._unsafeUnwrap();
    const unfinished = (await store.list())._unsafeUnwrap();
    store.close();
    // Lost: no outcome, or the store does not hold exactly one ended record of it.
    if (!result || records.length !== 1 || unfinished.length !== 0) killCounts.jobsLost++;

    const active = (await port.activeImage('qemu', 'vda'))._unsafeUnwrap();
    const pivotedOk = intent === 'pivot' ? active === dest && result?.pivoted === true : active === lab.paths.snap2;
    if (!pivotedOk) killCounts.wrongPivots++;
    const guestBad = await lab.guestBad();
    const chainAfter = await Promise.all([lab.paths.base, lab.paths.snap1].map(sha));
    const userOk = (await fs.readFile(userFile, 'utf8')) === 'the user keeps this\n';
    if (guestBad.length > 0 || chainAfter.join() !== chainBefore.join() || !userOk) killCounts.userFilesTouched++;

    const execute = async <T>(command: string, args?: Record<string, unknown>): Promise<T> =>
      lab.execute ? lab.execute<T>(command, args) : (await port.client.execute<T>(command, args))._unsafeUnwrap();
    const jobs = await execute<unknown[]>('query-jobs');
    const nodes = (await execute<{ 'node-name': string }[]>('query-named-block-nodes', { flat: true }))
      .map((n) => n['node-name'])
      .filter((n) => !n.startsWith('#'));
    const lab0 = ['base', 'base-file', 'snap1', 'snap1-file', 'snap2', 'snap2-file'];
    const extraNodes = nodes.filter((n) => !lab0.includes(n));
    // After a pivot the copy is the disk: its two nodes are the disk's now, not debris.
    const allowed = intent === 'pivot' ? 2 : 0;
    const files = (await fs.readdir(lab.dir)).filter((f) => f.includes('blockcopy-') || f.endsWith('.tmp'));
    const destExists = await fs.stat(dest).then(
      () => true,
      () => false,
    );
    if (jobs.length > 0 || extraNodes.length !== allowed || files.length > 0 || !destExists) killCounts.debris++;

    expect(result).toMatchObject(
      intent === 'pivot'
        ? { outcome: 'completed', pivoted: true, destinationConsistent: true }
        : { outcome: 'canceled', pivoted: false, destinationConsistent: true },
    );
    expect({ active, guestBad, userOk, jobs, extraNodes: extraNodes.length, files, destExists }).toEqual({
      active: intent === 'pivot' ? dest : lab.paths.snap2,
      guestBad: [],
      userOk: true,
      jobs: [],
      extraNodes: allowed,
      files: [],
      destExists: true,
    });
    expect(chainAfter).toEqual(chainBefore);
    expect({ records: records.length, unfinished: unfinished.length }).toEqual({ records: 1, unfinished: 0 });
  } finally {
    await hv?.close();
  }
}
