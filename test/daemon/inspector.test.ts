/**
 * The daemon's live inspector: the address it prints serves the page, the list of every job
 * (here a real copy submitted through the control socket, on the simulator in real time) with
 * its state, and one job with its states and its log; nothing without the token.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ok } from 'neverthrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { MemoryJobStore } from '../../adapters/store/memory.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { callDaemon } from '../../src/daemon/client.js';
import type { Daemon } from '../../src/daemon/server.js';
import { startDaemon } from '../../src/daemon/server.js';

const dir = mkdtempSync(join(tmpdir(), 'blockcopy-daemon-inspector-'));
const socket = join(dir, 'control.sock');
const sim = new SimulatedHypervisor({ copyRate: 256 * 1024 * 1024 });
const store = new MemoryJobStore();
const logged: string[] = [];
let daemon: Daemon;

beforeAll(async () => {
  daemon = (
    await startDaemon({
      socketPath: socket,
      store,
      open: () => Promise.resolve(ok(sim)),
      pollIntervalMs: 100,
      log: (line) => logged.push(line),
    })
  )._unsafeUnwrap();
});
afterAll(async () => {
  await daemon.close();
  await sim.close();
  rmSync(dir, { recursive: true, force: true });
});

/** GET a path of the inspector, with the token of the printed address unless told otherwise. */
async function get(path: string, token = new URL(daemon.inspectorUrl!).searchParams.get('token')!) {
  const url = new URL(path, daemon.inspectorUrl!);
  url.searchParams.set('token', token);
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

interface ListedJob {
  jobId: string;
  domain: string;
  disk: string;
  state: string;
  end: unknown;
}

/** Polls the job list until `done` holds for the job (a deadline, not a sleep). */
async function listedUntil(jobId: string, done: (j: ListedJob) => boolean): Promise<ListedJob> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const list = JSON.parse((await get('/jobs.json')).text) as ListedJob[];
    const job = list.find((j) => j.jobId === jobId);
    if (job && done(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${jobId} never matched; last seen ${JSON.stringify(job)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the daemon serves the live inspector', () => {
  it('prints its address, token included, on 127.0.0.1', () => {
    expect(daemon.inspectorUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}$/);
    expect(logged).toContain(`inspector at ${daemon.inspectorUrl}`);
  });

  it('lists a job submitted from a shell with its live state, then shows its chart states and log', async () => {
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.text).toContain('blockcopy daemon');
    expect(page.text).toContain('<svg');

    const submitted = await callDaemon(socket, 'copy', 'sim', {
      domain: 'demo',
      disk: 'vda',
      destination: '/var/lib/blockcopy/inspected.qcow2',
      flags: RebaseFlags.COPY,
    });
    expect(submitted?.ok, JSON.stringify(submitted)).toBe(true);
    const jobId = (submitted as { value: { jobId: string } }).value.jobId;

    const ready = await listedUntil(jobId, (j) => j.state.startsWith('ready'));
    expect(ready).toMatchObject({ jobId, domain: 'demo', disk: 'vda', state: 'ready.synced', end: null });

    const one = await get(`/jobs/${encodeURIComponent(jobId)}.json`);
    expect(one.status).toBe(200);
    expect(one.type).toMatch(/application\/json/);
    const detail = JSON.parse(one.text) as { states: string[]; log: { jobId: string; kind: string }[] };
    expect(detail.states.slice(0, 2)).toEqual(['validating', 'preparingDestination']);
    expect(detail.states).toContain('ready.synced');
    // The log is the inspector's records of this job: the chart's transitions and the READY event.
    expect(detail.log.length).toBeGreaterThan(0);
    expect(detail.log.every((r) => r.jobId === jobId)).toBe(true);
    expect(detail.log.some((r) => r.kind === 'inspection')).toBe(true);
    expect(detail.log.some((r) => r.kind === 'job-event')).toBe(true);

    const pivot = await callDaemon(socket, 'abort', 'sim', { domain: 'demo', disk: 'vda', flags: AbortFlags.PIVOT });
    expect(pivot?.ok, JSON.stringify(pivot)).toBe(true);
    const ended = await listedUntil(jobId, (j) => j.end !== null);
    expect(ended).toMatchObject({ state: 'completed', end: { outcome: 'completed', pivoted: true } });
  });

  it('answers 404 for a job it does not know and 403 without the token', async () => {
    expect((await get('/jobs/no-such-job.json')).status).toBe(404);
    expect((await get('/jobs.json', 'wrong')).status).toBe(403);
  });
});
