// `blockcopy diagram`: prints or writes each format; usage errors exit 2.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runDiagramCommand } from '../../src/cli/diagram.js';
import type { Output } from '../../src/cli/copy.js';

function capture(): Output & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lines, errors, line: (t) => lines.push(t), overwrite: () => {}, error: (t) => errors.push(t), tty: false };
}

const dir = mkdtempSync(join(tmpdir(), 'blockcopy-diagram-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const committed = (ext: string) =>
  readFileSync(join(import.meta.dirname, '..', '..', 'visualizations', `block-copy-job.${ext}`), 'utf8');

describe('blockcopy diagram', () => {
  it('prints the Mermaid diagram by default, the committed text', async () => {
    const out = capture();
    expect(await runDiagramCommand([], out)).toBe(0);
    expect(`${out.lines.join('\n')}\n`).toBe(committed('mmd'));
  });

  it('prints DOT and SVG', async () => {
    const dot = capture();
    expect(await runDiagramCommand(['--format', 'dot'], dot)).toBe(0);
    expect(`${dot.lines.join('\n')}\n`).toBe(committed('dot'));
    const svg = capture();
    expect(await runDiagramCommand(['--format', 'svg'], svg)).toBe(0);
    expect(svg.lines.join('\n')).toContain('<svg');
  });

  it('writes to --output', async () => {
    const out = capture();
    const file = join(dir, 'job.svg');
    expect(await runDiagramCommand(['--format', 'svg', '--output', file], out)).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(committed('svg'));
    expect(out.lines).toEqual([`wrote ${file}`]);
  });

  it('refuses unknown formats, machines and options', async () => {
    for (const argv of [['--format', 'png'], ['--machine', 'nope'], ['--colour']]) {
      const out = capture();
      expect(await runDiagramCommand(argv, out)).toBe(2);
      expect(out.errors.join('\n')).toMatch(/^error: /);
    }
    const out = capture();
    expect(await runDiagramCommand(['--output', join(dir, 'missing', 'x.mmd')], out)).toBe(1);
  });
});
