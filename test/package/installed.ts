/**
 * The package as a user gets it: `npm pack` of this repository (its prepack builds dist/), then
 * `npm install` of the tarball into a new project in a temporary directory outside the
 * repository. Used by the packaging test and the CLI start benchmark. Dependencies come from the
 * npm registry through npm's cache (--prefer-offline), nothing from this repository's node_modules
 * (the type check borrows only the repository's TypeScript compiler, see tarball.test.ts).
 */
import { execFileSync, type ExecFileSyncOptions } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '../..');
const CONSUMER_FILES = join(import.meta.dirname, 'consumer');

export interface InstalledPackage {
  /** The temporary directory holding the tarball and the project. */
  readonly dir: string;
  readonly tarball: string;
  /** Paths inside the tarball, as `npm pack` lists them. */
  readonly files: readonly string[];
  /** The consumer project, with blockcopy (and @types/node for the type check) installed. */
  readonly project: string;
  readonly version: string;
  cleanup(): void;
}

/** npm's own settings from an enclosing `npm test` (npm_config_*) must not leak into the project. */
export function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
}

function npm(args: readonly string[], cwd: string): string {
  const options: ExecFileSyncOptions = { cwd, env: cleanEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] };
  try {
    return execFileSync('npm', args, options) as string;
  } catch (e) {
    const { stdout, stderr } = e as { stdout?: string; stderr?: string };
    throw new Error(`npm ${args.join(' ')} failed in ${cwd}:\n${stderr ?? ''}\n${stdout ?? ''}`, { cause: e });
  }
}

export function packAndInstall(): InstalledPackage {
  const dir = mkdtempSync(join(tmpdir(), 'blockcopy-package-'));
  try {
    const packed = JSON.parse(npm(['pack', '--json', '--pack-destination', dir], REPO)) as [
      { filename: string; version: string; files: { path: string }[] },
    ];
    const tarball = join(dir, packed[0].filename);
    const project = join(dir, 'project');
    cpSync(CONSUMER_FILES, project, { recursive: true });
    writeFileSync(join(project, 'package.json'), `${JSON.stringify({ name: 'consumer', private: true }, null, 2)}\n`);
    const dev = (
      JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }
    ).devDependencies;
    npm(
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--no-update-notifier',
        '--no-package-lock',
        tarball,
        `@types/node@${dev['@types/node']}`,
      ],
      project,
    );
    return {
      dir,
      tarball,
      files: packed[0].files.map((f) => f.path),
      project,
      version: packed[0].version,
      cleanup: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
