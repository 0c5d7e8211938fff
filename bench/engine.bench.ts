/**
 * `npm run bench`: the job chart against a plain hand-written transition function of the same
 * lifecycle (bench/lifecycle-baseline.ts), with 1,000 and 10,000 concurrent jobs, measured side
 * by side in the same run; then the whole engine on the simulated hypervisor. Prints a table and
 * the ratios. Run with --expose-gc (the npm script does) for meaningful heap figures.
 */
import { measure } from './chart-vs-baseline.js';
import { measureEngine } from './engine-on-sim.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 20);
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

console.log(
  `blockcopy benchmark (node ${process.version}; per job: the lifecycle to ready, then ${ROUNDS} repeated polls)\n`,
);
console.log('part 1: job chart (XState actor) vs plain transition function');
console.log('jobs    chart ev/s   baseline ev/s  slowdown  chart B/job  baseline B/job  heap ratio');
for (const jobs of [1_000, 10_000]) {
  const row = await measure(jobs, ROUNDS);
  console.log(
    [
      String(jobs).padEnd(6),
      fmt(row.chartEventsPerSecond).padStart(11),
      fmt(row.baselineEventsPerSecond).padStart(15),
      `${(row.baselineEventsPerSecond / row.chartEventsPerSecond).toFixed(1)}×`.padStart(9),
      fmt(row.chartHeapBytesPerJob).padStart(12),
      fmt(row.baselineHeapBytesPerJob).padStart(15),
      `${(row.chartHeapBytesPerJob / row.baselineHeapBytesPerJob).toFixed(1)}×`.padStart(11),
    ].join(' '),
  );
}

console.log('\npart 2: whole engine (job runner, RxJS feeds, polling) on the simulated hypervisor, virtual time');
console.log('jobs    wall s   jobs/s    engine+sim B/job  machine events  events/s');
for (const jobs of [1_000, 10_000]) {
  const row = await measureEngine(jobs);
  console.log(
    [
      String(jobs).padEnd(6),
      row.wallSeconds.toFixed(2).padStart(7),
      fmt(jobs / row.wallSeconds).padStart(8),
      fmt(row.heapBytesPerJob).padStart(18),
      fmt(row.machineEvents).padStart(15),
      fmt(row.machineEvents / row.wallSeconds).padStart(9),
    ].join(' '),
  );
}
