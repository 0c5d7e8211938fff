/**
 * Conformance driver for the QMP adapter on a real qemu-system-x86_64 VM (TCG, never booted, as
 * in the v* traces): the lab's chain either as libvirt-style `-blockdev` nodes under
 * `-device virtio-blk-pci,drive=snap2,id=vda`, or as one legacy `-drive …,if=virtio,id=drive0`.
 * The VM is i8-vm's VmLab (adapters/qmp/vm-lab.ts) with two monitors: one for the adapter
 * (through a proxy the scenario can cut), one for the bench (blkdebug targets, guest writes with
 * HMP qemu-io). Every VM, socket and directory is removed by dispose(); the chain template by
 * disposeVmTemplate() (afterAll).
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient } from '../../adapters/qmp/client.js';
import { buildChain, hex } from '../../adapters/qmp/lab.js';
import { VmLab } from '../../adapters/qmp/vm-lab.js';
import { connectQemu, targetNodeNames } from '../../adapters/qmp/qemu-adapter.js';
import { CHAIN_SIZE, QmpProxy, Recorder, TOP_LAYER_BYTES } from '../qemu/harness.js';
import { attachLoop, detachAll, type LoopDevice } from '../qemu/loop-device.js';
import { systemClock } from '../../src/core/clock.js';
import type { ConformanceDomain, ConformanceDriver } from './driver.js';

const LIMIT_MS = 60_000;
const ERRNO = { EIO: 5, ENOSPC: 28 } as const;

let template: Promise<string> | null = null;

/** The chain is built once and copied for every VM. */
function chainTemplate(): Promise<string> {
  template ??= (async () => {
    const dir = await fs.mkdtemp(join(tmpdir(), 'blockcopy-vmchain-'));
    await buildChain(dir, CHAIN_SIZE);
    return dir;
  })();
  return template;
}

export async function disposeVmTemplate(): Promise<void> {
  if (template === null) return;
  const dir = await template.catch(() => null);
  template = null;
  if (dir !== null) await fs.rm(dir, { recursive: true, force: true });
}

export function vmDriver(kind: 'device' | 'drive'): ConformanceDriver {
  return {
    name:
      kind === 'device' ? 'VM, -blockdev + -device id=vda (QMP adapter)' : 'VM, legacy -drive id=drive0 (QMP adapter)',
    async newDomain(): Promise<ConformanceDomain> {
      const lab = await VmLab.start({
        style: kind === 'device' ? 'blockdev' : 'drive',
        monitors: ['qmp', 'harness'],
        template: await chainTemplate(),
      });
      const dir = lab.dir;
      const cleanups: (() => Promise<void>)[] = [];
      const loops: LoopDevice[] = [];
      // Runs last (cleanups run in reverse): after QEMU let go of the devices.
      cleanups.push(() => detachAll(loops));
      const dispose = async () => {
        for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
        await lab.dispose();
      };
      try {
        const harness = (
          await QmpClient.connect({ socket: join(dir, 'harness.sock'), reconnect: false })
        )._unsafeUnwrap();
        cleanups.push(() => harness.close());
        const cmd = async <T>(command: string, args?: Record<string, unknown>): Promise<T> => {
          const r = await harness.execute<T>(command, args);
          if (r.isErr()) throw new Error(`${command}: ${r.error.desc}`);
          return r.value;
        };
        const proxy = await QmpProxy.start(join(dir, 'proxy.sock'), join(dir, 'qmp.sock'));
        cleanups.push(() => proxy.close());
        const hv = (
          await connectQemu({ socket: proxy.path, reconnect: { attempts: 5, delayMs: 20 }, domain: 'vm' })
        )._unsafeUnwrap();
        const events = new Recorder(hv.events$);
        cleanups.push(async () => {
          events.stop();
          await hv.close();
        });
        const blocks = await cmd<{ inserted?: { 'node-name': string } }[]>('query-block');
        const root = blocks[0]?.inserted?.['node-name'] ?? null;
        const disk = kind === 'device' ? 'vda' : 'drive0';
        return {
          port: hv,
          domain: 'vm',
          disk,
          names:
            kind === 'device'
              ? { device: 'vda', drive: null, nodeName: 'snap2', exportId: null }
              : { device: null, drive: 'drive0', nodeName: root, exportId: null },
          size: CHAIN_SIZE,
          topLayerBytes: TOP_LAYER_BYTES,
          paths: { base: join(dir, 'base.qcow2'), snap1: join(dir, 'snap1.qcow2'), snap2: join(dir, 'snap2.qcow2') },
          dir,
          clock: systemClock,
          events: events.items,
          async until(what, done) {
            const end = Date.now() + LIMIT_MS;
            while (!(await done())) {
              if (Date.now() > end) throw new Error(`VM: ${what} did not happen within ${LIMIT_MS} ms`);
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
          },
          async injectTargetError(s) {
            const names = targetNodeNames(s.jobId);
            const spec: Record<string, unknown> = {
              driver: s.format,
              'node-name': names.format,
              file: {
                driver: 'blkdebug',
                'node-name': `${names.format.slice(0, 24)}-dbg`,
                image: { driver: 'file', 'node-name': names.file, filename: s.path },
                'inject-error': [{ event: 'write_aio', errno: ERRNO[s.errno], once: s.once }],
              },
            };
            if (s.format === 'qcow2') spec['backing'] = null;
            await cmd('blockdev-add', spec);
          },
          async guestWrite(offset, len) {
            // HMP qemu-io on the guest's device: the VM itself never boots.
            // (qemu-io prints its report on the VM's stdout; the reply carries only errors.)
            const target = kind === 'device' ? '-d /machine/peripheral/vda/virtio-backend' : 'drive0';
            const out = await cmd<string>('human-monitor-command', {
              'command-line': `qemu-io ${target} "write -P ${hex(0x44)} ${offset} ${len}"`,
            });
            if (out.trim() !== '') throw new Error(`guest write: ${out}`);
          },
          async disconnect() {
            proxy.hold();
            proxy.drop();
          },
          async reconnect() {
            proxy.release();
          },
          async kill() {
            const exited = new Promise((resolve) => lab.vm.once('exit', resolve));
            if (lab.alive) lab.vm.kill('SIGKILL');
            if (lab.alive) await exited;
          },
          async blockDevice(name, size) {
            const dev = await attachLoop(join(dir, `${name}.loop`), size);
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
          dispose,
        };
      } catch (e) {
        await dispose();
        throw e;
      }
    },
  };
}
