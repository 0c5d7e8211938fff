/**
 * `blockcopy --version`: the version in the package's own package.json, found by walking up
 * from this module (the same whether it runs from src/ through tsx or from a compiled copy).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageVersion(from: string = fileURLToPath(import.meta.url)): string {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'blockcopy' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // No (readable) package.json here: look further up.
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}
