/**
 * The job tables and a property test: whatever sequence of commands, guest writes, faults and
 * time steps the engine throws at the simulator, every job follows QEMU 7.2's JobSTT, a verb is
 * accepted only where JobVerbTable allows it, READY is announced once right after JSC(ready), and
 * queries agree with the events.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HypervisorEvent, JobStatus } from '../../src/core/hypervisor-port.js';
import { JOB_STATUSES, MiB, canTransition, verbAllowed, type JobVerb } from '../../adapters/sim/index.js';
import { createDest, fixture, spec } from './helpers.js';

describe('tables (qemu-mirror.md §4)', () => {
  it('JobSTT allows exactly the listed transitions', () => {
    const allowed: Record<JobStatus, JobStatus[]> = {
      undefined: ['created'],
      created: ['running', 'aborting', 'null'],
      running: ['paused', 'ready', 'waiting', 'aborting'],
      paused: ['running'],
      ready: ['standby', 'waiting', 'aborting'],
      standby: ['ready'],
      waiting: ['pending', 'aborting'],
      pending: ['aborting', 'concluded'],
      aborting: ['aborting', 'concluded'],
      concluded: ['null'],
      null: [],
    };
    for (const from of JOB_STATUSES)
      for (const to of JOB_STATUSES)
        expect([from, to, canTransition(from, to)]).toEqual([from, to, allowed[from].includes(to)]);
  });

  it('JobVerbTable allows exactly the listed verbs', () => {
    const allowed: Record<JobVerb, JobStatus[]> = {
      cancel: ['created', 'running', 'paused', 'ready', 'standby', 'waiting', 'pending'],
      pause: ['created', 'running', 'paused', 'ready', 'standby'],
      resume: ['created', 'running', 'paused', 'ready', 'standby'],
      'set-speed': ['created', 'running', 'paused', 'ready', 'standby'],
      complete: ['ready', 'standby'],
      finalize: ['pending'],
      dismiss: ['concluded'],
    };
    for (const [verb, states] of Object.entries(allowed) as [JobVerb, JobStatus[]][])
      for (const s of JOB_STATUSES) expect([verb, s, verbAllowed(verb, s)]).toEqual([verb, s, states.includes(s)]);
  });
});

type Cmd =
  | {
      op: 'start';
      job: number;
      speed: number;
      sync: 'full' | 'top';
      policy: 'report' | 'stop' | 'ignore' | 'enospc';
      blocking: boolean;
    }
  | { op: 'complete' | 'pause' | 'resume' | 'dismiss'; job: number }
  | { op: 'cancel'; job: number; force: boolean }
  | { op: 'speed'; job: number; speed: number }
  | { op: 'write'; mib: number }
  | { op: 'fault'; errno: 'EIO' | 'ENOSPC'; once: boolean; at: number }
  | { op: 'advance'; ms: number };

const job = fc.integer({ min: 0, max: 1 });
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  {
    arbitrary: fc.record({
      op: fc.constant('start' as const),
      job,
      speed: fc.constantFrom(0, 0, 8 * MiB, 64 * MiB),
      sync: fc.constantFrom('full' as const, 'top' as const),
      policy: fc.constantFrom('report' as const, 'stop' as const, 'ignore' as const, 'enospc' as const),
      blocking: fc.boolean(),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      op: fc.constantFrom('complete' as const, 'pause' as const, 'resume' as const, 'dismiss' as const),
      job,
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ op: fc.constant('cancel' as const), job, force: fc.boolean() }), weight: 2 },
  {
    arbitrary: fc.record({ op: fc.constant('speed' as const), job, speed: fc.constantFrom(-1, 0, MiB, 64 * MiB) }),
    weight: 1,
  },
  { arbitrary: fc.record({ op: fc.constant('write' as const), mib: fc.integer({ min: 1, max: 64 }) }), weight: 1 },
  {
    arbitrary: fc.record({
      op: fc.constant('fault' as const),
      errno: fc.constantFrom('EIO' as const, 'ENOSPC' as const),
      once: fc.boolean(),
      at: fc.integer({ min: 0, max: 1024 * MiB }),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.constantFrom(0, 5, 10, 100, 1000, 5000) }),
    weight: 4,
  },
);

const VERB_OF: Partial<Record<Cmd['op'], JobVerb>> = {
  complete: 'complete',
  pause: 'pause',
  resume: 'resume',
  dismiss: 'dismiss',
  cancel: 'cancel',
  speed: 'set-speed',
};

describe('property: any command sequence', () => {
  it('keeps JobSTT, the verb table, READY ordering and query/event agreement', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { minLength: 15, maxLength: 60 }), async (cmds) => {
        const f = fixture({ copyRate: 256 * MiB, directories: ['/d'] });
        const byJob = new Map<string, HypervisorEvent[]>();
        f.sim.events$.subscribe((e) => {
          if ('jobId' in e) byJob.set(e.jobId, [...(byJob.get(e.jobId) ?? []), e]);
        });
        await createDest(f.sim, '/d/0.qcow2');
        await createDest(f.sim, '/d/1.qcow2');
        for (const c of cmds) {
          const id = 'job' in c ? `j${c.job}` : '';
          const before = f.sim.listJobs().find((j) => j.id === id)?.status;
          const seen = byJob.get(id)?.length ?? 0;
          let accepted: boolean | undefined;
          switch (c.op) {
            case 'start':
              accepted = (
                await f.sim.startMirror(
                  spec({
                    jobId: id,
                    destination: { path: `/d/${c.job}.qcow2`, format: 'qcow2' },
                    speed: c.speed,
                    sync: c.sync,
                    onTargetError: c.policy,
                    copyMode: c.blocking ? 'write-blocking' : 'background',
                  }),
                )
              ).isOk();
              break;
            case 'complete':
              accepted = (await f.sim.completeJob(id)).isOk();
              break;
            case 'pause':
              accepted = (await f.sim.pauseJob(id)).isOk();
              break;
            case 'resume':
              accepted = (await f.sim.resumeJob(id)).isOk();
              break;
            case 'dismiss':
              accepted = (await f.sim.dismissJob(id)).isOk();
              break;
            case 'cancel':
              accepted = (await f.sim.cancelJob(id, c.force)).isOk();
              break;
            case 'speed':
              accepted = (await f.sim.setJobSpeed(id, c.speed)).isOk();
              break;
            case 'write':
              f.sim.guestWrite('demo', 'vda', c.mib * MiB)._unsafeUnwrap();
              break;
            case 'fault':
              f.sim.injectTargetError({ errno: c.errno, once: c.once, atOffset: c.at });
              break;
            case 'advance':
              await f.clock.advance(c.ms);
              break;
          }
          const verb = VERB_OF[c.op];
          if (verb !== undefined && before !== undefined) {
            // Accepted only where the verb table allows it, or as the port's idempotent no-op (a
            // cancel of a job that ended without a pivot, a complete of one that pivoted, a resume of
            // a job that is not paused): then
            // nothing happens, no event and no change of state.
            if (accepted === true && !verbAllowed(verb, before)) {
              const after = f.sim.listJobs().find((j) => j.id === id)?.status;
              expect([verb, before, after, byJob.get(id)?.length ?? 0]).toEqual([verb, before, before, seen]);
              expect(['cancel', 'complete', 'resume']).toContain(verb);
            }
          }
        }
        await f.clock.advance(60_000);
        expect(f.sim.sttViolations).toEqual([]);
        for (const [id, events] of byJob) {
          let status: JobStatus = 'undefined';
          let ready = 0;
          for (const e of events) {
            // A dismissed id may be used again by a new job.
            if (e.kind === 'job-status' && status === 'null' && e.status === 'created') {
              status = 'undefined';
              ready = 0;
            }
            if (e.kind === 'job-status') {
              expect([id, status, e.status, canTransition(status, e.status)]).toEqual([id, status, e.status, true]);
              status = e.status;
            } else if (e.kind === 'job-ready') {
              expect(status).toBe('ready');
              expect(++ready).toBe(1);
            }
          }
          const info = (await f.sim.queryJob(id))._unsafeUnwrap();
          if (status === 'null') expect(info).toBeNull();
          else {
            expect(info?.status).toBe(status);
            expect(info!.offset).toBeLessThanOrEqual(info!.len);
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
