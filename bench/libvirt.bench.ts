/**
 * `npm run bench:libvirt`: the same copy through blockcopy on libvirt and through
 * `virsh blockcopy --wait --pivot`, alternating in one run, on a chain with non-zero data
 * (urandom base <- snap1 1/4 overlay <- snap2 1/8 overlay), a fresh paused guest and destination
 * per run. Medians and ranges of RUNS (≥ 5) each, and the ratios blockcopy / virsh.
 *
 * Measured, both sides from libvirt's own events seen by an observer connection:
 * - start → ready: request issued (blockRebase call / virsh spawned) → the requester knows the
 *   copy is ready (blockcopy: its job enters ready; virsh: libvirt's READY event, which is what
 *   virsh waits for — so virsh's own reaction time is not even counted);
 * - pivot: libvirt's READY event → libvirt's COMPLETED event (the tool noticing READY, asking
 *   for the pivot, and libvirt pivoting).
 * Also blockcopy's API pivot latency: blockJobAbort(PIVOT) call → return (after the confirmed
 * pivot).
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { firstValueFrom, filter, timeout } from 'rxjs';
import { LibvirtClient } from '../adapters/libvirt/rpc/client.js';
import { ensureLibvirtd, SOCKET, stopStarted } from '../adapters/libvirt/lab-daemon.js';
import { LibvirtLab, run } from '../adapters/libvirt/lab.js';
import type { LibvirtEvent } from '../adapters/libvirt/rpc/protocol.js';
import { createEngine } from '../src/engine/engine.js';
import { AbortFlags, RebaseFlags } from '../src/core/flags.js';

const SIZE_MIB = Number(process.env['BENCH_SIZE_MIB'] ?? 256);
const RUNS = Math.max(5, Number(process.env['BENCH_RUNS'] ?? 5));

interface Sample {
  readonly startToReady: number;
  readonly pivot: number;
  readonly apiPivot?: number;
  /** blockcopy only: call → its job mirroring (checks, plan, virDomainBlockCopy returned). */
  readonly startup?: number;
  /** blockcopy only: libvirt's READY event → its job in ready (events, not polling). */
  readonly reaction?: number;
}

async function must(cmd: string, argv: string[], cwd: string): Promise<void> {
  const r = await run('sh', ['-c', `cd '${cwd}' && exec "$0" "$@"`, cmd, ...argv], 600_000);
  if (r.code !== 0) throw new Error(`${cmd} ${argv.join(' ')}: ${r.stderr}`);
}

