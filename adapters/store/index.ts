/**
 * The job stores' public surface (`blockcopy/adapters/store`): SQLite (the embedded default) and
 * in memory, behind the JobStore port that `createEngine({ store })` takes.
 */
export { MemoryJobStore } from './memory.js';
export { openSqliteStore, SqliteJobStore, SQLITE_SCHEMA_VERSION, type SqliteStoreOptions } from './sqlite.js';
export { defaultStorePath } from './location.js';
