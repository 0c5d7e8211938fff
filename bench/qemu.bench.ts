/**
 * `npm run bench:qemu`: the engine on real QEMU against a bare QMP script issuing the same
 * commands, on a 1 GiB chain with non-zero data (urandom base <- snap1 1/4 overlay <- snap2 1/8
 * overlay, as the trace recorder's bench.py), alternating engine and bare in the same run
 * (a fresh daemon and destination per run, the chain in the page cache for both), plus
 * `qemu-img convert` of the chain (+ sync) as the copy-speed reference. Medians of RUNS (≥ 5).
 *
 * Measured: start → ready (engine: blockRebase called → job state ready; bare: qemu-img create
 * → BLOCK_JOB_READY) and pivot request → confirmed pivot (engine: blockJobAbort(PIVOT) → job
 * COMPLETED, i.e. after concluded, graph check and dismiss; bare: block-job-complete →
 * JOB_STATUS_CHANGE concluded → job-dismiss → query-block-exports shows the copy). Also how late
 * the engine saw ready after QEMU's BLOCK_JOB_READY reached the adapter (event vs 500 ms poll; negative = seen by a poll first).
 * Start → ready is split at the moment blockdev-mirror goes out: setup (planning, destination,
 * attach) and the mirror itself (→ the ready event), with the CPU time this process and QEMU
 * used during the mirror, so that a slower mirror and a slower start are told apart. Both
 * scripts start after the same settling time on the fresh VM (SETTLE_MS below).
 *
 * By default on a stopped TCG virtual machine (qemu-system-x86_64, -blockdev chain +
 * virtio-blk-pci id=vda): the bare script then confirms the pivot with query-block (the device's
 * inserted node) and releases the old chain with blockdev-del, as libvirt does and as the engine
 * does. `-- --qsd`: on a qemu-storage-daemon (export vda) instead.
 *
 * `-- --profile`: after the runs, one more engine run printed as a timeline: every QMP command
 * (sent → answered) and every port call, event and state change, in ms from blockRebase.
 */
import { promises as fs } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResultAsync } from 'neverthrow';
import { firstValueFrom, filter } from 'rxjs';
import { QmpClient, type QmpEvent } from '../adapters/qmp/client.js';
import { daemonArgs, MiB, must, run, spawnDaemon, waitUntilListening } from '../adapters/qmp/lab.js';
import { connectQemu } from '../adapters/qmp/qemu-adapter.js';
import { vmArgs } from '../adapters/qmp/vm-lab.js';
import { spawn } from 'node:child_process';
import { createEngine } from '../src/engine/engine.js';
import { AbortFlags, RebaseFlags } from '../src/core/flags.js';

const SIZE_MIB = Number(process.env['BENCH_SIZE_MIB'] ?? 1024);
const RUNS = Math.max(5, Number(process.env['BENCH_RUNS'] ?? 5));
const POLL_MS = 500;
const SIZE = SIZE_MIB * MiB;
const VM = !process.argv.includes('--qsd');
const PROFILE = process.argv.includes('--profile');
/**
 * A fresh QEMU stalls its monitor once for ~50–120 ms shortly after it starts (under load, seen
 * as one slow answer among the first commands after connecting): whichever script asks first
 * pays for it (the bare one often not, as its first command waits for qemu-img create). A
 * user's VM has been up for long, so both scripts start after this settling time.
 */
const SETTLE_MS = Number(process.env['BENCH_SETTLE_MS'] ?? 1000);
const settle = () => new Promise((resolve) => setTimeout(resolve, SETTLE_MS));

