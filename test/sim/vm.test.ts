/**
 * The simulator as a VM (qemu-system-x86_64, v* traces): a `-blockdev` chain under
 * `-device …,id=vda` and a legacy `-drive …,id=drive0` with automatic node names. The recorded
 * sessions are replayed through SimQmp (traces.ts), and every reply must carry QEMU's words:
 * which names blockdev-mirror takes (node names and the BlockBackend name, never the qdev id),
 * the job id it derives, the busy and backing-node refusals, and what query-block shows. Also the
 * port's view of the same VMs: listDisks with every name, sparse job lengths, tuning checks.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/core/clock.js';
import { resolveDisk } from '../../src/core/disk-identity.js';
import { MiB, SimQmp, SimulatedHypervisor, vmDisk } from '../../adapters/sim/index.js';
import { replayTrace, type Replay } from './traces.js';
import { spec } from './helpers.js';

const DIR = '/trace';
const SIZE = 64 * MiB;

function vm(kind: 'device' | 'drive') {
  return (clock: VirtualClock) =>
    new SimulatedHypervisor({ clock, domains: [{ name: 'vm', disks: [vmDisk(kind, DIR, SIZE)] }] });
}

/** Commands the simulator does not model (it has no drive-mirror and no block-stream). */
const NOT_MODELLED = new Set(['drive-mirror', 'block-stream']);

