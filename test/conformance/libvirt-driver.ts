/**
 * Conformance driver for the libvirt adapter on a real libvirtd: per scenario a transient, paused
 * TCG guest (adapters/libvirt/lab.ts) whose vda sits on its own base <- snap1 <- snap2 chain, the
 * lab's one RPC connection as the port, guest writes through libvirt's HMP passthrough, a crash
 * as SIGKILL of the guest's QEMU. Each guest and its chain are removed by dispose(); the lab and
 * any libvirtd this file started by disposeLibvirtLab() (afterAll).
 *
 * libvirt shows a block copy as libvirt does (BLOCK_JOB_2 READY/COMPLETED/FAILED/CANCELED, its own
 * error codes and words), not QEMU's job-status trail, so the port-level rows that assert QMP
 * observables do not apply; each says why in NOT_APPLICABLE. The engine-level rows apply as
 * written: the engine must give the same results on every adapter.
 */
import { promises as fs, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hex } from '../../adapters/qmp/lab.js';
import { attachLoop, detachAll, type LoopDevice } from '../qemu/loop-device.js';
import { ensureLibvirtd, stopStarted } from '../../adapters/libvirt/lab-daemon.js';
import { CHAIN_SIZE, LibvirtLab, MiB, virsh } from '../../adapters/libvirt/lab.js';
import { systemClock } from '../../src/core/clock.js';
import { Recorder } from '../qemu/harness.js';
import type { ConformanceDomain, ConformanceDriver } from './driver.js';

const LIMIT_MS = 120_000;

/** What libvirt reports instead of a QMP row's observables, and where that is tested. */
const QMP_TRAIL =
  "asserts QEMU's job-status trail (created, running, job-ready, waiting, pending); libvirt's port sees only BLOCK_JOB_2 (READY, then COMPLETED/FAILED/CANCELED) and reports ready and concluded";
const NOT_APPLICABLE: Readonly<Record<string, string>> = {
  'block-stream of the whole chain (block pull): no READY, ends by itself, the top stands alone': `${QMP_TRAIL}; libvirt reports a pull by BLOCK_JOB_2 events only (no job-status trail) and dismisses it itself; block pull on libvirt, with libvirt 9.0's own answers, is test/libvirt/pull-suite.ts`,
  "block-stream refusals in QEMU's words, a stream down to base cancelled: the chain stays whole": `libvirt refuses these itself, in its own words (e.g. "could not find image … beneath … in chain"), before QEMU sees them; test/libvirt/pull-suite.ts asserts libvirt's answers`,
  'engine on top: COPY_DEV onto a block device: a device without the flag or a file with it is refused; raw in place, pivot onto the device; a qcow2 copy aborted leaves the device': `the row makes its regular file with the port's createDestination, which on libvirt only reserves the path (libvirt creates destinations itself), so the file-with-COPY_DEV case cannot be set up the same way; COPY_DEV through libvirt (<disk type='block'>: raw pivot, qcow2 abort, the refusal without the flag) is tested against libvirtd in test/libvirt/blockdev.test.ts`,
  'listDisks: the disk by every name, its chain and any job; after a pivot the destination is the source': `${QMP_TRAIL}; libvirt names a disk by target and source only (test/libvirt/libvirt.test.ts: domblklist, disk identity)`,
  'full copy to a new qcow2: start, ready (len = virtual size), pivot, dismiss': `${QMP_TRAIL}; libvirt creates the destination itself in virDomainBlockCopy (createDestination only reserves the path), refuses with its own codes, and dismisses concluded jobs itself; the engine rows below pivot a full copy`,
  'shallow copy (sync=top): READY after the top layer only, the guest keeps snap1 <- base below': `${QMP_TRAIL}; the shallow copy on libvirt is test/libvirt/libvirt.test.ts's SHALLOW and SHALLOW|REUSE_EXT rows`,
  'full copy to a sparse raw file (st_size = virtual size, no data yet)': `${QMP_TRAIL}; libvirt creates the raw file itself, so there is no pre-made sparse file to probe; COPY_RAW on libvirt is tested in test/libvirt/libvirt.test.ts`,
  'soft abort after READY: completes without a pivot; the destination can be removed': `${QMP_TRAIL}; the abort after READY runs below through the engine (libvirt's abort is always QEMU's soft cancel)`,
  'hard abort after READY: cancelled, no pivot, "Operation canceled" in the job': `libvirt has no force cancel: virDomainBlockJobAbort always sends a soft block-job-cancel (the port ignores force), so QEMU's "Operation canceled" never occurs`,
  'any cancel before READY is a force cancel': `${QMP_TRAIL}; the cancel before READY runs below through the engine (CANCELED, the partial destination removed)`,
  "verbs in the wrong state are refused with QEMU's words; pause and resume are idempotent": `libvirt refuses with its own codes and words, not QMP's, and has no block-job pause or resume at all (the port's pauseJob/resumeJob fail with VIR_ERR_INVALID_ARG; test/libvirt/libvirt.test.ts)`,
  'refusals at start (job id, speed, missing destination, busy disk) start nothing and change nothing': `asserts QMP's refusal texts; libvirt has no job ids (a job is its disk) and refuses with virError codes, which test/libvirt/libvirt.test.ts checks are passed through`,
  'the largest legal bandwidth (LLONG_MAX as a double) is accepted and reported back, with granularity, buf-size and write-blocking': `virDomainBlockCopy takes bandwidth as an unsigned long long in bytes/s and no granularity, buf-size or copy mode parameters beyond its typed params; the row's QMP job fields do not exist on libvirt`,
  'a target of another size is accepted, then the job fails at once': `libvirt creates the destination itself at the source's size (no REUSE_EXT) and refuses a reused one of another size before QEMU sees it; no job starts`,
  'I/O error policy report: the job fails with the errno text, no pivot': `virDomainBlockCopy has no on-target-error parameter and libvirt's domain XML cannot put a blkdebug node under a copy's destination, so no target error can be armed through libvirt`,
  'I/O error policy stop: paused with io-status failed, resume retries, then pivot': `virDomainBlockCopy has no on-target-error parameter (QEMU's default, report, always applies) and libvirt has no block-job resume`,
  'I/O error policy enospc: stops on ENOSPC (io-status nospace), reports EIO': `virDomainBlockCopy has no on-target-error parameter: QEMU's default policy (report) always applies`,
  'I/O error policy ignore: the error is reported, the region retried, the copy goes on': `virDomainBlockCopy has no on-target-error parameter: QEMU's default policy (report) always applies`,
  'guest writes after READY raise len and offset without an event; the pivot follows': `${QMP_TRAIL}; libvirt's job info has no len/offset event to compare, and guest writes during a libvirt copy are test/libvirt/libvirt.test.ts's`,
  'monitor connection lost and restored: calls fail meanwhile, the job survives': `the port's connection is to libvirtd, not QEMU's monitor: losing it means restarting libvirtd, which test/libvirt/libvirt.test.ts does (restart loses READY; the job survives) in one file on purpose, as no other libvirt test may see libvirtd die`,
  'the hypervisor is killed: connection lost, then gone; every call fails, local files stay': `libvirtd survives a QEMU crash: the port's connection stays up and libvirt reports the domain STOPPED (the port ends its jobs with 'domain is not running'), not connection-lost and hypervisor-gone`,
  'destination files: a missing directory is refused with nothing created; the disk image is never removed': `asserts QEMU's 'Could not create' and blockdev-del's refusal; on libvirt createDestination only reserves the path and libvirt refuses a missing directory in virDomainBlockCopy with its own error`,
};

