/**
 * `npm run diagrams`: regenerates visualizations/ (Mermaid, DOT, SVG of every machine in
 * src/diagram/index.ts) and the Mermaid block of README.md from the machine definitions.
 * `--check` writes nothing and exits 1 when a committed file differs (the drift test does the same).
 */
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { README_MACHINE, generateDiagrams, withReadmeDiagram } from '../src/diagram/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');

const files = await generateDiagrams();
const expected = new Map(files.map((f) => [f.path, f.contents]));
const mermaid = expected.get(`visualizations/${README_MACHINE}.mmd`);
const readmePath = join(root, 'README.md');
const readme = existsSync(readmePath) ? readFileSync(readmePath, 'utf8') : null;
const newReadme = readme !== null && mermaid !== undefined ? withReadmeDiagram(readme, mermaid) : null;
if (newReadme !== null) expected.set('README.md', newReadme);

// Generated files of a machine that no longer exists would otherwise linger.
const generatedExt = /\.(mmd|dot|svg)$/;
const stale = readdirSync(join(root, 'visualizations'))
  .filter((name) => generatedExt.test(name))
  .map((name) => `visualizations/${name}`)
  .filter((path) => !expected.has(path));

const changed = [...expected].filter(([path, contents]) => {
  const full = join(root, path);
  return !existsSync(full) || readFileSync(full, 'utf8') !== contents;
});

if (check) {
  for (const [path] of changed) console.error(`out of date: ${path}`);
  for (const path of stale) console.error(`stale: ${path}`);
  if (changed.length + stale.length > 0) console.error('run `npm run diagrams` and commit the result');
  process.exit(changed.length + stale.length > 0 ? 1 : 0);
}
for (const [path, contents] of changed) {
  writeFileSync(join(root, path), contents);
  console.log(`wrote ${path}`);
}
for (const path of stale) {
  rmSync(join(root, path));
  console.log(`removed ${path}`);
}
if (readme !== null && newReadme === null) console.warn('README.md has no diagram markers; left as is');
if (changed.length + stale.length === 0) console.log('diagrams are up to date');
