/**
 * The observation mapping (src/core/observe.ts): QEMU events and polled job info → the chart's
 * observations. The rules checked here live only in this mapping: ready comes from QEMU's word,
 * never from offset == len; a standby polled before any READY makes the job ready once; a
 * conclusion carries QEMU's error, or none.
 */
import { describe, expect, it } from 'vitest';
import type { HypervisorJobInfo, JobStatus } from '../../src/core/hypervisor-port.js';
import { JOB_STATUSES } from '../../src/core/hypervisor-port.js';
import type { PauseContext } from '../../src/core/observe.js';
import { needsPoll, observeEvent, observeJobInfo } from '../../src/core/observe.js';

const NONE: PauseContext = { userPauseRequested: false, stoppedOnError: false };
const USER: PauseContext = { userPauseRequested: true, stoppedOnError: false };
const STOPPED: PauseContext = { userPauseRequested: false, stoppedOnError: true };

function info(status: JobStatus, extra: Partial<HypervisorJobInfo> = {}): HypervisorJobInfo {
  return {
    jobId: 'j',
    status,
    offset: 0,
    len: 0,
    speed: 0,
    ready: status === 'ready' || status === 'standby',
    paused: false,
    ioStatus: 'ok',
    ...extra,
  };
}

describe('observeJobInfo: ready', () => {
  it('never from cur == end: a running job with offset == len (0/0 and 64 MiB/64 MiB) is only running', () => {
    for (const n of [0, 64 * 1024 * 1024])
      for (const inReady of [false, true])
        expect(observeJobInfo(info('running', { offset: n, len: n }), NONE, inReady)).toEqual([{ type: 'HV.RUNNING' }]);
  });

  it('never from cur == end in any status that is not QEMU ready', () => {
    for (const status of JOB_STATUSES) {
      if (status === 'ready' || status === 'standby') continue;
      const seen = observeJobInfo(info(status, { offset: 5, len: 5, ready: false }), NONE, false);
      expect(
        seen.some((o) => o.type === 'HV.READY'),
        status,
      ).toBe(false);
    }
  });

  it('ready status → READY, whatever the offsets', () => {
    expect(observeJobInfo(info('ready', { offset: 1, len: 9 }), NONE, false)).toEqual([{ type: 'HV.READY' }]);
    expect(observeJobInfo(info('ready'), NONE, true)).toEqual([{ type: 'HV.READY' }]);
  });

  it('standby before READY makes the job ready once, then paused', () => {
    expect(observeJobInfo(info('standby'), USER, false)).toEqual([
      { type: 'HV.READY' },
      { type: 'HV.PAUSED', reason: 'user' },
    ]);
    // Already ready: only the pause.
    expect(observeJobInfo(info('standby'), USER, true)).toEqual([{ type: 'HV.PAUSED', reason: 'user' }]);
  });

  it('waiting/pending/aborting: READY only when QEMU still says ready and the chart is not ready yet', () => {
    for (const status of ['waiting', 'pending', 'aborting'] as const) {
      expect(observeJobInfo(info(status, { ready: true }), NONE, false), status).toEqual([{ type: 'HV.READY' }]);
      expect(observeJobInfo(info(status, { ready: true }), NONE, true), status).toEqual([]);
      expect(observeJobInfo(info(status, { ready: false }), NONE, false), status).toEqual([]);
    }
  });
});

