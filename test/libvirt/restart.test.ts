/**
 * libvirtd killed mid-copy and restarted, with the READY reached while it was down (libvirt never
 * replays missed events): blockcopy reconnects, re-registers its callbacks, finds READY in the
 * live XML (`<mirror ready='yes'>`), pivots, and the guest reads the chain's data from the copy.
 *
 * Its own file, run after every other file (vitest.config.ts): no other test may see libvirtd go
 * away. libvirtd and virtlogd are started here when not running, and stopped only if started here.
 */
import { join } from 'node:path';
import { firstValueFrom, filter, timeout } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AbortFlags } from '../../src/core/flags.js';
import type { HypervisorEvent } from '../../src/core/hypervisor-port.js';
import { createEngine, type BlockCopyEngine } from '../../src/engine/engine.js';
import { whenReady, whenState } from '../qemu-engine/helpers.js';
import { ensureLibvirtd, killLibvirtd, startLibvirtd, stopStarted } from '../../adapters/libvirt/lab-daemon.js';
import { LibvirtLab, MiB, type Guest } from '../../adapters/libvirt/lab.js';

let started: string[] = [];
let lab: LibvirtLab;
let engine: BlockCopyEngine;

beforeAll(async () => {
  started = await ensureLibvirtd();
  lab = await LibvirtLab.open();
  engine = createEngine({ hypervisor: lab.hv, pollIntervalMs: 200 });
}, 120_000);

afterAll(async () => {
  engine?.close();
  await lab?.cleanup();
  await stopStarted(started);
}, 120_000);

/** The live XML names the copy as vda's source and the guest sees the chain's data in it. */
async function verifyPivot(guest: Guest, dest: string) {
  expect(await lab.source(guest)).toBe(dest);
  const cmp = await lab.sameAsChain(guest, dest, 'qcow2');
  expect(cmp.stdout + cmp.stderr).toMatch(/Images are identical/);
  expect(cmp.code).toBe(0);
}

describe('libvirtd restart', () => {
  it('libvirtd killed mid-copy, READY reached while it was down: blockcopy reconnects, finds READY in the live XML and pivots', async () => {
    const guest = await lab.guest('restart');
    const dest = join(guest.dir, 'copy.qcow2');
    const events: HypervisorEvent[] = [];
    const sub = lab.hv.events$.subscribe((e) => events.push(e));
    // Slow enough to still be copying when libvirtd dies, fast enough to be ready while it is down.
    const job = (
      await engine.blockCopy(guest.name, 'vda', { path: dest, format: 'qcow2' }, { bandwidth: 2 * MiB }, 0)
    )._unsafeUnwrap();
    await whenState(job, 'mirroring');
    await killLibvirtd();
    // While libvirtd is down the mirror goes on in QEMU: wait for QEMU itself to reach ready.
    const lost = firstValueFrom(
      lab.hv.events$.pipe(
        filter((e) => e.kind === 'connection-lost'),
        timeout(30_000),
      ),
    ).catch(() => null);
    await lost;
    await new Promise((r) => setTimeout(r, 5000));
    expect(job.state()).toMatch(/^mirroring/);
    await startLibvirtd();
    await whenReady(job, 60_000);
    sub.unsubscribe();
    const kinds = events.map((e) => (e.kind === 'job-status' ? `status:${e.status}` : e.kind));
    expect(kinds).toContain('connection-lost');
    expect(kinds).toContain('connection-restored');
    // No READY event ever arrived: the job became ready from <mirror ready='yes'>.
    expect(kinds).not.toContain('status:ready');
    expect((await engine.blockJobAbort(guest.name, 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
    expect(await job.result).toMatchObject({ outcome: 'completed', pivoted: true });
    await verifyPivot(guest, dest);
    await lab.destroy(guest);
  }, 180_000);
});
