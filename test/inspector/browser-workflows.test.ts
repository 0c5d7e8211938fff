// The migration and convergence-policy cards in a real browser (Debian's chromium through
// playwright-core, headless): records of a storage migration on the simulator (in virtual time)
// and of a copy whose policy escalates and gives up, fed to an inspector; the page must draw each
// with its own chart (the migration's with its child copies drawn in), highlight the state each
// reached, and name the migration's child copy jobs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB } from '../../adapters/sim/index.js';
import { SimulatedHypervisor } from '../../adapters/sim/hypervisor.js';
import { VirtualClock } from '../../src/core/clock.js';
import { RebaseFlags } from '../../src/core/flags.js';
import { createEngine } from '../../src/engine/engine.js';
import { InspectionRecorder } from '../../src/inspector/recorder.js';
import { startInspector } from '../../src/inspector/server.js';
import { migrateStorage } from '../../src/workflows/migrate-storage.js';
import { DEST_DIR, simMigrationLab } from '../workflows/sim-harness.js';

let context: BrowserContext;
let profile: string;

beforeAll(async () => {
  profile = mkdtempSync(join(tmpdir(), 'blockcopy-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    chromiumSandbox: false,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    viewport: { width: 1500, height: 1100 },
  });
}, 120_000);

afterAll(async () => {
  await context?.close();
  rmSync(profile, { recursive: true, force: true });
});

/** A migration and a given-up copy with its policy, recorded in virtual time. */
async function recorded(): Promise<{ recorder: InspectionRecorder; copyJob: string; jobId: string }> {
  const recorder = new InspectionRecorder();
  const lab = simMigrationLab();
  const { setup } = lab.engine();
  const engine = createEngine({
    hypervisor: lab.sim,
    clock: lab.clock,
    pollIntervalMs: 500,
    inspect: recorder.inspect,
  });
  const m = (
    await lab.settle(
      migrateStorage(
        { ...setup, engine, inspect: recorder.inspect },
        { domain: 'demo', disks: ['vda'], destDir: DEST_DIR, workflowId: 'mig-1' },
      ),
    )
  )._unsafeUnwrap();
  const result = await lab.settle(m.result);
  expect(result.outcome).toBe('migrated');
  engine.close();

  const clock = new VirtualClock();
  const sim = new SimulatedHypervisor({ clock });
  const e2 = createEngine({ hypervisor: sim, clock, pollIntervalMs: 500, inspect: recorder.inspect });
  sim.setGuestWriteRate('demo', 'vda', 64 * MiB)._unsafeUnwrap();
  const job = (
    await e2.blockRebase('demo', 'vda', '/var/lib/blockcopy/copy.qcow2', 8, RebaseFlags.COPY, {
      convergence: { timeoutMs: 30_000, windowMs: 5_000, raiseBandwidthTo: 16 * MiB, writeBlocking: false },
    })
  )._unsafeUnwrap();
  let done = false;
  void job.result.then(() => (done = true));
  await clock.runUntil(() => done, 600_000, 50);
  e2.close();
  return { recorder, copyJob: result.status['vda']!.jobId!, jobId: job.jobId };
}

describe('inspector page: migration and convergence policy', () => {
  it('draws each with its own chart and highlights the state it reached', { timeout: 120_000 }, async () => {
    const { recorder, copyJob, jobId } = await recorded();
    const inspector = await startInspector({ recorder });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    try {
      await page.goto(inspector.url);
      const card = (id: string) => `article.job[data-job-id="${id}"]`;
      await page.waitForSelector(`${card('mig-1')} g.node.active[data-state="migrated"]`, { state: 'attached' });
      // The migration's chart, with the copy chart drawn inside mirroring.
      expect(
        await page.$$eval(`${card('mig-1')} [data-state="mirroring.blockCopyJob.ready.synced"]`, (e) => e.length),
      ).toBe(1);
      expect(await page.textContent(`${card('mig-1')} .where`)).toContain(`copy:vda = ${copyJob} (pivoted)`);
      // The copy job itself has the copy chart's card.
      await page.waitForSelector(`${card(copyJob)} g.node.active[data-state="completed"]`, { state: 'attached' });
      // The policy's card: its own chart, ended in gaveUp; the copy's card failed.
      await page.waitForSelector(`${card(`${jobId}/convergence`)} g.node.active[data-state="gaveUp"]`, {
        state: 'attached',
      });
      expect(
        await page.$$eval(
          `${card(`${jobId}/convergence`)} [data-state="escalating.raisingBandwidth"]`,
          (e) => e.length,
        ),
      ).toBe(1);
      expect(await page.textContent(`${card(`${jobId}/convergence`)} .where`)).toContain(
        `convergence policy of ${jobId}`,
      );
      await page.waitForSelector(`${card(jobId)} g.node.active[data-state="failed"]`, { state: 'attached' });
      expect(problems).toEqual([]);
    } finally {
      await page.close();
      await inspector.close();
    }
  });
});
