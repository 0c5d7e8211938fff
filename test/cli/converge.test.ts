/**
 * `copy --converge-timeout S` and `daemon --max-jobs N --max-jobs-per-fs N` through main(): bad
 * values are usage errors (exit 2, nothing started), a good timeout is recorded with the job.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SignalSource } from '../../src/cli/interrupts.js';
import { main } from '../../src/cli/main.js';
import { openSqliteStore } from '../../adapters/store/index.js';
import { captureOutput } from './capture.js';
import { SimulatedHypervisor, demoDisk } from '../../adapters/sim/index.js';
import { VirtualClock } from '../../src/core/clock.js';
import { RebaseFlags } from '../../src/core/flags.js';
import { createEngine } from '../../src/engine/engine.js';

const DEST = '/var/lib/blockcopy/converge.qcow2';
const env = () => ({ env: {}, signals: new EventEmitter() as unknown as SignalSource });
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('blockcopy copy --converge-timeout', () => {
  it.each([['0'], ['-3'], ['abc'], ['2147484']])('refuses --converge-timeout %s as a usage error', async (value) => {
    const out = captureOutput();
    const code = await main(['copy', 'vda', DEST, '--hypervisor', 'sim', '--converge-timeout', value], out, env());
    expect(code).toBe(2);
    expect(out.errors[0]).toMatch(/converge-timeout/);
  });

  it('records the policy with the job (a restarted engine keeps the deadline)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'blockcopy-converge-'));
    dirs.push(dir);
    const storePath = join(dir, 'jobs.db');
    const out = captureOutput();
    const code = await main(
      ['copy', 'vda', DEST, '--hypervisor', 'sim', '--store', storePath, '--converge-timeout', '30', '--wait'],
      out,
      env(),
    );
    expect(code).toBe(0);
    const store = openSqliteStore(storePath)._unsafeUnwrap();
    const records = (await store.list({ includeEnded: true }))._unsafeUnwrap();
    store.close();
    expect(records).toHaveLength(1);
    expect(records[0]!.side.convergence?.policy).toEqual({
      timeoutMs: 30_000,
      windowMs: 10_000,
      raiseBandwidthTo: 0,
      writeBlocking: true,
      minShrinkBytes: 0,
    });
  });
});

describe('blockcopy daemon --max-jobs / --max-jobs-per-fs', () => {
  it.each([
    ['--max-jobs', '0'],
    ['--max-jobs', '1.5'],
    ['--max-jobs-per-fs', 'x'],
  ])('refuses %s %s as a usage error', async (option, value) => {
    const out = captureOutput();
    const code = await main(['daemon', option, value], out, env());
    expect(code).toBe(2);
    expect(out.errors[0]).toContain(`${option} expects a whole number of at least 1, got '${value}'`);
  });
});

describe('blockcopy list shows queued copies', () => {
  it('a copy waiting for a slot is listed as queued', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'blockcopy-queued-'));
    dirs.push(dir);
    const storePath = join(dir, 'jobs.db');
    const store = openSqliteStore(storePath)._unsafeUnwrap();
    const sim = new SimulatedHypervisor({
      clock: new VirtualClock(),
      domains: [
        { name: 'd', disks: [demoDisk('vda', '/var/lib/blockcopy/a'), demoDisk('vdb', '/var/lib/blockcopy/b')] },
      ],
    });
    const engine = createEngine({ hypervisor: sim, store, maxJobs: 1, clock: new VirtualClock() });
    (await engine.blockRebase('d', 'vda', '/var/lib/blockcopy/a.qcow2', 0, RebaseFlags.COPY))._unsafeUnwrap();
    const queued = (
      await engine.blockRebase('d', 'vdb', '/var/lib/blockcopy/b.qcow2', 0, RebaseFlags.COPY)
    )._unsafeUnwrap();
    await engine.shutdown();
    store.close();
    const out = captureOutput();
    expect(await main(['list', '--store', storePath, '--json'], out, env())).toBe(0);
    const rows = JSON.parse(out.lines[0]!) as { jobId: string; disk: string; state: string }[];
    expect(rows.find((r) => r.jobId === queued.jobId)).toMatchObject({ disk: 'vdb', state: 'queued' });
    expect(rows.find((r) => r.disk === 'vda')?.state).not.toBe('queued');
  });
});
