/**
 * SQLite job store (better-sqlite3): the embedded default. WAL journal, one row per job with the
 * record as JSON beside a few columns for listing, the schema versioned by PRAGMA user_version
 * and migrated forward in one transaction. A file that is not a blockcopy store, is damaged, or
 * was written by a newer schema is refused with a clear message and never reset.
 *
 * better-sqlite3 is synchronous; the port is asynchronous (for a networked store later), so each
 * call runs inside a ResultAsync that is already settled when returned.
 */
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { err, errAsync, ok, okAsync, type Result, type ResultAsync } from 'neverthrow';
import type { JobListFilter, JobRecord, JobStore, LeaseOwner, StoreError } from '../../src/core/job-store.js';
import type { WorkflowListFilter, WorkflowRecord, WorkflowStore } from '../../src/core/workflow-store.js';

/** 'blkc': marks the file as a blockcopy store (PRAGMA application_id). */
const APPLICATION_ID = 0x626c6b63;

/** Forward migrations; index i takes the schema from version i to i + 1. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE jobs (
     job_id      TEXT PRIMARY KEY,
     hypervisor  TEXT NOT NULL,
     domain      TEXT NOT NULL,
     disk        TEXT NOT NULL,
     state       TEXT NOT NULL,
     ended       INTEGER NOT NULL,
     owner       TEXT,
     lease_until INTEGER,
     revision    INTEGER NOT NULL,
     created_at  INTEGER NOT NULL,
     updated_at  INTEGER NOT NULL,
     record      TEXT NOT NULL
   );
   CREATE INDEX jobs_unfinished ON jobs (ended, hypervisor);`,
  // 2: workflow records (the whole-chain storage migration, src/workflows/).
  `CREATE TABLE workflows (
     workflow_id TEXT PRIMARY KEY,
     kind        TEXT NOT NULL,
     hypervisor  TEXT NOT NULL,
     domain      TEXT NOT NULL,
     state       TEXT NOT NULL,
     ended       INTEGER NOT NULL,
     owner       TEXT,
     lease_until INTEGER,
     revision    INTEGER NOT NULL,
     created_at  INTEGER NOT NULL,
     updated_at  INTEGER NOT NULL,
     record      TEXT NOT NULL
   );
   CREATE INDEX workflows_unfinished ON workflows (ended, hypervisor);`,
];

export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length;

export interface SqliteStoreOptions {
  /**
   * PRAGMA synchronous. 'normal' (default) survives any crash of the process (kill -9), which is
   * what write-ahead needs; 'full' also survives power loss, at an fsync per commit.
   */
  readonly synchronous?: 'normal' | 'full';
}

interface Row {
  readonly record: string;
}

