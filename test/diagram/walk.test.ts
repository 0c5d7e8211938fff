// The machine walker and the Mermaid/DOT renderers: what toJSON() leaves out (eventless and
// delayed transitions, guards) must be in the model and on the diagrams.
import { describe, expect, it } from 'vitest';
import { and, createMachine, not, setup } from 'xstate';
import { blockCopyJobMachine } from '../../machines/block-copy-job.js';
import { diagramEdges, toDot, toMermaid, walkMachine } from '../../src/diagram/index.js';

describe('walkMachine on the job machine', () => {
  const model = walkMachine(blockCopyJobMachine);
  const from = (source: string) => model.transitions.filter((t) => t.source === source);

  it('lists every state with its type, parent and initial child', () => {
    expect(model.id).toBe('blockCopyJob');
    expect(model.initial).toBe('validating');
    expect(model.states.map((s) => s.id)).toEqual([
      'validating',
      'preparingDestination',
      'starting',
      'mirroring',
      'mirroring.running',
      'mirroring.paused',
      'mirroring.errorPaused',
      'ready',
      'ready.synced',
      'ready.standby',
      'restarting',
      'restarting.cancelling',
      'restarting.dismissing',
      'pivoting',
      'confirmingPivot',
      'aborting',
      'finishing',
      'settled',
      'completed',
      'canceled',
      'failed',
    ]);
    const mirroring = model.states.find((s) => s.id === 'mirroring')!;
    expect(mirroring).toMatchObject({ type: 'compound', initial: 'mirroring.running', parent: null });
    expect(mirroring.children).toEqual(['mirroring.running', 'mirroring.paused', 'mirroring.errorPaused']);
    expect(model.states.find((s) => s.id === 'ready.standby')).toMatchObject({ type: 'atomic', parent: 'ready' });
    expect(model.states.filter((s) => s.type === 'final').map((s) => s.id)).toEqual([
      'completed',
      'canceled',
      'failed',
    ]);
    expect(model.states.find((s) => s.id === 'pivoting')!.invokes).toEqual(['completeJob']);
    expect(model.states.find((s) => s.id === 'mirroring')!.entry).toEqual(['markStarted']);
  });

  it('includes the eventless transitions of settled, with their guards and the else branch', () => {
    expect(from('settled').map((t) => [t.kind, t.event, t.guard, t.targets])).toEqual([
      ['always', 'always', 'outcomeCompleted', ['completed']],
      ['always', 'always', 'outcomeCanceled', ['canceled']],
      ['always', 'always', 'else', ['failed']],
    ]);
  });

  it('names invoke onDone/onError by the invoked actor', () => {
    const validating = from('validating').filter((t) => t.targets.length > 0);
    expect(validating.map((t) => [t.kind, t.event, t.guard, t.targets[0]])).toEqual([
      ['done', 'inspectFacts done', 'planValid', 'preparingDestination'],
      ['done', 'inspectFacts done', 'else', 'failed'],
      ['error', 'inspectFacts error', null, 'failed'],
    ]);
    expect(validating[0]!.eventType).toBe('xstate.done.actor.0.blockCopyJob.validating');
  });

  it('keeps targetless transitions (refusals) in the model, with their actions', () => {
    const pivotInMirroring = from('mirroring').find((t) => t.eventType === 'PIVOT')!;
    expect(pivotInMirroring.targets).toEqual([]);
    expect(pivotInMirroring.actions).toEqual(['refusePivotNotReady']);
  });

  it('labels inline guards and resolves #id targets to state ids', () => {
    const abortErrors = from('aborting').filter((t) => t.kind === 'error');
    expect(abortErrors.map((t) => [t.guard, t.targets])).toEqual([
      ['inline guard', ['ready']],
      ['else', ['mirroring']],
    ]);
    expect(
      from('ready.synced')
        .filter((t) => t.eventType === 'ABORT')
        .map((t) => t.targets),
    ).toEqual([['aborting'], ['aborting']]);
  });

  it('merges transitions between the same states into one drawn edge', () => {
    const edges = diagramEdges(model);
    // forceRequested and the unguarded fallback both lead to aborting: always taken, no guard shown.
    expect(edges.filter((e) => e.source === 'ready.synced' && e.target === 'aborting')).toEqual([
      { source: 'ready.synced', target: 'aborting', kind: 'event', labels: ['ABORT'] },
    ]);
    expect(
      edges.find((e) => e.source === 'pivoting' && e.target === 'finishing' && e.kind === 'event')!.labels,
    ).toEqual(['HV.CONCLUDED [concludedWithError | concludedCancelled]', 'HV.GONE']);
    expect(edges.find((e) => e.source === 'mirroring' && e.target === 'finishing')!.labels).toEqual([
      'HV.CONCLUDED',
      'HV.VANISHED',
      'HV.GONE',
    ]);
    // No targetless transition is drawn.
    expect(edges.every((e) => e.target !== '')).toBe(true);
  });
});

