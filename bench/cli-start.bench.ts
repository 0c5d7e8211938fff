/**
 * CLI start time: the `blockcopy` command from the installed package (compiled JavaScript, packed
 * and installed into a temporary project as a user gets it) against the tsx start it replaces
 * (the former bin: register tsx, then import src/cli/run.ts, transpiling on every start), side by
 * side in one run: runs alternate, so load on a shared machine hits every variant alike. With git
 * and BLOCKCOPY_BENCH_BEFORE (a commit, default the one before packaging) it also times that
 * commit's CLI through tsx. `node -e 0` is the floor. Prints median and range (ms) of the wall time
 * per command and, where /usr/bin/time exists, of the CPU time (user + sys, all threads), which
 * load on the machine inflates far less than the wall time.
 *
 *   npm run bench:cli            BLOCKCOPY_BENCH_RUNS=30 npm run bench:cli
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, packAndInstall } from '../test/package/installed.js';

const RUNS = Number(process.env['BLOCKCOPY_BENCH_RUNS'] ?? 20);
const BEFORE = process.env['BLOCKCOPY_BENCH_BEFORE'] ?? 'a4a60cd';

/** bin/blockcopy.js as it was before the build existed. */
const TSX_BIN = `import { register } from 'tsx/esm/api';
register();
await import('../src/cli/run.ts');
`;

interface Variant {
  readonly name: string;
  readonly argv: readonly string[];
}

const COMMANDS: Record<string, { args: readonly string[]; check: (stdout: string) => boolean }> = {
  '--help': { args: ['--help'], check: (out) => out.includes('usage:') },
  'copy --dry-run --json (sim)': {
    args: ['copy', 'vda', '/var/lib/blockcopy/copy.qcow2', '--hypervisor', 'sim', '--dry-run', '--json'],
    check: (out) => (JSON.parse(out) as { status: string }).status === 'planned',
  },
};

const TIME = '/usr/bin/time';
const haveTime = existsSync(TIME);

interface Sample {
  readonly wall: number;
  readonly cpu: number | null;
}

function timeOnce(variant: Variant, args: readonly string[], check: (stdout: string) => boolean): Sample {
  const argv = [...variant.argv, ...args];
  const cpuFile = join(scratch, 'cpu');
  const [cmd, ...rest] = haveTime ? [TIME, '-f', '%U %S', '-o', cpuFile, ...argv] : argv;
  const start = performance.now();
  const r = spawnSync(cmd!, rest, { encoding: 'utf8' });
  const wall = performance.now() - start;
  if (r.status !== 0 || !check(r.stdout)) {
    throw new Error(`${variant.name} ${args.join(' ')}: exit ${r.status}\n${r.stderr}${r.stdout.slice(0, 500)}`);
  }
  const cpu = haveTime
    ? readFileSync(cpuFile, 'utf8')
        .trim()
        .split(/\s+/)
        .reduce((sum, x) => sum + Number(x) * 1000, 0)
    : null;
  return { wall, cpu };
}

function range(values: readonly number[]): string {
  const s = [...values].sort((a, b) => a - b);
  return `${median(s).toFixed(0).padStart(5)} ms (${s[0]!.toFixed(0)}–${s.at(-1)!.toFixed(0)})`.padEnd(22);
}

function summary(samples: readonly Sample[]): string {
  const cpu = samples.flatMap((x) => (x.cpu === null ? [] : [x.cpu]));
  return `wall ${range(samples.map((x) => x.wall))}${cpu.length ? `  cpu ${range(cpu)}` : ''}`;
}

/** The CLI of an earlier commit, extracted with `git archive`, run through tsx with this repository's node_modules. */
function checkoutBefore(dir: string): Variant | null {
  try {
    const tree = join(dir, 'before');
    mkdirSync(tree);
    const tar = execFileSync('git', ['archive', BEFORE, 'bin', 'src', 'machines', 'adapters', 'package.json'], {
      cwd: REPO,
      maxBuffer: 64 * 1024 * 1024,
    });
    execFileSync('tar', ['-x', '-C', tree], { input: tar });
    symlinkSync(join(REPO, 'node_modules'), join(tree, 'node_modules'));
    return { name: `tsx, commit ${BEFORE}`, argv: [process.execPath, join(tree, 'bin', 'blockcopy.js')] };
  } catch (e) {
    console.log(`(no "before" variant: ${(e as Error).message.split('\n')[0]})`);
    return null;
  }
}

const scratch = mkdtempSync(join(tmpdir(), 'blockcopy-bench-'));
// The former bin, placed so that its relative import reaches this repository's sources.
const tsxBinDir = join(REPO, '.tmp');
mkdirSync(tsxBinDir, { recursive: true });
const tsxBin = join(tsxBinDir, `blockcopy-tsx-${process.pid}.mjs`);
writeFileSync(tsxBin, TSX_BIN);
console.log('packing and installing the package…');
const pkg = packAndInstall();
try {
  const before = checkoutBefore(scratch);
  const variants: Variant[] = [
    { name: 'installed package (dist/)', argv: [join(pkg.project, 'node_modules', '.bin', 'blockcopy')] },
    { name: 'tsx, sources of this tree', argv: [process.execPath, tsxBin] },
    ...(before ? [before] : []),
  ];
  const floor: Sample[] = [];
  console.log(
    `Node ${process.version}, ${RUNS} runs per variant, alternating; load average ${loadavg()[0]!.toFixed(1)}`,
  );
  for (const [label, { args, check }] of Object.entries(COMMANDS)) {
    const samples = new Map(variants.map((v) => [v.name, [] as Sample[]]));
    for (const v of variants) timeOnce(v, args, check); // warm the file cache
    for (let i = 0; i < RUNS; i++) {
      for (const v of variants) samples.get(v.name)!.push(timeOnce(v, args, check));
      if (floor.length < RUNS)
        floor.push(timeOnce({ name: 'node', argv: [process.execPath, '-e', '0'] }, [], () => true));
    }
    console.log(`\nblockcopy ${label}`);
    const base = median(samples.get(variants[0]!.name)!.map((x) => x.wall));
    for (const v of variants) {
      const s = samples.get(v.name)!;
      const ratio = median(s.map((x) => x.wall)) / base;
      console.log(`  ${v.name.padEnd(28)} ${summary(s)}  wall ${ratio.toFixed(2)}× the installed package`);
    }
  }
  console.log(`\n  ${'node -e 0 (floor)'.padEnd(28)} ${summary(floor)}`);
  console.log(`load average at the end: ${loadavg()[0]!.toFixed(1)}`);
} finally {
  pkg.cleanup();
  rmSync(scratch, { recursive: true, force: true });
  rmSync(tsxBin, { force: true });
}

function median(samples: readonly number[]): number {
  const s = [...samples].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
