// The inspector beside the copy and pull charts: a storage migration (its own card under its
// workflow id, with its child copies named) and a copy's convergence policy (a card of its own,
// "JOB/convergence"), recorded from real runs on the simulator; the page carries both charts, and
// their SVGs name the states the records report, so the live state can be highlighted.
import { describe, expect, it } from 'vitest';
import { MiB } from '../../adapters/sim/index.js';
import { SimulatedHypervisor } from '../../adapters/sim/hypervisor.js';
import { VirtualClock } from '../../src/core/clock.js';
import { RebaseFlags } from '../../src/core/flags.js';
import { createEngine } from '../../src/engine/engine.js';
import { InspectionRecorder } from '../../src/inspector/recorder.js';
import type { InspectorRecord } from '../../src/inspector/records.js';
import { startInspector } from '../../src/inspector/server.js';
import { migrateStorage } from '../../src/workflows/migrate-storage.js';
import { DEST_DIR, simMigrationLab } from '../workflows/sim-harness.js';

const rootStates = (records: readonly InspectorRecord[], id: string) => {
  const states: string[] = [];
  for (const r of records) {
    if (r.kind !== 'inspection' || r.jobId !== id || !r.root || r.type !== '@xstate.snapshot') continue;
    const state = r.snapshot?.state;
    if (state && states[states.length - 1] !== state) states.push(state);
  }
  return states;
};

const fetchPage = async (url: string) => (await fetch(url)).text();

describe('inspector: migration and convergence policy charts', () => {
  it('records a storage migration under its workflow id, and its copy job under its own id', async () => {
    const lab = simMigrationLab();
    const recorder = new InspectionRecorder();
    const { setup } = lab.engine();
    // The migration's actor and the engine's copy jobs record into one recorder.
    const engine = createEngine({
      hypervisor: lab.sim,
      clock: lab.clock,
      pollIntervalMs: 500,
      store: lab.store,
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
    const records = recorder.records();
    expect(rootStates(records, 'mig-1')).toEqual(result.states);
    // The child copy actor is recorded in the migration's card; the copy job in its own.
    const children = records.filter((r) => r.kind === 'inspection' && r.jobId === 'mig-1' && r.actor === 'copy:vda');
    expect(children.length).toBeGreaterThan(0);
    const jobId = result.status['vda']!.jobId!;
    expect(rootStates(records, jobId).at(-1)).toBe('completed');
    engine.close();
  });

  it('records a convergence policy as "JOB/convergence" with its states', async () => {
    const clock = new VirtualClock();
    const sim = new SimulatedHypervisor({ clock });
    const recorder = new InspectionRecorder();
    const engine = createEngine({ hypervisor: sim, clock, pollIntervalMs: 500, inspect: recorder.inspect });
    sim.setGuestWriteRate('demo', 'vda', 64 * MiB)._unsafeUnwrap();
    const job = (
      await engine.blockRebase('demo', 'vda', '/var/lib/blockcopy/copy.qcow2', 8, RebaseFlags.COPY, {
        convergence: { timeoutMs: 30_000, windowMs: 5_000, raiseBandwidthTo: 16 * MiB, writeBlocking: false },
      })
    )._unsafeUnwrap();
    let done = false;
    void job.result.then(() => (done = true));
    await clock.runUntil(() => done, 600_000, 50);
    const states = rootStates(recorder.records(), `${job.jobId}/convergence`);
    expect(states).toEqual([
      'escalating.watching',
      'escalating.raisingBandwidth',
      'escalating.watchingRaised',
      'escalating.exhausted',
      'givingUp',
      'gaveUp',
    ]);
    // The copy's own card is unaffected by the policy's records.
    expect(rootStates(recorder.records(), job.jobId).at(-1)).toBe('failed');
    engine.close();
  });

  it('the page carries the migration chart (child copies drawn in) and the policy chart, their states named', async () => {
    const inspector = await startInspector();
    try {
      const html = await fetchPage(inspector.url);
      const template = (id: string) => {
        const m = new RegExp(`<template id="${id}">([\\s\\S]*?)</template>`).exec(html);
        return m ? m[1]! : '';
      };
      const migrate = template('chart-template-migrate');
      const policy = template('chart-template-convergence');
      for (const state of ['planning', 'mirroring', 'pivoting.waiting', 'deletingSource', 'migrated'])
        expect(migrate).toContain(`data-state="${state}"`);
      // The copy chart is drawn inside mirroring (one per disk at run time).
      expect(migrate).toContain('data-state="mirroring.blockCopyJob.ready.synced"');
      for (const state of ['escalating.watching', 'escalating.raisingBandwidth', 'givingUp', 'stopped'])
        expect(policy).toContain(`data-state="${state}"`);
      // The page picks them by the record's context.
      expect(html).toContain("'chart-template-' + j.machine");
    } finally {
      await inspector.close();
    }
  });
});
