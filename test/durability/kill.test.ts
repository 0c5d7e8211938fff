/**
 * kill -9 on real QEMU (a qemu-storage-daemon lab): an engine process is SIGKILLed at every chart
 * state and right after every side effect before its record; a new engine on the same SQLite
 * store recovers, and each job must end as it would have without the kill. Counted over all
 * runs and printed: jobs lost, wrong pivots, user files touched, debris (QEMU jobs or nodes
 * left, files left) — all must be 0.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { QemuLab, onPath } from '../../adapters/qmp/lab.js';
import { connectQemu, type QemuHypervisor } from '../../adapters/qmp/qemu-adapter.js';
import { openSqliteStore } from '../../adapters/store/sqlite.js';
import { createEngine } from '../../src/engine/engine.js';
import type { JobResult } from '../../src/engine/job-runner.js';
import { childFailure, runChild } from './run-child.js';

const counts = { runs: 0, jobsLost: 0, wrongPivots: 0, userFilesTouched: 0, debris: 0 };
afterAll(() => {
  console.log(`kill -9 on QEMU: ${JSON.stringify(counts)}`);
});

const child = new URL('./kill-child.ts', import.meta.url).pathname;

const sha = async (path: string) =>
  createHash('sha256')
    .update(await fs.readFile(path))
    .digest('hex');

const POINTS: Record<'pivot' | 'finish', string[]> = {
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
const cases = (['pivot', 'finish'] as const).flatMap((intent) => POINTS[intent].map((p) => [intent, p] as const));

describe.runIf(onPath('qemu-storage-daemon', 'qemu-img', 'qemu-io'))('kill -9 of the engine on real QEMU', () => {
  it.each(cases)('%s, killed at %s: recovered to the same end', { timeout: 120_000 }, async (intent, point) => {
    const lab = await QemuLab.start();
    let hv: QemuHypervisor | null = null;
    try {
      counts.runs++;
      const dest = join(lab.dir, 'copy.qcow2');
      const storePath = join(lab.dir, 'state', 'jobs.db');
      const userFile = join(lab.dir, 'notes.txt');
      await fs.writeFile(userFile, 'the user keeps this\n');
      const chainBefore = await Promise.all([lab.paths.base, lab.paths.snap1].map(sha));
      const killed = await runChild(child, [lab.qmpSocket, storePath, dest, intent, point]);
      expect(killed.signal, childFailure(killed, lab.alive, await lab.daemonLog())).toBe('SIGKILL');

      const port = (await connectQemu({ socket: lab.qmpSocket, domain: 'qemu' }))._unsafeUnwrap();
      hv = port;
      const store = openSqliteStore(storePath)._unsafeUnwrap();
      const engine = createEngine({ hypervisor: port, store, pollIntervalMs: 100 });
      const report = (await engine.recover())._unsafeUnwrap();
      let result: JobResult | null = null;
      const resumed = report.resumed[0];
      if (resumed) {
        const job = engine.jobById(resumed.jobId)!;
        result = await job.result;
      } else if (report.finished[0]) result = { ...report.finished[0].end } as JobResult;
      await engine.shutdown();
      const records = (await store.list({ includeEnded: true }))._unsafeUnwrap();
      const unfinished = (await store.list())._unsafeUnwrap();
      store.close();
      // Lost: no outcome, or the store does not hold exactly one ended record of it.
      if (!result || records.length !== 1 || unfinished.length !== 0) counts.jobsLost++;

      const active = (await port.activeImage('qemu', 'vda'))._unsafeUnwrap();
      const pivotedOk = intent === 'pivot' ? active === dest && result?.pivoted === true : active === lab.paths.snap2;
      if (!pivotedOk) counts.wrongPivots++;
      const guestBad = await lab.guestVerify(lab.expected());
      const chainAfter = await Promise.all([lab.paths.base, lab.paths.snap1].map(sha));
      const userOk = (await fs.readFile(userFile, 'utf8')) === 'the user keeps this\n';
      if (guestBad.length > 0 || chainAfter.join() !== chainBefore.join() || !userOk) counts.userFilesTouched++;

      const jobs = (await port.client.execute<unknown[]>('query-jobs'))._unsafeUnwrap();
      const nodes = (await port.client.execute<{ 'node-name': string }[]>('query-named-block-nodes', { flat: true }))
        ._unsafeUnwrap()
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
      if (jobs.length > 0 || extraNodes.length !== allowed || files.length > 0 || !destExists) counts.debris++;

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
      await lab.dispose();
    }
  });
});
