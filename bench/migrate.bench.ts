/**
 * `npm run bench:migrate`: whole-chain live storage migration of a 1 GiB three-layer chain
 * (urandom base <- snap1 1/4 overlay <- snap2 1/8 overlay) on a running TCG VM, blockcopy's
 * `migrateStorage` against the same steps by hand, side by side in the same run, alternating:
 *
 *   by hand: a shell script (cp of each backing image + qemu-img rebase -u + qemu-img create of
 *   the new top with a relative backing name), then the bare copy over QMP (blockdev-add of the
 *   new top, which opens its own backing chain, blockdev-mirror sync=top, BLOCK_JOB_READY,
 *   block-job-complete, concluded, job-dismiss): what `virsh blockcopy --reuse-external
 *   --shallow --pivot` makes libvirt send.
 *
 *   blockcopy: migrateStorage (SQLite store, write-ahead records, fsync of each copy, qemu-img
 *   compare of every layer, the copy as a child actor, confirmation in query-block, release).
 *
 * Each round moves the VM's current chain to a fresh directory (so both sides always move the
 * same three layers); medians of RUNS rounds per side (BENCH_RUNS, default 3; BENCH_SIZE_MIB,
 * default 1024). Target: blockcopy ≤ 1.1 × by hand.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { filter, firstValueFrom } from 'rxjs';
import { LocalChainFiles } from '../adapters/local-chain-files.js';
import { QmpClient } from '../adapters/qmp/client.js';
import { MiB, must } from '../adapters/qmp/lab.js';
import { connectQemu } from '../adapters/qmp/qemu-adapter.js';
import { VmLab } from '../adapters/qmp/vm-lab.js';
import { openSqliteStore } from '../adapters/store/sqlite.js';
import { createEngine } from '../src/engine/engine.js';
import { migrateStorage } from '../src/workflows/migrate-storage.js';

const SIZE_MIB = Number(process.env['BENCH_SIZE_MIB'] ?? 1024);
const RUNS = Math.max(1, Number(process.env['BENCH_RUNS'] ?? 3));
const SIZE = SIZE_MIB * MiB;
const sh = promisify(execFile);

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
}

/** The manual steps a management application scripts (the files part), as one shell script. */
const HAND_SCRIPT = `set -e
SRC="$1"; DST="$2"; SIZE="$3"
cp --sparse=auto "$SRC/base.qcow2" "$DST/base.qcow2"
cp --sparse=auto "$SRC/snap1.qcow2" "$DST/snap1.qcow2"
qemu-img rebase -u -f qcow2 -b base.qcow2 -F qcow2 "$DST/snap1.qcow2"
qemu-img create -q -f qcow2 -b snap1.qcow2 -F qcow2 "$DST/snap2.qcow2" "$SIZE"
`;

interface BlockEntry {
  readonly qdev?: string;
  readonly inserted?: { readonly 'node-name': string; readonly file: string };
}

async function byHand(qmp: QmpClient, src: string, dst: string, n: number): Promise<void> {
  await sh('bash', ['-c', HAND_SCRIPT, 'hand', src, dst, String(SIZE)]);
  const call = async <T>(cmd: string, args?: Record<string, unknown>): Promise<T> => {
    const r = await qmp.execute<T>(cmd, args);
    if (r.isErr()) throw new Error(`${cmd}: ${r.error.desc}`);
    return r.value;
  };
  const top = (await call<BlockEntry[]>('query-block')).find((b) => b.qdev?.includes('/vda/'))!.inserted!['node-name'];
  const id = `hand${n}`;
  await call('blockdev-add', {
    driver: 'qcow2',
    'node-name': id,
    file: { driver: 'file', filename: join(dst, 'snap2.qcow2') },
  });
  const ready = firstValueFrom(
    qmp.events$.pipe(filter((e) => e.event === 'BLOCK_JOB_READY' && e.data['device'] === id)),
  );
  await call('blockdev-mirror', { 'job-id': id, device: top, target: id, sync: 'top', 'auto-dismiss': false });
  await ready;
  const concluded = firstValueFrom(
    qmp.events$.pipe(
      filter((e) => e.event === 'JOB_STATUS_CHANGE' && e.data['id'] === id && e.data['status'] === 'concluded'),
    ),
  );
  await call('block-job-complete', { device: id });
  await concluded;
  await call('job-dismiss', { id });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const template = await fs.mkdtemp(join(tmpdir(), 'blockcopy-migbench-'));
let lab: VmLab | null = null;
try {
  console.log(`building a ${SIZE_MIB} MiB three-layer chain…`);
  await buildChain(template);
  lab = await VmLab.start({ style: 'blockdev', template, size: SIZE, monitors: ['qmp', 'bench'] });
  const qmp = (await QmpClient.connect({ socket: lab.socket('bench'), reconnect: false }))._unsafeUnwrap();
  const hv = (await connectQemu({ socket: lab.socket('qmp'), reconnect: false }))._unsafeUnwrap();
  const store = openSqliteStore(join(lab.dir, 'store', 'jobs.db'))._unsafeUnwrap();
  const engine = createEngine({ hypervisor: hv, store, pollIntervalMs: 500 });
  const files = new LocalChainFiles();
  const times = { blockcopy: [] as number[], hand: [] as number[] };
  let current = lab.dir;
  for (let round = 0; round < 2 * RUNS; round++) {
    const side = round % 2 === 0 ? 'blockcopy' : 'hand';
    const dst = join(lab.dir, `r${round}`);
    await fs.mkdir(dst);
    const t0 = performance.now();
    if (side === 'blockcopy') {
      const m = (
        await migrateStorage({ engine, hypervisor: hv, files }, { domain: 'qemu', disks: ['vda'], destDir: dst })
      )._unsafeUnwrap();
      const steps: string[] = [];
      let last = t0;
      m.stateChanges$.subscribe((state) => {
        const now = performance.now();
        steps.push(`${state} +${((now - last) / 1000).toFixed(2)}`);
        last = now;
      });
      const result = await m.result;
      console.log(`  steps (time spent before each): ${steps.join(', ')}`);
      if (result.outcome !== 'migrated') throw new Error(`migration ${result.outcome}: ${result.error?.message}`);
    } else await byHand(qmp, current, dst, round);
    const ms = performance.now() - t0;
    times[side].push(ms);
    console.log(`round ${round + 1}: ${side.padEnd(9)} ${(ms / 1000).toFixed(2)} s`);
    current = dst;
  }
  const b = median(times.blockcopy);
  const h = median(times.hand);
  console.log(
    JSON.stringify({
      sizeMiB: SIZE_MIB,
      runs: RUNS,
      blockcopyMedianS: +(b / 1000).toFixed(2),
      byHandMedianS: +(h / 1000).toFixed(2),
      ratio: +(b / h).toFixed(3),
      target: 1.1,
    }),
  );
  await engine.shutdown();
  await hv.close();
  await qmp.close();
  store.close();
} finally {
  await lab?.dispose();
  await fs.rm(template, { recursive: true, force: true });
}
