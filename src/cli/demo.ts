/**
 * The main job (`npm start`, `blockcopy demo`): a whole block copy with guest writes during the
 * mirror, a live progress bar, the pivot, a check that the guest now reads the copy, and the
 * state path the job took. It runs on the simulator here; real QEMU is used when installed and
 * supported by this build.
 */
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { MiB } from '../../adapters/sim/index.js';
import type { CopyCommand, DemoCommand } from './args.js';
import type { Output } from './copy.js';
import { runCopy } from './copy.js';

const DESTINATION = '/var/lib/blockcopy/vda-copy.qcow2';

export async function runDemo(cmd: DemoCommand, out: Output): Promise<number> {
  if (cmd.hypervisor !== undefined && cmd.hypervisor !== 'sim') {
    out.error(`error: the demo runs on 'sim' in this build, not '${cmd.hypervisor}'`);
    return 2;
  }
  return runSimulatedDemo(cmd, out);
}

async function runSimulatedDemo(cmd: DemoCommand, out: Output): Promise<number> {
  // 256 MiB/s and 24 MiB/s of guest writes: a few seconds, long enough to watch.
  const sim = new SimulatedHypervisor({ copyRate: 256 * MiB });
  sim.setGuestWriteRate('demo', 'vda', 24 * MiB);
  const copy: CopyCommand = {
    command: 'copy',
    disk: 'vda',
    destination: DESTINATION,
    domain: 'demo',
    shallow: false,
    reuseExternal: false,
    raw: false,
    bandwidth: 0,
    wait: true,
    end: 'pivot',
    async: false,
    verbose: !cmd.json,
    timeout: null,
    dryRun: false,
    json: cmd.json,
    hypervisor: 'sim',
    onTargetError: 'report',
    inspect: false,
  };
  if (!cmd.json) {
    out.line('blockcopy demo on the simulated hypervisor (QEMU 7.2 behaviour, in memory)');
    out.line(`domain 'demo', disk 'vda' on base.qcow2 <- snap1.qcow2 <- snap2.qcow2, copy to ${DESTINATION}`);
    out.line('the guest writes 24 MiB/s during the copy\n');
  }
  try {
    const run = await runCopy(copy, { hypervisor: sim, out });
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
    await sim.close();
  }
}
