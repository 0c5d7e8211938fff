/** `blockcopy --version`: the package.json version, found from the sources and from the build's depth. */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { packageVersion } from '../../src/cli/version.js';
import { captureOutput } from './capture.js';

const REPO = join(import.meta.dirname, '../..');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

describe('blockcopy --version', () => {
  it('prints the package version and exits 0', async () => {
    const out = captureOutput();
    expect(await main(['--version'], out)).toBe(0);
    expect(out.lines).toEqual([VERSION]);
    expect(out.errors).toEqual([]);
  });

  it('finds package.json from where the build puts the module (dist/src/cli)', () => {
    expect(packageVersion(pathToFileURL(join(REPO, 'dist/src/cli/version.js')).href)).toBe(VERSION);
  });

  it('says unknown when no blockcopy package.json is above the module', () => {
    expect(packageVersion('file:///nonexistent/a/b/c/version.js')).toBe('unknown');
  });
});
