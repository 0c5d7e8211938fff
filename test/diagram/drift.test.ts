// The committed diagrams (visualizations/ and the README's Mermaid block) must be what the machine
// definitions generate today: change a machine without `npm run diagrams` and this fails.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMachine } from 'xstate';
import { blockCopyJobMachine } from '../../machines/block-copy-job.js';
import {
  README_BEGIN,
  README_END,
  README_MACHINE,
  dotToSvg,
  generateDiagrams,
  toDot,
  toMermaid,
  walkMachine,
  withReadmeDiagram,
} from '../../src/diagram/index.js';

const root = join(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

describe('committed diagrams', () => {
  it('match what the machines generate (run `npm run diagrams` after changing a machine)', async () => {
    const files = await generateDiagrams();
    expect(files.map((f) => f.path)).toEqual([
      'visualizations/block-copy-job.mmd',
      'visualizations/block-copy-job.dot',
      'visualizations/block-copy-job.svg',
      'visualizations/block-pull-job.mmd',
      'visualizations/block-pull-job.dot',
      'visualizations/block-pull-job.svg',
      'visualizations/convergence-policy.mmd',
      'visualizations/convergence-policy.dot',
      'visualizations/convergence-policy.svg',
      'visualizations/migrate-storage.mmd',
      'visualizations/migrate-storage.dot',
      'visualizations/migrate-storage.svg',
      'visualizations/migrate-storage-with-copies.mmd',
      'visualizations/migrate-storage-with-copies.dot',
      'visualizations/migrate-storage-with-copies.svg',
    ]);
    for (const file of files) {
      expect(existsSync(join(root, file.path)), `${file.path} is missing`).toBe(true);
      expect(read(file.path), `${file.path} is out of date`).toBe(file.contents);
    }
    // Nothing generated for a machine that no longer exists.
    const committed = readdirSync(join(root, 'visualizations')).filter((n) => /\.(mmd|dot|svg)$/.test(n));
    expect(committed.sort()).toEqual(files.map((f) => f.path.replace('visualizations/', '')).sort());
  });

  it('the README shows the generated Mermaid diagram of the job machine', async () => {
    const readme = read('README.md');
    expect(readme).toContain(README_BEGIN);
    expect(readme).toContain(README_END);
    const mermaid = (await generateDiagrams()).find((f) => f.path === `visualizations/${README_MACHINE}.mmd`)!.contents;
    expect(withReadmeDiagram(readme, mermaid), 'README diagram is out of date').toBe(readme);
    expect(readme).toContain('```mermaid\n%% Generated from the machine definition');
  });

  it('notices a changed machine', async () => {
    // The job machine with one more transition: every generated format must differ.
    const config = blockCopyJobMachine.config;
    const changed = createMachine({
      ...config,
      states: { ...config.states, settled: { ...config.states!.settled, on: { RETRY: 'validating' } } },
    } as typeof config);
    const model = walkMachine(changed);
    expect(toMermaid(model)).not.toBe(read('visualizations/block-copy-job.mmd'));
    expect(toMermaid(model)).toContain('settled --> validating : RETRY');
    expect(toDot(model)).not.toBe(read('visualizations/block-copy-job.dot'));
    expect(await dotToSvg(toDot(model))).not.toBe(read('visualizations/block-copy-job.svg'));
  });

  it('SVG rendering is deterministic and keeps the state ids the inspector highlights', async () => {
    const dot = toDot(walkMachine(blockCopyJobMachine));
    const [a, b] = await Promise.all([dotToSvg(dot), dotToSvg(dot)]);
    expect(a).toBe(b);
    expect(a).toContain('<g id="state:mirroring.running" class="node state atomic">');
    expect(a).toContain('<g id="state:ready" class="cluster state compound">');
    expect(a).toContain('id="edge:settled:completed:always"');
  });

  it('withReadmeDiagram leaves a README without markers alone', () => {
    expect(withReadmeDiagram('# title\n', 'stateDiagram-v2\n')).toBeNull();
  });
});
