// Long model-based run on demand: `npm run test:model -- --runs 1000000` (or BLOCKCOPY_MODEL_RUNS)
// runs that many sequences in all, shared by the five model spec files that take a budget. Memory stays bounded: each sequence
// builds and drops its own simulator and engine; only counters are kept.
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const at = args.indexOf('--runs');
const runs = at >= 0 ? args[at + 1] : process.env.BLOCKCOPY_MODEL_RUNS;
if (runs !== undefined && !/^[1-9]\d*$/.test(runs)) {
  console.error(`--runs needs a positive whole number, not '${runs}'`);
  process.exit(2);
}
const rest = at >= 0 ? [...args.slice(0, at), ...args.slice(at + 2)] : args;
const t0 = Date.now();
const run = spawnSync('npx', ['vitest', 'run', 'test/model', ...rest], {
  stdio: 'inherit',
  env: { ...process.env, ...(runs ? { BLOCKCOPY_MODEL_RUNS: runs } : {}) },
});
console.log(`model run: ${runs ?? 'default'} sequences in ${Math.round((Date.now() - t0) / 1000)} s`);
process.exit(run.status ?? 1);