async function buildChain(dir: string): Promise<void> {
  await must('dd', ['if=/dev/urandom', 'of=base.raw', 'bs=4M', `count=${SIZE_MIB / 4}`, 'status=none'], dir);
  await must('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', 'base.raw', 'base.qcow2'], dir);
  await fs.rm(join(dir, 'base.raw'));
  await must('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'snap1.qcow2'], dir);
  await must('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5a ${SIZE_MIB / 4}M ${SIZE_MIB / 4}M`, 'snap1.qcow2'], dir);
  await must('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'snap1.qcow2', '-F', 'qcow2', 'snap2.qcow2'], dir);
  await must(
    'qemu-io',
    ['-f', 'qcow2', '-c', `write -P 0xa5 ${(SIZE_MIB * 5) / 8}M ${SIZE_MIB / 8}M`, 'snap2.qcow2'],
    dir,
  );
  for (const f of ['base.qcow2', 'snap1.qcow2', 'snap2.qcow2']) await fs.readFile(join(dir, f)); // warm the cache
}

/** A fresh daemon on the chain (same graph as the lab: nodes base/snap1/snap2, export vda). */
async function withDaemon<T>(dir: string, body: (qmpSocket: string, pid: number) => Promise<T>): Promise<T> {
  for (const f of ['qmp.sock', 'nbd.sock']) await fs.rm(join(dir, f), { force: true });
  const daemon = VM
    ? spawn('qemu-system-x86_64', vmArgs(dir, 'blockdev', ['qmp']), { cwd: dir, stdio: 'ignore' })
    : await spawnDaemon(dir, daemonArgs(dir, ['qmp']));
  const exited = new Promise<void>((resolve) => daemon.once('exit', () => resolve()));
  try {
    // The socket file appears when QEMU binds, a moment before it listens.
    let alive = true;
    daemon.once('exit', () => (alive = false));
    await waitUntilListening(
      join(dir, 'qmp.sock'),
      Date.now() + 30_000,
      () => alive,
      async () => 'QEMU exited',
    );
    return await body(join(dir, 'qmp.sock'), daemon.pid ?? 0);
  } finally {
    daemon.kill('SIGKILL');
    await exited;
  }
}

interface Sample {
  readonly ready: number;
  readonly pivot: number;
  /** Start → blockdev-mirror sent (planning, destination, attach). */
  readonly setup: number;
  /** blockdev-mirror sent → QEMU's ready event reached the process. */
  readonly mirror: number;
  /** CPU ms during the mirror (blockdev-mirror sent → ready): this process, and QEMU. */
  readonly cpu: { readonly self: number; readonly qemu: number };
  /** Engine only: ready state entered − BLOCK_JOB_READY seen by the adapter. */
  readonly lag?: number;
}

/** CPU time (user + system, ms) a process has used so far, from /proc (0 where there is none). */
async function processCpuMs(pid: number): Promise<number> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 (utime, stime) in clock ticks (100 per second on Linux).
  return ((Number(fields[11]) || 0) + (Number(fields[12]) || 0)) * 10;
}
const selfCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Marks the moment blockdev-mirror goes out on `client`, with both processes' CPU time then. */
function watchMirrorSent(client: QmpClient, pid: number): { at: number; self: number; qemu: Promise<number> } {
  const mark = { at: 0, self: 0, qemu: Promise.resolve(0) };
  const execute = client.execute.bind(client);
  client.execute = (command: string, args?: Record<string, unknown>) => {
    if (command === 'blockdev-mirror') {
      mark.at = performance.now();
      mark.self = selfCpuMs();
      mark.qemu = processCpuMs(pid);
    }
    return execute(command, args);
  };
  return mark;
}

async function engineRun(dir: string, dest: string): Promise<Sample> {
  return withDaemon(dir, async (socket, pid) => {
    const hv = (await connectQemu({ socket, domain: 'qemu' }))._unsafeUnwrap();
    await settle();
    const engine = createEngine({ hypervisor: hv, pollIntervalMs: POLL_MS });
    const sent = watchMirrorSent(hv.client, pid);
    try {
      let eventAt = 0;
      let cpuAtReady = { self: 0, qemu: Promise.resolve(0) };
      const sub = hv.events$.subscribe((e) => {
        // JOB_STATUS_CHANGE(ready) comes just before BLOCK_JOB_READY (qemu-mirror.md §0.2).
        const isReady = e.kind === 'job-ready' || (e.kind === 'job-status' && e.status === 'ready');
        if (isReady && eventAt === 0) {
          eventAt = performance.now();
          cpuAtReady = { self: selfCpuMs(), qemu: processCpuMs(pid) };
        }
      });
      const t0 = performance.now();
      const job = (await engine.blockRebase('qemu', 'vda', dest, 0, RebaseFlags.COPY))._unsafeUnwrap();
      const readyAt = job.state().startsWith('ready')
        ? performance.now()
        : await firstValueFrom(job.stateChanges$.pipe(filter((s) => s.startsWith('ready')))).then(() =>
            performance.now(),
          );
      const t1 = performance.now();
      const r = await engine.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT);
      const result = await job.result;
      const t2 = performance.now();
      sub.unsubscribe();
      if (eventAt === 0) throw new Error('no ready event seen');
      if (r.isErr() || result.outcome !== 'completed') throw new Error(`engine run failed: ${JSON.stringify(result)}`);
      return {
        ready: readyAt - t0,
        pivot: t2 - t1,
        lag: readyAt - eventAt,
        setup: sent.at - t0,
        mirror: eventAt - sent.at,
        cpu: { self: cpuAtReady.self - sent.self, qemu: (await cpuAtReady.qemu) - (await sent.qemu) },
      };
    } finally {
      engine.close();
      await hv.close();
    }
  });
}

