/**
 * The main job (`npm start`, `blockcopy demo`): a whole block copy with guest writes during the
 * mirror, a live progress bar, the pivot, a check that the guest now reads the copy, and the
 * state path the job took. It runs on real QEMU (a temporary qemu-storage-daemon) when
 * qemu-storage-daemon, qemu-img and qemu-io are on PATH, otherwise on the simulator;
 * `--hypervisor sim|qemu` forces one.
 */
import { join } from 'node:path';
import { ResultAsync } from 'neverthrow';
import type { HypervisorPort } from '../core/hypervisor-port.js';
import { QemuLab, onPath, type Region } from '../../adapters/qmp/lab.js';
import { connectQemu, type QemuHypervisor } from '../../adapters/qmp/qemu-adapter.js';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { MiB } from '../../adapters/sim/index.js';
import type { CopyCommand, DemoCommand } from './args.js';
import type { Output } from './copy.js';
import { runCopy } from './copy.js';
import { SIMULATOR_NOTICE } from './hypervisor.js';
import { trapInterrupts } from './interrupts.js';

const DESTINATION = '/var/lib/blockcopy/vda-copy.qcow2';

const QEMU_TOOLS = ['qemu-storage-daemon', 'qemu-img', 'qemu-io'] as const;

export async function runDemo(cmd: DemoCommand, out: Output): Promise<number> {
  const choice = cmd.hypervisor;
  if (choice !== undefined && choice !== 'sim' && choice !== 'qemu') {
    out.error(`error: the demo runs on 'sim' or 'qemu', not '${choice}'`);
    return 2;
  }
  const haveQemu = onPath(...QEMU_TOOLS);
  if (choice === 'qemu' && !haveQemu) {
    out.error(`error: --hypervisor qemu needs ${QEMU_TOOLS.join(', ')} on PATH`);
    return 2;
  }
  if (choice === 'qemu' || (choice === undefined && haveQemu)) return runQemuDemo(cmd, out);
  // Said on stderr in every output mode (the --json report also carries "hypervisor": "sim").
  if (choice === undefined) out.error(`blockcopy demo: ${QEMU_TOOLS.join(', ')} not found on PATH`);
  out.error(SIMULATOR_NOTICE);
  return runSimulatedDemo(cmd, out);
}

export interface QemuDemoOptions {
  /** Virtual size of the temporary chain (a multiple of 64 MiB). Default 256 MiB. */
  readonly size?: number;
  /** Copy bandwidth in MiB/s before ready, so that the progress can be watched. Default 64. */
  readonly bandwidthMiB?: number;
  /** Where the temp dir goes (default: the OS temp dir). */
  readonly parentDir?: string;
  /** Install a SIGINT handler that aborts the copy and cleans up (default true). */
  readonly handleSigint?: boolean;
}

/** The guest: 1 MiB writes of changing patterns through the NBD export until stopped. */
class GuestWriter {
  /** offset → last pattern written there (the writes are sequential). */
  readonly written = new Map<number, number>();
  count = 0;
  private stopped = false;
  private readonly done: Promise<void>;
  failure: Error | null = null;

  constructor(
    private readonly lab: QemuLab,
    private readonly delayMs: number,
  ) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    const slots = this.lab.size / MiB;
    while (!this.stopped) {
      const offset = Math.floor(Math.random() * slots) * MiB;
      const pattern = 0x40 + (this.count % 0x80);
      try {
        await this.lab.guestWrite(pattern, offset, MiB);
      } catch (e) {
        this.failure = e instanceof Error ? e : new Error('guest write failed', { cause: e });
        return;
      }
      this.written.set(offset, pattern);
      this.count++;
      await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    }
  }

  /** Stops after the write in flight (if any); resolves once it has landed. */
  stop(): Promise<void> {
    this.stopped = true;
    return this.done;
  }

  regions(): Region[] {
    return [...this.written].map(([offset, pattern]) => ({ pattern, offset, len: MiB }));
  }
}

/**
 * The port the demo's engine uses: the QEMU adapter, except that the pivot request first lets
 * the guest's write in flight land, so the source at pivot time can be compared byte for byte
 * with the copy afterwards (QEMU itself needs no such pause).
 */
