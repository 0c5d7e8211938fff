/**
 * Foreign jobs in `blockcopy list`: a mirror another tool started (here straight on the
 * hypervisor, with no blockcopy record) is listed, marked foreign, before anyone adopts it:
 * through the daemon when one runs (on the simulator), and from the hypervisor itself when none
 * does (real QEMU, a qemu-storage-daemon lab). Once adopted it is the store's job, not foreign.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ok } from 'neverthrow';
import { afterAll, describe, expect, it } from 'vitest';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { QemuLab, onPath } from '../../adapters/qmp/lab.js';
import { connectQemu } from '../../adapters/qmp/qemu-adapter.js';
import { openSqliteStore } from '../../adapters/store/sqlite.js';
import { runListCommand } from '../../src/cli/list.js';
import type { MirrorSpec } from '../../src/core/hypervisor-port.js';
import { callDaemon } from '../../src/daemon/client.js';
import { startDaemon } from '../../src/daemon/server.js';
import { captureOutput } from '../cli/capture.js';

const dir = mkdtempSync(join(tmpdir(), 'blockcopy-foreign-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const mirror = (jobId: string, destination: string, domain: string): MirrorSpec => ({
  jobId,
  domain,
  disk: 'vda',
  destination: { path: destination, format: 'qcow2' },
  destinationBacking: null,
  sync: 'full',
  speed: 1024 * 1024, // slow: still copying while the test looks
  onTargetError: 'report',
  onSourceError: 'report',
  copyMode: 'background',
});

async function list(args: string[]) {
  const out = captureOutput();
  const code = await runListCommand(args, out);
  return { code, out };
}

describe('blockcopy list: foreign jobs', () => {
  it('through the daemon: listed as foreign before adoption, as the store job after', async () => {
    const sim = new SimulatedHypervisor();
    const storePath = join(dir, 'daemon', 'jobs.db');
    const socket = join(dir, 'daemon', 'control.sock');
    const store = openSqliteStore(storePath)._unsafeUnwrap();
    const daemon = (
      await startDaemon({ socketPath: socket, store, open: () => Promise.resolve(ok(sim)), inspector: false })
    )._unsafeUnwrap();
    try {
      const dest = '/var/lib/blockcopy/other-tool.qcow2';
      (
        await sim.createDestination({ path: dest, format: 'qcow2', virtualSize: 1024 ** 3, backing: null })
      )._unsafeUnwrap();
      (await sim.startMirror(mirror('other-tool-1', dest, 'demo')))._unsafeUnwrap();
      const args = ['--store', storePath, '--socket', socket, '--hypervisor', 'sim'];

      const json = await list([...args, '--json']);
      expect(json.code, json.out.errors.join('\n')).toBe(0);
      expect(JSON.parse(json.out.lines[0]!)).toEqual([
        {
          jobId: 'other-tool-1',
          hypervisor: 'sim',
          domain: 'demo',
          disk: 'vda',
          origin: 'foreign',
          state: 'foreign mirror running',
          end: null,
          // Read with the job (query-block-jobs' offset/len): the simulator copies in real time here.
          progress: expect.stringMatching(/^\d{1,3}%$/),
          ageSeconds: null,
          owner: null,
        },
      ]);
      const text = await list(args);
      expect(text.out.lines[1]!.split('\t')).toEqual([
        'other-tool-1',
        'sim',
        'demo',
        'vda',
        'foreign mirror running',
        expect.stringMatching(/^\d{1,3}%$/),
        '-',
      ]);
      // Without a hypervisor named, list reads the store only: nothing there yet.
      expect((await list(['--store', storePath, '--json'])).out.lines).toEqual(['[]']);

      // blockjob --info adopts it: from now on it is the store's job, listed once, not foreign.
      const info = await callDaemon(socket, 'info', 'sim', { domain: 'demo', disk: 'vda' });
      expect(info?.ok, JSON.stringify(info)).toBe(true);
      const after = JSON.parse((await list([...args, '--json'])).out.lines[0]!) as { jobId: string; origin: string }[];
      expect(after.map((r) => [r.jobId, r.origin])).toEqual([['other-tool-1', 'adopted']]);
    } finally {
      await daemon.close();
      store.close();
      await sim.close();
    }
  });

  it('refuses --domain without --hypervisor (usage)', async () => {
    const r = await list(['--store', join(dir, 'usage.db'), '--domain', 'vm1']);
    expect(r.code).toBe(2);
    expect(r.out.errors.join('\n')).toMatch(/--domain goes with --hypervisor/);
  });

  it.runIf(onPath('qemu-storage-daemon', 'qemu-img'))(
    'without a daemon, on real QEMU: read from the monitor, foreign until adopted',
    { timeout: 120_000 },
    async () => {
      const lab = await QemuLab.start();
      try {
        const port = (await connectQemu({ socket: lab.qmpSocket, domain: 'qemu' }))._unsafeUnwrap();
        const dest = join(lab.dir, 'other-tool.qcow2');
        try {
          (
            await port.createDestination({ path: dest, format: 'qcow2', virtualSize: lab.size, backing: null })
          )._unsafeUnwrap();
          (await port.startMirror(mirror('other-tool-q', dest, 'qemu')))._unsafeUnwrap();
        } finally {
          await port.close(); // the other tool leaves; QEMU serves one monitor client at a time
        }
        const args = ['--store', join(lab.dir, 'state', 'jobs.db'), '--socket', join(lab.dir, 'none.sock')];
        const r = await list([...args, '--hypervisor', `qmp:${lab.qmpSocket}`, '--json']);
        expect(r.code, r.out.errors.join('\n')).toBe(0);
        const rows = JSON.parse(r.out.lines[0]!) as {
          jobId: string;
          origin: string;
          domain: string;
          disk: string;
          state: string;
        }[];
        expect(rows.map((x) => [x.jobId, x.origin, x.domain, x.disk])).toEqual([
          ['other-tool-q', 'foreign', 'qemu', 'vda'],
        ]);
        expect(rows[0]!.state).toMatch(/^foreign mirror (running|ready)$/);
        // Listing touched nothing: the job runs on, nobody holds a record of it.
        const again = (await connectQemu({ socket: lab.qmpSocket, domain: 'qemu' }))._unsafeUnwrap();
        try {
          expect((await again.queryJob('other-tool-q'))._unsafeUnwrap()).not.toBeNull();
          expect((await again.cancelJob('other-tool-q', true)).isOk()).toBe(true);
        } finally {
          await again.close();
        }
        expect(JSON.parse((await list([...args, '--json'])).out.lines[0]!)).toEqual([]);
      } finally {
        await lab.dispose();
      }
    },
  );
});