/** One engine run with a timeline of every QMP command, port call, event and state change. */
async function profileRun(dir: string, dest: string): Promise<string[]> {
  return withDaemon(dir, async (socket) => {
    const hv = (await connectQemu({ socket, domain: 'qemu' }))._unsafeUnwrap();
    await settle();
    const lines: [number, string][] = [];
    let t0 = performance.now();
    const at = () => performance.now() - t0;
    const note = (start: number, what: string) =>
      lines.push([start, `${ms(start).padStart(10)} → ${ms(at()).padStart(10)}  ${what}`]);
    const execute = hv.client.execute.bind(hv.client);
    hv.client.execute = ((command: string, args?: Record<string, unknown>) => {
      const start = at();
      const r = execute(command, args);
      void r.then(() => note(start, command));
      return r;
    }) as typeof hv.client.execute;
    for (const m of [
      'getDomain',
      'listDisks',
      'probeDestination',
      'createDestination',
      'startMirror',
      'completeJob',
      'activeImage',
      'dismissJob',
      'queryJob',
    ] as const) {
      const call = (hv[m] as (...a: unknown[]) => ResultAsync<unknown, unknown>).bind(hv);
      (hv as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => {
        const start = at();
        const r = call(...a);
        void r.then(() => note(start, `[port ${m}]`));
        return r;
      };
    }
    const sub = hv.events$.subscribe((e) =>
      lines.push([at(), `${ms(at()).padStart(10)}   event ${e.kind} ${'status' in e ? e.status : ''}`]),
    );
    const engine = createEngine({ hypervisor: hv, pollIntervalMs: POLL_MS });
    try {
      t0 = performance.now();
      const job = (await engine.blockRebase('qemu', 'vda', dest, 0, RebaseFlags.COPY))._unsafeUnwrap();
      job.stateChanges$.subscribe((st) => lines.push([at(), `${ms(at()).padStart(10)}   state ${st}`]));
      await firstValueFrom(job.stateChanges$.pipe(filter((st) => st.startsWith('ready'))));
      const r = await engine.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT);
      await job.result;
      if (r.isErr()) throw new Error(`profile run: ${r.error.message}`);
      return lines.sort((a, b) => a[0] - b[0]).map((l) => l[1]);
    } finally {
      sub.unsubscribe();
      engine.close();
      await hv.close();
    }
  });
}

