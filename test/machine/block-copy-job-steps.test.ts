/**
 * The job chart one step at a time (XState's pure `transition`): every state with each event it
 * handles, and what that step must do — the state reached, the context fields it sets, the
 * refusal it emits, the IO actor it invokes and that actor's input. Expectations come from the
 * README's contract and libvirt (errors.ts wording), not from reading the chart's code; the
 * exhaustive check (test/exhaustive/) covers "nothing else happens" over all reachable states.
 */
import { describe, expect, it } from 'vitest';
import { createActor, initialTransition, toPromise } from 'xstate';
import type { BlockCopyJobContext } from '../../machines/block-copy-job.js';
import { blockCopyJobMachine, toBlockCopyError } from '../../machines/block-copy-job.js';
import type { BlockCopyJobEvent } from '../../machines/events.js';
import { blockCopyError, errors } from '../../src/core/errors.js';
import { planCopy } from '../../src/core/validate.js';
import { request, seedFacts } from './fixtures.js';
import { done as doneOf, failed as failedOf, step as stepOf } from './steps.js';

const req = request();
const plan = planCopy(req, seedFacts())._unsafeUnwrap();
const PATH = '/images/copy.qcow2';
const failure = blockCopyError('VIR_ERR_INTERNAL_ERROR', 'injected');
const giveUpError = blockCopyError('VIR_ERR_OPERATION_TIMEOUT', 'not converging');

const base: BlockCopyJobContext = {
  jobId: 'job-1',
  request: req,
  plan,
  destinationCreated: true,
  started: true,
  readySeen: false,
  endRequest: null,
  endAccepted: false,
  outcome: null,
  pivoted: false,
  destinationConsistent: false,
  error: null,
  lastIoError: null,
  cleanupError: null,
  restartTo: null,
  restarts: 0,
  convergenceError: null,
};

type Ev = BlockCopyJobEvent | { type: string; output?: unknown; error?: unknown };
const step = (value: Parameters<typeof stepOf>[1], ctx: Partial<BlockCopyJobContext>, event: Ev) =>
  stepOf(blockCopyJobMachine, value, { ...base, ...ctx }, event);
const done = (state: string, output?: unknown) => doneOf('blockCopyJob', state, output);
const fail = (state: string, error: unknown = failure) => failedOf('blockCopyJob', state, error);

const READY: Ev = { type: 'HV.READY' };
const RUNNING: Ev = { type: 'HV.RUNNING' };
const paused = (reason: 'user' | 'io-error' | 'internal'): Ev => ({ type: 'HV.PAUSED', reason });
const concluded = (error: string | null, cancelled: boolean): Ev => ({ type: 'HV.CONCLUDED', error, cancelled });
const VANISHED: Ev = { type: 'HV.VANISHED' };
const GONE: Ev = { type: 'HV.GONE', reason: 'killed' };
const PIVOT: Ev = { type: 'PIVOT' };
const ABORT: Ev = { type: 'ABORT', force: false };
const FORCE: Ev = { type: 'ABORT', force: true };
const IO_ERROR: Ev = { type: 'HV.IO_ERROR', action: 'stop', operation: 'read' };
const RESTART: Ev = { type: 'CONVERGE.RESTART', copyMode: 'write-blocking', speed: 4096 };
const GIVE_UP: Ev = { type: 'CONVERGE.GIVE_UP', error: giveUpError };

const refused = (request: 'PIVOT' | 'ABORT', error: ReturnType<typeof blockCopyError>) => [
  { type: 'refused', request, error },
];
const finishInput = (started: boolean, removeDestination: string | null, releaseDestination: string | null = PATH) => ({
  src: 'finishJob',
  input: { jobId: 'job-1', started, removeDestination, releaseDestination },
});
const opFailed = (detail: string) => blockCopyError('VIR_ERR_OPERATION_FAILED', detail);

