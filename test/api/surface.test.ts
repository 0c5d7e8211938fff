/**
 * The public surface, on purpose: what each entry point of package.json `exports` provides at run
 * time (exact lists, so an accidental export fails here), that every export, types included, is
 * documented in the README's API reference, and the types of the calls a service relies on.
 * Runs the sources (tsconfig paths); test/package checks the same entries from the tarball.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Result, ResultAsync } from 'neverthrow';
import type { Observable } from 'rxjs';
import ts from 'typescript';
import { describe, expect, expectTypeOf, it } from 'vitest';
import * as main from 'blockcopy';
import type {
  BlockCopyEngine,
  BlockCopyError,
  BlockCopyJob,
  BlockPullJob,
  BlockJobEvent,
  BlockJobInfo,
  CopyPlan,
  EngineOptions,
  ErrorCode,
  HypervisorError,
  HypervisorPort,
  JobOutcome,
  JobProgress,
  JobResult,
} from 'blockcopy';
import * as qmp from 'blockcopy/adapters/qmp';
import type { QemuHypervisor, QemuHypervisorOptions } from 'blockcopy/adapters/qmp';
import * as sim from 'blockcopy/adapters/sim';
import * as libvirt from 'blockcopy/adapters/libvirt';
import * as store from 'blockcopy/adapters/store';
import type { SimulatedHypervisorOptions } from 'blockcopy/adapters/sim';

const REPO = join(import.meta.dirname, '../..');

/** Run-time exports (values) of each entry point; types are checked against the README below. */
const RUNTIME: Record<string, { readonly module: object; readonly values: readonly string[] }> = {
  blockcopy: {
    module: main,
    values: [
      'AbortFlags',
      'BandwidthFlags',
      'BlockJobStatus',
      'BlockJobType',
      'CopyFlags',
      'ErrorNumber',
      'JobSlots',
      'RebaseFlags',
      'VirtualClock',
      'blockCopyError',
      'blockCopyJobMachine',
      'createEngine',
      'errors',
      'migrateStorage',
      'migrateStorageMachine',
      'recoverMigrations',
      'systemClock',
      'tryCreateEngine',
    ],
  },
  'blockcopy/adapters/sim': {
    module: sim,
    values: [
      'DEFAULT_IMAGE_DIR',
      'ERRNO_TEXT',
      'GiB',
      'JOB_STATUSES',
      'KiB',
      'MiB',
      'QCOW2_EMPTY_FILE_BYTES',
      'SimChainFiles',
      'SimQmp',
      'SimulatedHypervisor',
      'canTransition',
      'defaultDomains',
      'demoDisk',
      'seededRandom',
      'verbAllowed',
      'verbErrorText',
      'vmDisk',
    ],
  },
  'blockcopy/adapters/qmp': { module: qmp, values: ['LocalChainFiles', 'QemuHypervisor', 'connectQemu'] },
  'blockcopy/adapters/libvirt': { module: libvirt, values: ['LibvirtHypervisor', 'connectLibvirt'] },
  'blockcopy/adapters/store': {
    module: store,
    values: ['MemoryJobStore', 'SQLITE_SCHEMA_VERSION', 'SqliteJobStore', 'defaultStorePath', 'openSqliteStore'],
  },
};

const manifest = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  exports: Record<string, string | { types: string; default: string }>;
};

