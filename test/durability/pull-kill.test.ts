/**
 * kill -9 during a block pull on a real TCG VM (-blockdev chain base <- snap1 <- snap2, device
 * vda): the engine process (pull-kill-child.ts) SIGKILLs itself on entering each state of the pull
 * chart and right after each side effect (block-stream, job-dismiss) before the engine recorded
 * it; a new engine on the same SQLite store recovers, and the pull must end exactly as it does
 * without a kill: completed, the chain's shape in the image headers (`qemu-img info
 * --backing-chain`) as a pull leaves it, the guest reading the seed's data, the images below the
 * top byte-identical, the pulled-out nodes released. One fresh VM per point, side by side.
 * Counted over all runs and printed: jobs lost, user files touched, debris — all must be 0.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { must, onPath } from '../../adapters/qmp/lab.js';
import { QmpClient } from '../../adapters/qmp/client.js';
import { connectQemu, type QemuHypervisor } from '../../adapters/qmp/qemu-adapter.js';
import { VmLab } from '../../adapters/qmp/vm-lab.js';
import { ChainTemplate, guestReadsSeed } from './vm-seed.js';
import { openSqliteStore } from '../../adapters/store/sqlite.js';
import { createEngine } from '../../src/engine/engine.js';
import type { JobResult } from '../../src/engine/job-runner.js';
import { childFailure, runChild } from './run-child.js';
import { sha } from './kill-harness.js';

const counts = { runs: 0, jobsLost: 0, userFilesTouched: 0, debris: 0 };
const template = new ChainTemplate('blockcopy-pullkill-chain-');
afterAll(async () => {
  console.log(`kill -9 during a block pull on a TCG VM: ${JSON.stringify(counts)}`);
  await template.remove();
});

const child = new URL('./pull-kill-child.ts', import.meta.url).pathname;

/** Every state of the pull chart a completing pull passes through, and every side effect. */
const WHOLE = [
  'state:validating',
  'state:starting',
  'after:startStream',
  'state:streaming.running',
  'state:finishing',
  'after:dismissJob',
  'state:completed',
];
/** Down to base (snap1 pulled out, base kept): the points where the chain is rewritten. */
const TO_BASE = ['after:startStream', 'state:finishing'];
const cases = [...WHOLE.map((p) => ['whole chain', p] as const), ...TO_BASE.map((p) => ['down to base', p] as const)];

/** The chain as the image headers say, top first: [file, backing name as written]. */
async function chainShape(top: string): Promise<[string, string | null][]> {
  const out = await must('qemu-img', ['info', '-U', '--backing-chain', '--output=json', top]);
  return (JSON.parse(out) as Record<string, unknown>[]).map((i) => [
    String(i['filename']),
    typeof i['backing-filename'] === 'string' ? i['backing-filename'] : null,
  ]);
}

describe.runIf(onPath('qemu-system-x86_64', 'qemu-img', 'qemu-io'))('kill -9 of the engine during a block pull', () => {
  it.concurrent.for(cases)(
    '%s, killed at %s: recovered to the same end',
    { timeout: 300_000 },
    async ([shape, point], { expect }) => {
      const lab = await VmLab.start({
        style: 'blockdev',
        template: await template.path(),
        monitors: ['qmp', 'harness'],
      });
      let hv: QemuHypervisor | null = null;
      let harness: QmpClient | null = null;
      try {
        counts.runs++;
        const toBase = shape === 'down to base';
        harness = (await QmpClient.connect({ socket: lab.socket('harness'), reconnect: false }))._unsafeUnwrap();
        const storePath = join(lab.dir, 'state', 'jobs.db');
        const userFile = join(lab.dir, 'notes.txt');
        await fs.writeFile(userFile, 'the user keeps this\n');
        const below = [lab.paths.base, lab.paths.snap1];
        const belowBefore = await Promise.all(below.map(sha));
        const killed = await runChild(child, [lab.socket('qmp'), storePath, toBase ? lab.paths.base : '-', point]);
        expect(killed.signal, childFailure(killed, lab.alive)).toBe('SIGKILL');

        const port = (await connectQemu({ socket: lab.socket('qmp'), domain: 'qemu' }))._unsafeUnwrap();
        hv = port;
        const store = openSqliteStore(storePath)._unsafeUnwrap();
        const engine = createEngine({ hypervisor: port, store, pollIntervalMs: 100 });
        const report = (await engine.recover())._unsafeUnwrap();
        let result: Pick<JobResult, 'outcome' | 'error'> | null = null;
        const resumed = report.resumed[0];
        // A recovered pull that had not started yet is found by its disk (pullJobs lists started ones).
        const pull = resumed ? engine.pullJob('qemu', 'vda') : undefined;
        if (resumed && pull?.jobId !== resumed.jobId)
          throw new Error(`recovered pull not found: ${JSON.stringify(report)}`);
        if (pull) result = await pull.result;
        else if (report.finished[0]) result = report.finished[0].end;
        await engine.shutdown();
        const records = (await store.list({ includeEnded: true }))._unsafeUnwrap();
        const unfinished = (await store.list())._unsafeUnwrap();
        store.close();
        // Killed once the end was recorded: the record itself says how the pull ended.
        result ??= records.length === 1 && records[0]!.end ? records[0]!.end : null;
        if (!result || result.outcome !== 'completed' || records.length !== 1 || unfinished.length !== 0)
          counts.jobsLost++;

        const chain = await chainShape(lab.paths.snap2);
        const guestBad = await guestReadsSeed(lab, harness);
        const belowAfter = await Promise.all(below.map(sha));
        const userOk = (await fs.readFile(userFile, 'utf8')) === 'the user keeps this\n';
        if (guestBad.length > 0 || belowAfter.join() !== belowBefore.join() || !userOk) counts.userFilesTouched++;

        const jobs = (await harness.execute<unknown[]>('query-jobs'))._unsafeUnwrap();
        const nodes = (await harness.execute<{ 'node-name': string }[]>('query-named-block-nodes', { flat: true }))
          ._unsafeUnwrap()
          .map((n) => n['node-name'])
          .filter((n) => !n.startsWith('#'))
          .sort();
        const expectedNodes = toBase ? ['base', 'base-file', 'snap2', 'snap2-file'] : ['snap2', 'snap2-file'];
        const files = (await fs.readdir(lab.dir)).filter((f) => f.includes('blockcopy-') || f.endsWith('.tmp'));
        if (jobs.length > 0 || nodes.join() !== expectedNodes.join() || files.length > 0) counts.debris++;

        expect(result, JSON.stringify(report)).toMatchObject({ outcome: 'completed', error: null });
        expect(chain).toEqual(
          toBase
            ? [
                [lab.paths.snap2, lab.paths.base],
                [lab.paths.base, null],
              ]
            : [[lab.paths.snap2, null]],
        );
        expect({ guestBad, userOk, jobs, nodes, files }).toEqual({
          guestBad: [],
          userOk: true,
          jobs: [],
          nodes: expectedNodes,
          files: [],
        });
        expect(belowAfter).toEqual(belowBefore);
        expect({ records: records.length, unfinished: unfinished.length }).toEqual({ records: 1, unfinished: 0 });
      } finally {
        await hv?.close();
        await harness?.close();
        await lab.dispose();
      }
    },
  );
});
