/**
 * `blockcopy migrate-storage` on the simulator (through main, as a user types it): a disk moved
 * with its chain and reported, --all with --json, and usage errors (exit 2) that start nothing.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { captureOutput } from './capture.js';

const env = { env: { BLOCKCOPY_HYPERVISOR: 'sim' }, signals: new EventEmitter() };

describe('blockcopy migrate-storage (simulator)', () => {
  it('moves a disk with its whole chain and says where it reads now', async () => {
    const out = captureOutput();
    expect(await main(['migrate-storage', 'vda', '/tmp'], out, env)).toBe(0);
    expect(out.lines).toEqual([
      'vda: pivoted: now reads /tmp/snap2.qcow2 <- /tmp/snap1.qcow2 <- /tmp/base.qcow2',
      'Storage migration complete; the old chain is no longer used (remove it when you wish)',
    ]);
  });

  it('--all --json reports the outcome per disk', async () => {
    const out = captureOutput();
    expect(await main(['migrate-storage', '--all', '/tmp', '--json'], out, env)).toBe(0);
    const report = JSON.parse(out.lines[0]!) as { outcome: string; status: Record<string, { state: string }> };
    expect(report.outcome).toBe('migrated');
    expect(report.status['vda']?.state).toBe('pivoted');
  });

  it('--delete-source deletes the old chain after the verified pivot and lists each file', async () => {
    const out = captureOutput();
    expect(await main(['migrate-storage', 'vda', '/tmp', '--delete-source', '--json'], out, env)).toBe(0);
    const report = JSON.parse(out.lines[0]!) as {
      outcome: string;
      sourceDeletion: { deleted: string[]; kept: unknown[] };
    };
    expect(report.outcome).toBe('migrated');
    expect(report.sourceDeletion.kept).toEqual([]);
    expect(report.sourceDeletion.deleted).toHaveLength(3);
    expect(report.sourceDeletion.deleted.map((p) => p.split('/').pop())).toEqual([
      'snap2.qcow2',
      'snap1.qcow2',
      'base.qcow2',
    ]);
    expect(report.sourceDeletion.deleted.every((p) => !p.startsWith('/tmp/'))).toBe(true);
    const o = captureOutput();
    expect(await main(['migrate-storage', 'vda', '/tmp', '--delete-source'], o, env)).toBe(0);
    expect(o.lines.slice(1, 4).every((l) => l.startsWith('deleted '))).toBe(true);
    expect(o.lines.at(-1)).toBe('Storage migration complete; the old chain was deleted as listed');
  });

  it('refuses a DEST-DIR that does not exist (exit 1), and bad usage (exit 2)', async () => {
    const out = captureOutput();
    expect(await main(['migrate-storage', 'vda', '/no/such/dir'], out, env)).toBe(1);
    expect(out.errors.at(-1)).toBe("error: invalid argument: destination directory '/no/such/dir' does not exist");
    for (const argv of [
      ['migrate-storage'],
      ['migrate-storage', 'vda'],
      ['migrate-storage', '--all', '--disk', 'vda', '/tmp'],
      ['migrate-storage', '--recover', 'vda'],
      ['migrate-storage', '--recover', '--delete-source'],
      ['migrate-storage', 'vda', '/tmp', '--bogus'],
    ]) {
      const o = captureOutput();
      expect(await main(argv, o, env), argv.join(' ')).toBe(2);
      expect(o.errors.at(-1)).toBe('see blockcopy migrate-storage --help');
    }
    const none = captureOutput();
    expect(await main(['migrate-storage', 'vda', '/tmp'], none, { ...env, env: {} })).toBe(2);
    expect(none.errors[0]).toMatch(/^error: migrate-storage needs a hypervisor: /);
  });
});
