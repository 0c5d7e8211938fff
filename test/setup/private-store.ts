/**
 * vitest globalSetup: every test process (and the CLI children they spawn) uses a temporary
 * default job store through BLOCKCOPY_STORE, never the machine's /var/lib/blockcopy/jobs.db;
 * the directory is removed when the run ends.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'blockcopy-test-store-'));
  process.env['BLOCKCOPY_STORE'] = join(dir, 'jobs.db');
  return () => rmSync(dir, { recursive: true, force: true });
}
