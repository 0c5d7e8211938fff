/**
 * For tests and benchmarks: starts libvirtd (and virtlogd) as libvirt-rpc.md §2 does without
 * systemd, only when they are not already running, and stops only what it started, by pid.
 * Also kills and restarts libvirtd for the restart-recovery tests.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

export const LIBVIRTD_PIDFILE = '/run/libvirtd.pid';
export const VIRTLOGD_PIDFILE = '/run/virtlogd.pid';
export const SOCKET = '/var/run/libvirt/libvirt-sock';

function pidFrom(file: string): number | null {
  if (!existsSync(file)) return null;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

export const libvirtdPid = () => pidFrom(LIBVIRTD_PIDFILE);

function daemonize(program: string): void {
  const r = spawnSync(program, ['-d'], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${program} -d failed (exit ${r.status}): ${String(r.stderr).trim()}`);
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Waits until libvirtd answers on its socket (virsh version), up to 60 s. */
export async function waitForLibvirtd(): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const r = spawnSync('virsh', ['-c', 'qemu:///system', 'version'], { stdio: 'ignore', timeout: 10_000 });
    if (r.status === 0) return;
    await sleep(100);
  }
  throw new Error('libvirtd did not answer on its socket within 60 s');
}

/** Starts what is missing; returns what it started (to be stopped by stopStarted). */
export async function ensureLibvirtd(): Promise<string[]> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0)
    throw new Error('the libvirt tests start libvirtd and need root (libvirt-rpc.md §2)');
  const started: string[] = [];
  if (pidFrom(VIRTLOGD_PIDFILE) === null) {
    daemonize('virtlogd');
    started.push('virtlogd');
  }
  if (libvirtdPid() === null) {
    daemonize('libvirtd');
    started.push('libvirtd');
  }
  await waitForLibvirtd();
  return started;
}

async function stopPid(pid: number, signal: NodeJS.Signals): Promise<void> {
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  for (let i = 0; i < 300; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await sleep(50);
  }
}

export async function stopStarted(started: readonly string[]): Promise<void> {
  if (started.includes('libvirtd')) {
    const pid = libvirtdPid();
    if (pid !== null) await stopPid(pid, 'SIGTERM');
  }
  if (started.includes('virtlogd')) {
    const pid = pidFrom(VIRTLOGD_PIDFILE);
    if (pid !== null) await stopPid(pid, 'SIGTERM');
  }
}

/** Kills libvirtd (SIGKILL, as a crash) and waits until it is gone; guests keep running. */
export async function killLibvirtd(): Promise<void> {
  const pid = libvirtdPid();
  if (pid === null) throw new Error('libvirtd is not running');
  await stopPid(pid, 'SIGKILL');
}

export async function startLibvirtd(): Promise<void> {
  daemonize('libvirtd');
  await waitForLibvirtd();
}
