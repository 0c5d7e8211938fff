/**
 * The shared job-store table on the SQLite store, then what only a file can do: survive a reopen,
 * migrate, and refuse a damaged, foreign or newer file without touching it.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultStorePath } from '../../adapters/store/location.js';
import { SQLITE_SCHEMA_VERSION, openSqliteStore } from '../../adapters/store/sqlite.js';
import { jobStoreSuite, record } from './suite.js';

const dir = mkdtempSync(join(tmpdir(), 'blockcopy-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `s${n++}`, 'jobs.db');

jobStoreSuite('sqlite', () => openSqliteStore(fresh())._unsafeUnwrap());

describe('sqlite job store files', () => {
  it('keeps records across a reopen, WAL mode, owner-only file', async () => {
    const path = fresh();
    const a = openSqliteStore(path)._unsafeUnwrap();
    const saved = (await a.save(record('a')))._unsafeUnwrap();
    a.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const b = openSqliteStore(path)._unsafeUnwrap();
    expect((await b.load('a'))._unsafeUnwrap()).toEqual(saved);
    b.close();
    const raw = new Database(path, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(raw.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    raw.close();
  });

  const refusals: [string, (path: string) => void, string, RegExp][] = [
    ['garbage bytes', (p) => writeFileSync(p, Buffer.alloc(8192, 0x5a)), 'corrupt', /damaged or not a database/],
    [
      'a foreign SQLite database',
      (p) => {
        const db = new Database(p);
        db.exec('CREATE TABLE notes (x TEXT)');
        db.close();
      },
      'corrupt',
      /not a blockcopy job store/,
    ],
    [
      'a newer schema version',
      (p) => {
        openSqliteStore(p)._unsafeUnwrap().close();
        const db = new Database(p);
        db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
        db.close();
      },
      'too-new',
      /newer than this blockcopy reads/,
    ],
    [
      'a damaged page',
      (p) => {
        const s = openSqliteStore(p)._unsafeUnwrap();
        for (let i = 0; i < 200; i++) void s.save(record(`j${i}`, { snapshot: { pad: 'y'.repeat(300) } }));
        s.close();
        const bytes = readFileSync(p);
        bytes.fill(0xff, 4096 + 200, 4096 * 3);
        writeFileSync(p, bytes);
      },
      'corrupt',
      /damaged/,
    ],
  ];

  it.each(refusals)('refuses %s with a clear message and leaves the file as it was', (_what, make, kind, message) => {
    const path = fresh();
    mkdirSync(dirname(path), { recursive: true });
    make(path);
    const before = readFileSync(path);
    const r = openSqliteStore(path);
    expect(r.isErr()).toBe(true);
    const e = r._unsafeUnwrapErr();
    expect(e.kind).toBe(kind);
    expect(e.message).toMatch(message);
    expect(e.message).toContain(path);
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  it.each([
    [0, {}, '/var/lib/blockcopy/jobs.db'],
    [1000, { XDG_STATE_HOME: '/x/state', HOME: '/home/u' }, '/x/state/blockcopy/jobs.db'],
    [1000, { HOME: '/home/u' }, '/home/u/.local/state/blockcopy/jobs.db'],
    [1000, { XDG_STATE_HOME: 'relative', HOME: '/home/u' }, '/home/u/.local/state/blockcopy/jobs.db'],
    [0, { BLOCKCOPY_STORE: '/srv/bc/jobs.db' }, '/srv/bc/jobs.db'],
    [1000, { BLOCKCOPY_STORE: '/srv/bc/jobs.db', XDG_STATE_HOME: '/x/state' }, '/srv/bc/jobs.db'],
    [0, { BLOCKCOPY_STORE: 'relative.db' }, '/var/lib/blockcopy/jobs.db'],
  ])('default location for uid %i', (uid, env, expected) => {
    expect(defaultStorePath(env, uid)).toBe(expected);
  });
});
