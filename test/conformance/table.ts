/**
 * Runs the conformance table (scenarios.ts) against one adapter's driver: one vitest test per
 * scenario, each on a fresh domain that is disposed of afterwards, even when the scenario fails.
 */
import { describe, it } from 'vitest';
import type { ConformanceDriver } from './driver.js';
import { SCENARIOS } from './scenarios.js';

export function runConformance(driver: ConformanceDriver): void {
  describe(`conformance: ${driver.name}`, () => {
    for (const scenario of SCENARIOS)
      it(scenario.name, async () => {
        const d = await driver.newDomain();
        try {
          await scenario.run(d);
        } finally {
          await d.dispose();
        }
      });
  });
}
