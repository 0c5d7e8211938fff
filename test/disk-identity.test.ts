import { describe, expect, it } from 'vitest';
import { namesOf, resolveDisk } from '../src/core/disk-identity.js';
import type { DiskNames } from '../src/core/hypervisor-port.js';

const img = (path: string, backing: string | null) => ({
  path,
  format: 'qcow2' as const,
  virtualSize: 1 << 20,
  backing: backing ? { path: backing, format: 'qcow2' as const } : null,
});

/** A blockdev VM disk, a legacy -drive disk, and a storage-daemon export. */
const vda: DiskNames = {
  domain: 'vm',
  disk: 'vda',
  device: 'vda',
  drive: null,
  nodeName: 'snap2',
  exportId: null,
  source: '/img/snap2.qcow2',
  chain: [
    img('/img/snap2.qcow2', '/img/snap1.qcow2'),
    img('/img/snap1.qcow2', '/img/base.qcow2'),
    img('/img/base.qcow2', null),
  ],
  job: null,
};
const drive0: DiskNames = {
  domain: 'vm',
  disk: 'drive0',
  device: null,
  drive: 'drive0',
  nodeName: '#block156',
  exportId: null,
  source: '/img/legacy.qcow2',
  chain: [img('/img/legacy.qcow2', null)],
  job: null,
};
const exp0: DiskNames = {
  domain: 'vm',
  disk: 'exp0',
  device: null,
  drive: null,
  nodeName: 'top',
  exportId: 'exp0',
  source: '/img/top.qcow2',
  chain: [img('/img/top.qcow2', null)],
  job: null,
};
const disks = [vda, drive0, exp0];

describe('resolveDisk', () => {
  it.each([
    ['vda', 'vda'],
    ['snap2', 'vda'],
    ['/img/snap2.qcow2', 'vda'],
    ['/img/./x/../snap2.qcow2', 'vda'],
    ['drive0', 'drive0'],
    ['#block156', 'drive0'],
    ['/img/legacy.qcow2', 'drive0'],
    ['exp0', 'exp0'],
    ['top', 'exp0'],
  ])('%s names disk %s', (typed, disk) => {
    expect(resolveDisk(disks, typed)._unsafeUnwrap().disk).toBe(disk);
  });

  it('prefers a device id over another disk’s node name', () => {
    const clash: DiskNames = { ...drive0, disk: 'drive1', drive: 'drive1', nodeName: 'vda', source: '/img/o.qcow2' };
    expect(resolveDisk([clash, vda], 'vda')._unsafeUnwrap().disk).toBe('vda');
  });

  it.each([
    ['snap1', ''],
    ['VDA', ''],
    ['/img/snap1.qcow2', " ('/img/snap1.qcow2' is a backing image of disk 'vda', not a disk)"],
    ['', ''],
  ])('refuses %j with VIR_ERR_INVALID_ARG and the names that work', (typed, hint) => {
    const e = resolveDisk(disks, typed)._unsafeUnwrapErr();
    expect(e.code).toBe('VIR_ERR_INVALID_ARG');
    expect(e.number).toBe(8);
    expect(e.message).toBe(
      `invalid argument: disk '${typed}' not found in domain${hint}; names that work: ` +
        'vda, snap2, /img/snap2.qcow2; drive0, #block156, /img/legacy.qcow2; exp0, top, /img/top.qcow2',
    );
  });

  it('says when the domain has no disks', () => {
    expect(resolveDisk([], 'vda')._unsafeUnwrapErr().message).toBe(
      "invalid argument: disk 'vda' not found in domain; the domain has no disks",
    );
  });

  it('lists each name once, canonical first', () => {
    expect(namesOf({ ...exp0, disk: 'top', exportId: 'top' })).toEqual(['top', '/img/top.qcow2']);
  });

  it('normalizes paths segment by segment: doubled slashes and dot segments, never across a slash', () => {
    expect(resolveDisk(disks, '//img//snap2.qcow2')._unsafeUnwrap().disk).toBe('vda');
    // Joined without the slash, '/im/gsnap2.qcow2' would read as '/img/snap2.qcow2'.
    expect(resolveDisk(disks, '/im/gsnap2.qcow2').isErr()).toBe(true);
  });

  it('an absolute path that is no image of the domain gets no backing-image hint', () => {
    expect(resolveDisk(disks, '/img/other.qcow2')._unsafeUnwrapErr().detail).toBe(
      "disk '/img/other.qcow2' not found in domain; names that work: " +
        'vda, snap2, /img/snap2.qcow2; drive0, #block156, /img/legacy.qcow2; exp0, top, /img/top.qcow2',
    );
  });

  it('a relative path is compared with nothing but ids (libvirt: a name not starting with / is a target)', () => {
    // QEMU may report relative file names (a storage daemon started in its directory).
    const rel: DiskNames = {
      ...vda,
      nodeName: null,
      source: 'snap2.qcow2',
      chain: [img('snap2.qcow2', 'snap1.qcow2'), img('snap1.qcow2', null)],
    };
    for (const typed of ['snap2.qcow2', 'snap1.qcow2']) {
      const e = resolveDisk([rel], typed)._unsafeUnwrapErr();
      expect(e.detail).toBe(`disk '${typed}' not found in domain; names that work: vda, snap2.qcow2`);
    }
    // An absolute path is not a relative source made absolute.
    expect(resolveDisk([rel], '/snap2.qcow2').isErr()).toBe(true);
  });

  it("leaves out empty names (QEMU's query-block device '' for a -blockdev disk)", () => {
    expect(namesOf({ ...vda, drive: '' })).toEqual(['vda', 'snap2', '/img/snap2.qcow2']);
  });
});
