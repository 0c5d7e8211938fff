/**
 * `npm run bench:convergence`: what watching convergence costs, side by side in one run.
 * (1) The detector's cost per progress sample against one poll of the job it watches: the
 *     simulator's queryJob (an in-process lower bound for a poll) and, when qemu-storage-daemon is
 *     installed, a real QMP poll (query-jobs + query-block-jobs) of a running mirror.
 * (2) A whole copy on the simulator in virtual time (only CPU counts) with and without a
 *     convergence policy, rounds interleaved: the ratio is the policy's overhead on the engine.
 */
import { MiB, SimulatedHypervisor } from '../adapters/sim/index.js';
import { QemuLab, onPath } from '../adapters/qmp/lab.js';
import { connectQemu } from '../adapters/qmp/qemu-adapter.js';
import { VirtualClock } from '../src/core/clock.js';
import { ConvergenceDetector } from '../src/core/convergence.js';
import { AbortFlags, RebaseFlags } from '../src/core/flags.js';
import { createEngine } from '../src/engine/engine.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function detectorNsPerSample(samples: number): number {
  const d = new ConvergenceDetector(10_000);
  let verdicts = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < samples; i++) {
    // A guest that outruns the copy half the time, so both branches run.
    const end = 1_000_000_000 + (i % 1000) * 4096;
    if (d.sample(i * 1024, end, i * 100)) verdicts++;
  }
  const ns = Number(process.hrtime.bigint() - t0) / samples;
  if (verdicts < 0) console.log(verdicts); // keeps the loop observable
  return ns;
}

async function simPollNs(polls: number): Promise<number> {
  const clock = new VirtualClock();
  const sim = new SimulatedHypervisor({ clock, copyRate: 1 * MiB });
  await sim.startMirror({
    jobId: 'bench',
    domain: 'demo',
    disk: 'vda',
    destination: { path: '/var/lib/blockcopy/bench.qcow2', format: 'qcow2' },
    destinationBacking: null,
    sync: 'full',
    speed: 0,
    onTargetError: 'report',
    onSourceError: 'report',
    copyMode: 'background',
  });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < polls; i++) (await sim.queryJob('bench'))._unsafeUnwrap();
  return Number(process.hrtime.bigint() - t0) / polls;
}

async function qmpPollNs(polls: number): Promise<number | null> {
  if (!onPath('qemu-storage-daemon', 'qemu-img', 'qemu-io')) return null;
  const lab = await QemuLab.start();
  try {
    const hv = (await connectQemu({ socket: lab.qmpSocket }))._unsafeUnwrap();
    const engine = createEngine({ hypervisor: hv, pollIntervalMs: 60_000 });
    // A mirror throttled so that it stays running while it is polled.
    (await engine.blockRebase('qemu', 'vda', `${lab.dir}/bench.qcow2`, 1, RebaseFlags.COPY))._unsafeUnwrap();
    const times: number[] = [];
    for (let i = 0; i < polls; i++) {
      const t0 = process.hrtime.bigint();
      (await hv.queryJob(engine.jobs()[0]!.jobId))._unsafeUnwrap();
      times.push(Number(process.hrtime.bigint() - t0));
    }
    await engine.blockJobAbort('qemu', 'vda', 0);
    engine.close();
    await hv.close();
    return median(times);
  } finally {
    await lab.dispose();
  }
}

async function copyCpuMs(withPolicy: boolean): Promise<number> {
  const clock = new VirtualClock();
  const sim = new SimulatedHypervisor({ clock, copyRate: 64 * MiB });
  const engine = createEngine({ hypervisor: sim, clock, pollIntervalMs: 100 });
  sim.setGuestWriteRate('demo', 'vda', 8 * MiB)._unsafeUnwrap();
  const t0 = performance.now();
  const job = (
    await engine.blockRebase('demo', 'vda', '/var/lib/blockcopy/c.qcow2', 0, RebaseFlags.COPY, {
      ...(withPolicy ? { convergence: { timeoutMs: 3_600_000 } } : {}),
    })
  )._unsafeUnwrap();
  await clock.runUntil(() => job.state().startsWith('ready'), 3_600_000, 100);
  void engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT);
  let done = false;
  void job.result.then(() => (done = true));
  await clock.runUntil(() => done, 600_000, 100);
  const ms = performance.now() - t0;
  engine.close();
  return ms;
}

const samples = 10_000_000;
const detector = median([detectorNsPerSample(samples), detectorNsPerSample(samples), detectorNsPerSample(samples)]);
const sim = await simPollNs(20_000);
const qmp = await qmpPollNs(200);
console.log(`detector: ${detector.toFixed(1)} ns per progress sample (median of 3 × ${samples.toLocaleString()})`);
console.log(
  `simulator poll (queryJob): ${(sim / 1000).toFixed(2)} µs → detector/poll = ${(detector / sim).toExponential(2)}`,
);
if (qmp !== null)
  console.log(
    `QMP poll (query-jobs + query-block-jobs, qemu-storage-daemon): ${(qmp / 1000).toFixed(1)} µs median → detector/poll = ${(detector / qmp).toExponential(2)}`,
  );
else console.log('QMP poll: skipped (qemu-storage-daemon, qemu-img or qemu-io not on PATH)');

const rounds = 10;
const without: number[] = [];
const withPolicy: number[] = [];
await copyCpuMs(false); // warm-up
await copyCpuMs(true);
// The order alternates per round, so that neither side always runs on a warmer heap.
for (let i = 0; i < rounds; i++) {
  if (i % 2 === 0) {
    without.push(await copyCpuMs(false));
    withPolicy.push(await copyCpuMs(true));
  } else {
    withPolicy.push(await copyCpuMs(true));
    without.push(await copyCpuMs(false));
  }
}
const a = median(without);
const b = median(withPolicy);
console.log(
  `1 GiB copy to pivot on the simulator, virtual time (CPU only), median of ${rounds}: without policy ${a.toFixed(1)} ms, with policy ${b.toFixed(1)} ms → ratio ${(b / a).toFixed(3)}`,
);
