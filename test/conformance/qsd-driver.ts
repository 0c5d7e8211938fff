/**
 * Conformance driver for the QMP adapter on a real qemu-storage-daemon (test/qemu/harness.ts):
 * the chain attached with node names and exported over NBD as `vda` (the guest), the adapter
 * connected through a proxy socket so a scenario can cut the monitor, blkdebug targets for I/O
 * errors, SIGKILL for a crash. The fixture (daemon, sockets, temp dir) is cleaned up by useQemu.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { attachLoop, detachAll, type LoopDevice } from '../qemu/loop-device.js';
import { targetNodeNames } from '../../adapters/qmp/qemu-adapter.js';
import { CHAIN_SIZE, TOP_LAYER_BYTES, type QemuFixture } from '../qemu/harness.js';
import { systemClock } from '../../src/core/clock.js';
import type { ConformanceDomain, ConformanceDriver } from './driver.js';

// Generous: under load a copy that takes a second idle can take tens of seconds.
const LIMIT_MS = 120_000;
const ERRNO = { EIO: 5, ENOSPC: 28 } as const;

export function qsdDriver(fixture: () => QemuFixture): ConformanceDriver {
  return {
    name: 'qemu-storage-daemon (QMP adapter)',
    async newDomain(): Promise<ConformanceDomain> {
      const fx = fixture();
      const proxy = await fx.proxy();
      const { hv, events } = await fx.adapter({ socket: proxy.path, reconnect: { attempts: 5, delayMs: 20 } });
      const loops: LoopDevice[] = [];
      return {
        port: hv,
        domain: 'qemu',
        disk: 'vda',
        // The export plays the guest device; the chain's root node is snap2.
        names: { device: null, drive: null, nodeName: 'snap2', exportId: 'vda' },
        size: CHAIN_SIZE,
        topLayerBytes: TOP_LAYER_BYTES,
        paths: fx.paths,
        dir: fx.dir,
        clock: systemClock,
        events: events.items,
        async until(what, done) {
          const end = Date.now() + LIMIT_MS;
          while (!(await done())) {
            if (Date.now() > end) throw new Error(`qemu-storage-daemon: ${what} did not happen within ${LIMIT_MS} ms`);
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        },
        async injectTargetError(s) {
          const names = targetNodeNames(s.jobId);
          await fx.attachBlkdebugTarget({
            formatNode: names.format,
            fileNode: names.file,
            path: s.path,
            format: s.format,
            rules: [{ event: 'write_aio', errno: ERRNO[s.errno], once: s.once }],
            backing: null,
          });
        },
        async guestWrite(offset, len) {
          await fx.guestWrite(0x44, offset, len);
        },
        async disconnect() {
          proxy.hold();
          proxy.drop();
        },
        async reconnect() {
          proxy.release();
        },
        async kill() {
          await fx.kill();
        },
        async blockDevice(name, size) {
          const dev = await attachLoop(join(fx.dir, `${name}.loop`), size);
          loops.push(dev);
          return dev.path;
        },
        async isBlockDevice(path) {
          return fs.stat(path).then(
            (st) => st.isBlockDevice(),
            () => false,
          );
        },
        async fileExists(path) {
          return fs.stat(path).then(
            () => true,
            () => false,
          );
        },
        async dispose() {
          // The fixture's cleanup (afterEach) closes the adapter and the proxy, kills the daemon
          // and removes the directory; the loop devices made here are detached first (the daemon
          // may still hold one open: the loop device goes once it closes it).
          await detachAll(loops);
        },
      };
    },
  };
}
