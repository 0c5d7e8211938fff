/**
 * Mutation check: breaks the job machine (and its IO) in deliberate ways, each in a temporary
 * copy of the repository (node_modules symlinked), runs the test subset that should notice, and
 * reports whether the suite caught each mutant. Exits non-zero if any mutant survived. The
 * working tree is never modified.
 *
 *   npm run test:mutation            # every mutant
 *   npm run test:mutation -- ready   # only mutants whose name contains "ready"
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

interface Mutant {
  readonly name: string;
  readonly file: string;
  readonly from: string;
  readonly to: string;
}

const MUTANTS: readonly Mutant[] = [
  {
    name: 'drop the ready guard (pivot from mirroring)',
    file: 'machines/block-copy-job.ts',
    from: "PIVOT: { actions: 'refusePivotNotReady' },",
    to: "PIVOT: { target: '#blockCopyJob.pivoting', actions: assign({ endRequest: 'pivot' as const }) },",
  },
  {
    name: 'swap completed and canceled',
    file: 'machines/block-copy-job.ts',
    from: "{ guard: 'outcomeCompleted', target: 'completed' },\n        { guard: 'outcomeCanceled', target: 'canceled' },",
    to: "{ guard: 'outcomeCompleted', target: 'canceled' },\n        { guard: 'outcomeCanceled', target: 'completed' },",
  },
  {
    name: 'forget to dismiss',
    file: 'src/engine/job-runner.ts',
    from: 'if (input.started) await unwrap(hv.dismissJob(input.jobId), input.jobId);',
    to: '',
  },
  {
    name: 'ready is not sticky (HV.RUNNING leaves ready)',
    file: 'machines/block-copy-job.ts',
    from: "'HV.IO_ERROR': { actions: 'recordIoError' },\n        PIVOT: { target: 'pivoting'",
    to: "'HV.IO_ERROR': { actions: 'recordIoError' },\n        'HV.RUNNING': { target: 'mirroring' },\n        PIVOT: { target: 'pivoting'",
  },
  {
    name: 'remove a destination the engine did not create',
    file: 'machines/block-copy-job.ts',
    from: 'context.destinationCreated && !context.pivoted',
    to: '!context.pivoted',
  },
  {
    name: 'COMPLETED without confirming the pivot',
    file: 'machines/block-copy-job.ts',
    from: "guard: 'pivotConfirmed',",
    to: '',
  },
];

/** The tests run against each mutant (MUTATION_TESTS="test/model test/races" to choose). */
const SUBSET = process.env['MUTATION_TESTS']?.split(/\s+/).filter(Boolean) ?? [
  'test/exhaustive',
  'test/machine',
  'test/engine',
  'test/races',
  'test/model',
];
const root = process.cwd();
const only = process.argv[2];
const work = mkdtempSync(join(tmpdir(), 'blockcopy-mutation-'));
const copy = join(work, 'repo');
cpSync(root, copy, {
  recursive: true,
  filter: (src) => {
    const rel = relative(root, src);
    return !(rel === 'node_modules' || rel.startsWith('node_modules/') || rel === '.git' || rel.startsWith('.git/'));
  },
});
symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'), 'dir');

const results: { name: string; caught: boolean; seconds: number }[] = [];
try {
  for (const m of MUTANTS) {
    if (only && !m.name.includes(only)) continue;
    const path = join(copy, m.file);
    const original = readFileSync(path, 'utf8');
    if (!original.includes(m.from)) {
      console.error(`mutant '${m.name}': pattern not found in ${m.file} (the code changed; update the script)`);
      results.push({ name: m.name, caught: false, seconds: 0 });
      continue;
    }
    writeFileSync(path, original.replace(m.from, m.to));
    const t0 = Date.now();
    const run = spawnSync('npx', ['vitest', 'run', '--reporter=dot', ...SUBSET], {
      cwd: copy,
      encoding: 'utf8',
      // Fewer model sequences per mutant: a mutant dies on the first counterexample.
      env: { ...process.env, BLOCKCOPY_MODEL_RUNS: process.env['BLOCKCOPY_MODEL_RUNS'] ?? '800' },
    });
    writeFileSync(path, original);
    const seconds = Math.round((Date.now() - t0) / 1000);
    const caught = run.status !== 0;
    const failed =
      /Tests\s+.*?(\d+) failed/.exec(
        run.stdout.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), ''),
      )?.[1] ?? '0';
    results.push({ name: m.name, caught, seconds });
    console.log(`${caught ? 'CAUGHT  ' : 'SURVIVED'} ${m.name} (${failed} failing tests, ${seconds} s)`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
const survived = results.filter((r) => !r.caught);
console.log(`mutation: ${results.length - survived.length}/${results.length} mutants caught`);
process.exit(survived.length === 0 && results.length > 0 ? 0 : 1);