describe('walkMachine on other shapes', () => {
  const machine = setup({
    guards: { isBig: () => true, isOpen: () => true },
    delays: { patience: 5000 },
  }).createMachine({
    id: 'shapes',
    initial: 'idle',
    states: {
      idle: {
        after: { 1500: 'waiting', patience: { target: 'gaveUp', guard: not('isOpen') } },
        on: { GO: { target: 'both', guard: and(['isBig', not('isOpen')]) } },
      },
      waiting: { always: { target: 'both', guard: 'isBig' } },
      both: {
        type: 'parallel',
        states: {
          left: { initial: 'a', states: { a: { on: { NEXT: 'b' } }, b: {} } },
          right: { initial: 'x', states: { x: {} } },
        },
        onDone: 'gaveUp',
      },
      gaveUp: { type: 'final' },
    },
  });
  const model = walkMachine(machine);

  it('walks delayed transitions, higher-order guards and parallel regions', () => {
    const idle = model.transitions.filter((t) => t.source === 'idle');
    expect(idle.map((t) => [t.kind, t.event, t.guard, t.targets])).toEqual(
      expect.arrayContaining([
        ['after', 'after 1500ms', null, ['waiting']],
        ['after', 'after patience', '!isOpen', ['gaveUp']],
        ['event', 'GO', '(isBig && !isOpen)', ['both']],
      ]),
    );
    expect(model.transitions.find((t) => t.source === 'waiting')).toMatchObject({
      kind: 'always',
      guard: 'isBig',
      targets: ['both'],
    });
    expect(model.states.find((s) => s.id === 'both')).toMatchObject({ type: 'parallel', initial: null });
    expect(model.states.find((s) => s.id === 'both.left')).toMatchObject({ initial: 'both.left.a' });
    expect(model.transitions.find((t) => t.source === 'both.left.a')!.targets).toEqual(['both.left.b']);
  });

  it('draws them in Mermaid and DOT', () => {
    const mermaid = toMermaid(model);
    expect(mermaid).toContain('idle --> waiting : after 1500ms');
    expect(mermaid).toContain('waiting --> both : always [isBig]');
    expect(mermaid).toMatch(/state "left" as both_left \{\n\s+state "a" as both_left_a/);
    const dot = toDot(model);
    expect(dot).toContain(
      '"idle" -> "waiting" [id="edge:idle:waiting:after", class="transition after", label="after 1500ms", style=dotted];',
    );
    expect(dot).toContain('lhead="cluster_both"');
  });

  it('handles a machine without setup()', () => {
    const plain = walkMachine(createMachine({ id: 'p', initial: 'a', states: { a: { on: { T: 'b' } }, b: {} } }));
    expect(plain.transitions).toEqual([
      {
        source: 'a',
        targets: ['b'],
        kind: 'event',
        eventType: 'T',
        event: 'T',
        guard: null,
        actions: [],
        reenter: false,
      },
    ]);
  });
});

describe('Mermaid and DOT of the job machine', () => {
  const model = walkMachine(blockCopyJobMachine);

  it('Mermaid shows the guarded eventless transitions, nested states and invocations', () => {
    const text = toMermaid(model);
    expect(text.split('\n').slice(1, 3)).toEqual(['stateDiagram-v2', '  direction LR']);
    expect(text).toContain('  settled --> completed : always [outcomeCompleted]\n');
    expect(text).toContain('  settled --> failed : always [else]\n');
    expect(text).toContain('  state "mirroring" as mirroring {\n');
    expect(text).toContain('    mirroring_running --> mirroring_paused : HV.PAUSED [pausedByUser]\n');
    expect(text).toContain('  ready_synced --> aborting : ABORT\n');
    expect(text).toContain('  validating : invoke inspectFacts\n');
    expect(text).toContain('  completed --> [*]\n');
    // Mermaid ids may not contain dots, and labels carry no statement separators.
    for (const line of text.split('\n').filter((l) => l.includes('-->'))) {
      expect(line.split(' : ')[0]).not.toContain('.');
      expect(line).not.toMatch(/[;#]/);
    }
  });

  it('DOT gives every state and transition an SVG id and clusters compound states', () => {
    const text = toDot(model);
    expect(text).toContain(
      '"mirroring.running" [id="state:mirroring.running", class="state atomic", label="running"];',
    );
    expect(text).toContain('subgraph "cluster_ready" {');
    expect(text).toContain('graph [id="state:ready", class="state compound"');
    expect(text).toContain('"settled" -> "completed" [id="edge:settled:completed:always"');
    expect(text).toContain('"starting" -> "mirroring.__initial" [id="edge:starting:mirroring:done"');
    const ids = [...text.matchAll(/id="([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('is deterministic', () => {
    expect(toMermaid(walkMachine(blockCopyJobMachine))).toBe(toMermaid(model));
    expect(toDot(walkMachine(blockCopyJobMachine))).toBe(toDot(model));
  });
});
