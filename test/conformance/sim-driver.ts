/**
 * Conformance driver for the simulator: a VM `vm` with `-device …,id=vda` over the `-blockdev`
 * nodes snap2 <- snap1 <- base, the lab's chain
 * (64 MiB; base all data, snap1 16 MiB, snap2 16 MiB + a 1 MiB zero cluster), on a virtual clock.
 */
import { VirtualClock } from '../../src/core/clock.js';
import type { HypervisorEvent } from '../../src/core/hypervisor-port.js';
import { MiB, SimulatedHypervisor } from '../../adapters/sim/index.js';
import { makeImage } from '../../adapters/sim/images.js';
import type { ConformanceDomain, ConformanceDriver } from './driver.js';

const DIR = '/vm/images';
const SIZE = 64 * MiB;
/** Ten virtual minutes: far beyond any scenario, so a stuck one fails instead of spinning. */
const LIMIT_MS = 600_000;

export const simDriver: ConformanceDriver = {
  name: 'simulator',
  async newDomain(): Promise<ConformanceDomain> {
    const clock = new VirtualClock();
    const paths = { base: `${DIR}/base.qcow2`, snap1: `${DIR}/snap1.qcow2`, snap2: `${DIR}/snap2.qcow2` };
    const sim = new SimulatedHypervisor({
      clock,
      domains: [
        {
          name: 'vm',
          disks: [
            {
              name: 'vda',
              virtualSize: SIZE,
              device: 'vda',
              drive: null,
              chain: [
                { path: paths.snap2, allocated: 17 * MiB, nodeName: 'snap2' },
                { path: paths.snap1, allocated: 16 * MiB, nodeName: 'snap1' },
                { path: paths.base, allocated: SIZE, nodeName: 'base' },
              ],
            },
          ],
        },
      ],
    });
    const events: HypervisorEvent[] = [];
    const sub = sim.events$.subscribe((e) => events.push(e));
    return {
      port: sim,
      domain: 'vm',
      disk: 'vda',
      names: { device: 'vda', drive: null, nodeName: 'snap2', exportId: null },
      size: SIZE,
      topLayerBytes: 17 * MiB,
      paths,
      dir: DIR,
      clock,
      events,
      async until(what, done) {
        const end = clock.now() + LIMIT_MS;
        while (!(await done())) {
          if (clock.now() >= end) throw new Error(`simulator: ${what} did not happen within ${LIMIT_MS} virtual ms`);
          await clock.advance(10);
        }
      },
      async injectTargetError(s) {
        sim.injectTargetError({ errno: s.errno, once: s.once, path: s.path, jobId: s.jobId });
      },
      async guestWrite(_offset, len) {
        const r = sim.guestWrite('vm', 'vda', len);
        if (r.isErr()) throw new Error(r.error.desc);
      },
      async disconnect() {
        sim.disconnect();
      },
      async reconnect() {
        sim.reconnect();
      },
      async kill() {
        sim.kill();
      },
      async fileExists(path) {
        return sim.images.get(path) !== undefined;
      },
      async blockDevice(name, size) {
        const path = `/dev/sim-${name}`;
        // A device reads as raw data over its whole size (there are no holes to report).
        sim.images.put(makeImage({ path, kind: 'block', format: 'raw', virtualSize: size, allocated: size }));
        return path;
      },
      async isBlockDevice(path) {
        return sim.images.get(path)?.kind === 'block';
      },
      async dispose() {
        sub.unsubscribe();
        await sim.close();
      },
    };
  },
};