/** Entry point → its source file: ./dist/<dir>/index.d.ts is built from <dir>/index.ts. */
const ENTRIES: Record<string, string> = Object.fromEntries(
  Object.entries(manifest.exports)
    .filter(([subpath]) => subpath !== './package.json')
    .map(([subpath, target]) => {
      const types = typeof target === 'string' ? target : target.types;
      const source = types.replace(/^\.\/dist\//, '').replace(/\.d\.ts$/, '.ts');
      return [subpath === '.' ? 'blockcopy' : `blockcopy/${subpath.slice(2)}`, source];
    }),
);

/**
 * Every name an entry file exports, types included, read from its syntax. Entry files list their
 * exports by name: an `export *` would make the surface whatever the files behind it export.
 */
function exportedNames(file: string, text = readFileSync(join(REPO, file), 'utf8')): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022);
  const names: string[] = [];
  for (const statement of source.statements) {
    if (ts.isExportDeclaration(statement)) {
      if (!statement.exportClause || !ts.isNamedExports(statement.exportClause)) {
        throw new Error(`${file}: 'export *' in an entry point; list the exports by name`);
      }
      names.push(...statement.exportClause.elements.map((e) => e.name.text));
      continue;
    }
    const exported = ts.canHaveModifiers(statement)
      ? ts.getModifiers(statement)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)
      : false;
    if (!exported) continue;
    if (ts.isVariableStatement(statement)) {
      for (const d of statement.declarationList.declarations) if (ts.isIdentifier(d.name)) names.push(d.name.text);
    } else if (
      (ts.isFunctionDeclaration(statement) ||
        ts.isClassDeclaration(statement) ||
        ts.isInterfaceDeclaration(statement) ||
        ts.isTypeAliasDeclaration(statement) ||
        ts.isEnumDeclaration(statement)) &&
      statement.name
    ) {
      names.push(statement.name.text);
    }
  }
  return names;
}

