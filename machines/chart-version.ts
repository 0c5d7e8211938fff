/**
 * Version of the block-copy job chart's persisted shape (state names, context fields). Bump it
 * when a persisted snapshot of the previous version would not restore into the same meaning;
 * the engine refuses stored jobs written by a version it does not read (src/engine/recovery.ts).
 */
export const JOB_CHART_VERSION = 2;

/** Chart versions this build restores. */
// 2 adds the convergence restart (state restarting, context restartTo/restarts/convergenceError);
// a version-1 snapshot restores unchanged (the new fields read as absent).
export const READABLE_CHART_VERSIONS: readonly number[] = [1, 2];

/**
 * Version of the block-pull job chart's persisted shape (machines/block-pull-job.ts). Pull
 * records carry it in the same chartVersion field; recovery reads the versions listed below.
 */
export const PULL_CHART_VERSION = 1;
export const READABLE_PULL_CHART_VERSIONS: readonly number[] = [1];
