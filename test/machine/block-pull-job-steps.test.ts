/**
 * The block-pull chart one step at a time (XState's pure `transition`): every state with each
 * event it handles, the state reached, the context it sets, the refusal it emits and the IO actor
 * it invokes with its input. Expectations from the README (block pull) and libvirt's wording.
 */
import { describe, expect, it } from 'vitest';
import { createActor, initialTransition, toPromise } from 'xstate';
import type { BlockPullJobContext } from '../../machines/block-pull-job.js';
import { blockPullJobMachine } from '../../machines/block-pull-job.js';
import type { BlockCopyJobEvent } from '../../machines/events.js';
import { blockCopyError, errors } from '../../src/core/errors.js';
import type { PullFacts } from '../../src/core/pull.js';
import { planPull, pullErrors, validateBlockPull } from '../../src/core/pull.js';
import { done as doneOf, failed as failedOf, step as stepOf } from './steps.js';

const req = validateBlockPull({ domain: 'demo', disk: 'vda', bandwidth: 0, flags: 0 })._unsafeUnwrap();
const facts = (busy: PullFacts['busy'] = null, running = true): PullFacts => ({
  domain: { name: 'demo', running, persistent: false, disks: ['vda'] },
  disk: {
    disk: 'vda',
    chain: [
      {
        path: '/i/snap2.qcow2',
        format: 'qcow2',
        virtualSize: 1 << 30,
        backing: { path: '/i/base.qcow2', format: 'qcow2' },
      },
      { path: '/i/base.qcow2', format: 'qcow2', virtualSize: 1 << 30, backing: null },
    ],
  },
  busy,
});
const plan = planPull(req, facts())._unsafeUnwrap();
const failure = blockCopyError('VIR_ERR_INTERNAL_ERROR', 'injected');
const JOB = 'pull-vda-1';

const base: BlockPullJobContext = {
  jobId: JOB,
  request: req,
  plan,
  started: true,
  endRequest: null,
  endAccepted: false,
  outcome: null,
  error: null,
  lastIoError: null,
  cleanupError: null,
};
type Ev = BlockCopyJobEvent | { type: string; output?: unknown; error?: unknown };
const step = (value: Parameters<typeof stepOf>[1], ctx: Partial<BlockPullJobContext>, event: Ev) =>
  stepOf(blockPullJobMachine, value, { ...base, ...ctx }, event);
const done = (state: string, output?: unknown) => doneOf('blockPullJob', state, output);
const fail = (state: string) => failedOf('blockPullJob', state, failure);

const concluded = (error: string | null, cancelled: boolean): Ev => ({ type: 'HV.CONCLUDED', error, cancelled });
const PIVOT: Ev = { type: 'PIVOT' };
const ABORT: Ev = { type: 'ABORT', force: false };
const GONE: Ev = { type: 'HV.GONE', reason: 'killed' };
const VANISHED: Ev = { type: 'HV.VANISHED' };
const IO_ERROR: Ev = { type: 'HV.IO_ERROR', action: 'report', operation: 'read' };
const paused = (reason: 'user' | 'io-error' | 'internal'): Ev => ({ type: 'HV.PAUSED', reason });
const refused = (request: string, error: unknown) => [{ type: 'refused', request, error }];
const finish = (started: boolean) => [{ src: 'finishJob', input: { jobId: JOB, started, plan } }];

