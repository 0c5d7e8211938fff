/**
 * The package's version for `blockcopy --version`, read from its package.json. The file sits two
 * levels up from the sources (src/cli) and three from the build (dist/src/cli), so walk up to it.
 */
import { readFileSync } from 'node:fs';

export function packageVersion(from: string = import.meta.url): string {
  for (let depth = 2; depth <= 4; depth++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(`${'../'.repeat(depth)}package.json`, from), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === 'blockcopy' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // No package.json at this level (or not ours): keep walking up.
    }
  }
  return 'unknown';
}
