/**
 * A mirror that never converges (guest dirty rate ≥ copy rate, peers §3 item 3): the engine
 * must not report a pivot that did not happen, must refuse a second request, and must complete
 * once the guest slows down.
 */
import { describe, expect, it } from 'vitest';
import { MiB } from '../../adapters/sim/index.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { System } from './system.js';

describe('never-converging mirror', () => {
  it('a pivot under heavy writes stays pivoting, never COMPLETED, until the writes stop', async () => {
    const s = new System([]);
    const job = (
      await s.await(s.engine.blockRebase('d1', 'vda', '/dst/nc.qcow2', 0, RebaseFlags.COPY))
    )._unsafeUnwrap();
    await s.clock.runUntil(() => job.state().startsWith('ready'), 60_000, 100);
    s.sim.setGuestWriteRate('d1', 'vda', 256 * MiB);
    await s.clock.advance(2_000);
    const pivot = s.engine.blockJobAbort('d1', 'vda', AbortFlags.PIVOT);
    let returned = false;
    void pivot.then(() => (returned = true));
    await s.clock.advance(20_000);
    expect(job.state()).toBe('pivoting');
    expect(returned).toBe(false);
    expect(s.rec.events.map((e) => e.status)).toEqual(['READY']);
    // A second request while the first is in flight is refused (libvirt: still being ended).
    const second = await s.engine.blockJobAbort('d1', 'vda', 0);
    expect(second._unsafeUnwrapErr().code).toBe('VIR_ERR_OPERATION_INVALID');
    s.sim.setGuestWriteRate('d1', 'vda', 0);
    const result = await s.await(pivot, 3_600_000);
    expect(result.isOk()).toBe(true);
    expect(s.rec.events.map((e) => e.status)).toEqual(['READY', 'COMPLETED']);
    s.checkInvariants();
  });
});
