/**
 * Runs the conformance table (scenarios.ts) against one adapter's driver: one vitest test per
 * scenario, each on a fresh domain that is disposed of afterwards, even when the scenario fails.
 * Rows the driver declares not applicable (with their reason) are checked to be real rows.
 */
import { describe, expect, it } from 'vitest';
import type { ConformanceDriver } from './driver.js';
import { SCENARIOS } from './scenarios.js';

export function runConformance(driver: ConformanceDriver): void {
  const notApplicable = driver.notApplicable ?? {};
  describe(`conformance: ${driver.name}`, () => {
    if (Object.keys(notApplicable).length > 0)
      it(`every row runs or says why it does not apply (${Object.keys(notApplicable).length} do not)`, () => {
        const names = new Set(SCENARIOS.map((s) => s.name));
        for (const [name, reason] of Object.entries(notApplicable)) {
          expect(names.has(name), `'${name}' is no row of the table`).toBe(true);
          expect(reason.length, `no reason given for '${name}'`).toBeGreaterThan(40);
        }
      });
    for (const scenario of SCENARIOS.filter((s) => !(s.name in notApplicable)))
      it(
        scenario.name,
        async () => {
          const d = await driver.newDomain();
          try {
            await scenario.run(d);
          } finally {
            await d.dispose();
          }
          // A row starts its own daemon or guest and builds a chain: on a loaded 2-core machine
          // that alone can take most of vitest's default minute (a deadline, not a sync point).
        },
        180_000,
      );
  });
}