let lab: Promise<{ lab: LibvirtLab; started: string[] }> | null = null;

function openLab(): Promise<{ lab: LibvirtLab; started: string[] }> {
  lab ??= (async () => {
    const started = await ensureLibvirtd();
    return { lab: await LibvirtLab.open(), started };
  })();
  return lab;
}

export async function disposeLibvirtLab(): Promise<void> {
  if (lab === null) return;
  const opened = await lab.catch(() => null);
  lab = null;
  if (opened === null) return;
  await opened.lab.cleanup();
  await stopStarted(opened.started);
}

let count = 0;

export function libvirtDriver(): ConformanceDriver {
  return {
    name: 'libvirtd, transient TCG guest (libvirt adapter)',
    notApplicable: NOT_APPLICABLE,
    async newDomain(): Promise<ConformanceDomain> {
      const { lab: l } = await openLab();
      const guest = await l.guest(`conf${++count}`);
      const events = new Recorder(l.hv.events$);
      const loops: LoopDevice[] = [];
      const dispose = async () => {
        events.stop();
        await l.destroy(guest).catch(() => undefined);
        // After the guest: QEMU may still hold a loop device open until it is gone.
        await detachAll(loops);
        await fs.rm(guest.dir, { recursive: true, force: true });
      };
      return {
        port: l.hv,
        domain: guest.name,
        disk: 'vda',
        names: { device: 'vda', drive: null, nodeName: null, exportId: null },
        size: CHAIN_SIZE,
        // snap2 holds 1 MiB at 2 MiB and 512 KiB at 3 MiB (lab.ts LAYERS).
        topLayerBytes: 1.5 * MiB,
        paths: guest.paths,
        dir: guest.dir,
        clock: systemClock,
        events: events.items,
        async until(what, done) {
          const end = Date.now() + LIMIT_MS;
          while (!(await done())) {
            if (Date.now() > end) throw new Error(`libvirt: ${what} did not happen within ${LIMIT_MS} ms`);
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        },
        async injectTargetError() {
          throw new Error(NOT_APPLICABLE['I/O error policy report: the job fails with the errno text, no pivot']);
        },
        async blockDevice(name, size) {
          const dev = await attachLoop(join(guest.dir, `${name}.loop`), size);
          loops.push(dev);
          return dev.path;
        },
        async isBlockDevice(path) {
          return fs.stat(path).then(
            (st) => st.isBlockDevice(),
            () => false,
          );
        },
        async guestWrite(offset, len) {
          // HMP qemu-io through libvirt's monitor passthrough (the guest never boots).
          const r = await virsh(
            'qemu-monitor-command',
            guest.name,
            '--hmp',
            `qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend "write -P ${hex(0x44)} ${offset} ${len}"`,
          );
          if (r.code !== 0 || r.stdout.trim() !== '') throw new Error(`guest write: ${r.stdout}${r.stderr}`);
        },
        async disconnect() {
          throw new Error(
            NOT_APPLICABLE['monitor connection lost and restored: calls fail meanwhile, the job survives'],
          );
        },
        async reconnect() {
          throw new Error(
            NOT_APPLICABLE['monitor connection lost and restored: calls fail meanwhile, the job survives'],
          );
        },
        async kill() {
          // The guest's QEMU dies; libvirtd lives on and reports the domain stopped.
          const pid = Number(readFileSync(join('/run/libvirt/qemu', `${guest.name}.pid`), 'utf8').trim());
          process.kill(pid, 'SIGKILL');
        },
        async fileExists(path) {
          return fs.stat(path).then(
            () => true,
            () => false,
          );
        },
        dispose,
      };
    },
  };
}
