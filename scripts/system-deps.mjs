// Before `npm test`: the real-QEMU, libvirt and browser tests need Debian's qemu-utils,
// qemu-system-common, qemu-system-x86, libvirt-daemon-system, libvirt-clients and chromium. Installs what is
// missing with apt-get when run as root (a fresh Debian machine, CI); otherwise says what to
// install and fails.
import { spawnSync } from 'node:child_process';

const needs = [
  { program: 'qemu-storage-daemon', pkg: 'qemu-system-common' },
  { program: 'qemu-img', pkg: 'qemu-utils' },
  { program: 'qemu-io', pkg: 'qemu-utils' },
  // The real-VM tests (test/qemu-vm) and `npm run bench:qemu -- --vm` run TCG virtual machines.
  { program: 'qemu-system-x86_64', pkg: 'qemu-system-x86' },
  { program: 'chromium', pkg: 'chromium' },
  // The COPY_DEV tests copy onto loop devices (losetup, as root).
  { program: 'losetup', pkg: 'mount' },
  // The libvirt tests start libvirtd themselves (test/libvirt/daemon.ts) and drive virsh.
  { program: 'libvirtd', pkg: 'libvirt-daemon-system' },
  { program: 'virsh', pkg: 'libvirt-clients' },
];
const has = (program) => spawnSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' }).status === 0;
const missing = [...new Set(needs.filter((n) => !has(n.program)).map((n) => n.pkg))];
if (missing.length === 0) process.exit(0);

const root = typeof process.getuid === 'function' && process.getuid() === 0;
if (!root || !has('apt-get')) {
  console.error(`The tests need these Debian packages: ${missing.join(' ')}`);
  console.error(`Install them with: sudo apt-get install -y ${missing.join(' ')}`);
  process.exit(1);
}
console.log(`Installing ${missing.join(' ')} with apt-get (needed by the real-QEMU and browser tests)…`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
for (const args of [
  ['update', '-qq'],
  ['install', '-y', '-qq', ...missing],
]) {
  const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
  if (r.status !== 0) {
    console.error(`apt-get ${args.join(' ')} failed (exit ${r.status})`);
    process.exit(1);
  }
}