describe('job chart, step by step', () => {
  it('starts in validating and inspects the facts with the job id and the request', () => {
    const [s0, actions] = initialTransition(blockCopyJobMachine, { jobId: 'job-1', request: req });
    expect(s0.value).toBe('validating');
    expect(s0.context).toEqual({
      ...base,
      plan: null,
      destinationCreated: false,
      started: false,
    });
    const spawned = (actions as unknown as { type: string; params: { src: string; input: unknown } }[]).filter(
      (a) => a.type === 'xstate.spawnChild',
    );
    expect(spawned.map((a) => [a.params.src, a.params.input])).toEqual([
      ['inspectFacts', { jobId: 'job-1', request: req }],
    ]);
  });

  describe('validating', () => {
    const ctx = { plan: null, destinationCreated: false, started: false };
    it('a valid plan: preparing the destination it names', () => {
      const s = step('validating', ctx, done('validating', seedFacts()));
      expect(s.state).toBe('preparingDestination');
      expect(s.context.plan).toEqual(plan);
      expect(s.invoked).toEqual([{ src: 'prepareDestination', input: { jobId: 'job-1', plan } }]);
    });
    it('an invalid plan: failed with the planning error, nothing invoked', () => {
      const s = step('validating', ctx, done('validating', { ...seedFacts(), domain: null }));
      expect(s.state).toBe('failed');
      expect(s.status).toBe('done');
      expect(s.context.error).toEqual(errors.noDomain('demo'));
      expect(s.output).toEqual({
        outcome: 'failed',
        pivoted: false,
        destinationConsistent: false,
        error: errors.noDomain('demo'),
      });
      expect(s.invoked).toEqual([]);
    });
    it('the inspection failing: failed with its error', () => {
      const s = step('validating', ctx, fail('validating'));
      expect(s.state).toBe('failed');
      expect(s.context).toMatchObject({ outcome: 'failed', error: failure });
    });
    it.each([PIVOT, ABORT])('refuses %o: no active job yet', (event) => {
      const s = step('validating', ctx, event);
      expect(s.state).toBe('validating');
      expect(s.emitted).toEqual(refused(event.type as 'PIVOT', errors.noActiveJob('vda')));
    });
  });

  describe('preparingDestination', () => {
    const ctx = { destinationCreated: false, started: false };
    it.each([true, false])('prepared (created %s): starting the mirror with the plan', (created) => {
      const s = step('preparingDestination', ctx, done('preparingDestination', { created }));
      expect(s.state).toBe('starting');
      expect(s.context.destinationCreated).toBe(created);
      expect(s.invoked).toEqual([{ src: 'startMirror', input: { jobId: 'job-1', plan } }]);
    });
    it('failing: failed with the error, no clean-up step (nothing was made)', () => {
      const s = step('preparingDestination', ctx, fail('preparingDestination'));
      expect(s.state).toBe('failed');
      expect(s.context).toMatchObject({ outcome: 'failed', error: failure });
      expect(s.invoked).toEqual([]);
    });
    it.each([PIVOT, ABORT])('refuses %o: no active job yet', (event) => {
      expect(step('preparingDestination', ctx, event).emitted).toEqual(
        refused(event.type as 'PIVOT', errors.noActiveJob('vda')),
      );
    });
  });

  describe('starting', () => {
    const ctx = { started: false };
    it('the mirror started: mirroring, the job exists', () => {
      const s = step('starting', ctx, done('starting'));
      expect(s.state).toBe('mirroring.running');
      expect(s.context.started).toBe(true);
    });
    it('start refused: finishing, failed, the created destination removed', () => {
      const s = step('starting', ctx, fail('starting'));
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({ outcome: 'failed', error: failure, started: false });
      expect(s.invoked).toEqual([finishInput(false, PATH)]);
    });
    it('READY before the reply: ready', () => {
      const s = step('starting', ctx, READY);
      expect(s.state).toBe('ready.synced');
      expect(s.context).toMatchObject({ started: true, readySeen: true });
    });
    it('concluded with an error before the reply: failed with the error, the job was started', () => {
      const s = step('starting', ctx, concluded('Input/output error', false));
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({
        started: true,
        outcome: 'failed',
        error: opFailed("block job 'vda' failed: Input/output error"),
      });
      expect(s.invoked).toEqual([finishInput(true, PATH)]);
    });
    it('concluded cancelled by someone else: failed, cancelled outside blockcopy', () => {
      const s = step('starting', ctx, concluded(null, true));
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({
        started: true,
        outcome: 'failed',
        error: opFailed("block job 'vda' was cancelled outside blockcopy"),
      });
    });
    it('concluded without error or request: failed, ended without a pivot or abort request', () => {
      const s = step('starting', ctx, concluded(null, false));
      expect(s.context).toMatchObject({
        started: true,
        outcome: 'failed',
        error: opFailed("block job 'vda' ended without a pivot or abort request"),
      });
    });
    it('the domain went away: failed, domain not running', () => {
      const s = step('starting', ctx, GONE);
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({ outcome: 'failed', error: opFailed('domain is not running: killed') });
    });
    it.each([PIVOT, ABORT])('refuses %o: no active job yet', (event) => {
      expect(step('starting', ctx, event).emitted).toEqual(refused(event.type as 'PIVOT', errors.noActiveJob('vda')));
    });
    it.each([RUNNING, paused('user'), IO_ERROR, VANISHED, RESTART, GIVE_UP])('ignores %o', (event) => {
      const s = step('starting', ctx, event);
      expect(s.state).toBe('starting');
      expect(s.context).toEqual({ ...base, ...ctx });
    });
  });

  describe('mirroring', () => {
    it.each([
      ['running', paused('io-error'), 'errorPaused'],
      ['running', paused('user'), 'paused'],
      ['running', paused('internal'), 'running'],
      ['running', RUNNING, 'running'],
      ['paused', RUNNING, 'running'],
      ['paused', paused('io-error'), 'errorPaused'],
      ['paused', paused('user'), 'paused'],
      ['errorPaused', RUNNING, 'running'],
      ['errorPaused', paused('user'), 'errorPaused'],
    ] as const)('%s + %o → %s', (from, event, to) => {
      expect(step({ mirroring: from }, {}, event).state).toBe(`mirroring.${to}`);
    });
    it.each(['running', 'paused', 'errorPaused'])('READY in %s: ready', (from) => {
      const s = step({ mirroring: from }, {}, READY);
      expect(s.state).toBe('ready.synced');
      expect(s.context.readySeen).toBe(true);
    });
    it('records the I/O error QEMU reported', () => {
      expect(step({ mirroring: 'running' }, {}, IO_ERROR).context.lastIoError).toBe('read error, action stop');
    });
    it('refuses a pivot: not ready', () => {
      const s = step({ mirroring: 'running' }, {}, PIVOT);
      expect(s.state).toBe('mirroring.running');
      expect(s.emitted).toEqual(refused('PIVOT', errors.notReadyForPivot('vda')));
      expect(s.invoked).toEqual([]);
    });
    it.each([ABORT, FORCE])('abort %o before ready: a force cancel', (event) => {
      const s = step({ mirroring: 'paused' }, {}, event);
      expect(s.state).toBe('aborting');
      expect(s.context.endRequest).toBe('abort-force');
      expect(s.invoked).toEqual([{ src: 'cancelJob', input: { jobId: 'job-1', force: true } }]);
    });
    it('a convergence restart: cancelling (force), the next mode and speed remembered', () => {
      const s = step({ mirroring: 'running' }, {}, RESTART);
      expect(s.state).toBe('restarting.cancelling');
      expect(s.context.restartTo).toEqual({ copyMode: 'write-blocking', speed: 4096 });
      expect(s.invoked).toEqual([{ src: 'cancelJob', input: { jobId: 'job-1', force: true } }]);
    });
    it('the policy gives up: a force abort carrying its error', () => {
      const s = step({ mirroring: 'running' }, {}, GIVE_UP);
      expect(s.state).toBe('aborting');
      expect(s.context).toMatchObject({ endRequest: 'abort-force', convergenceError: giveUpError });
      expect(s.invoked).toEqual([{ src: 'cancelJob', input: { jobId: 'job-1', force: true } }]);
    });
    it.each([
      [concluded('No space left on device', true), "block job 'vda' failed: No space left on device"],
      [concluded(null, true), "block job 'vda' was cancelled outside blockcopy"],
      [concluded(null, false), "block job 'vda' ended without a pivot or abort request"],
      [VANISHED, "block job 'vda' vanished from the hypervisor; outcome unknown"],
      [GONE, 'domain is not running: killed'],
    ])('%o: finishing, failed (%s), the created destination removed', (event, detail) => {
      const s = step({ mirroring: 'running' }, {}, event);
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({ outcome: 'failed', error: opFailed(detail) });
      expect(s.invoked).toEqual([finishInput(true, PATH)]);
    });
  });

  describe('ready', () => {
    const ctx = { readySeen: true };
    it('standby on a pause, back to synced on RUNNING or READY', () => {
      expect(step({ ready: 'synced' }, ctx, paused('user')).state).toBe('ready.standby');
      expect(step({ ready: 'synced' }, ctx, paused('io-error')).state).toBe('ready.standby');
      expect(step({ ready: 'standby' }, ctx, RUNNING).state).toBe('ready.synced');
      expect(step({ ready: 'standby' }, ctx, READY).state).toBe('ready.synced');
      expect(step({ ready: 'standby' }, ctx, paused('user')).state).toBe('ready.standby');
    });
    it('a soft abort when synced keeps a consistent copy: abort, soft cancel', () => {
      const s = step({ ready: 'synced' }, ctx, ABORT);
      expect(s.state).toBe('aborting');
      expect(s.context.endRequest).toBe('abort');
      expect(s.invoked).toEqual([{ src: 'cancelJob', input: { jobId: 'job-1', force: false } }]);
    });
    it('a force abort when synced: force cancel', () => {
      const s = step({ ready: 'synced' }, ctx, FORCE);
      expect(s.context.endRequest).toBe('abort-force');
      expect(s.invoked).toEqual([{ src: 'cancelJob', input: { jobId: 'job-1', force: true } }]);
    });
    it('any abort in standby: force cancel (QEMU refuses a soft cancel of a paused job)', () => {
      const s = step({ ready: 'standby' }, ctx, ABORT);
      expect(s.state).toBe('aborting');
      expect(s.context.endRequest).toBe('abort-force');
      expect(s.invoked).toEqual([{ src: 'cancelJob', input: { jobId: 'job-1', force: true } }]);
    });
    it('a restart when synced; none in standby', () => {
      const s = step({ ready: 'synced' }, ctx, RESTART);
      expect(s.state).toBe('restarting.cancelling');
      expect(s.context.restartTo).toEqual({ copyMode: 'write-blocking', speed: 4096 });
      expect(step({ ready: 'standby' }, ctx, RESTART).state).toBe('ready.standby');
    });
    it.each(['synced', 'standby'])('pivot from %s: pivoting, block-job-complete', (from) => {
      const s = step({ ready: from }, ctx, PIVOT);
      expect(s.state).toBe('pivoting');
      expect(s.context.endRequest).toBe('pivot');
      expect(s.invoked).toEqual([{ src: 'completeJob', input: { jobId: 'job-1' } }]);
    });
    it('records an I/O error', () => {
      expect(step({ ready: 'standby' }, ctx, IO_ERROR).context.lastIoError).toBe('read error, action stop');
    });
    it('a completion nobody here asked for: the block graph is asked', () => {
      const s = step({ ready: 'synced' }, ctx, concluded(null, false));
      expect(s.state).toBe('confirmingPivot');
      expect(s.invoked).toEqual([{ src: 'confirmPivot', input: { jobId: 'job-1', plan } }]);
    });
    it.each([
      [concluded('Input/output error', false), "block job 'vda' failed: Input/output error"],
      [concluded('Input/output error', true), "block job 'vda' failed: Input/output error"],
      [concluded(null, true), "block job 'vda' was cancelled outside blockcopy"],
      [VANISHED, "block job 'vda' vanished from the hypervisor; outcome unknown"],
      [GONE, 'domain is not running: killed'],
    ])('%o: finishing, failed (%s)', (event, detail) => {
      const s = step({ ready: 'standby' }, ctx, event);
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({ outcome: 'failed', error: opFailed(detail) });
    });
  });

  describe('restarting', () => {
    const restartTo = { copyMode: 'write-blocking' as const, speed: 4096 };
    const ctx = { restartTo };
    it('the cancel refused: back to mirroring, the restart dropped', () => {
      const s = step({ restarting: 'cancelling' }, ctx, fail('restarting.cancelling'));
      expect(s.state).toBe('mirroring.running');
      expect(s.context.restartTo).toBeNull();
    });
    it.each([concluded(null, true), VANISHED])('%o: the old job is dismissed, the destination kept', (event) => {
      const s = step({ restarting: 'cancelling' }, ctx, event);
      expect(s.state).toBe('restarting.dismissing');
      expect(s.invoked).toEqual([finishInput(true, null, null)]);
    });
    it.each([concluded(null, true), VANISHED])('%o after a give-up: failed with the policy error', (event) => {
      const s = step({ restarting: 'cancelling' }, { ...ctx, convergenceError: giveUpError }, event);
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({ outcome: 'failed', error: giveUpError });
    });
    it.each([concluded(null, true), VANISHED])('%o after an abort: canceled', (event) => {
      const s = step({ restarting: 'cancelling' }, { ...ctx, endRequest: 'abort-force' }, event);
      expect(s.state).toBe('finishing');
      expect(s.context.outcome).toBe('canceled');
      expect(s.invoked).toEqual([finishInput(true, PATH)]);
    });
    it('dismissed: starting again in the new mode and speed, one restart counted', () => {
      const s = step({ restarting: 'dismissing' }, { ...ctx, restarts: 2 }, done('restarting.dismissing'));
      expect(s.state).toBe('starting');
      const next = { ...plan, copyMode: 'write-blocking', speed: 4096 };
      expect(s.context).toMatchObject({ plan: next, restartTo: null, restarts: 3 });
      expect(s.invoked).toEqual([{ src: 'startMirror', input: { jobId: 'job-1', plan: next } }]);
    });
    it('dismissed without a recorded restart (version-1 context): the plan as it was, first restart', () => {
      const s = step(
        { restarting: 'dismissing' },
        { restartTo: null, restarts: undefined } as unknown as Partial<BlockCopyJobContext>,
        done('restarting.dismissing'),
      );
      expect(s.state).toBe('starting');
      expect(s.context).toMatchObject({ plan, restarts: 1 });
    });
    it('dismissed after a give-up: failed; after an abort: canceled', () => {
      const g = step(
        { restarting: 'dismissing' },
        { ...ctx, convergenceError: giveUpError },
        done('restarting.dismissing'),
      );
      expect(g.state).toBe('finishing');
      expect(g.context).toMatchObject({ outcome: 'failed', error: giveUpError });
      const a = step(
        { restarting: 'dismissing' },
        { ...ctx, endRequest: 'abort-force' },
        done('restarting.dismissing'),
      );
      expect(a.state).toBe('finishing');
      expect(a.context.outcome).toBe('canceled');
    });
    it('the dismissal failing: failed with its error', () => {
      const s = step({ restarting: 'dismissing' }, ctx, fail('restarting.dismissing'));
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({ outcome: 'failed', error: failure });
    });
    it.each(['cancelling', 'dismissing'])('in %s: an abort is taken as a force abort, already under way', (sub) => {
      const s = step({ restarting: sub }, ctx, ABORT);
      expect(s.state).toBe(`restarting.${sub}`);
      expect(s.context).toMatchObject({ endRequest: 'abort-force', endAccepted: true });
      expect(s.emitted).toEqual([]);
    });
    it('the policy gives up meanwhile: remembered', () => {
      const s = step({ restarting: 'cancelling' }, ctx, GIVE_UP);
      expect(s.state).toBe('restarting.cancelling');
      expect(s.context).toMatchObject({ endRequest: 'abort-force', convergenceError: giveUpError });
    });
    it('refuses a pivot: not ready', () => {
      expect(step({ restarting: 'dismissing' }, ctx, PIVOT).emitted).toEqual(
        refused('PIVOT', errors.notReadyForPivot('vda')),
      );
    });
    it('the domain went away: failed', () => {
      const s = step({ restarting: 'cancelling' }, ctx, GONE);
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({ outcome: 'failed', error: opFailed('domain is not running: killed') });
    });
  });

  describe('pivoting', () => {
    const ctx = { readySeen: true, endRequest: 'pivot' as const };
    it('block-job-complete accepted: still pivoting, the end accepted', () => {
      const s = step('pivoting', ctx, done('pivoting'));
      expect(s.state).toBe('pivoting');
      expect(s.context.endAccepted).toBe(true);
    });
    it('block-job-complete refused: back to ready, the refusal reported', () => {
      const s = step('pivoting', ctx, fail('pivoting'));
      expect(s.state).toBe('ready.synced');
      expect(s.context.endRequest).toBeNull();
      expect(s.emitted).toEqual(refused('PIVOT', failure));
    });
    it.each([
      [concluded('Input/output error', false), errors.failedWhilePivoting('vda', 'Input/output error')],
      [concluded(null, true), errors.failedWhilePivoting('vda', 'job was cancelled')],
    ])('%o: failed while pivoting', (event, error) => {
      const s = step('pivoting', ctx, event);
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({ outcome: 'failed', error });
    });
    it.each([concluded(null, false), VANISHED])('%o: the block graph is asked', (event) => {
      const s = step('pivoting', ctx, event);
      expect(s.state).toBe('confirmingPivot');
      expect(s.invoked).toEqual([{ src: 'confirmPivot', input: { jobId: 'job-1', plan } }]);
    });
    it('the domain went away: failed', () => {
      expect(step('pivoting', ctx, GONE).context.error).toEqual(opFailed('domain is not running: killed'));
    });
    it('records an I/O error', () => {
      expect(step('pivoting', ctx, IO_ERROR).context.lastIoError).toBe('read error, action stop');
    });
    it.each([PIVOT, ABORT])('refuses %o: still being ended', (event) => {
      expect(step('pivoting', ctx, event).emitted).toEqual(
        refused(event.type as 'PIVOT', errors.stillBeingEnded('vda')),
      );
    });
  });

  describe('confirmingPivot', () => {
    it('the guest reads the destination: completed, pivoted, nothing removed', () => {
      const s = step('confirmingPivot', { endRequest: 'pivot' }, done('confirmingPivot', true));
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({ outcome: 'completed', pivoted: true, destinationConsistent: true });
      expect(s.invoked).toEqual([finishInput(true, null)]);
    });
    it('not pivoted after our pivot: failed while pivoting, still on its source', () => {
      const s = step('confirmingPivot', { endRequest: 'pivot' }, done('confirmingPivot', false));
      expect(s.context).toMatchObject({
        outcome: 'failed',
        pivoted: false,
        error: errors.failedWhilePivoting('vda', 'the disk is still on its source'),
      });
    });
    it('not pivoted, nobody here asked: ended outside blockcopy', () => {
      const s = step('confirmingPivot', { endRequest: null }, done('confirmingPivot', false));
      expect(s.context).toMatchObject({
        outcome: 'failed',
        error: opFailed("block job 'vda' ended outside blockcopy without a pivot"),
      });
    });
    it('the look failing: failed while pivoting, with its message', () => {
      const s = step('confirmingPivot', { endRequest: 'pivot' }, fail('confirmingPivot'));
      expect(s.context).toMatchObject({
        outcome: 'failed',
        error: errors.failedWhilePivoting('vda', failure.message),
      });
    });
    it.each([PIVOT, ABORT])('refuses %o: still being ended', (event) => {
      expect(step('confirmingPivot', {}, event).emitted).toEqual(
        refused(event.type as 'PIVOT', errors.stillBeingEnded('vda')),
      );
    });
  });

  describe('aborting', () => {
    it('the cancel accepted: still aborting, the end accepted', () => {
      const s = step('aborting', { endRequest: 'abort' }, done('aborting'));
      expect(s.state).toBe('aborting');
      expect(s.context.endAccepted).toBe(true);
    });
    it.each([
      [true, 'ready.synced'],
      [false, 'mirroring.running'],
    ])('the cancel refused (readySeen %s): back to %s, the refusal reported', (readySeen, to) => {
      const s = step(
        'aborting',
        { readySeen, endRequest: 'abort-force', convergenceError: giveUpError },
        fail('aborting'),
      );
      expect(s.state).toBe(to);
      expect(s.context).toMatchObject({ endRequest: null, convergenceError: null });
      expect(s.emitted).toEqual(refused('ABORT', failure));
    });
    it.each([
      [true, 'abort', null, false, true],
      [false, 'abort', null, false, false],
      [true, 'abort-force', null, false, false],
      [true, 'abort', null, true, false],
      [true, 'abort', 'Input/output error', false, false],
    ] as const)(
      'concluded (readySeen %s, %s, error %s, cancelled %s): canceled, consistent %s',
      (readySeen, endRequest, error, cancelled, consistent) => {
        const s = step('aborting', { readySeen, endRequest }, concluded(error, cancelled));
        expect(s.state).toBe('finishing');
        expect(s.context).toMatchObject({ outcome: 'canceled', destinationConsistent: consistent, error: null });
        expect(s.invoked).toEqual([finishInput(true, consistent ? null : PATH)]);
      },
    );
    it('vanished: canceled', () => {
      const s = step('aborting', { endRequest: 'abort-force' }, VANISHED);
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({ outcome: 'canceled', destinationConsistent: false });
    });
    it.each([concluded(null, true), VANISHED])('%o after a give-up: failed with the policy error', (event) => {
      const s = step('aborting', { endRequest: 'abort-force', convergenceError: giveUpError }, event);
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({ outcome: 'failed', error: giveUpError });
    });
    it('the domain went away: failed', () => {
      expect(step('aborting', { endRequest: 'abort' }, GONE).context).toMatchObject({
        outcome: 'failed',
        error: opFailed('domain is not running: killed'),
      });
    });
    it.each([PIVOT, ABORT])('refuses %o: still being ended', (event) => {
      expect(step('aborting', {}, event).emitted).toEqual(
        refused(event.type as 'PIVOT', errors.stillBeingEnded('vda')),
      );
    });
  });

  describe('finishing', () => {
    it.each([
      ['completed', 'completed'],
      ['canceled', 'canceled'],
      ['failed', 'failed'],
    ] as const)('done with outcome %s: %s', (outcome, final) => {
      const error = outcome === 'failed' ? failure : null;
      const s = step('finishing', { outcome, error }, done('finishing'));
      expect(s.state).toBe(final);
      expect(s.status).toBe('done');
      expect(s.output).toEqual({ outcome, pivoted: false, destinationConsistent: false, error });
      expect(s.context.cleanupError).toBeNull();
    });
    it('failed without an error recorded: an internal error says so', () => {
      const s = step('finishing', { outcome: null }, done('finishing'));
      expect(s.state).toBe('failed');
      expect(s.context.error).toEqual(blockCopyError('VIR_ERR_INTERNAL_ERROR', 'job failed'));
      expect(s.output).toMatchObject({ outcome: 'failed' });
    });
    it('the clean-up failing: the outcome stands, the clean-up error recorded', () => {
      const s = step('finishing', { outcome: 'canceled' }, fail('finishing'));
      expect(s.state).toBe('canceled');
      expect(s.context.cleanupError).toEqual(failure);
      expect(s.context.error).toBeNull();
    });
    it.each([PIVOT, ABORT])('refuses %o: still being ended', (event) => {
      expect(step('finishing', {}, event).emitted).toEqual(
        refused(event.type as 'PIVOT', errors.stillBeingEnded('vda')),
      );
    });
    it('removes only a destination the engine created and that holds no kept copy', () => {
      const remove = (ctx: Partial<BlockCopyJobContext>) =>
        (step({ mirroring: 'running' }, ctx, GONE).invoked[0]?.input as { removeDestination: string | null })
          .removeDestination;
      expect(remove({})).toBe(PATH);
      expect(remove({ destinationCreated: false })).toBeNull();
      expect(remove({ pivoted: true })).toBeNull();
      expect(remove({ destinationConsistent: true })).toBeNull();
      expect(remove({ plan: null })).toBeNull();
      const release = (ctx: Partial<BlockCopyJobContext>) =>
        (step({ mirroring: 'running' }, ctx, GONE).invoked[0]?.input as { releaseDestination: string | null })
          .releaseDestination;
      expect(release({ pivoted: true })).toBe(PATH);
      expect(release({ destinationCreated: false })).toBeNull();
      expect(release({ plan: null })).toBeNull();
    });
  });

  it('a final state takes no more events', () => {
    for (const final of ['completed', 'canceled', 'failed'])
      for (const event of [PIVOT, ABORT, READY, concluded(null, false), GONE]) {
        const s = step(final, { outcome: final === 'failed' ? 'failed' : (final as 'completed') }, event);
        expect(s.state).toBe(final);
        expect(s.emitted).toEqual([]);
      }
  });
});