describe('observeJobInfo: pauses, conclusions, vanished jobs', () => {
  it('a paused job: user, I/O error (from the last error event or from io-status), or internal', () => {
    expect(observeJobInfo(info('paused'), USER, false)).toEqual([{ type: 'HV.PAUSED', reason: 'user' }]);
    expect(observeJobInfo(info('paused'), STOPPED, false)).toEqual([{ type: 'HV.PAUSED', reason: 'io-error' }]);
    expect(observeJobInfo(info('paused', { ioStatus: 'nospace' }), USER, false)).toEqual([
      { type: 'HV.PAUSED', reason: 'io-error' },
    ]);
    expect(observeJobInfo(info('paused', { ioStatus: 'failed' }), NONE, false)).toEqual([
      { type: 'HV.PAUSED', reason: 'io-error' },
    ]);
    expect(observeJobInfo(info('paused'), NONE, false)).toEqual([{ type: 'HV.PAUSED', reason: 'internal' }]);
  });

  it('created and running → RUNNING', () => {
    expect(observeJobInfo(info('created'), NONE, false)).toEqual([{ type: 'HV.RUNNING' }]);
  });

  it('concluded without an error', () => {
    expect(observeJobInfo(info('concluded'), NONE, true)).toEqual([
      { type: 'HV.CONCLUDED', error: null, cancelled: false },
    ]);
  });

  it('concluded with an error keeps QEMU’s text; ECANCELED’s text means cancelled', () => {
    expect(observeJobInfo(info('concluded', { error: 'No space left on device' }), NONE, true)).toEqual([
      { type: 'HV.CONCLUDED', error: 'No space left on device', cancelled: false },
    ]);
    expect(observeJobInfo(info('concluded', { error: 'Operation canceled' }), NONE, false)).toEqual([
      { type: 'HV.CONCLUDED', error: 'Operation canceled', cancelled: true },
    ]);
    expect(observeJobInfo(info('concluded', { error: 'job was Cancelled' }), NONE, false)).toEqual([
      { type: 'HV.CONCLUDED', error: 'job was Cancelled', cancelled: true },
    ]);
  });

  it('a job the hypervisor no longer knows has vanished', () => {
    expect(observeJobInfo(null, NONE, false)).toEqual([{ type: 'HV.VANISHED' }]);
    expect(observeJobInfo(null, NONE, true)).toEqual([{ type: 'HV.VANISHED' }]);
  });

  it('undefined and null statuses say nothing', () => {
    expect(observeJobInfo(info('undefined'), NONE, false)).toEqual([]);
    expect(observeJobInfo(info('null'), NONE, false)).toEqual([]);
  });
});

describe('observeEvent', () => {
  const ev = (status: JobStatus) => ({ kind: 'job-status' as const, jobId: 'j', status });

  it('status changes: created/running → RUNNING, ready → READY, paused/standby → PAUSED with a reason', () => {
    expect(observeEvent(ev('created'), NONE)).toEqual([{ type: 'HV.RUNNING' }]);
    expect(observeEvent(ev('running'), NONE)).toEqual([{ type: 'HV.RUNNING' }]);
    expect(observeEvent(ev('ready'), NONE)).toEqual([{ type: 'HV.READY' }]);
    expect(observeEvent(ev('paused'), USER)).toEqual([{ type: 'HV.PAUSED', reason: 'user' }]);
    expect(observeEvent(ev('standby'), STOPPED)).toEqual([{ type: 'HV.PAUSED', reason: 'io-error' }]);
    expect(observeEvent(ev('standby'), NONE)).toEqual([{ type: 'HV.PAUSED', reason: 'internal' }]);
    for (const s of ['waiting', 'pending', 'aborting', 'concluded', 'null', 'undefined'] as const)
      expect(observeEvent(ev(s), NONE), s).toEqual([]);
  });

  it('BLOCK_JOB_READY → READY; COMPLETED with and without an error; CANCELLED', () => {
    const p = { jobId: 'j', len: 4, offset: 4, speed: 0 };
    expect(observeEvent({ kind: 'job-ready', ...p }, NONE)).toEqual([{ type: 'HV.READY' }]);
    expect(observeEvent({ kind: 'job-completed', ...p }, NONE)).toEqual([
      { type: 'HV.CONCLUDED', error: null, cancelled: false },
    ]);
    expect(observeEvent({ kind: 'job-completed', ...p, error: 'Input/output error' }, NONE)).toEqual([
      { type: 'HV.CONCLUDED', error: 'Input/output error', cancelled: false },
    ]);
    expect(observeEvent({ kind: 'job-cancelled', ...p }, NONE)).toEqual([
      { type: 'HV.CONCLUDED', error: null, cancelled: true },
    ]);
  });

  it('BLOCK_JOB_ERROR, the hypervisor gone, connection changes', () => {
    expect(observeEvent({ kind: 'job-error', jobId: 'j', operation: 'write', action: 'stop' }, NONE)).toEqual([
      { type: 'HV.IO_ERROR', action: 'stop', operation: 'write' },
    ]);
    expect(observeEvent({ kind: 'hypervisor-gone', reason: 'killed' }, NONE)).toEqual([
      { type: 'HV.GONE', reason: 'killed' },
    ]);
    expect(observeEvent({ kind: 'connection-lost', reason: 'eof' }, NONE)).toEqual([]);
    expect(observeEvent({ kind: 'connection-restored' }, NONE)).toEqual([]);
  });

  it('polls at once after concluded and after a reconnect, not otherwise', () => {
    expect(needsPoll(ev('concluded'))).toBe(true);
    expect(needsPoll({ kind: 'connection-restored' })).toBe(true);
    expect(needsPoll(ev('ready'))).toBe(false);
    expect(needsPoll({ kind: 'connection-lost', reason: 'eof' })).toBe(false);
    expect(needsPoll({ kind: 'job-ready', jobId: 'j', len: 0, offset: 0, speed: 0 })).toBe(false);
  });
});