async function buildChain(dir: string) {
  await fs.mkdir(dir, { mode: 0o755 });
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
  return {
    dir,
    base: join(dir, 'base.qcow2'),
    snap1: join(dir, 'snap1.qcow2'),
    snap2: join(dir, 'snap2.qcow2'),
  };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const fmt = (xs: readonly number[]) =>
  `median ${median(xs).toFixed(0)} ms (range ${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;

async function main(): Promise<void> {
  const started = await ensureLibvirtd();
  const lab = await LibvirtLab.open();
  const observer = (await LibvirtClient.connect({ socket: SOCKET, uri: 'qemu:///system' }))._unsafeUnwrap();
  const engine = createEngine({ hypervisor: lab.hv });
  const chain = await buildChain(join(lab.root, 'chain'));
  const blockJobEvent = (domain: string, status: number) =>
    firstValueFrom(
      observer.events$.pipe(
        filter(
          (e): e is Extract<LibvirtEvent, { kind: 'block-job' }> =>
            e.kind === 'block-job' && e.domain.name === domain && e.status === status,
        ),
        timeout(600_000),
      ),
    ).then(() => performance.now());

  const ours: Sample[] = [];
  const theirs: Sample[] = [];
  try {
    for (let i = 0; i < RUNS * 2; i++) {
      const useVirsh = i % 2 === 1;
      const guest = await lab.guestOn(`bench${i}`, chain);
      const dest = join(lab.root, `copy${i}.qcow2`);
      const ready = blockJobEvent(guest.name, 3);
      const completed = blockJobEvent(guest.name, 0);
      if (useVirsh) {
        const t0 = performance.now();
        const child = spawn(
          'virsh',
          ['-c', 'qemu:///system', 'blockcopy', guest.name, 'vda', dest, '--wait', '--pivot'],
          {
            stdio: 'ignore',
          },
        );
        const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
        const tReady = await ready;
        const tDone = await completed;
        if ((await exited) !== 0) throw new Error('virsh blockcopy failed');
        theirs.push({ startToReady: tReady - t0, pivot: tDone - tReady });
      } else {
        const t0 = performance.now();
        const job = (await engine.blockRebase(guest.name, 'vda', dest, 0, RebaseFlags.COPY))._unsafeUnwrap();
        // The job handle exists once virDomainBlockCopy returned (the chart is in mirroring).
        const tStarted = performance.now();
        await new Promise<void>((resolve) => {
          const sub = job.stateChanges$.subscribe((s) => {
            if (s.startsWith('ready')) {
              resolve();
              queueMicrotask(() => sub.unsubscribe());
            }
          });
          if (job.state().startsWith('ready')) resolve();
        });
        const tKnown = performance.now();
        const a0 = performance.now();
        (await engine.blockJobAbort(guest.name, 'vda', AbortFlags.PIVOT))._unsafeUnwrap();
        const a1 = performance.now();
        const tReady = await ready;
        const tDone = await completed;
        ours.push({
          startToReady: tKnown - t0,
          pivot: tDone - tReady,
          apiPivot: a1 - a0,
          startup: tStarted - t0,
          reaction: tKnown - tReady,
        });
      }
      if ((await lab.source(guest)) !== dest) throw new Error(`run ${i}: the disk did not pivot`);
      await lab.destroy(guest);
      await fs.rm(dest, { force: true });
      process.stderr.write('.');
    }
  } finally {
    engine.close();
    await observer.close();
    await lab.cleanup();
    await stopStarted(started);
  }
  process.stderr.write('\n');
  const r = (f: (s: Sample) => number) => median(ours.map(f)) / median(theirs.map(f));
  // Each blockcopy run against the virsh run right after it (same guest image, same minute):
  // the median of these ratios is less swayed by load drifting over the whole run.
  const paired = (f: (s: Sample) => number) => median(ours.map((s, i) => f(s) / f(theirs[i]!)));
  console.log(`libvirt benchmark: ${SIZE_MIB} MiB chain, deep copy (COPY), ${RUNS} runs each, alternating`);
  console.log(`start → ready   blockcopy ${fmt(ours.map((s) => s.startToReady))}`);
  console.log(`                virsh     ${fmt(theirs.map((s) => s.startToReady))}`);
  console.log(
    `                ratio blockcopy/virsh ${r((s) => s.startToReady).toFixed(3)}× (median of paired runs ${paired((s) => s.startToReady).toFixed(3)}×)`,
  );
  console.log(`  of which blockcopy's call → mirroring (checks, plan, BlockCopy) ${fmt(ours.map((s) => s.startup!))}`);
  console.log(`  and libvirt's READY event → blockcopy's job ready ${fmt(ours.map((s) => s.reaction!))}`);
  console.log(`READY → pivoted blockcopy ${fmt(ours.map((s) => s.pivot))}`);
  console.log(`                virsh     ${fmt(theirs.map((s) => s.pivot))}`);
  console.log(
    `                ratio blockcopy/virsh ${r((s) => s.pivot).toFixed(3)}× (median of paired runs ${paired((s) => s.pivot).toFixed(3)}×)`,
  );
  console.log(`blockJobAbort(PIVOT) call → return (blockcopy API): ${fmt(ours.map((s) => s.apiPivot!))}`);
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
