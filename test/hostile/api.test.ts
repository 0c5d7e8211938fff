/**
 * Hostile calls to the public API: NUL bytes, relative and `..` paths, absurd bandwidths,
 * unknown flag bits, wrong types from JS callers. Always a typed libvirt error (or a job that
 * runs), never a throw, never a file touched by a refused call.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { VirtualClock } from '../../src/core/clock.js';
import { createEngine } from '../../src/engine/engine.js';
import { ErrorNumber } from '../../src/core/errors.js';
import { RebaseFlags } from '../../src/core/flags.js';

const DIR = '/var/lib/blockcopy';
const path = fc.oneof(
  { arbitrary: fc.constant(`${DIR}/copy.qcow2`), weight: 3 },
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom(
    '',
    'copy.qcow2',
    './copy.qcow2',
    '../copy.qcow2',
    `${DIR}/../blockcopy/snap2.qcow2`,
    `${DIR}/./snap1.qcow2`,
    `${DIR}//base.qcow2`,
    `${DIR}/copy\0.qcow2`,
    `${DIR}/copy.qcow2\0/../../etc/passwd`,
    `${DIR}/`,
    '/',
    `${DIR}/${'x'.repeat(5000)}`,
  ),
);
const number = fc.oneof(
  { arbitrary: fc.constant(0), weight: 3 },
  fc.integer(),
  fc.double(),
  fc.constantFrom(NaN, Infinity, -Infinity, -0, 2 ** 53, 2 ** 63, 2 ** 64, 8796093022207, 8796093022208, 1.5),
);
const flags = fc.oneof(
  { arbitrary: fc.constant(RebaseFlags.COPY), weight: 3 },
  fc.integer(),
  fc.constantFrom(RebaseFlags.COPY | (1 << 30), RebaseFlags.COPY | RebaseFlags.SHALLOW, 2 ** 32, -1, 0.5, NaN),
);

function checkError(e: { code: string; number: number; message: string }): void {
  expect(Object.keys(ErrorNumber)).toContain(e.code);
  expect(e.number).toBe(ErrorNumber[e.code as keyof typeof ErrorNumber]);
  expect(typeof e.message).toBe('string');
}

describe('public API under hostile input', () => {
  // ~30 ms a run (an engine and a simulated VM each): 400 runs, and room for a loaded 2-core CI.
  it(
    'blockRebase, blockCopy, set speed and abort: typed errors, never a throw; a refusal touches no file',
    { timeout: 180_000 },
    async () => {
      let refused = 0;
      let started = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.record({
            dest: path,
            bw: number,
            flags,
            abortFlags: flags,
            speed: number,
            speedFlags: flags,
            copy: fc.boolean(),
          }),
          async (a) => {
            const clock = new VirtualClock();
            const sim = new SimulatedHypervisor({ clock });
            const engine = createEngine({ hypervisor: sim, clock });
            const before = JSON.stringify(sim.images.paths().sort());
            const r = a.copy
              ? await engine.blockCopy(
                  'demo',
                  'vda',
                  { path: a.dest },
                  { bandwidth: a.bw, granularity: a.speed },
                  a.flags,
                )
              : await engine.blockRebase('demo', 'vda', a.dest, a.bw, a.flags);
            if (r.isErr()) {
              refused++;
              checkError(r.error);
              expect(JSON.stringify(sim.images.paths().sort())).toBe(before);
            } else {
              started++;
              // Whatever was accepted is an absolute path without NUL, `.` or `..` components.
              expect(r.value.plan.destination.path).toMatch(/^\//);
              expect(r.value.plan.destination.path).not.toContain('\0');
              expect(r.value.plan.destination.path.split('/')).not.toContain('..');
              // The disk's own images are never a destination.
              expect(r.value.plan.destination.path).not.toMatch(/\/(snap1|snap2|base)\.qcow2$/);
            }
            for (const res of [
              await engine.blockJobSetSpeed('demo', 'vda', a.speed, a.speedFlags),
              await engine.blockJobAbort('demo', 'vda', a.abortFlags),
              await engine.getBlockJobInfo('demo', 'vda', a.speedFlags),
              await engine.blockJobAbort('demo', '\0', 0),
              await engine.checkDomainOperation('demo', 'explode' as 'save'),
            ])
              if (res.isErr()) checkError(res.error);
            engine.close();
          },
        ),
        { numRuns: 400 },
      );
      console.log(`hostile API: ${refused} refused, ${started} started`);
      expect(refused).toBeGreaterThan(0);
      expect(started).toBeGreaterThan(0);
    },
  );

  it("a destination with `..` components that names the disk's own image is refused, nothing touched", async () => {
    const clock = new VirtualClock();
    const sim = new SimulatedHypervisor({ clock });
    const engine = createEngine({ hypervisor: sim, clock });
    const before = sim.images.get(`${DIR}/snap2.qcow2`);
    for (const dest of [`${DIR}/../blockcopy/snap2.qcow2`, `${DIR}/./snap1.qcow2`, `${DIR}//base.qcow2`]) {
      const r = await engine.blockRebase('demo', 'vda', dest, 0, RebaseFlags.COPY);
      expect(r.isErr(), dest).toBe(true);
      checkError(r._unsafeUnwrapErr());
    }
    expect(sim.images.get(`${DIR}/snap2.qcow2`)).toEqual(before);
    expect(sim.images.paths().filter((p) => p.includes('..') || p.includes('//') || p.includes('/./'))).toEqual([]);
  });
});