function quiescingPort(hv: QemuHypervisor, writer: GuestWriter): HypervisorPort {
  return new Proxy(hv, {
    get(target, prop, receiver) {
      if (prop === 'completeJob') {
        return (jobId: string) => ResultAsync.fromSafePromise(writer.stop()).andThen(() => target.completeJob(jobId));
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** The demo on a temporary qemu-storage-daemon; exit code 0 only if everything verified. */
export async function runQemuDemo(cmd: DemoCommand, out: Output, options: QemuDemoOptions = {}): Promise<number> {
  const size = options.size ?? 256 * MiB;
  const bandwidth = options.bandwidthMiB ?? 64;
  const say = (text: string) => {
    if (!cmd.json) out.line(text);
  };
  // Ctrl-C or SIGTERM aborts the copy and cleans up (the lab too); tests may handle signals themselves.
  const interrupts = options.handleSigint !== false ? trapInterrupts(out) : undefined;
  const interrupted = () => interrupts !== undefined && interrupts.caught !== null;
  let lab: QemuLab | null = null;
  let hv: QemuHypervisor | null = null;
  let writer: GuestWriter | null = null;
  try {
    say(`blockcopy demo on real QEMU: a temporary qemu-storage-daemon with a ${size / MiB} MiB chain`);
    lab = await QemuLab.start({ size, detached: true, ...(options.parentDir ? { parentDir: options.parentDir } : {}) });
    if (interrupted()) throw new Error('interrupted');
    const destination = join(lab.dir, 'vda-copy.qcow2');
    say(`chain ${lab.paths.base} <- snap1.qcow2 <- snap2.qcow2 (distinct data per layer)`);
    say(`disk 'vda' = NBD export ${lab.nbdUri}; copy to ${destination} at ${bandwidth} MiB/s`);
    say('the guest writes 1 MiB blocks through the export with qemu-io during the mirror\n');
    const opened = await connectQemu({ socket: lab.qmpSocket, domain: 'qemu' });
    if (opened.isErr()) throw new Error(`cannot connect to QEMU: ${opened.error.desc}`);
    hv = opened.value;
    writer = new GuestWriter(lab, 50);
    const copy = demoCopy(cmd, { destination, domain: 'qemu', bandwidth, hypervisor: `qmp:${lab.qmpSocket}` });
    const run = await runCopy(copy, {
      hypervisor: quiescingPort(hv, writer),
      out,
      ...(interrupts ? { interrupts } : {}),
    });
    await writer.stop();
    if (writer.failure !== null) throw writer.failure;
    const active = await hv.activeImage('qemu', 'vda');
    const onCopy = active.isOk() && active.value === destination;
    // The guest's view through the export: the seed's data where the guest did not write, and
    // the last pattern of every 1 MiB block it wrote.
    const guestRegions = [...lab.expected(), ...writer.regions()];
    const unread = onCopy ? await lab.guestVerify(writer.regions()) : writer.regions();
    const seedOk = onCopy ? await verifySeed(lab, writer) : false;
    // Graceful stop (QEMU flushes every image), then compare the source as it was at the pivot
    // with the copy.
    await hv.close();
    hv = null;
    await lab.stop();
    const compare = run.report.pivoted
      ? await lab.compareWithChain(destination, 'qcow2')
      : { identical: false, output: 'not pivoted' };
    const verified = run.exitCode === 0 && onCopy && unread.length === 0 && seedOk && compare.identical;
    if (cmd.json) {
      out.line(
        JSON.stringify({
          ...run.report,
          hypervisor: 'qemu',
          guestWrites: writer.count,
          guestReadsFrom: active.isOk() ? active.value : null,
          guestReadOk: unread.length === 0 && seedOk,
          compareIdentical: compare.identical,
          verified,
        }),
      );
    } else {
      out.line(`\nstates: ${run.report.states.join(' → ')}`);
      if (interrupted()) {
        out.line('interrupted: the copy was aborted; nothing to verify');
        return 130;
      }
      out.line(`the guest wrote ${writer.count} blocks of 1 MiB during the copy`);
      out.line(
        onCopy
          ? `the guest now reads ${destination} (QEMU's block graph)`
          : `the guest still reads ${active.isOk() ? active.value : 'an unknown image'}`,
      );
      out.line(
        unread.length === 0 && seedOk
          ? `guest read through the export: all ${guestRegions.length} regions as expected`
          : `guest read through the export: ${unread.length} written block(s) wrong${seedOk ? '' : ', seed data wrong'}`,
      );
      out.line(`qemu-img compare snap2.qcow2 vda-copy.qcow2: ${compare.identical ? 'identical' : compare.output}`);
      out.line(
        verified
          ? 'verified: the copy is identical to the source and the guest switched to it'
          : 'NOT verified (see above)',
      );
    }
    return verified ? 0 : interrupted() ? 130 : 1;
  } catch (e) {
    out.error(`error: ${interrupted() ? 'interrupted' : e instanceof Error ? e.message : String(e)}`);
    return interrupted() ? 130 : 1;
  } finally {
    interrupts?.dispose();
    await writer?.stop().catch(() => undefined);
    await hv?.close().catch(() => undefined);
    await lab?.dispose().catch(() => undefined);
  }
}

/** Guest reads of the seed's regions, minus the 1 MiB blocks the guest overwrote. */
async function verifySeed(lab: QemuLab, writer: GuestWriter): Promise<boolean> {
  for (const r of lab.expected()) {
    for (let offset = r.offset; offset < r.offset + r.len;) {
      if (writer.written.has(offset)) {
        offset += MiB;
        continue;
      }
      let end = offset;
      while (end < r.offset + r.len && !writer.written.has(end)) end += MiB;
      if (!(await lab.guestRead(r.pattern, offset, end - offset))) return false;
      offset = end;
    }
  }
  return true;
}

/** The demo's copy: `blockcopy copy DISK DEST --pivot --verbose` on vda. */
function demoCopy(
  cmd: DemoCommand,
  target: { destination: string; domain: string; bandwidth: number; hypervisor: string },
): CopyCommand {
  return {
    command: 'copy',
    disk: 'vda',
    ...target,
    shallow: false,
    reuseExternal: false,
    format: null,
    blockdev: false,
    bytes: false,
    granularity: 0,
    bufSize: 0,
    transientJob: false,
    synchronousWrites: false,
    wait: true,
    end: 'pivot',
    async: false,
    verbose: !cmd.json,
    timeout: null,
    dryRun: false,
    json: cmd.json,
    connect: undefined,
    onTargetError: 'report',
    inspect: false,
    inspectKeep: false,
  };
}

async function runSimulatedDemo(cmd: DemoCommand, out: Output): Promise<number> {
  // 256 MiB/s and 24 MiB/s of guest writes: a few seconds, long enough to watch.
  const sim = new SimulatedHypervisor({ copyRate: 256 * MiB });
  sim.setGuestWriteRate('demo', 'vda', 24 * MiB);
  const copy = demoCopy(cmd, { destination: DESTINATION, domain: 'demo', bandwidth: 0, hypervisor: 'sim' });
  if (!cmd.json) {
    out.line('blockcopy demo on the simulated hypervisor (QEMU 7.2 behaviour, in memory)');
    out.line(`domain 'demo', disk 'vda' on base.qcow2 <- snap1.qcow2 <- snap2.qcow2, copy to ${DESTINATION}`);
    out.line('the guest writes 24 MiB/s during the copy\n');
  }
  const interrupts = trapInterrupts(out);
  try {
    const run = await runCopy(copy, { hypervisor: sim, out, interrupts });
    sim.setGuestWriteRate('demo', 'vda', 0);
    const active = await sim.activeImage('demo', 'vda');
    const onCopy = active.isOk() && active.value === DESTINATION;
    if (cmd.json) {
      out.line(JSON.stringify({ ...run.report, guestReadsFrom: active.isOk() ? active.value : null }));
    } else {
      out.line(`\nstates: ${run.report.states.join(' → ')}`);
      out.line(
        onCopy
          ? `verified: the guest now reads ${DESTINATION}`
          : `the guest still reads ${active.isOk() ? active.value : 'an unknown image'}`,
      );
    }
    return run.exitCode === 0 && onCopy ? 0 : 1;
  } finally {
    interrupts.dispose();
    await sim.close();
  }
}