describe('pull chart, step by step', () => {
  it('starts in validating, inspecting the facts', () => {
    const [s0, actions] = initialTransition(blockPullJobMachine, { jobId: JOB, request: req });
    expect(s0.value).toBe('validating');
    expect(s0.context).toEqual({ ...base, plan: null, started: false });
    const spawned = (actions as unknown as { type: string; params: { src: string; input: unknown } }[]).filter(
      (a) => a.type === 'xstate.spawnChild',
    );
    expect(spawned.map((a) => [a.params.src, a.params.input])).toEqual([
      ['inspectFacts', { jobId: JOB, request: req }],
    ]);
  });

  describe('validating', () => {
    const ctx = { plan: null, started: false };
    it('a valid plan: block-stream with it', () => {
      const s = step('validating', ctx, done('validating', facts()));
      expect(s.state).toBe('starting');
      expect(s.context.plan).toEqual(plan);
      expect(s.invoked).toEqual([{ src: 'startStream', input: { jobId: JOB, plan } }]);
    });
    it('an invalid plan: failed with the planning error, nothing started', () => {
      const s = step('validating', ctx, done('validating', facts('other')));
      expect(s.state).toBe('failed');
      expect(s.context.error).toEqual(planPull(req, facts('other'))._unsafeUnwrapErr());
      expect(s.context.error?.code).toBe('VIR_ERR_OPERATION_UNSUPPORTED');
      expect(s.invoked).toEqual([]);
    });
    it('the inspection failing: failed with its error', () => {
      const s = step('validating', ctx, fail('validating'));
      expect(s.state).toBe('failed');
      expect(s.output).toEqual({ outcome: 'failed', pivoted: false, destinationConsistent: false, error: failure });
    });
    it.each([PIVOT, ABORT])('refuses %o: no active job', (event) => {
      expect(step('validating', ctx, event).emitted).toEqual(refused(event.type, errors.noActiveJob('vda')));
    });
  });

  describe('starting', () => {
    const ctx = { started: false };
    it('accepted: streaming, started', () => {
      const s = step('starting', ctx, done('starting'));
      expect(s.state).toBe('streaming.running');
      expect(s.context.started).toBe(true);
    });
    it('refused: finishing, failed, nothing to dismiss', () => {
      const s = step('starting', ctx, fail('starting'));
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({ outcome: 'failed', error: failure });
      expect(s.invoked).toEqual(finish(false));
    });
    it.each([
      [concluded('Input/output error', false), 'failed', pullErrors.failed('vda', 'Input/output error')],
      [concluded(null, true), 'failed', pullErrors.failed('vda', 'the job was cancelled outside blockcopy')],
      [
        concluded('Operation canceled', true),
        'failed',
        pullErrors.failed('vda', 'the job was cancelled outside blockcopy'),
      ],
      [concluded(null, false), 'completed', null],
    ] as const)('%o before the reply: %s, started', (event, outcome, error) => {
      const s = step('starting', ctx, event);
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({ started: true, outcome, error });
      expect(s.invoked).toEqual(finish(true));
    });
    it('the domain went away: failed', () => {
      const s = step('starting', ctx, GONE);
      expect(s.context).toMatchObject({
        outcome: 'failed',
        error: blockCopyError('VIR_ERR_OPERATION_FAILED', 'domain is not running: killed'),
      });
    });
    it.each([PIVOT, ABORT])('refuses %o: no active job', (event) => {
      expect(step('starting', ctx, event).emitted).toEqual(refused(event.type, errors.noActiveJob('vda')));
    });
  });

  describe('streaming', () => {
    it.each([
      ['running', paused('io-error'), 'errorPaused'],
      ['running', paused('user'), 'paused'],
      ['running', paused('internal'), 'running'],
      ['paused', { type: 'HV.RUNNING' }, 'running'],
      ['paused', paused('io-error'), 'errorPaused'],
      ['paused', paused('user'), 'paused'],
      ['errorPaused', { type: 'HV.RUNNING' }, 'running'],
      ['errorPaused', paused('user'), 'errorPaused'],
    ] as const)('%s + %o → %s', (from, event, to) => {
      expect(step({ streaming: from }, {}, event).state).toBe(`streaming.${to}`);
    });
    it('records an I/O error', () => {
      expect(step({ streaming: 'running' }, {}, IO_ERROR).context.lastIoError).toBe('read error, action report');
    });
    it('refuses a pivot: a pull is never ready', () => {
      const s = step({ streaming: 'running' }, {}, PIVOT);
      expect(s.state).toBe('streaming.running');
      expect(s.emitted).toEqual(refused('PIVOT', pullErrors.notReadyForPivot(JOB)));
    });
    it('an abort: a soft cancel', () => {
      const s = step({ streaming: 'paused' }, {}, ABORT);
      expect(s.state).toBe('aborting');
      expect(s.context.endRequest).toBe('abort');
      expect(s.invoked).toEqual([{ src: 'cancelJob', input: { jobId: JOB, force: false } }]);
    });
    it.each([
      [concluded('Input/output error', false), 'failed', pullErrors.failed('vda', 'Input/output error')],
      [concluded(null, true), 'failed', pullErrors.failed('vda', 'the job was cancelled outside blockcopy')],
      [concluded(null, false), 'completed', null],
      [VANISHED, 'failed', pullErrors.failed('vda', 'the job vanished from the hypervisor; outcome unknown')],
      [GONE, 'failed', blockCopyError('VIR_ERR_OPERATION_FAILED', 'domain is not running: killed')],
    ] as const)('%o: finishing, %s', (event, outcome, error) => {
      const s = step({ streaming: 'running' }, {}, event);
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({ outcome, error });
      expect(s.invoked).toEqual(finish(true));
    });
  });

  describe('aborting', () => {
    const ctx = { endRequest: 'abort' as const };
    it('the cancel accepted: still aborting, accepted', () => {
      const s = step('aborting', ctx, done('aborting'));
      expect(s.state).toBe('aborting');
      expect(s.context.endAccepted).toBe(true);
    });
    it('the cancel refused: streaming again, the refusal reported', () => {
      const s = step('aborting', ctx, fail('aborting'));
      expect(s.state).toBe('streaming.running');
      expect(s.context.endRequest).toBeNull();
      expect(s.emitted).toEqual(refused('ABORT', failure));
    });
    it.each([
      [concluded(null, true), 'canceled', null],
      [concluded('Operation canceled', true), 'canceled', null],
      [concluded('Input/output error', false), 'failed', pullErrors.failed('vda', 'Input/output error')],
      // The stream won the race: the pull happened.
      [concluded(null, false), 'completed', null],
      [VANISHED, 'canceled', null],
      [GONE, 'failed', blockCopyError('VIR_ERR_OPERATION_FAILED', 'domain is not running: killed')],
    ] as const)('%o: finishing, %s', (event, outcome, error) => {
      const s = step('aborting', ctx, event);
      expect(s.state).toBe('finishing');
      expect(s.context).toMatchObject({ outcome, error });
    });
    it('records an I/O error', () => {
      expect(step('aborting', ctx, IO_ERROR).context.lastIoError).toBe('read error, action report');
    });
    it.each([PIVOT, ABORT])('refuses %o: still being ended', (event) => {
      expect(step('aborting', ctx, event).emitted).toEqual(refused(event.type, errors.stillBeingEnded('vda')));
    });
  });

  describe('finishing', () => {
    it.each(['completed', 'canceled', 'failed'] as const)('done with outcome %s', (outcome) => {
      const error = outcome === 'failed' ? failure : null;
      const s = step('finishing', { outcome, error }, done('finishing'));
      expect(s.state).toBe(outcome);
      expect(s.status).toBe('done');
      expect(s.output).toEqual({ outcome, pivoted: false, destinationConsistent: false, error });
    });
    it('failed without an error recorded: an internal error says so', () => {
      const s = step('finishing', {}, done('finishing'));
      expect(s.state).toBe('failed');
      expect(s.context).toMatchObject({
        outcome: 'failed',
        error: blockCopyError('VIR_ERR_INTERNAL_ERROR', 'job failed'),
      });
    });
    it('the dismissal failing: the outcome stands, the clean-up error recorded', () => {
      const s = step('finishing', { outcome: 'completed' }, fail('finishing'));
      expect(s.state).toBe('completed');
      expect(s.context.cleanupError).toEqual(failure);
    });
    it.each([PIVOT, ABORT])('refuses %o: still being ended', (event) => {
      expect(step('finishing', {}, event).emitted).toEqual(refused(event.type, errors.stillBeingEnded('vda')));
    });
  });

  it('without its IO actors: failed, naming the actor', async () => {
    const out = await toPromise(createActor(blockPullJobMachine, { input: { jobId: JOB, request: req } }).start());
    expect(out.error).toEqual(blockCopyError('VIR_ERR_INTERNAL_ERROR', "actor 'inspectFacts' was not provided"));
    for (const name of ['startStream', 'cancelJob', 'finishJob']) {
      const logic = blockPullJobMachine.implementations.actors[name] as unknown as {
        config: (a: { input: unknown }) => Promise<unknown>;
      };
      await expect(logic.config({ input: {} })).rejects.toThrow(`actor '${name}' was not provided`);
    }
  });
});
