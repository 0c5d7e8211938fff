/**
 * Whole-chain live storage migration through libvirtd (the seed's closing use, the way a
 * manager would run it on a libvirt host): a transient TCG guest on base <- snap1 <- snap2 moves
 * to DEST-DIR; the live domain XML then names the new top and its relative backing chain in
 * DEST-DIR, every layer compares identical with its original, and the old files are byte for
 * byte what they were.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureLibvirtd, stopStarted } from '../../adapters/libvirt/lab-daemon.js';
import { LibvirtLab, run } from '../../adapters/libvirt/lab.js';
import { LocalChainFiles } from '../../adapters/local-chain-files.js';
import { createEngine } from '../../src/engine/engine.js';
import { migrateStorage } from '../../src/workflows/migrate-storage.js';

let started: string[] = [];
let lab: LibvirtLab;

beforeAll(async () => {
  started = await ensureLibvirtd();
  lab = await LibvirtLab.open();
}, 120_000);

afterAll(async () => {
  await lab?.cleanup();
  await stopStarted(started);
}, 120_000);

const sha = async (path: string) =>
  createHash('sha256')
    .update(await fs.readFile(path))
    .digest('hex');

describe('migrate-storage on libvirt', { timeout: 240_000 }, () => {
  it('moves a running guest disk with its whole chain; libvirt reads the new chain; the old files are untouched', async () => {
    const guest = await lab.guest('migrate');
    const old = [guest.paths.snap2, guest.paths.snap1, guest.paths.base];
    const before = await Promise.all(old.slice(1).map(sha));
    const destDir = join(lab.root, 'migrate-dest');
    await fs.mkdir(destDir, { mode: 0o755 });
    const engine = createEngine({ hypervisor: lab.hv, pollIntervalMs: 200 });
    try {
      const m = migrateStorage(
        { engine, hypervisor: lab.hv, files: new LocalChainFiles() },
        { domain: guest.name, disks: ['vda'], destDir },
      );
      const migration = (await m)._unsafeUnwrap();
      const result = await migration.result;
      expect(result).toMatchObject({ outcome: 'migrated', error: null, status: { vda: { state: 'pivoted' } } });

      // libvirt's live XML: the disk's chain is the new one, in DEST-DIR.
      const xml = (await lab.hv.domainXml(guest.name))._unsafeUnwrap();
      const chain = xml?.disks.find((d) => d.target === 'vda')?.chain.map((l) => l.path);
      const moved = ['snap2', 'snap1', 'base'].map((n) => join(destDir, `${n}.qcow2`));
      expect(chain).toEqual(moved);
      // Relative backing names in the new place, and every layer identical to its original.
      const info = await run('qemu-img', ['info', '-U', '--output=json', '--backing-chain', moved[0]!]);
      const layers = JSON.parse(info.stdout) as { filename: string; 'backing-filename'?: string }[];
      expect(layers.map((l) => l['backing-filename'] ?? null)).toEqual(['snap1.qcow2', 'base.qcow2', null]);
      for (const [i, path] of moved.entries()) {
        const cmp = await run('qemu-img', ['compare', '-U', old[i]!, path]);
        expect(cmp.stdout + cmp.stderr, path).toMatch(/Images are identical/);
      }
      // The old backing files were never written (the old top is the guest's until the pivot).
      expect(await Promise.all(old.slice(1).map(sha))).toEqual(before);
    } finally {
      engine.close();
    }
  });
});
