/**
 * Workflow records (the storage migration's write-ahead record) on both stores: the same
 * compare-and-set revision, listing and lease rules as job records; and the SQLite schema's
 * versioned migration from a version-1 file (jobs only) to version 2, keeping every job.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryJobStore } from '../../adapters/store/memory.js';
import { SQLITE_SCHEMA_VERSION, openSqliteStore } from '../../adapters/store/sqlite.js';
import type { JobStore } from '../../src/core/job-store.js';
import type { WorkflowRecord, WorkflowStore } from '../../src/core/workflow-store.js';
import { WORKFLOW_RECORD_FORMAT, isWorkflowStore } from '../../src/core/workflow-store.js';
import { record } from './suite.js';

const dir = mkdtempSync(join(tmpdir(), 'blockcopy-wf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `s${n++}`, 'jobs.db');

function workflow(id: string, over: Partial<WorkflowRecord> = {}): WorkflowRecord {
  return {
    format: WORKFLOW_RECORD_FORMAT,
    workflowId: id,
    kind: 'migrate-storage',
    hypervisor: 'sim',
    domain: 'demo',
    state: 'planning',
    data: { context: { nested: [1, 'two', null] }, ledger: { created: ['/a'] } },
    ended: false,
    createdAt: 1000,
    updatedAt: 1000,
    revision: 0,
    owner: 'host:1:1',
    leaseUntil: null,
    ...over,
  };
}

const stores: [string, () => JobStore & WorkflowStore][] = [
  ['memory', () => new MemoryJobStore()],
  ['sqlite', () => openSqliteStore(fresh())._unsafeUnwrap()],
];

for (const [name, open] of stores) {
  describe(`workflow records: ${name}`, () => {
    it('is a workflow store; saves, loads back equal, refuses a stale revision', async () => {
      const s = open();
      expect(isWorkflowStore(s)).toBe(true);
      const first = (await s.saveWorkflow(workflow('w1')))._unsafeUnwrap();
      expect(first.revision).toBe(1);
      expect((await s.loadWorkflow('w1'))._unsafeUnwrap()).toEqual(first);
      const second = (await s.saveWorkflow({ ...first, state: 'copyingBacking' }))._unsafeUnwrap();
      expect(second.revision).toBe(2);
      expect((await s.saveWorkflow(first))._unsafeUnwrapErr()).toMatchObject({ kind: 'conflict' });
      expect((await s.saveWorkflow(workflow('w1')))._unsafeUnwrapErr()).toMatchObject({ kind: 'conflict' });
      expect((await s.loadWorkflow('w1'))._unsafeUnwrap()).toEqual(second);
      expect((await s.loadWorkflow('nope'))._unsafeUnwrap()).toBeNull();
      s.close();
    });

    it('lists unfinished ones newest first, filters by hypervisor and kind, ended on request', async () => {
      const s = open();
      await s.saveWorkflow(workflow('old', { createdAt: 1 }));
      await s.saveWorkflow(workflow('new', { createdAt: 2 }));
      await s.saveWorkflow(workflow('done', { ended: true, createdAt: 3 }));
      await s.saveWorkflow(workflow('qmp', { hypervisor: 'qmp:/x', createdAt: 4 }));
      await s.saveWorkflow(workflow('other', { kind: 'something-else', createdAt: 5 }));
      const ids = async (f: Parameters<WorkflowStore['listWorkflows']>[0]) =>
        (await s.listWorkflows(f))._unsafeUnwrap().map((w) => w.workflowId);
      expect(await ids({ hypervisor: 'sim', kind: 'migrate-storage' })).toEqual(['new', 'old']);
      expect(await ids({ includeEnded: true, hypervisor: 'sim', kind: 'migrate-storage' })).toEqual([
        'done',
        'new',
        'old',
      ]);
      expect(await ids({})).toEqual(['other', 'qmp', 'new', 'old']);
      // Job records and workflow records live apart.
      expect((await s.list())._unsafeUnwrap()).toEqual([]);
      s.close();
    });

    it('hands the lease over only from the expected holder', async () => {
      const s = open();
      await s.saveWorkflow(workflow('w'));
      expect((await s.claimWorkflow('w', 'someone', { id: 'me' }, 5))._unsafeUnwrapErr()).toMatchObject({
        kind: 'conflict',
      });
      const mine = (await s.claimWorkflow('w', 'host:1:1', { id: 'me' }, 5))._unsafeUnwrap();
      expect(mine).toMatchObject({ owner: 'me', leaseUntil: 5, revision: 2 });
      expect((await s.claimWorkflow('w', null, { id: 'me' }, 6))._unsafeUnwrap().revision).toBe(3);
      expect((await s.claimWorkflow('missing', null, { id: 'me' }, 6))._unsafeUnwrapErr()).toMatchObject({
        kind: 'conflict',
      });
      s.close();
      expect((await s.loadWorkflow('w'))._unsafeUnwrapErr()).toMatchObject({ kind: 'io' });
    });
  });
}

describe('sqlite schema migration', () => {
  it('takes a version-1 store (jobs only) to the current version, keeping its jobs', async () => {
    expect(SQLITE_SCHEMA_VERSION).toBe(2);
    const path = fresh();
    // A version-1 file as the previous release wrote it.
    const v1 = openSqliteStore(path)._unsafeUnwrap();
    const saved = (await v1.save(record('kept')))._unsafeUnwrap();
    v1.close();
    const raw = new Database(path);
    raw.exec('DROP TABLE workflows');
    raw.pragma('user_version = 1');
    raw.close();
    const reopened = openSqliteStore(path)._unsafeUnwrap();
    expect((await reopened.load('kept'))._unsafeUnwrap()).toEqual(saved);
    expect((await reopened.saveWorkflow(workflow('w')))._unsafeUnwrap().revision).toBe(1);
    reopened.close();
    const check = new Database(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(2);
    check.close();
  });
});
