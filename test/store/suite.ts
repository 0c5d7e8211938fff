/**
 * One table of job-store behaviours, run against every implementation (memory, SQLite): the
 * compare-and-set revision, listing, leases, pruning and a closed store.
 */
import { describe, expect, it } from 'vitest';
import type { JobRecord, JobStore } from '../../src/core/job-store.js';
import { JOB_RECORD_FORMAT } from '../../src/core/job-store.js';

export function record(jobId: string, over: Partial<JobRecord> = {}): JobRecord {
  return {
    format: JOB_RECORD_FORMAT,
    jobId,
    hypervisor: 'sim',
    domain: 'demo',
    disk: 'vda',
    origin: 'engine',
    request: null,
    plan: null,
    chartVersion: 1,
    snapshot: { status: 'active', value: 'validating', context: { nested: [1, 'two', null] } },
    state: 'validating',
    side: {
      states: ['validating'],
      readyAnnounced: false,
      pause: { userPauseRequested: false, stoppedOnError: false },
      progress: null,
    },
    endIntent: null,
    end: null,
    createdAt: 1000,
    updatedAt: 1000,
    revision: 0,
    owner: 'host:1:1',
    leaseUntil: null,
    ...over,
  };
}

const ended = { outcome: 'completed', pivoted: true, destinationConsistent: true, error: null } as const;

export function jobStoreSuite(name: string, open: () => JobStore): void {
  describe(`job store: ${name}`, () => {
    it('saves a new record at revision 1 and loads it back equal', async () => {
      const store = open();
      const saved = (await store.save(record('a')))._unsafeUnwrap();
      expect(saved.revision).toBe(1);
      expect((await store.load('a'))._unsafeUnwrap()).toEqual(saved);
      expect((await store.load('nope'))._unsafeUnwrap()).toBeNull();
      store.close();
    });

    it.each([
      ['a stale revision', 2, 1],
      ['a revision from the future', 1, 5],
      ['a second insert of the same job', 1, 0],
    ])('refuses %s and keeps the stored record', async (_what, saves, revision) => {
      const store = open();
      let current = (await store.save(record('a')))._unsafeUnwrap();
      for (let i = 1; i < saves; i++) current = (await store.save(current))._unsafeUnwrap();
      const next = (await store.save(current))._unsafeUnwrap();
      const stale = await store.save({ ...current, revision, state: 'ready.synced' });
      expect(stale.isErr() && stale.error.kind).toBe('conflict');
      expect((await store.load('a'))._unsafeUnwrap()).toEqual(next);
      store.close();
    });

    it('lists unfinished jobs newest first, ended ones on request, by hypervisor', async () => {
      const store = open();
      await store.save(record('old', { createdAt: 1 }));
      await store.save(record('new', { createdAt: 3 }));
      await store.save(record('done', { createdAt: 2, end: ended }));
      await store.save(record('other', { createdAt: 4, hypervisor: 'qmp:/x' }));
      const ids = async (f?: Parameters<JobStore['list']>[0]) =>
        (await store.list(f))._unsafeUnwrap().map((r) => r.jobId);
      expect(await ids()).toEqual(['other', 'new', 'old']);
      expect(await ids({ includeEnded: true })).toEqual(['other', 'new', 'done', 'old']);
      expect(await ids({ hypervisor: 'sim' })).toEqual(['new', 'old']);
      store.close();
    });

    it.each([
      ['free (expected null)', null, null, true],
      ['held by a gone owner the caller names', 'host:9:9', 'host:9:9', true],
      ['held by someone else', 'host:9:9', null, false],
      ['held by the caller already', 'me', null, true],
    ])('claims a job %s', async (_what, holder, expected, wins) => {
      const store = open();
      await store.save(record('a', { owner: holder }));
      const claimed = await store.claim('a', expected, { id: 'me' }, 5000);
      expect(claimed.isOk()).toBe(wins);
      const now = (await store.load('a'))._unsafeUnwrap()!;
      expect(now.owner).toBe(wins ? 'me' : holder);
      if (wins) expect(now).toMatchObject({ leaseUntil: 5000, revision: 2 });
      else expect(now.revision).toBe(1);
      store.close();
    });

    it('claiming a job that is not stored is a conflict', async () => {
      const store = open();
      const r = await store.claim('ghost', null, { id: 'me' }, 1);
      expect(r.isErr() && r.error.kind).toBe('conflict');
      store.close();
    });

    it('saves many records at once, each its own compare-and-set', async () => {
      const store = open();
      const a = (await store.save(record('a')))._unsafeUnwrap();
      const b = (await store.save(record('b')))._unsafeUnwrap();
      const stale = (await store.save(b))._unsafeUnwrap(); // b moved on: revision 2
      const answers = (
        await store.saveAll([
          { ...a, owner: 'me', leaseUntil: 7000 },
          { ...b, owner: 'me' }, // revision 1: stale
          record('c'), // new
          record('a'), // a second insert
        ])
      )._unsafeUnwrap();
      expect(answers.map((x) => (x.isOk() ? x.value.revision : x.error.kind))).toEqual([2, 'conflict', 1, 'conflict']);
      expect((await store.load('a'))._unsafeUnwrap()).toMatchObject({ owner: 'me', leaseUntil: 7000, revision: 2 });
      expect((await store.load('b'))._unsafeUnwrap()).toEqual(stale);
      expect((await store.load('c'))._unsafeUnwrap()).toMatchObject({ revision: 1 });
      expect((await store.saveAll([]))._unsafeUnwrap()).toEqual([]);
      store.close();
      expect((await store.saveAll([record('d')])).isErr()).toBe(true);
    });

    it('prunes only ended jobs older than the cut-off', async () => {
      const store = open();
      await store.save(record('live', { updatedAt: 1 }));
      await store.save(record('ended-old', { updatedAt: 1, end: ended }));
      await store.save(record('ended-new', { updatedAt: 10, end: ended }));
      expect((await store.prune(5))._unsafeUnwrap()).toBe(1);
      const ids = (await store.list({ includeEnded: true }))._unsafeUnwrap().map((r) => r.jobId);
      expect(ids.sort()).toEqual(['ended-new', 'live']);
      store.close();
    });

    it('reports its size, growing with records', async () => {
      const store = open();
      const before = (await store.size())._unsafeUnwrap();
      for (let i = 0; i < 50; i++) await store.save(record(`j${i}`, { snapshot: { pad: 'x'.repeat(400) } }));
      expect((await store.size())._unsafeUnwrap()).toBeGreaterThan(before + 50 * 400);
      store.close();
    });

    it('refuses every call once closed', async () => {
      const store = open();
      store.close();
      const r = await store.save(record('a'));
      expect(r.isErr() && r.error.kind).toBe('io');
      expect((await store.list()).isErr()).toBe(true);
    });
  });
}
