/**
 * Input checks on the public options: createEngine's (poll interval, port, clock, job id
 * factory and the ids it makes) and the simulator's. Bad options give a typed
 * VIR_ERR_INVALID_ARG and start nothing; nothing throws and nothing loops.
 */
import { describe, expect, it } from 'vitest';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { VirtualClock } from '../../src/core/clock.js';
import { RebaseFlags } from '../../src/core/flags.js';
import { createEngine, tryCreateEngine } from '../../src/engine/engine.js';
import type { EngineOptions } from '../../src/engine/engine.js';

const DEST = '/var/lib/blockcopy/opt.qcow2';

describe('createEngine options', () => {
  for (const pollIntervalMs of [-5, 0, Number.NaN, Number.POSITIVE_INFINITY, 1e12, '500' as unknown as number]) {
    it(`pollIntervalMs ${String(pollIntervalMs)}: every call refused with VIR_ERR_INVALID_ARG, no timer armed`, async () => {
      const clock = new VirtualClock();
      const sim = new SimulatedHypervisor({ clock });
      const options: EngineOptions = { hypervisor: sim, clock, pollIntervalMs };
      const bad = tryCreateEngine(options);
      expect(bad._unsafeUnwrapErr().code).toBe('VIR_ERR_INVALID_ARG');
      expect(bad._unsafeUnwrapErr().message).toContain('pollIntervalMs');
      const engine = createEngine(options);
      const started = await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY);
      expect(started._unsafeUnwrapErr()).toEqual(bad._unsafeUnwrapErr());
      expect((await engine.blockJobAbort('demo', 'vda', 0))._unsafeUnwrapErr().code).toBe('VIR_ERR_INVALID_ARG');
      expect(engine.jobs()).toEqual([]);
      expect(engine.job('demo', 'vda')).toBeUndefined();
      // Nothing was created and no timer runs: virtual time passes without work.
      expect(sim.images.get(DEST)).toBeUndefined();
      await clock.advance(10_000);
      expect(sim.listJobs()).toEqual([]);
      engine.close();
    });
  }

  it('a missing port, a clock or job id factory of the wrong shape are refused', () => {
    const sim = new SimulatedHypervisor();
    const cases: [unknown, string][] = [
      [{}, 'hypervisor'],
      [{ hypervisor: null }, 'hypervisor'],
      [{ hypervisor: sim, clock: {} }, 'clock'],
      [{ hypervisor: sim, jobId: 'fixed' }, 'jobId'],
      [{ hypervisor: sim, inspect: 5 }, 'inspect'],
      [null, 'object'],
    ];
    for (const [options, word] of cases) {
      const r = tryCreateEngine(options as EngineOptions);
      expect(r._unsafeUnwrapErr().code, word).toBe('VIR_ERR_INVALID_ARG');
      expect(r._unsafeUnwrapErr().message, word).toContain(word);
    }
  });

  it('good options: an engine that works (500 ms default poll)', async () => {
    const clock = new VirtualClock();
    const engine = tryCreateEngine({ hypervisor: new SimulatedHypervisor({ clock }), clock })._unsafeUnwrap();
    const started = engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY);
    await clock.runUntil(() => engine.jobs().length > 0, 10_000, 10);
    expect((await started).isOk()).toBe(true);
    engine.close();
  });

  for (const [name, factory] of [
    ['empty', () => ''],
    ['not a string', () => 7 as unknown as string],
    ['a control character', () => 'job\nid'],
    [
      'throws',
      () => {
        throw new Error('no ids left');
      },
    ],
  ] as const) {
    it(`a job id factory whose id is ${name}: the start is refused, nothing touched`, async () => {
      const clock = new VirtualClock();
      const sim = new SimulatedHypervisor({ clock });
      const engine = createEngine({ hypervisor: sim, clock, jobId: factory });
      const r = await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY);
      expect(r._unsafeUnwrapErr().code).toBe('VIR_ERR_INVALID_ARG');
      expect(sim.images.get(DEST)).toBeUndefined();
      expect(engine.jobs()).toEqual([]);
      engine.close();
    });
  }

  it('a job id already in use (a factory that repeats itself) is refused for the second disk', async () => {
    const clock = new VirtualClock();
    const sim = new SimulatedHypervisor({
      clock,
      directories: ['/dst'],
      domains: [
        {
          name: 'd',
          running: true,
          disks: [
            { name: 'vda', virtualSize: 1 << 20, chain: [{ path: '/img/a.qcow2', allocated: 0 }] },
            { name: 'vdb', virtualSize: 1 << 20, chain: [{ path: '/img/b.qcow2', allocated: 0 }] },
          ],
        },
      ],
    });
    const engine = createEngine({ hypervisor: sim, clock, jobId: () => 'same' });
    const first = engine.blockRebase('d', 'vda', '/dst/a.qcow2', 0, RebaseFlags.COPY);
    await clock.runUntil(() => engine.jobs().length > 0, 10_000, 10);
    expect((await first).isOk()).toBe(true);
    const second = await engine.blockRebase('d', 'vdb', '/dst/b.qcow2', 0, RebaseFlags.COPY);
    expect(second._unsafeUnwrapErr().message).toContain("job id 'same' is already in use");
    expect(sim.images.get('/dst/b.qcow2')).toBeUndefined();
    engine.close();
  });
});

describe('SimulatedHypervisor options', () => {
  for (const [copyRate, tickMs] of <[number, number][]>[
    [0, 100],
    [-1, 100],
    [Number.NaN, 100],
    [1024, 0],
    [1024, Number.POSITIVE_INFINITY],
  ]) {
    it(`copyRate ${copyRate}, tickMs ${tickMs}: no throw; every call reports the bad option`, async () => {
      let sim: SimulatedHypervisor | undefined;
      expect(() => (sim = new SimulatedHypervisor({ copyRate, tickMs }))).not.toThrow();
      expect(sim!.optionsError).toContain('copyRate and tickMs must be positive');
      const r = await sim!.getDomain('demo');
      expect(r._unsafeUnwrapErr()).toMatchObject({ kind: 'invalid' });
      const engine = createEngine({ hypervisor: sim! });
      const started = await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY);
      expect(started._unsafeUnwrapErr().code).toBe('VIR_ERR_INVALID_ARG');
      expect(started._unsafeUnwrapErr().message).toContain('copyRate and tickMs must be positive');
      engine.close();
    });
  }
});
