/**
 * kill -9 on a real VM: the kill tests of kill.test.ts (the same kill points: every chart state,
 * and right after every side effect before its record) on a TCG virtual machine whose disk is
 * attached libvirt-style (-blockdev nodes + -device virtio-blk-pci,id=vda), one fresh VM per
 * kill point. The engine process (kill-child.ts) SIGKILLs itself; a new engine on the same
 * SQLite store recovers, and each job must end as it would have without the kill. The points
 * run concurrently, each on its own VM. Counted over
 * all runs and printed: jobs lost, wrong pivots, user files touched, debris — all must be 0 —
 * with the VM start times.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { MiB, buildChain, onPath } from '../../adapters/qmp/lab.js';
import { QmpClient } from '../../adapters/qmp/client.js';
import { connectQemu, type QemuHypervisor } from '../../adapters/qmp/qemu-adapter.js';
import { VmLab } from '../../adapters/qmp/vm-lab.js';
import { openSqliteStore } from '../../adapters/store/sqlite.js';
import { createEngine } from '../../src/engine/engine.js';
import type { JobResult } from '../../src/engine/job-runner.js';
import { childFailure, runChild } from './run-child.js';

const counts = { runs: 0, jobsLost: 0, wrongPivots: 0, userFilesTouched: 0, debris: 0 };
const vmStartMs: number[] = [];
let template: Promise<string> | null = null;
afterAll(async () => {
  const sorted = [...vmStartMs].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
  console.log(
    `kill -9 on a TCG VM: ${JSON.stringify(counts)}; VM start (spawn to QMP listening) median ${median.toFixed(0)} ms, max ${(sorted.at(-1) ?? 0).toFixed(0)} ms over ${sorted.length} VMs`,
  );
  if (template) await fs.rm(await template, { recursive: true, force: true });
});

/** The seed chain, built once and copied into each VM's directory. */
function chainTemplate(): Promise<string> {
  template ??= (async () => {
    const dir = await fs.mkdtemp(join(tmpdir(), 'blockcopy-vmkill-chain-'));
    await buildChain(dir, 64 * MiB);
    return dir;
  })();
  return template;
}

const child = new URL('./kill-child.ts', import.meta.url).pathname;

const sha = async (path: string) =>
  createHash('sha256')
    .update(await fs.readFile(path))
    .digest('hex');

/** The kill points of kill.test.ts. */
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

/** What the guest reads, region by region, through its virtio device (HMP qemu-io on the device). */
async function guestReadsSeed(lab: VmLab, harness: QmpClient): Promise<string[]> {
  const blocks = (await harness.execute<{ qdev?: string; inserted?: unknown }[]>('query-block'))._unsafeUnwrap();
  const qdev = blocks.find((b) => b.inserted !== undefined)?.qdev ?? 'vda';
  const bad: string[] = [];
  for (const r of lab.expected()) {
    const out = (
      await harness.execute<string>('human-monitor-command', {
        'command-line': `qemu-io -d ${qdev} "read -P 0x${r.pattern.toString(16)} ${r.offset} ${r.len}"`,
      })
    )._unsafeUnwrap();
    if (/verification failed|error|fail/i.test(out)) bad.push(`${r.offset}+${r.len}: ${out.trim()}`);
  }
  return bad;
}

describe.runIf(onPath('qemu-system-x86_64', 'qemu-img', 'qemu-io'))('kill -9 of the engine on a TCG VM', () => {
  // Each point has its own VM, store and files: they run side by side (vitest's maxConcurrency),
  // which keeps the file to about a minute on an idle 2-core machine.
  it.concurrent.for(cases)(
    '%s, killed at %s: recovered to the same end',
    { timeout: 300_000 },
    async ([intent, point], { expect }) => {
      const t0 = performance.now();
      const lab = await VmLab.start({
        style: 'blockdev',
        template: await chainTemplate(),
        monitors: ['qmp', 'harness'],
      });
      vmStartMs.push(performance.now() - t0);
      let hv: QemuHypervisor | null = null;
      let harness: QmpClient | null = null;
      try {
        counts.runs++;
        harness = (await QmpClient.connect({ socket: lab.socket('harness'), reconnect: false }))._unsafeUnwrap();
        const dest = join(lab.dir, 'copy.qcow2');
        const storePath = join(lab.dir, 'state', 'jobs.db');
        const userFile = join(lab.dir, 'notes.txt');
        await fs.writeFile(userFile, 'the user keeps this\n');
        const chainBefore = await Promise.all([lab.paths.base, lab.paths.snap1].map(sha));
        const killed = await runChild(child, [lab.socket('qmp'), storePath, dest, intent, point]);
        expect(killed.signal, childFailure(killed, lab.alive)).toBe('SIGKILL');

        const port = (await connectQemu({ socket: lab.socket('qmp'), domain: 'qemu' }))._unsafeUnwrap();
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
        if (!result || records.length !== 1 || unfinished.length !== 0) counts.jobsLost++;

        const active = (await port.activeImage('qemu', 'vda'))._unsafeUnwrap();
        const pivotedOk = intent === 'pivot' ? active === dest && result?.pivoted === true : active === lab.paths.snap2;
        if (!pivotedOk) counts.wrongPivots++;
        const guestBad = await guestReadsSeed(lab, harness);
        const chainAfter = await Promise.all([lab.paths.base, lab.paths.snap1].map(sha));
        const userOk = (await fs.readFile(userFile, 'utf8')) === 'the user keeps this\n';
        if (guestBad.length > 0 || chainAfter.join() !== chainBefore.join() || !userOk) counts.userFilesTouched++;

        const jobs = (await harness.execute<unknown[]>('query-jobs'))._unsafeUnwrap();
        const nodes = (await harness.execute<{ 'node-name': string }[]>('query-named-block-nodes', { flat: true }))
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
        if (intent === 'pivot') expect(await lab.compareWithChain(dest, 'qcow2')).toMatchObject({ identical: true });
      } finally {
        await hv?.close();
        await harness?.close();
        await lab.dispose();
      }
    },
  );
});
