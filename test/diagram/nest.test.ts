/**
 * The migration's diagram with its child copies: the block-copy job chart is drawn inside
 * `mirroring` (where the chart spawns one copy per disk), every nested state and transition
 * under its own prefixed id, the migration's own transitions unchanged.
 */
import { describe, expect, it } from 'vitest';
import { blockCopyJobMachine } from '../../machines/block-copy-job.js';
import { migrateStorageMachine } from '../../machines/migrate-storage.js';
import { diagramComposites, toMermaid, walkMachine, withChildChart } from '../../src/diagram/index.js';

describe('migration diagram with its child copies', () => {
  const parent = walkMachine(migrateStorageMachine);
  const child = walkMachine(blockCopyJobMachine);
  const model = diagramComposites['migrate-storage-with-copies']!();

  it('nests every state of the job chart inside mirroring, under one compound state', () => {
    const mirroring = model.states.find((s) => s.id === 'mirroring')!;
    expect(mirroring.type).toBe('compound');
    expect(mirroring.children).toEqual(['mirroring.blockCopyJob']);
    const nested = model.states.filter((s) => s.id.startsWith('mirroring.blockCopyJob.'));
    expect(nested.map((s) => s.id.replace('mirroring.blockCopyJob.', '')).sort()).toEqual(
      child.states.map((s) => s.id).sort(),
    );
    expect(model.states.find((s) => s.id === 'mirroring.blockCopyJob.ready')?.parent).toBe('mirroring.blockCopyJob');
  });

  it("keeps the migration's transitions and adds the job's, prefixed", () => {
    expect(model.transitions.slice(0, parent.transitions.length)).toEqual(parent.transitions);
    const added = model.transitions.slice(parent.transitions.length);
    expect(added).toHaveLength(child.transitions.length);
    for (const t of added) {
      expect(t.source.startsWith('mirroring.blockCopyJob.')).toBe(true);
      for (const target of t.targets) expect(target.startsWith('mirroring.blockCopyJob.')).toBe(true);
    }
    const mermaid = toMermaid(model);
    expect(mermaid).toContain('mirroring_blockCopyJob_pivoting');
    expect(mermaid).toContain('mirroring --> pivoting');
  });

  it('refuses a host state that does not exist', () => {
    expect(() => withChildChart(parent, 'nowhere', child, 'x')).toThrow(/no state 'nowhere'/);
  });
});
