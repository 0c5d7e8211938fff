/**
 * The published package, tested from its tarball: `npm pack`, installed into a new project in a
 * temporary directory, then used as a new user would: a plain Node ESM script, a CommonJS
 * require, a strict NodeNext TypeScript project, the `blockcopy` command through npx; plus
 * publint and attw (--profile esm-only) on the same tarball.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as sourceMain from 'blockcopy';
import * as sourceQmp from 'blockcopy/adapters/qmp';
import * as sourceSim from 'blockcopy/adapters/sim';
import { REPO, cleanEnv, packAndInstall, type InstalledPackage } from './installed.js';

const run = promisify(execFile);
const DEST = '/var/lib/blockcopy/copy.qcow2';

interface Manifest {
  readonly exports: Record<string, string | { readonly types: string; readonly default: string }>;
  readonly bin: Record<string, string>;
  readonly dependencies?: Record<string, string>;
  readonly peerDependencies?: Record<string, string>;
  readonly devDependencies?: Record<string, string>;
}

let pkg: InstalledPackage;
/** The installed copy: <project>/node_modules/blockcopy. */
let installed: string;
let manifest: Manifest;

async function inProject(command: string, args: readonly string[]) {
  try {
    return await run(command, args, { cwd: pkg.project, env: cleanEnv(), encoding: 'utf8' });
  } catch (e) {
    const { stdout, stderr } = e as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed:\n${stderr ?? ''}\n${stdout ?? ''}`, { cause: e });
  }
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name));
}

beforeAll(() => {
  pkg = packAndInstall();
  installed = join(pkg.project, 'node_modules', 'blockcopy');
  manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as Manifest;
}, 300_000);

afterAll(() => pkg?.cleanup());

// Each step spawns npm, tsc, attw or node: generous, since the CI machine has 2 loaded cores.
describe('the packed tarball', { timeout: 180_000 }, () => {
  it('holds every export target, the bin, the build with its maps, and no tests or tooling', () => {
    const files = new Set(pkg.files);
    for (const [subpath, target] of Object.entries(manifest.exports)) {
      const targets = typeof target === 'string' ? [target] : [target.types, target.default];
      for (const t of targets) expect(files.has(t.replace(/^\.\//, '')), `${subpath} → ${t}`).toBe(true);
    }
    expect(files.has('bin/blockcopy.js')).toBe(true);
    for (const f of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md']) expect(files.has(f), f).toBe(true);
    for (const js of pkg.files.filter((f) => f.startsWith('dist/') && f.endsWith('.js'))) {
      const stem = js.slice(0, -'.js'.length);
      for (const f of [`${stem}.d.ts`, `${stem}.js.map`, `${stem}.d.ts.map`]) expect(files.has(f), f).toBe(true);
    }
    // The manifest a user receives names no path of the machine it was packed on.
    const text = execFileSync('tar', ['-xzOf', pkg.tarball, 'package/package.json'], { encoding: 'utf8' });
    expect(JSON.parse(text)).toEqual(manifest);
    expect(text).not.toMatch(/file:|\/(work|home|root|tmp)\/|[A-Z]:\\\\/);
    expect(text).not.toContain(REPO);
    const stray = pkg.files.filter((f) =>
      /^(test|bench|scripts|visualizations|node_modules|\.ci)\/|tsconfig|\.test\./.test(f),
    );
    expect(stray).toEqual([]);
  });

  it('maps lead to sources that are in the package', () => {
    const maps = filesUnder(join(installed, 'dist')).filter((f) => f.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(10);
    for (const map of maps) {
      const { sources } = JSON.parse(readFileSync(map, 'utf8')) as { sources: string[] };
      for (const s of sources)
        expect(existsSync(resolve(dirname(map), s)), `${relative(installed, map)} → ${s}`).toBe(true);
    }
  });

  it('needs no dev tooling at run time: the build imports only Node builtins and declared dependencies', () => {
    const runtime = new Set([
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.peerDependencies ?? {}),
    ]);
    expect(runtime.has('tsx')).toBe(false);
    const builtins = new Set(builtinModules);
    const imported = new Set<string>();
    const scripts = [...filesUnder(join(installed, 'dist')), join(installed, 'bin', 'blockcopy.js')].filter((f) =>
      f.endsWith('.js'),
    );
    for (const file of scripts) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:\bfrom|\bimport\(?)\s*['"]([^'"]+)['"]/g)) {
        const spec = m[1]!;
        if (spec.startsWith('.')) continue;
        const bare = spec.startsWith('node:')
          ? spec
          : spec
              .split('/')
              .slice(0, spec.startsWith('@') ? 2 : 1)
              .join('/');
        imported.add(bare);
      }
    }
    const undeclared = [...imported].filter((m) => !m.startsWith('node:') && !builtins.has(m) && !runtime.has(m));
    expect(undeclared).toEqual([]);
    // The scan saw the real imports (guards against a regex that matches nothing).
    expect([...imported]).toEqual(expect.arrayContaining(['xstate', 'rxjs', 'neverthrow', 'node:fs']));
  });

  it('is clean under publint (errors, warnings and suggestions)', async () => {
    const { publint } = await import('publint');
    const { formatMessage } = await import('publint/utils');
    const data = readFileSync(pkg.tarball);
    const tarball = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
    const result = await publint({ pack: { tarball }, level: 'suggestion', strict: true });
    const messages = result.messages.map((m) => `${m.type}: ${formatMessage(m, result.pkg) ?? m.code}`);
    expect(messages).toEqual([]);
  });

  it('has types that resolve for every entry point (attw, esm-only profile)', async () => {
    const attw = join(REPO, 'node_modules', '.bin', 'attw');
    // Exit status 0: no problem outside the resolutions the esm-only profile ignores.
    const { stdout } = await run(attw, [pkg.tarball, '--profile', 'esm-only', '--format', 'json'], {
      env: cleanEnv(),
      encoding: 'utf8',
    }).catch((e: { stdout?: string; stderr?: string }) => {
      throw new Error(`attw found problems:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    });
    const { analysis } = JSON.parse(stdout) as {
      analysis: { entrypoints: Record<string, unknown>; problems: { kind: string; resolutionKind?: string }[] };
    };
    expect(Object.keys(analysis.entrypoints).sort()).toEqual(Object.keys(manifest.exports).sort());
    // The only findings are for CommonJS-era resolution (node10, and require() as TypeScript
    // models it); Node >= 20.19 itself loads the package with require() (tested below).
    expect(analysis.problems.filter((p) => p.resolutionKind !== 'node10' && p.resolutionKind !== 'node16-cjs')).toEqual(
      [],
    );
  });
});