/** Recorded vs simulated replies that differ (automatic node names mapped back to QEMU's). */
function replyMismatches(r: Replay): string[] {
  const back = new Map([...r.aliases].map(([theirs, mine]) => [mine, theirs]));
  const unalias = (text: string) => text.replace(/#block\d+/g, (m) => back.get(m) ?? m);
  const out: string[] = [];
  for (const reply of r.replies) {
    if (NOT_MODELLED.has(reply.execute)) continue;
    const rec = reply.recorded;
    if (rec.ok !== reply.ok) {
      out.push(
        `${reply.execute}: recorded ${rec.ok ? 'ok' : rec.error?.desc}, simulated ${reply.ok ? 'ok' : reply.error?.desc}`,
      );
      continue;
    }
    if (!rec.ok && unalias(reply.error?.desc ?? '') !== rec.error?.desc)
      out.push(`${reply.execute}: '${rec.error?.desc}' vs '${reply.error?.desc}'`);
    if (reply.execute === 'query-block' && rec.ok) {
      const want = (rec.value as Record<string, any>[]).map((d) => [
        d['device'],
        d['qdev'],
        d['inserted']?.['node-name'],
        d['inserted']?.['file'],
      ]);
      const got = (reply.value as Record<string, any>[]).map((d) => [
        d['device'],
        d['qdev'],
        unalias(d['inserted']?.['node-name']),
        d['inserted']?.['file'],
      ]);
      if (JSON.stringify(want) !== JSON.stringify(got))
        out.push(`query-block: ${JSON.stringify(want)} vs ${JSON.stringify(got)}`);
    }
  }
  return out;
}

const jobStatuses = (_r: Replay, events: readonly { name: string; jobId: string }[], jobId: string) =>
  events.filter((e) => e.jobId === jobId && e.name.startsWith('JSC:')).map((e) => e.name);

describe('the simulator as a VM: recorded sessions replayed through SimQmp', () => {
  it('v1: -blockdev chain under -device id=vda; mirror by root node name, pivot, query-block follows', async () => {
    const r = await replayTrace('v1_device_id_full_pivot', { simulator: vm('device') });
    expect(r.problems).toEqual([]);
    expect(replyMismatches(r)).toEqual([]);
    expect(jobStatuses(r, r.simEvents, 'mirror-v1')).toEqual(jobStatuses(r, r.recordedEvents, 'mirror-v1'));
  });

  it('v2: legacy -drive id=drive0: the BlockBackend name and the automatic node name work, # job ids do not', async () => {
    const r = await replayTrace('v2_legacy_drive', { simulator: vm('drive') });
    expect(r.problems).toEqual([]);
    expect(replyMismatches(r)).toEqual([]);
    for (const job of ['mirror-node', 'drive0', 'mirror-v2'])
      expect(jobStatuses(r, r.simEvents, job), job).toEqual(jobStatuses(r, r.recordedEvents, job));
  });

  it('v3: the qdev id and qdev paths are not names blockdev-mirror takes', async () => {
    const r = await replayTrace('v3_mirror_by_qdev', { simulator: vm('device') });
    expect(r.problems).toEqual([]);
    expect(replyMismatches(r)).toEqual([]);
    expect(r.replies.filter((x) => x.execute === 'blockdev-mirror').map((x) => x.ok)).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });

  it('v5: a job on the disk makes every other mirror of it (or of a backing node) "Need a root block node"', async () => {
    const r = await replayTrace('v5_foreign_job_busy', { simulator: vm('device') });
    expect(replyMismatches(r)).toEqual([]);
    const mirrors = r.replies.filter((x) => x.execute === 'blockdev-mirror');
    expect(mirrors.map((x) => x.error?.desc ?? 'ok')).toEqual([
      'ok',
      'Need a root block node',
      'Need a root block node',
      'Need a root block node',
      "Job ID 'mirror-v5' already in use",
    ]);
  });
});

describe('the simulator as a VM: the port', () => {
  it('listDisks names each disk by device, drive and root node; every name resolves to the same disk', async () => {
    const clock = new VirtualClock();
    const sim = new SimulatedHypervisor({
      clock,
      domains: [{ name: 'vm', disks: [vmDisk('device', '/a', SIZE), vmDisk('drive', '/b', SIZE)] }],
    });
    const disks = (await sim.listDisks('vm'))._unsafeUnwrap()!;
    expect(disks.map((d) => [d.disk, d.device, d.drive, d.nodeName, d.source])).toEqual([
      ['vda', 'vda', null, 'snap2', '/a/snap2.qcow2'],
      ['drive0', null, 'drive0', expect.stringMatching(/^#block\d{3}$/), '/b/snap2.qcow2'],
    ]);
    for (const d of disks)
      for (const name of [d.device, d.drive, d.nodeName, d.source].filter((n): n is string => n !== null))
        expect(resolveDisk(disks, name)._unsafeUnwrap().disk, name).toBe(d.disk);
    // A backing node is not a disk.
    expect(resolveDisk(disks, 'snap1').isErr()).toBe(true);
    expect((await sim.listDisks('nope'))._unsafeUnwrap()).toBeNull();
  });

  it('after a pivot the root node is the target node and the source the destination; the job shows while it runs', async () => {
    const clock = new VirtualClock();
    const sim = new SimulatedHypervisor({ clock, domains: [{ name: 'vm', disks: [vmDisk('device', '/a', SIZE)] }] });
    const dest = '/a/copy.qcow2';
    (await sim.createDestination({ path: dest, format: 'qcow2', virtualSize: SIZE, backing: null }))._unsafeUnwrap();
    const s = spec({ jobId: 'copy-vda', domain: 'vm', disk: 'vda', destination: { path: dest, format: 'qcow2' } });
    (await sim.startMirror(s))._unsafeUnwrap();
    expect((await sim.listDisks('vm'))._unsafeUnwrap()![0]!.job).toEqual({
      jobId: 'copy-vda',
      type: 'mirror',
      status: 'running',
      offset: 0,
      len: SIZE,
    });
    await clock.runUntil(() => sim.listJobs()[0]?.status === 'ready', 60_000);
    (await sim.completeJob('copy-vda'))._unsafeUnwrap();
    await clock.runUntil(() => sim.listJobs()[0]?.status === 'concluded', 60_000);
    const [after] = (await sim.listDisks('vm'))._unsafeUnwrap()!;
    expect(after).toMatchObject({ disk: 'vda', device: 'vda', nodeName: 'copy-vda-dst', source: dest, job: null });
    expect(after!.chain.map((i) => i.path)).toEqual([dest]);
  });

  it('job length is the virtual size for a full copy of a sparse chain, the top layer for a shallow one', async () => {
    const clock = new VirtualClock();
    const sparse = vmDisk('device', '/a', SIZE, { top: 2 * MiB, mid: 0 });
    const sim = new SimulatedHypervisor({
      clock,
      domains: [
        {
          name: 'vm',
          disks: [{ ...sparse, chain: sparse.chain.map((l, i) => (i === 2 ? { ...l, allocated: 4 * MiB } : l)) }],
        },
      ],
    });
    for (const [id, sync] of [
      ['full', 'full'],
      ['top', 'top'],
    ] as const) {
      const dest = `/a/${id}.qcow2`;
      (await sim.createDestination({ path: dest, format: 'qcow2', virtualSize: SIZE, backing: null }))._unsafeUnwrap();
      (
        await sim.startMirror(
          spec({ jobId: id, domain: 'vm', disk: 'vda', sync, speed: 1, destination: { path: dest, format: 'qcow2' } }),
        )
      )._unsafeUnwrap();
      expect((await sim.queryJob(id))._unsafeUnwrap()?.len, sync).toBe(sync === 'full' ? SIZE : 2 * MiB);
      (await sim.cancelJob(id, true))._unsafeUnwrap();
      await clock.advance(0);
      (await sim.dismissJob(id))._unsafeUnwrap();
    }
  });

  it("blockdev-mirror's granularity, buf-size and copy-mode are checked as QEMU 7.2 does", async () => {
    const clock = new VirtualClock();
    const sim = new SimulatedHypervisor({ clock, domains: [{ name: 'vm', disks: [vmDisk('device', '/a', SIZE)] }] });
    const qmp = new SimQmp(sim);
    (
      await sim.createDestination({ path: '/a/dst.qcow2', format: 'qcow2', virtualSize: SIZE, backing: null })
    )._unsafeUnwrap();
    (
      await qmp.execute('blockdev-add', {
        driver: 'qcow2',
        'node-name': 'd',
        file: { driver: 'file', filename: '/a/dst.qcow2' },
      })
    )._unsafeUnwrap();
    const mirror = (extra: Record<string, unknown>) =>
      qmp.execute('blockdev-mirror', { 'job-id': 'j', device: 'snap2', target: 'd', sync: 'full', ...extra });
    // Measured against qemu-storage-daemon 7.2.22 (see the conformance README section).
    const refusals: [Record<string, unknown>, string][] = [
      [{ granularity: 256 }, "Parameter 'granularity' expects a value in range [512B, 64MB]"],
      [{ granularity: 128 * MiB }, "Parameter 'granularity' expects a value in range [512B, 64MB]"],
      [{ granularity: 1000 }, "Parameter 'granularity' expects a power of 2"],
      [{ granularity: -512 }, "Parameter 'granularity' expects uint32_t"],
      [{ granularity: 2 ** 32 }, "Parameter 'granularity' expects uint32_t"],
      [{ 'buf-size': -1 }, "Invalid parameter 'buf-size'"],
      [{ 'copy-mode': 'bogus' }, "Parameter 'copy-mode' does not accept value 'bogus'"],
      [{ granularity: 1000, speed: -1 }, "Parameter 'granularity' expects a power of 2"],
      [{ speed: -1, 'buf-size': -1 }, "Invalid parameter 'buf-size'"],
    ];
    for (const [extra, desc] of refusals)
      expect((await mirror(extra))._unsafeUnwrapErr(), JSON.stringify(extra)).toEqual({ class: 'GenericError', desc });
    for (const extra of [
      { granularity: 512 },
      { granularity: 64 * MiB },
      { 'buf-size': 0 },
      { 'buf-size': 1 },
      { 'copy-mode': 'write-blocking' },
    ]) {
      expect((await mirror(extra)).isOk(), JSON.stringify(extra)).toBe(true);
      (await qmp.execute('job-cancel', { id: 'j' }))._unsafeUnwrap();
      await clock.advance(0); // the cancel ends in a deferred step
      (await qmp.execute('job-dismiss', { id: 'j' }))._unsafeUnwrap();
    }
  });
});