describe('toBlockCopyError', () => {
  it('keeps a BlockCopyError as it is', () => {
    expect(toBlockCopyError(failure)).toBe(failure);
  });
  it('wraps anything else as an internal error with its text', () => {
    expect(toBlockCopyError(new Error('boom'))).toEqual(blockCopyError('VIR_ERR_INTERNAL_ERROR', 'boom'));
    expect(toBlockCopyError('text')).toEqual(blockCopyError('VIR_ERR_INTERNAL_ERROR', 'text'));
    expect(toBlockCopyError(null)).toEqual(blockCopyError('VIR_ERR_INTERNAL_ERROR', 'null'));
    for (const missing of ['code', 'number', 'message', 'detail']) {
      const partial: Record<string, unknown> = { ...failure };
      delete partial[missing];
      expect(toBlockCopyError(partial), missing).toEqual(blockCopyError('VIR_ERR_INTERNAL_ERROR', '[object Object]'));
    }
  });
});

describe('the chart without its IO actors', () => {
  it('fails with an internal error naming the actor that was not provided', async () => {
    const actor = createActor(blockCopyJobMachine, { input: { jobId: 'job-1', request: req } }).start();
    const out = await toPromise(actor);
    expect(out).toEqual({
      outcome: 'failed',
      pivoted: false,
      destinationConsistent: false,
      error: blockCopyError('VIR_ERR_INTERNAL_ERROR', "actor 'inspectFacts' was not provided"),
    });
  });
  it.each(['prepareDestination', 'startMirror', 'completeJob', 'cancelJob', 'confirmPivot', 'finishJob'])(
    '%s: rejects, naming itself',
    async (name) => {
      const logic = blockCopyJobMachine.implementations.actors[name] as unknown as {
        config: (a: { input: unknown }) => Promise<unknown>;
      };
      await expect(logic.config({ input: {} })).rejects.toThrow(`actor '${name}' was not provided`);
    },
  );
});
