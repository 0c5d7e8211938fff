/**
 * The README's API example, run as written through the package's own name (self-reference), so
 * the published entry points, the types and the documented behaviour stay true together.
 */
import { AbortFlags, RebaseFlags, createEngine } from 'blockcopy';
import type { BlockCopyError, BlockJobEvent } from 'blockcopy';
import { SimulatedHypervisor } from 'blockcopy/adapters/sim';
import { filter, firstValueFrom } from 'rxjs';
import { describe, expect, expectTypeOf, it } from 'vitest';

describe('README API example', () => {
  it('starts a copy, refuses an early pivot, prints READY then COMPLETED after the pivot; the documented types', async () => {
    const engine = createEngine({ hypervisor: new SimulatedHypervisor() });
    const seen: string[] = [];
    engine.events$.subscribe((e) => seen.push(`${e.disk} ${e.status}`));

    const started = await engine.blockRebase('demo', 'vda', '/var/lib/blockcopy/copy.qcow2', 0, RebaseFlags.COPY);
    expect(started.isOk()).toBe(true);
    const job = started._unsafeUnwrap();
    const states: string[] = [];
    job.stateChanges$.subscribe((state) => states.push(state));

    const early = await engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT);
    expect(early.isErr() && early.error.code).toBe('VIR_ERR_BLOCK_COPY_ACTIVE');

    // What the example prints: the state changes and events, up to a pivot once READY.
    await firstValueFrom(engine.events$.pipe(filter((e) => e.status === 'READY')));
    expect((await engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
    const result = await job.result;
    expect(result.outcome).toBe('completed');
    expect(seen).toEqual(['vda READY', 'vda COMPLETED']);
    expect(states.slice(-4)).toEqual(['pivoting', 'confirmingPivot', 'finishing', 'completed']);
    expect(states.some((s) => s.startsWith('ready'))).toBe(true);

    expectTypeOf(early).toExtend<{ isErr(): boolean }>();
    expectTypeOf<BlockJobEvent['status']>().toEqualTypeOf<'COMPLETED' | 'FAILED' | 'CANCELED' | 'READY'>();
    expectTypeOf<BlockCopyError['code']>().toExtend<string>();
    engine.close();
  });
});
