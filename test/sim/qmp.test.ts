/**
 * The QMP-flavoured layer (SimQmp): QEMU command names, node names and the error texts the port
 * smooths over (job-* vs block-job-*, job-dismiss twice, job-cancel always forcing).
 */
import { describe, expect, it } from 'vitest';
import { MiB, SimQmp } from '../../adapters/sim/index.js';
import { fixture } from './helpers.js';

const DIR = '/var/lib/blockcopy';

async function setup() {
  const f = fixture();
  const qmp = new SimQmp(f.sim, DIR);
  (
    await f.sim.createDestination({ path: `${DIR}/dst.qcow2`, format: 'qcow2', virtualSize: 1024 * MiB, backing: null })
  )._unsafeUnwrap();
  const add = async (args: Record<string, unknown>) => (await qmp.execute('blockdev-add', args))._unsafeUnwrap();
  await add({ driver: 'file', 'node-name': 'snap2-file', filename: 'snap2.qcow2' });
  await add({ driver: 'qcow2', 'node-name': 'snap2', file: 'snap2-file' });
  await add({ driver: 'file', 'node-name': 'dst-file', filename: 'dst.qcow2' });
  await add({ driver: 'qcow2', 'node-name': 'dst', file: 'dst-file', backing: null });
  return { ...f, qmp };
}

describe('SimQmp', () => {
  it('mirrors by node names and pivots the export', async () => {
    const { qmp, clock, sim } = await setup();
    (
      await qmp.execute('blockdev-mirror', { 'job-id': 'm', device: 'snap2', target: 'dst', sync: 'full' })
    )._unsafeUnwrap();
    const exports = (await qmp.execute('query-block-exports'))._unsafeUnwrap() as { 'node-name': string }[];
    expect(exports[0]?.['node-name']).toMatch(/^#block/);
    await clock.advance(3000);
    (await qmp.execute('job-complete', { id: 'm' }))._unsafeUnwrap();
    await clock.advance(100);
    expect((await qmp.execute('query-block-exports'))._unsafeUnwrap()).toEqual([
      { id: 'exp0', 'node-name': 'dst', type: 'nbd', 'shutting-down': false },
    ]);
    expect((await sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(`${DIR}/dst.qcow2`);
  });

  it('job-dismiss twice: the second is GenericError "Job not found" (a2)', async () => {
    const { qmp, clock } = await setup();
    (
      await qmp.execute('blockdev-mirror', { 'job-id': 'm', device: 'snap2', target: 'dst', sync: 'full' })
    )._unsafeUnwrap();
    (await qmp.execute('block-job-cancel', { device: 'm', force: true }))._unsafeUnwrap();
    await clock.advance(0);
    expect((await qmp.execute('block-job-complete', { device: 'm' }))._unsafeUnwrapErr()).toEqual({
      class: 'GenericError',
      desc: "Job 'm' in state 'concluded' cannot accept command verb 'complete'",
    });
    expect((await qmp.execute('job-dismiss', { id: 'm' })).isOk()).toBe(true);
    expect((await qmp.execute('job-dismiss', { id: 'm' }))._unsafeUnwrapErr()).toEqual({
      class: 'GenericError',
      desc: 'Job not found',
    });
    expect((await qmp.execute('block-job-pause', { device: 'm' }))._unsafeUnwrapErr()).toEqual({
      class: 'DeviceNotActive',
      desc: "Block job 'm' not found",
    });
  });

  it('job-cancel on a READY mirror always force-cancels (e5)', async () => {
    const { qmp, clock, trail } = await setup();
    (
      await qmp.execute('blockdev-mirror', { 'job-id': 'm', device: 'snap2', target: 'dst', sync: 'full' })
    )._unsafeUnwrap();
    await clock.advance(3000);
    (await qmp.execute('job-cancel', { id: 'm' }))._unsafeUnwrap();
    await clock.advance(0);
    expect(trail('m')).toEqual(['created', 'running', 'ready', 'job-ready', 'aborting', 'job-cancelled', 'concluded']);
  });

  it('query-jobs keeps the error of a failed job until job-dismiss (h1b)', async () => {
    const { qmp, clock, sim } = await setup();
    sim.injectTargetError({ errno: 'EIO', once: true });
    (
      await qmp.execute('blockdev-mirror', { 'job-id': 'm', device: 'snap2', target: 'dst', sync: 'full' })
    )._unsafeUnwrap();
    await clock.advance(200);
    expect((await qmp.execute('query-jobs'))._unsafeUnwrap()).toEqual([
      {
        id: 'm',
        type: 'mirror',
        status: 'concluded',
        'current-progress': 0,
        'total-progress': 1024 * MiB,
        error: 'Input/output error',
      },
    ]);
  });

  it('refuses what it does not model, with a recognisable error', async () => {
    const { qmp } = await setup();
    expect(
      (
        await qmp.execute('blockdev-mirror', {
          'job-id': 'm',
          device: 'snap2',
          target: 'dst',
          sync: 'full',
          'auto-finalize': false,
        })
      )._unsafeUnwrapErr().desc,
    ).toBe('simulator: auto-finalize=false is not modelled');
    expect((await qmp.execute('drive-mirror', {}))._unsafeUnwrapErr()).toEqual({
      class: 'CommandNotFound',
      desc: 'The command drive-mirror has not been found',
    });
    expect(
      (
        await qmp.execute('blockdev-add', { driver: 'file', 'node-name': 'x', filename: 'nope.qcow2' })
      )._unsafeUnwrapErr().desc,
    ).toBe(`Could not open '${DIR}/nope.qcow2': No such file or directory`);
    expect((await qmp.execute('job-finalize', { id: 'nope' }))._unsafeUnwrapErr().desc).toBe('Job not found');
  });

  it('fails with ConnectionError while the monitor is down', async () => {
    const { qmp, sim } = await setup();
    sim.disconnect();
    expect((await qmp.execute('query-jobs'))._unsafeUnwrapErr().class).toBe('ConnectionError');
  });
});