async function bareRun(dir: string, dest: string): Promise<Sample> {
  return withDaemon(dir, async (socket, pid) => {
    const q = (await QmpClient.connect({ socket, reconnect: false }))._unsafeUnwrap();
    await settle();
    const sent = watchMirrorSent(q, pid);
    const ok = async (command: string, args?: Record<string, unknown>) => {
      const r = await q.execute(command, args);
      if (r.isErr()) throw new Error(`${command}: ${r.error.desc}`);
      return r.value;
    };
    const waitEvent = (pred: (e: QmpEvent) => boolean) => firstValueFrom(q.events$.pipe(filter(pred)));
    try {
      const t0 = performance.now();
      const ready = waitEvent((e) => e.event === 'BLOCK_JOB_READY' && e.data['device'] === 'bare');
      await must('qemu-img', ['create', '-q', '-f', 'qcow2', dest, String(SIZE)]);
      await ok('blockdev-add', { driver: 'file', 'node-name': 'bare-dst-f', filename: dest });
      await ok('blockdev-add', { driver: 'qcow2', 'node-name': 'bare-dst', file: 'bare-dst-f', backing: null });
      await ok('blockdev-mirror', {
        'job-id': 'bare',
        device: 'snap2',
        target: 'bare-dst',
        sync: 'full',
        'on-target-error': 'report',
        'on-source-error': 'report',
        'copy-mode': 'background',
        'auto-finalize': true,
        'auto-dismiss': false,
      });
      await ready;
      const readyAt = performance.now();
      const cpuAtReady = { self: selfCpuMs(), qemu: await processCpuMs(pid) };
      const concluded = waitEvent(
        (e) => e.event === 'JOB_STATUS_CHANGE' && e.data['id'] === 'bare' && e.data['status'] === 'concluded',
      );
      const t1 = performance.now();
      await ok('block-job-complete', { device: 'bare' });
      await concluded;
      await ok('job-dismiss', { id: 'bare' });
      if (VM) {
        const blocks = (await ok('query-block')) as { inserted?: { 'node-name': string } }[];
        if (blocks[0]?.inserted?.['node-name'] !== 'bare-dst') throw new Error('bare: not pivoted');
        for (const node of ['snap2', 'snap2-file', 'snap1', 'snap1-file', 'base', 'base-file'])
          await ok('blockdev-del', { 'node-name': node });
      } else {
        const exps = (await ok('query-block-exports')) as { id: string; 'node-name': string }[];
        if (exps.find((x) => x.id === 'vda')?.['node-name'] !== 'bare-dst') throw new Error('bare: not pivoted');
      }
      const t2 = performance.now();
      return {
        ready: readyAt - t0,
        pivot: t2 - t1,
        setup: sent.at - t0,
        mirror: readyAt - sent.at,
        cpu: { self: cpuAtReady.self - sent.self, qemu: cpuAtReady.qemu - (await sent.qemu) },
      };
    } finally {
      await q.close();
    }
  });
}

