/**
 * The daemon on real QEMU, driven from separate processes as from separate shells: submit from
 * one, pivot from another; kill -9 the daemon mid-copy, restart it, `blockjob --pivot` still
 * succeeds; a CLI copy SIGKILLed without a daemon is recovered and finished by `blockjob` from a
 * new process; `list` shows the jobs.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { QemuLab, onPath } from '../../adapters/qmp/lab.js';
import { connectQemu } from '../../adapters/qmp/qemu-adapter.js';
import { openSqliteStore } from '../../adapters/store/sqlite.js';
import { blockcopy, startDaemon } from './cli.js';

/** What the guest reads, asked on the lab's second monitor (the daemon holds the first). */
async function activeImage(lab: QemuLab): Promise<string> {
  const hv = (await connectQemu({ socket: join(lab.dir, 'probe.sock'), domain: 'qemu' }))._unsafeUnwrap();
  try {
    return (await hv.activeImage('qemu', 'vda'))._unsafeUnwrap();
  } finally {
    await hv.close();
  }
}

/** Waits until the store shows the only job in a state matching `re`. */
async function storeState(store: string, re: RegExp): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const s = openSqliteStore(store);
    if (s.isOk()) {
      const jobs = (await s.value.list())._unsafeUnwrap();
      s.value.close();
      if (jobs[0] && re.test(jobs[0].state)) return jobs[0].state;
    }
    if (Date.now() > deadline) throw new Error(`store never showed ${re}`);
    await sleep(100);
  }
}

describe.runIf(onPath('qemu-storage-daemon', 'qemu-img', 'qemu-io'))('blockcopy daemon on real QEMU', () => {
  it(
    'submit from one shell, pivot from another; kill -9 the daemon, restart, pivot',
    { timeout: 180_000 },
    async () => {
      const lab = await QemuLab.start({ monitors: ['qmp', 'probe'] });
      const store = join(lab.dir, 'state', 'jobs.db');
      const socket = join(lab.dir, 'run', 'control.sock');
      const env = { BLOCKCOPY_SOCKET: socket };
      const hv = `qmp:${lab.qmpSocket}`;
      const dest = join(lab.dir, 'copy.qcow2');
      let daemon = await startDaemon(store, socket);
      try {
        expect((await fs.stat(socket)).mode & 0o777).toBe(0o600);
        const copy = await blockcopy(['copy', 'vda', dest, '--hypervisor', hv, '--store', store, '--wait'], env).done;
        expect(copy.stdout, copy.stderr).toContain('Block Copy started by the daemon');
        expect(copy.code).toBe(0);
        const list = await blockcopy(['list', '--store', store, '--json'], env).done;
        expect(JSON.parse(list.stdout)).toMatchObject([{ domain: 'qemu', disk: 'vda', state: 'ready.synced' }]);

        daemon.child.kill('SIGKILL');
        await daemon.done;
        daemon = await startDaemon(store, socket);
        const info = await blockcopy(['blockjob', 'vda', '--hypervisor', hv, '--store', store, '--info'], env).done;
        expect(info.stdout).toMatch(/Block Copy: \[100 %\]\s+ready/);
        const pivot = await blockcopy(['blockjob', 'vda', '--hypervisor', hv, '--store', store, '--pivot'], env).done;
        expect(pivot.stdout, pivot.stderr).toContain('Successfully pivoted');
        expect(pivot.code).toBe(0);
        expect(await activeImage(lab)).toBe(dest);
        expect(await lab.guestVerify(lab.expected())).toEqual([]);
        const after = await blockcopy(['blockjob', 'vda', '--hypervisor', hv, '--store', store, '--info'], env).done;
        expect(after.stdout).toContain('No current block job for vda');
      } finally {
        daemon.child.kill('SIGTERM');
        await daemon.done;
        await lab.dispose();
      }
    },
  );

  it(
    'a CLI copy SIGKILLed without a daemon is finished by blockjob from a new process',
    { timeout: 180_000 },
    async () => {
      const lab = await QemuLab.start({ monitors: ['qmp', 'probe'] });
      const store = join(lab.dir, 'state', 'jobs.db');
      const env = { BLOCKCOPY_SOCKET: join(lab.dir, 'run', 'none.sock') };
      const hv = `qmp:${lab.qmpSocket}`;
      const dest = join(lab.dir, 'copy.qcow2');
      try {
        // 1 MiB/s: the 64 MiB copy is still mirroring when the CLI dies.
        const copy = blockcopy(
          ['copy', 'vda', dest, '--hypervisor', hv, '--store', store, '--pivot', '--bandwidth', '1'],
          env,
        );
        await storeState(store, /^mirroring/);
        copy.child.kill('SIGKILL');
        expect((await copy.done).signal).toBe('SIGKILL');
        const speed = await blockcopy(
          ['blockjob', 'vda', '--hypervisor', hv, '--store', store, '--bandwidth', '0'],
          env,
        ).done;
        expect(speed.code, speed.stderr).toBe(0);
        await storeState(store, /./);
        // Wait for the copy to be synchronised (QEMU says ready) before asking for the pivot.
        const deadline = Date.now() + 60_000;
        for (;;) {
          const i = await blockcopy(['blockjob', 'vda', '--hypervisor', hv, '--store', store, '--info'], env).done;
          if (/ready/.test(i.stdout) || Date.now() > deadline) break;
          await sleep(200);
        }
        const pivot = await blockcopy(['blockjob', 'vda', '--hypervisor', hv, '--store', store, '--pivot'], env).done;
        expect(pivot.stdout, pivot.stderr).toContain('Successfully pivoted');
        expect(await activeImage(lab)).toBe(dest);
        expect(await lab.guestVerify(lab.expected())).toEqual([]);
      } finally {
        await lab.dispose();
      }
    },
  );
});