/** The README's "API reference" section, split by its `### \`entry\`` headings. */
function readmeReference(): Map<string, string> {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## API reference\n');
  expect(start, 'README has an "## API reference" section').toBeGreaterThan(0);
  const rest = readme.slice(start + 1);
  const end = rest.indexOf('\n## ', 1);
  const section = end === -1 ? rest : rest.slice(0, end);
  const parts = new Map<string, string>();
  for (const m of section.matchAll(/^### `([^`]+)`\n([\s\S]*?)(?=^### |(?![\s\S]))/gm)) parts.set(m[1]!, m[2]!);
  return parts;
}

describe('public surface', () => {
  it('has run-time export lists for exactly the entry points package.json exports', () => {
    expect(Object.keys(RUNTIME).sort()).toEqual(Object.keys(ENTRIES).sort());
  });

  it.each(Object.keys(RUNTIME))('%s exports exactly its listed values at run time', (entry) => {
    const { module, values } = RUNTIME[entry]!;
    expect(Object.keys(module).sort()).toEqual([...values].sort());
  });

  it.each(Object.entries(ENTRIES))(
    '%s: every export, types included, is in the README API reference',
    (entry, file) => {
      const names = exportedNames(file);
      // The syntactic read finds at least the run-time values (guards against a parser that finds nothing).
      expect(names).toEqual(expect.arrayContaining([...RUNTIME[entry]!.values]));
      const text = readmeReference().get(entry);
      expect(text, `README API reference has a "### \`${entry}\`" part`).toBeDefined();
      // Named in code: `name`, or a call `name(…)`.
      const undocumented = names.filter((name) => !text!.includes(`\`${name}\``) && !text!.includes(`\`${name}(`));
      expect(undocumented).toEqual([]);
    },
  );

  it('refuses an entry point that re-exports with export *', () => {
    expect(exportedNames('named.ts', "export { a, type B } from './x.js';\nexport const c = 1;")).toEqual([
      'a',
      'B',
      'c',
    ]);
    expect(() => exportedNames('star.ts', "export * from './x.js';")).toThrow(/export \*/);
  });
});

describe('API types', () => {
  it('createEngine takes EngineOptions on any HypervisorPort and returns a BlockCopyEngine', () => {
    expectTypeOf(main.createEngine).parameter(0).toEqualTypeOf<EngineOptions>();
    expectTypeOf(main.createEngine).returns.toEqualTypeOf<BlockCopyEngine>();
    expectTypeOf<EngineOptions['hypervisor']>().toEqualTypeOf<HypervisorPort>();
    expectTypeOf<sim.SimulatedHypervisor>().toExtend<HypervisorPort>();
    expectTypeOf<QemuHypervisor>().toExtend<HypervisorPort>();
  });

  it('every engine call returns a neverthrow ResultAsync with a BlockCopyError', () => {
    // Without COPY, blockRebase starts a block pull (a BlockPullJob, `type: 'PULL'`).
    expectTypeOf<ReturnType<BlockCopyEngine['blockRebase']>>().toEqualTypeOf<
      ResultAsync<BlockCopyJob | BlockPullJob, BlockCopyError>
    >();
    expectTypeOf<ReturnType<BlockCopyEngine['blockPull']>>().toEqualTypeOf<ResultAsync<BlockPullJob, BlockCopyError>>();
    expectTypeOf<ReturnType<BlockCopyEngine['blockCopy']>>().toEqualTypeOf<ResultAsync<BlockCopyJob, BlockCopyError>>();
    expectTypeOf<ReturnType<BlockCopyEngine['planRebase']>>().toEqualTypeOf<ResultAsync<CopyPlan, BlockCopyError>>();
    expectTypeOf<ReturnType<BlockCopyEngine['blockJobAbort']>>().toEqualTypeOf<ResultAsync<void, BlockCopyError>>();
    expectTypeOf<ReturnType<BlockCopyEngine['getBlockJobInfo']>>().toEqualTypeOf<
      ResultAsync<BlockJobInfo | null, BlockCopyError>
    >();
    expectTypeOf<ReturnType<BlockCopyEngine['blockJobSetSpeed']>>().toEqualTypeOf<ResultAsync<void, BlockCopyError>>();
    expectTypeOf<ReturnType<BlockCopyEngine['checkDomainOperation']>>().toEqualTypeOf<
      ResultAsync<void, BlockCopyError>
    >();
    // Awaiting one gives a Result whose value is reachable only after a check.
    expectTypeOf<Awaited<ReturnType<BlockCopyEngine['blockCopy']>>>().toEqualTypeOf<
      Result<BlockCopyJob, BlockCopyError>
    >();
  });

  it('jobs, events and errors have the documented shapes', () => {
    expectTypeOf<BlockCopyJob['result']>().toEqualTypeOf<Promise<JobResult>>();
    expectTypeOf<BlockCopyJob['progress$']>().toEqualTypeOf<Observable<JobProgress>>();
    expectTypeOf<BlockCopyEngine['events$']>().toEqualTypeOf<Observable<BlockJobEvent>>();
    // 'detached': close() settled a job this engine stopped following (it goes on, recorded).
    expectTypeOf<JobResult['outcome']>().toEqualTypeOf<JobOutcome | 'detached'>();
    expectTypeOf<JobOutcome>().toEqualTypeOf<'completed' | 'canceled' | 'failed'>();
    expectTypeOf<BlockCopyError['code']>().toEqualTypeOf<ErrorCode>();
    expectTypeOf<'VIR_ERR_BLOCK_COPY_ACTIVE'>().toExtend<ErrorCode>();
    expectTypeOf<'VIR_ERR_SOMETHING_ELSE'>().not.toExtend<ErrorCode>();
    expectTypeOf<BlockCopyError['number']>().toEqualTypeOf<number>();
  });

  it('flag tables are libvirt ABI constants', () => {
    expectTypeOf(main.RebaseFlags.COPY).toBeNumber();
    expectTypeOf(main.AbortFlags).toHaveProperty('PIVOT').toBeNumber();
    expect(main.RebaseFlags).toMatchObject({ SHALLOW: 1, REUSE_EXT: 2, COPY_RAW: 4, COPY: 8 });
    expect(main.AbortFlags).toMatchObject({ ASYNC: 1, PIVOT: 2 });
  });

  it('adapters: the simulator takes its options, QEMU is reached through connectQemu', () => {
    expectTypeOf<ConstructorParameters<typeof sim.SimulatedHypervisor>[0]>().toEqualTypeOf<
      SimulatedHypervisorOptions | undefined
    >();
    expectTypeOf(qmp.connectQemu).parameter(0).toEqualTypeOf<QemuHypervisorOptions>();
    expectTypeOf(qmp.connectQemu).returns.toEqualTypeOf<ResultAsync<QemuHypervisor, HypervisorError>>();
  });
});