async function convertRun(dir: string, dest: string): Promise<number> {
  const t0 = performance.now();
  await must('qemu-img', ['convert', '-f', 'qcow2', '-O', 'qcow2', join(dir, 'snap2.qcow2'), dest]);
  await must('sync', [dest]);
  return performance.now() - t0;
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const ms = (x: number) => `${x.toFixed(x < 10 ? 2 : 0)} ms`;

async function main(): Promise<void> {
  for (const tool of ['qemu-storage-daemon', 'qemu-img', 'qemu-io', ...(VM ? ['qemu-system-x86_64'] : [])]) {
    if ((await run('which', [tool])).code !== 0) throw new Error(`${tool} not on PATH`);
  }
  const dir = await fs.mkdtemp(join(tmpdir(), 'blockcopy-bench-'));
  const cleanup = () => fs.rm(dir, { recursive: true, force: true });
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    console.log(`blockcopy QEMU benchmark: ${SIZE_MIB} MiB chain (urandom base + overlays), ${RUNS} runs each,`);
    console.log(
      `engine poll interval ${POLL_MS} ms, engine and bare alternating, fresh ${VM ? 'TCG VM (-blockdev + -device virtio-blk-pci,id=vda)' : 'daemon'} per run\n`,
    );
    await buildChain(dir);
    const engine: Sample[] = [];
    const bare: Sample[] = [];
    const convert: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const order = i % 2 === 0 ? (['engine', 'bare', 'convert'] as const) : (['bare', 'engine', 'convert'] as const);
      for (const method of order) {
        const dest = join(dir, `out-${method}-${i}.qcow2`);
        if (method === 'engine') engine.push(await engineRun(dir, dest));
        else if (method === 'bare') bare.push(await bareRun(dir, dest));
        else convert.push(await convertRun(dir, dest));
        await fs.rm(dest, { force: true });
      }
      const e = engine[engine.length - 1]!;
      const b = bare[bare.length - 1]!;
      console.log(
        `run ${i + 1} (load ${loadavg()[0]!.toFixed(2)}): engine ready ${ms(e.ready)} (setup ${ms(e.setup)} + mirror ${ms(e.mirror)}) pivot ${ms(e.pivot)} (lag ${ms(e.lag ?? 0)}); bare ready ${ms(b.ready)} (setup ${ms(b.setup)} + mirror ${ms(b.mirror)}) pivot ${ms(b.pivot)}; convert ${ms(convert[convert.length - 1]!)}`,
      );
    }
    const rate = (t: number) => `${((SIZE_MIB * 1000) / t).toFixed(0)} MiB/s`;
    const rows: [string, string, string, string][] = [
      ['start → ready', ms(median(engine.map((s) => s.ready))), ms(median(bare.map((s) => s.ready))), ''],
      ['pivot request → confirmed', ms(median(engine.map((s) => s.pivot))), ms(median(bare.map((s) => s.pivot))), ''],
    ];
    for (const r of rows) {
      const e = Number.parseFloat(r[1]);
      const b = Number.parseFloat(r[2]);
      r[3] = `${(e / b).toFixed(2)}×`;
    }
    const range = (xs: readonly number[]) => `${ms(Math.min(...xs))}–${ms(Math.max(...xs))}`;
    const ratios = (f: (x: Sample) => number) => engine.map((e, i) => f(e) / f(bare[i]!));
    for (const [label, f] of [
      ['start → ready', (x: Sample) => x.ready],
      ['  of which setup (start → blockdev-mirror)', (x: Sample) => x.setup],
      ['  of which mirror (blockdev-mirror → READY)', (x: Sample) => x.mirror],
      ['pivot request → confirmed', (x: Sample) => x.pivot],
    ] as const) {
      const r = ratios(f);
      console.log(
        `${label}: engine ${range(engine.map(f))}, bare ${range(bare.map(f))}; per-run ratio median ${median(r).toFixed(2)}× (${Math.min(...r).toFixed(2)}–${Math.max(...r).toFixed(2)}×)`,
      );
    }
    console.log('\nmedians              engine        bare          engine/bare');
    for (const r of rows)
      console.log(`${r[0].padEnd(26)} ${r[1].padStart(10)} ${r[2].padStart(12)} ${r[3].padStart(10)}`);
    const mc = median(convert);
    console.log(`qemu-img convert + sync   ${ms(mc).padStart(10)}  (${rate(mc)})`);
    console.log(
      `start to ready (MiB/s):    engine ${rate(median(engine.map((s) => s.ready)))}, bare ${rate(median(bare.map((s) => s.ready)))}`,
    );
    console.log(
      `mirror alone (MiB/s):      engine ${rate(median(engine.map((s) => s.mirror)))}, bare ${rate(median(bare.map((s) => s.mirror)))}`,
    );
    const cpu = (xs: readonly Sample[], k: 'self' | 'qemu') => ms(median(xs.map((s) => s.cpu[k])));
    console.log(
      `CPU during the mirror (median): this process: engine ${cpu(engine, 'self')}, bare ${cpu(bare, 'self')}; QEMU: engine ${cpu(engine, 'qemu')}, bare ${cpu(bare, 'qemu')}`,
    );
    console.log(
      `load average at the end: ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
    console.log(
      `engine saw ready after QEMU's ready event: median ${ms(median(engine.map((s) => s.lag ?? 0)))}, max ${ms(Math.max(...engine.map((s) => s.lag ?? 0)))} (poll interval ${POLL_MS} ms)`,
    );
    if (PROFILE) {
      console.log('\nprofile of one engine run (ms from blockRebase; sent → answered):');
      for (const line of await profileRun(dir, join(dir, 'out-profile.qcow2'))) console.log(line);
    }
  } finally {
    await cleanup();
  }
}

await main();
