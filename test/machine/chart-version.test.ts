/**
 * The persisted shape of the job charts and its version: the fields a stored snapshot carries
 * are pinned to JOB_CHART_VERSION (a new field means a new version, or this test says why not),
 * this build reads its own version and version 1, and a version-1 snapshot (before the
 * convergence restart) restores and runs on under today's chart.
 */
import { describe, expect, it } from 'vitest';
import { createActor, fromPromise } from 'xstate';
import { blockCopyJobMachine } from '../../machines/block-copy-job.js';
import {
  JOB_CHART_VERSION,
  PULL_CHART_VERSION,
  READABLE_CHART_VERSIONS,
  READABLE_PULL_CHART_VERSIONS,
} from '../../machines/chart-version.js';
import { request, settle, startJob } from './fixtures.js';

const V1_FIELDS = [
  'cleanupError',
  'destinationConsistent',
  'destinationCreated',
  'endAccepted',
  'endRequest',
  'error',
  'jobId',
  'lastIoError',
  'outcome',
  'pivoted',
  'plan',
  'readySeen',
  'request',
  'started',
];
/** Version 2 added the convergence restart. */
const V2_FIELDS = [...V1_FIELDS, 'convergenceError', 'restartTo', 'restarts'].sort();

describe('chart versions', () => {
  it('this build reads the version it writes, and version 1', () => {
    expect(JOB_CHART_VERSION).toBe(2);
    expect(READABLE_CHART_VERSIONS).toContain(JOB_CHART_VERSION);
    expect(READABLE_CHART_VERSIONS).toContain(1);
    expect(READABLE_PULL_CHART_VERSIONS).toContain(PULL_CHART_VERSION);
  });

  it('a persisted job snapshot carries exactly the fields of its version', async () => {
    const { actor } = startJob();
    await settle();
    actor.send({ type: 'HV.READY' });
    const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot())) as {
      value: unknown;
      status: string;
      context: Record<string, unknown>;
    };
    expect(persisted.value).toEqual({ ready: 'synced' });
    expect(persisted.status).toBe('active');
    expect(Object.keys(persisted.context).sort()).toEqual(V2_FIELDS);
    actor.stop();
  });

  it('a version-1 snapshot restores and pivots under this chart', async () => {
    const { actor } = startJob();
    await settle();
    actor.send({ type: 'HV.READY' });
    const v2 = JSON.parse(JSON.stringify(actor.getPersistedSnapshot())) as { context: Record<string, unknown> };
    actor.stop();
    const v1 = { ...v2, context: Object.fromEntries(V1_FIELDS.map((k) => [k, v2.context[k]])) };
    const completed: string[] = [];
    const restored = createActor(
      blockCopyJobMachine.provide({
        actors: {
          completeJob: fromPromise(async ({ input }) => {
            completed.push(input.jobId);
            return undefined;
          }),
        },
      }),
      { snapshot: v1 as never, input: { jobId: 'job-1', request: request() } },
    ).start();
    expect(restored.getSnapshot().value).toEqual({ ready: 'synced' });
    restored.send({ type: 'PIVOT' });
    await settle();
    expect(completed).toEqual(['job-1']);
    expect(restored.getSnapshot().context.endAccepted).toBe(true);
    restored.stop();
  });
});
