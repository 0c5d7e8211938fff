/**
 * Symlinks in the destination path, on the real file system, through the QEMU adapter's probe
 * and create (no daemon: neither uses the monitor). A symlink to a file is an existing
 * destination (refused without REUSE_EXT, never overwritten); a dangling symlink is never
 * followed to create its target.
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EMPTY } from 'rxjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { QmpClient } from '../../adapters/qmp/client.js';
import { QemuHypervisor } from '../../adapters/qmp/qemu-adapter.js';
import { planCopy, validateRebase } from '../../src/core/validate.js';
import { RebaseFlags } from '../../src/core/flags.js';
import { seedFacts } from '../machine/fixtures.js';

let dir: string;
let hv: QemuHypervisor;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'blockcopy-symlink-'));
  const client = { events$: EMPTY, lifecycle$: EMPTY } as unknown as QmpClient;
  hv = new QemuHypervisor(client, { socket: join(dir, 'none.sock') });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('symlinked destinations on the real file system', () => {
  it('a symlink to an existing file is an existing destination: the copy is refused, the file kept', async () => {
    const target = join(dir, 'precious.img');
    writeFileSync(target, 'data the engine did not create');
    const link = join(dir, 'copy.qcow2');
    symlinkSync(target, link);
    const probe = (await hv.probeDestination(link))._unsafeUnwrap();
    expect(probe.exists).toBe(true);
    const request = validateRebase({
      domain: 'demo',
      disk: 'vda',
      base: link,
      bandwidth: 0,
      flags: RebaseFlags.COPY,
    })._unsafeUnwrap();
    expect(planCopy(request, seedFacts(probe))._unsafeUnwrapErr().code).toBe('VIR_ERR_CONFIG_UNSUPPORTED');
    // Even asked directly, create does not replace it.
    const created = await hv.createDestination({
      path: link,
      format: 'qcow2',
      virtualSize: 1024 * 1024,
      backing: null,
    });
    expect(created.isErr()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('data the engine did not create');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
  });

  it('a dangling symlink is not followed: create fails, its target is never created', async () => {
    const target = join(dir, 'elsewhere.img');
    const link = join(dir, 'copy.qcow2');
    symlinkSync(target, link);
    expect((await hv.probeDestination(link))._unsafeUnwrap().exists).toBe(false);
    const created = await hv.createDestination({
      path: link,
      format: 'qcow2',
      virtualSize: 1024 * 1024,
      backing: null,
    });
    expect(created.isErr()).toBe(true);
    expect(existsSync(target)).toBe(false);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
  });
});