describe('the installed package', { timeout: 180_000 }, () => {
  it('runs a whole copy on the simulator from a plain Node ESM script', async () => {
    const { stdout } = await inProject(process.execPath, ['copy.mjs']);
    const report = JSON.parse(stdout) as {
      pivot: boolean;
      outcome: string;
      pivoted: boolean;
      states: string[];
      events: string[];
      activeImage: string | null;
    };
    expect(report).toMatchObject({ pivot: true, outcome: 'completed', pivoted: true, activeImage: DEST });
    expect(report.events).toEqual(['READY', 'COMPLETED']);
    expect(report.states[0]).toBe('validating');
    expect(report.states).toContain('ready.synced');
    expect(report.states.at(-1)).toBe('completed');
  });

  it('exports, at run time, exactly what the sources export, entry by entry', async () => {
    const script = `
      const entries = ['blockcopy', 'blockcopy/adapters/sim', 'blockcopy/adapters/qmp'];
      const names = {};
      for (const e of entries) names[e] = Object.keys(await import(e)).sort();
      console.log(JSON.stringify(names));`;
    const { stdout } = await inProject(process.execPath, ['--input-type=module', '-e', script]);
    expect(JSON.parse(stdout)).toEqual({
      blockcopy: Object.keys(sourceMain).sort(),
      'blockcopy/adapters/sim': Object.keys(sourceSim).sort(),
      'blockcopy/adapters/qmp': Object.keys(sourceQmp).sort(),
    });
  });

  it('reaches only the exports map, not the files behind it', async () => {
    const script = `
      const out = {};
      for (const s of ['blockcopy/dist/src/core/errors.js', 'blockcopy/src/index.ts', 'blockcopy/machines/block-copy-job.js', 'blockcopy/adapters/qmp/client.js']) {
        out[s] = await import(s).then(() => 'loaded', (e) => e.code);
      }
      out.version = (await import('blockcopy/package.json', { with: { type: 'json' } })).default.version;
      console.log(JSON.stringify(out));`;
    const { stdout } = await inProject(process.execPath, ['--input-type=module', '-e', script]);
    expect(JSON.parse(stdout)).toEqual({
      'blockcopy/dist/src/core/errors.js': 'ERR_PACKAGE_PATH_NOT_EXPORTED',
      'blockcopy/src/index.ts': 'ERR_PACKAGE_PATH_NOT_EXPORTED',
      'blockcopy/machines/block-copy-job.js': 'ERR_PACKAGE_PATH_NOT_EXPORTED',
      'blockcopy/adapters/qmp/client.js': 'ERR_PACKAGE_PATH_NOT_EXPORTED',
      version: pkg.version,
    });
  });

  it('loads from CommonJS through require() (Node >= 20.19 require(esm))', async () => {
    const { stdout } = await inProject(process.execPath, ['require.cjs']);
    expect(JSON.parse(stdout)).toEqual({ source: '/var/lib/blockcopy/snap2.qcow2', action: 'create' });
  });

  it('type-checks a strict NodeNext TypeScript project against the published declarations', async () => {
    // The repository's compiler (same TypeScript a user would install); every module and type
    // the project sees is resolved from the project's own node_modules.
    const tsc = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
    const { stdout } = await inProject(process.execPath, [tsc, '-p', '.', '--listFiles']);
    const listed = stdout.split('\n').filter((f) => f.startsWith('/'));
    const tsLib = join(REPO, 'node_modules', 'typescript', 'lib');
    expect(listed.filter((f) => !f.startsWith(`${pkg.project}/`) && !f.startsWith(`${tsLib}/`))).toEqual([]);
    const blockcopyFiles = listed
      .filter((f) => f.includes('/node_modules/blockcopy/'))
      .map((f) => f.slice(f.indexOf('/node_modules/blockcopy/') + '/node_modules/blockcopy/'.length));
    // The types came from dist/ through the exports map, never from the shipped .ts sources.
    expect(blockcopyFiles).toEqual(
      expect.arrayContaining(['dist/src/index.d.ts', 'dist/adapters/sim/index.d.ts', 'dist/adapters/qmp/index.d.ts']),
    );
    expect(blockcopyFiles.filter((f) => !f.endsWith('.d.ts'))).toEqual([]);
  });

  it('runs `blockcopy --version` and `blockcopy copy --dry-run --json` through npx', async () => {
    const version = await inProject('npx', ['blockcopy', '--version']);
    expect(version.stdout.trim()).toBe(pkg.version);
    const help = await inProject(join(pkg.project, 'node_modules', '.bin', 'blockcopy'), ['--help']);
    expect(help.stdout).toContain('blockcopy copy DISK DEST');
    const dry = await inProject('npx', [
      'blockcopy',
      'copy',
      'vda',
      DEST,
      '--hypervisor',
      'sim',
      '--dry-run',
      '--json',
    ]);
    const report = JSON.parse(dry.stdout) as {
      status: string;
      error: unknown;
      plan: { destination: { path: string } };
    };
    expect(report.status).toBe('planned');
    expect(report.error).toBeNull();
    expect(report.plan.destination.path).toBe(DEST);
  });
});
