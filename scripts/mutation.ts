/**
 * Mutation testing with StrykerJS (stryker.config.mjs), one area at a time so that each area's
 * results are saved as soon as it is done: the chart (machines/), the rules (src/core: validate,
 * plan, observe, observations, errors, flags, disk-identity) and the engine (src/engine), each
 * against only its own fast tests (vitest.stryker.config.ts). Incremental: each area keeps its
 * results in reports/stryker-incremental-<area>.json and a rerun tests only mutants whose code or
 * covering tests changed. Reports: reports/mutation/<area>.html and .json. Prints the score per
 * area, the mutant counts, the wall time and the surviving mutants.
 *
 *   npm run test:mutation                # every area
 *   npm run test:mutation -- rules       # one area (chart, rules, engine)
 *   npm run test:mutation -- --typecheck # with StrykerJS's TypeScript checker (much slower)
 *   npm run test:mutation -- --report    # only print the saved results
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

const AREAS: Record<string, readonly string[]> = {
  chart: ['machines/**/*.ts'],
  rules: [
    'src/core/validate.ts',
    'src/core/plan.ts',
    'src/core/observe.ts',
    'src/core/observations.ts',
    'src/core/errors.ts',
    'src/core/flags.ts',
    'src/core/disk-identity.ts',
  ],
  engine: ['src/engine/**/*.ts'],
};
const TARGET: Record<string, number> = { chart: 90, rules: 90, engine: 80 };

interface Mutant {
  readonly mutatorName: string;
  readonly replacement?: string;
  readonly status: string;
  readonly location: { readonly start: { readonly line: number } };
}
interface Report {
  readonly files: Record<string, { readonly mutants: readonly Mutant[] }>;
}

const incremental = (area: string) => `reports/stryker-incremental-${area}.json`;

function summarize(area: string): boolean {
  const file = incremental(area);
  if (!existsSync(file)) {
    console.log(`${area}: no results yet (${file})`);
    return false;
  }
  const report = JSON.parse(readFileSync(file, 'utf8')) as Report;
  const count: Record<string, number> = {};
  const survivors: string[] = [];
  for (const [path, { mutants }] of Object.entries(report.files))
    for (const m of mutants) {
      count[m.status] = (count[m.status] ?? 0) + 1;
      if (m.status === 'Survived' || m.status === 'NoCoverage')
        survivors.push(
          `  ${m.status} ${path}:${m.location.start.line} ${m.mutatorName} → ${JSON.stringify(m.replacement ?? '')}`,
        );
    }
  const detected = (count['Killed'] ?? 0) + (count['Timeout'] ?? 0);
  const undetected = (count['Survived'] ?? 0) + (count['NoCoverage'] ?? 0);
  const score = detected + undetected === 0 ? 100 : (100 * detected) / (detected + undetected);
  console.log(
    `${area}: ${score.toFixed(1)}% (target ${TARGET[area]}%): ${JSON.stringify(count)}` +
      (survivors.length > 0 ? `\n${survivors.join('\n')}` : ''),
  );
  return score >= (TARGET[area] ?? 0);
}

const args = process.argv.slice(2);
const reportOnly = args.includes('--report');
const typecheck = args.includes('--typecheck');
const areas = args.filter((a) => a in AREAS);
const chosen = areas.length > 0 ? areas : Object.keys(AREAS);
let ok = true;
for (const area of chosen) {
  if (!reportOnly) {
    const t0 = Date.now();
    const run = spawnSync(
      'npx',
      ['stryker', 'run', '--mutate', AREAS[area]!.join(','), '--incrementalFile', incremental(area)],
      {
        stdio: 'inherit',
        env: {
          ...process.env,
          // vitest.stryker.config.ts runs only this area's tests; reports are named after it.
          BLOCKCOPY_MUTATION_AREA: area,
          BLOCKCOPY_PROPERTY_RUNS: process.env['BLOCKCOPY_PROPERTY_RUNS'] ?? '100',
          ...(typecheck ? { BLOCKCOPY_MUTATION_TYPECHECK: '1' } : {}),
        },
      },
    );
    console.log(`${area}: stryker exited ${run.status} after ${Math.round((Date.now() - t0) / 1000)} s`);
    if (run.status !== 0) ok = false;
  }
  ok = summarize(area) && ok;
}
process.exit(ok ? 0 : 1);
