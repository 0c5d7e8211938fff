/**
 * Backing image sizes remembered per file: read once with qemu-img, then answered from memory
 * while the file is unchanged, and read again once it changed (a resize).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BackingSizes } from '../../adapters/libvirt/backing-sizes.js';
import { LocalImages } from '../../adapters/local-images.js';

const dir = mkdtempSync(join(tmpdir(), 'blockcopy-backing-sizes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MiB = 1024 * 1024;
const qemuImg = (...argv: string[]) => execFileSync('qemu-img', argv, { stdio: 'pipe' });

/** LocalImages that counts its qemu-img runs. */
class CountingImages extends LocalImages {
  runs = 0;
  override tool(command: string, argv: readonly string[]) {
    this.runs++;
    return super.tool(command, argv);
  }
}

describe('BackingSizes', () => {
  it('reads a chain once, answers from memory while unchanged, and reads again after a resize', async () => {
    const base = join(dir, 'base.qcow2');
    const snap1 = join(dir, 'snap1.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', base, String(32 * MiB));
    qemuImg('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', snap1, String(40 * MiB));
    const images = new CountingImages('qemu-img', 60_000);
    const sizes = new BackingSizes(images);

    expect((await sizes.sizes([snap1, base]))._unsafeUnwrap()).toEqual([40 * MiB, 32 * MiB]);
    expect(images.runs).toBe(1);
    expect((await sizes.sizes([snap1, base]))._unsafeUnwrap()).toEqual([40 * MiB, 32 * MiB]);
    expect((await sizes.sizes([base]))._unsafeUnwrap()).toEqual([32 * MiB]);
    expect(images.runs).toBe(1);

    qemuImg('resize', '-q', base, String(48 * MiB));
    expect((await sizes.sizes([snap1, base]))._unsafeUnwrap()).toEqual([40 * MiB, 48 * MiB]);
    expect(images.runs).toBe(2);
    expect((await sizes.sizes([]))._unsafeUnwrap()).toEqual([]);
  });

  it('a missing image is a typed io error, not a remembered size', async () => {
    const sizes = new BackingSizes(new CountingImages('qemu-img', 60_000));
    const r = (await sizes.sizes([join(dir, 'absent.qcow2')]))._unsafeUnwrapErr();
    expect(r).toMatchObject({ kind: 'io', command: 'qemu-img info' });
  });
});