/** Opens (creating if absent, owner-only) a store; refuses a damaged, foreign or newer one. */
export function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Result<SqliteJobStore, StoreError> {
  const fail = (kind: StoreError['kind'], message: string) => err({ kind, location: path, message });
  let db: Database.Database;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    db = new Database(path);
  } catch (e) {
    return fail('io', `cannot open job store ${path}: ${messageOf(e)}`);
  }
  try {
    chmodSync(path, 0o600);
    const appId = db.pragma('application_id', { simple: true }) as number;
    const version = db.pragma('user_version', { simple: true }) as number;
    const tables = (db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number })
      .n;
    if (appId !== APPLICATION_ID && (appId !== 0 || tables !== 0 || version !== 0)) {
      db.close();
      return fail('corrupt', `${path} is not a blockcopy job store (application_id ${appId}); refusing to use it`);
    }
    if (version > SQLITE_SCHEMA_VERSION) {
      db.close();
      return fail(
        'too-new',
        `job store ${path} has schema version ${version}, newer than this blockcopy reads (${SQLITE_SCHEMA_VERSION}); upgrade blockcopy or use another --store`,
      );
    }
    const check = db.pragma('quick_check', { simple: true }) as string;
    if (check !== 'ok') {
      db.close();
      return fail('corrupt', `job store ${path} is damaged (${check}); it was left as it is`);
    }
    // WAL with synchronous=NORMAL, as SQLite recommends for WAL (sqlite.org/pragma.html#pragma_synchronous):
    // a commit is written to the WAL file before the call returns, so it survives the process
    // being killed at any instant (the kill tests); only an OS crash or power loss can drop the
    // last commits, which FULL (an fsync per commit) also covers, at a write-ahead barrier's cost
    // before every side effect. The database stays consistent either way.
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('busy_timeout = 5000');
    if (version < SQLITE_SCHEMA_VERSION) {
      db.transaction(() => {
        for (let v = version; v < SQLITE_SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
        db.pragma(`application_id = ${APPLICATION_ID}`);
        db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION}`);
      })();
    }
    return ok(new SqliteJobStore(db, path));
  } catch (e) {
    try {
      db.close();
    } catch {
      // already unusable
    }
    const message = messageOf(e);
    if (/not a database|malformed|corrupt/i.test(message))
      return fail('corrupt', `job store ${path} is damaged or not a database (${message}); it was left as it is`);
    return fail('io', `cannot use job store ${path}: ${message}`);
  }
}

export class SqliteJobStore implements JobStore, WorkflowStore {
  private readonly insert: Database.Statement;
  private readonly update: Database.Statement;
  private readonly byId: Database.Statement;
  private readonly unfinished: Database.Statement;
  private readonly all: Database.Statement;
  private readonly deleteEnded: Database.Statement;
  private readonly workflow: {
    readonly insert: Database.Statement;
    readonly update: Database.Statement;
    readonly byId: Database.Statement;
    readonly unfinished: Database.Statement;
    readonly all: Database.Statement;
  };
  private readonly saveBatch: Database.Transaction<(records: readonly JobRecord[]) => Result<JobRecord, StoreError>[]>;
  private open = true;

  constructor(
    private readonly db: Database.Database,
    readonly location: string,
  ) {
    this.insert = db.prepare(
      `INSERT INTO jobs (job_id, hypervisor, domain, disk, state, ended, owner, lease_until, revision, created_at, updated_at, record)
       VALUES (@jobId, @hypervisor, @domain, @disk, @state, @ended, @owner, @leaseUntil, @revision, @createdAt, @updatedAt, @record)
       ON CONFLICT (job_id) DO NOTHING`,
    );
    this.update = db.prepare(
      `UPDATE jobs SET hypervisor = @hypervisor, domain = @domain, disk = @disk, state = @state, ended = @ended,
         owner = @owner, lease_until = @leaseUntil, revision = @revision, updated_at = @updatedAt, record = @record
       WHERE job_id = @jobId AND revision = @expected`,
    );
    this.byId = db.prepare('SELECT record FROM jobs WHERE job_id = ?');
    this.unfinished = db.prepare('SELECT record FROM jobs WHERE ended = 0 ORDER BY created_at DESC, job_id');
    this.all = db.prepare('SELECT record FROM jobs ORDER BY created_at DESC, job_id');
    this.deleteEnded = db.prepare('DELETE FROM jobs WHERE ended = 1 AND updated_at < ?');
    this.saveBatch = db.transaction((records: readonly JobRecord[]) => records.map((r) => this.saveOne(r)));
    this.workflow = {
      insert: db.prepare(
        `INSERT INTO workflows (workflow_id, kind, hypervisor, domain, state, ended, owner, lease_until, revision, created_at, updated_at, record)
         VALUES (@workflowId, @kind, @hypervisor, @domain, @state, @ended, @owner, @leaseUntil, @revision, @createdAt, @updatedAt, @record)
         ON CONFLICT (workflow_id) DO NOTHING`,
      ),
      update: db.prepare(
        `UPDATE workflows SET state = @state, ended = @ended, owner = @owner, lease_until = @leaseUntil,
           revision = @revision, updated_at = @updatedAt, record = @record
         WHERE workflow_id = @workflowId AND revision = @expected`,
      ),
      byId: db.prepare('SELECT record FROM workflows WHERE workflow_id = ?'),
      unfinished: db.prepare('SELECT record FROM workflows WHERE ended = 0 ORDER BY created_at DESC, workflow_id'),
      all: db.prepare('SELECT record FROM workflows ORDER BY created_at DESC, workflow_id'),
    };
  }

  /** saveAll of one record, answered without the batch's array wrapper. */
  save(record: JobRecord): ResultAsync<JobRecord, StoreError> {
    return this.run(() => this.saveMany([record])[0]!);
  }

  /** Every save in one transaction: one commit (one WAL append) for the lot. */
  saveAll(records: readonly JobRecord[]): ResultAsync<readonly Result<JobRecord, StoreError>[], StoreError> {
    return this.run(() => ok(this.saveMany(records)));
  }

  /**
   * The one write path of save and saveAll. A single record is one statement in SQLite's own
   * (autocommit) transaction: an explicit BEGIN IMMEDIATE … COMMIT around it would add two
   * statements to every checkpoint of a running job for nothing.
   */
  private saveMany(records: readonly JobRecord[]): Result<JobRecord, StoreError>[] {
    return records.length === 1 ? [this.saveOne(records[0]!)] : this.saveBatch.immediate(records);
  }

  private saveOne(record: JobRecord): Result<JobRecord, StoreError> {
    const next: JobRecord = { ...record, revision: record.revision + 1 };
    const row = {
      jobId: next.jobId,
      hypervisor: next.hypervisor,
      domain: next.domain,
      disk: next.disk,
      state: next.state,
      ended: next.end === null ? 0 : 1,
      owner: next.owner,
      leaseUntil: next.leaseUntil,
      revision: next.revision,
      createdAt: next.createdAt,
      updatedAt: next.updatedAt,
      record: JSON.stringify(next),
      expected: record.revision,
    };
    const changed = record.revision === 0 ? this.insert.run(row).changes : this.update.run(row).changes;
    if (changed === 1) return ok(next);
    return err(this.conflict(`job '${record.jobId}'`, this.byId.get(record.jobId), record.revision));
  }

  /** A compare-and-set that found another revision: who wins is the caller's business. */
  private conflict(what: string, found: unknown, expected: number): StoreError {
    const current = found ? (JSON.parse((found as Row).record) as { revision: number }).revision : 0;
    return this.error('conflict', `${what} was saved by someone else (revision ${current}, expected ${expected})`);
  }

  load(jobId: string): ResultAsync<JobRecord | null, StoreError> {
    return this.run(() => {
      const row = this.byId.get(jobId) as Row | undefined;
      return row ? this.parse(row) : ok(null);
    });
  }

  list(filter: JobListFilter = {}): ResultAsync<readonly JobRecord[], StoreError> {
    return this.run(() => {
      const rows = (filter.includeEnded ? this.all : this.unfinished).all() as Row[];
      const out: JobRecord[] = [];
      for (const row of rows) {
        const r = this.parse(row);
        if (r.isErr()) return err(r.error);
        if (filter.hypervisor === undefined || r.value.hypervisor === filter.hypervisor) out.push(r.value);
      }
      return ok(out);
    });
  }

  claim(
    jobId: string,
    expectedOwner: string | null,
    owner: LeaseOwner,
    leaseUntil: number,
  ): ResultAsync<JobRecord, StoreError> {
    return this.run(() =>
      this.db
        .transaction((): Result<JobRecord, StoreError> => {
          const row = this.byId.get(jobId) as Row | undefined;
          if (!row) return err(this.error('conflict', `no job '${jobId}' in the store`));
          const parsed = this.parse(row);
          if (parsed.isErr()) return parsed;
          const r = parsed.value;
          if (r.owner !== expectedOwner && r.owner !== owner.id)
            return err(this.error('conflict', `job '${jobId}' is held by ${r.owner}`));
          return this.saveOne({ ...r, owner: owner.id, leaseUntil });
        })
        .immediate(),
    );
  }

  prune(endedBefore: number): ResultAsync<number, StoreError> {
    return this.run(() => ok(this.deleteEnded.run(endedBefore).changes));
  }

  size(): ResultAsync<number, StoreError> {
    return this.run(() => {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
      return ok(statSync(this.location).size);
    });
  }

  saveWorkflow(record: WorkflowRecord): ResultAsync<WorkflowRecord, StoreError> {
    return this.run(() => {
      const next: WorkflowRecord = { ...record, revision: record.revision + 1 };
      const row = workflowRow(next, record.revision);
      const w = this.workflow;
      const changed = record.revision === 0 ? w.insert.run(row).changes : w.update.run(row).changes;
      if (changed === 1) return ok(next);
      return err(this.conflict(`workflow '${record.workflowId}'`, w.byId.get(record.workflowId), record.revision));
    });
  }

  loadWorkflow(workflowId: string): ResultAsync<WorkflowRecord | null, StoreError> {
    return this.run(() => {
      const row = this.workflow.byId.get(workflowId) as Row | undefined;
      return row ? this.parseWorkflow(row) : ok(null);
    });
  }

  listWorkflows(filter: WorkflowListFilter = {}): ResultAsync<readonly WorkflowRecord[], StoreError> {
    return this.run(() => {
      const rows = (filter.includeEnded ? this.workflow.all : this.workflow.unfinished).all() as Row[];
      const out: WorkflowRecord[] = [];
      for (const row of rows) {
        const r = this.parseWorkflow(row);
        if (r.isErr()) return err(r.error);
        if (filter.hypervisor !== undefined && r.value.hypervisor !== filter.hypervisor) continue;
        if (filter.kind !== undefined && r.value.kind !== filter.kind) continue;
        out.push(r.value);
      }
      return ok(out);
    });
  }

  claimWorkflow(
    workflowId: string,
    expectedOwner: string | null,
    owner: LeaseOwner,
    leaseUntil: number,
  ): ResultAsync<WorkflowRecord, StoreError> {
    return this.run(() =>
      this.db
        .transaction((): Result<WorkflowRecord, StoreError> => {
          const row = this.workflow.byId.get(workflowId) as Row | undefined;
          if (!row) return err(this.error('conflict', `no workflow '${workflowId}' in the store`));
          const parsed = this.parseWorkflow(row);
          if (parsed.isErr()) return parsed;
          const r = parsed.value;
          if (r.owner !== expectedOwner && r.owner !== owner.id)
            return err(this.error('conflict', `workflow '${workflowId}' is held by ${r.owner}`));
          const next: WorkflowRecord = { ...r, owner: owner.id, leaseUntil, revision: r.revision + 1 };
          this.workflow.update.run(workflowRow(next, r.revision));
          return ok(next);
        })
        .immediate(),
    );
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    this.db.close();
  }

  private parse(row: Row): Result<JobRecord, StoreError> {
    try {
      return ok(JSON.parse(row.record) as JobRecord);
    } catch (e) {
      return err(this.error('corrupt', `a job record in ${this.location} is not valid JSON (${messageOf(e)})`));
    }
  }

  private parseWorkflow(row: Row): Result<WorkflowRecord, StoreError> {
    try {
      return ok(JSON.parse(row.record) as WorkflowRecord);
    } catch (e) {
      return err(this.error('corrupt', `a workflow record in ${this.location} is not valid JSON (${messageOf(e)})`));
    }
  }

  private run<T>(body: () => Result<T, StoreError>): ResultAsync<T, StoreError> {
    if (!this.open) return errAsync(this.error('io', 'job store is closed'));
    try {
      const r = body();
      return r.isOk() ? okAsync(r.value) : errAsync(r.error);
    } catch (e) {
      const message = messageOf(e);
      const kind = /not a database|malformed|corrupt/i.test(message) ? 'corrupt' : 'io';
      return errAsync(this.error(kind, `job store ${this.location}: ${message}`));
    }
  }

  private error(kind: StoreError['kind'], message: string): StoreError {
    return { kind, location: this.location, message };
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function workflowRow(r: WorkflowRecord, expected: number) {
  return {
    workflowId: r.workflowId,
    kind: r.kind,
    hypervisor: r.hypervisor,
    domain: r.domain,
    state: r.state,
    ended: r.ended ? 1 : 0,
    owner: r.owner,
    leaseUntil: r.leaseUntil,
    revision: r.revision,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    record: JSON.stringify(r),
    expected,
  };
}
