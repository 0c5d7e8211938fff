/**
 * For tests and benchmarks: starts libvirtd (and virtlogd) as libvirt-rpc.md §2 does without
 * systemd, only when they are not already running, and stops only what it started, by pid.
 * Also kills and restarts libvirtd for the restart-recovery tests.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const LIBVIRTD_PIDFILE = '/run/libvirtd.pid';
export const VIRTLOGD_PIDFILE = '/run/virtlogd.pid';
export const SOCKET = '/var/run/libvirt/libvirt-sock';
/**
 * Test files run in parallel: each process using the daemons registers its pid here, and the
 * daemons a file started are stopped by the last live user, never under another file's feet.
 */
const USERS_DIR = '/run/blockcopy-libvirt-users';
const STARTED_FILE = join(USERS_DIR, 'started');

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
  mkdirSync(USERS_DIR, { recursive: true });
  writeFileSync(join(USERS_DIR, String(process.pid)), '');
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
  if (started.length > 0) writeFileSync(STARTED_FILE, [...new Set([...startedBySuite(), ...started])].join('\n'));
  return started;
}

function startedBySuite(): string[] {
  return existsSync(STARTED_FILE) ? readFileSync(STARTED_FILE, 'utf8').split('\n').filter(Boolean) : [];
}

/** Other live processes that registered as users (stale entries of dead ones are removed). */
function otherUsers(): number[] {
  const pids: number[] = [];
  for (const name of existsSync(USERS_DIR) ? readdirSync(USERS_DIR) : []) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
      pids.push(pid);
    } catch {
      rmSync(join(USERS_DIR, name), { force: true });
    }
  }
  return pids;
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

export async function stopStarted(startedHere: readonly string[]): Promise<void> {
  rmSync(join(USERS_DIR, String(process.pid)), { force: true });
  // Another file still uses the daemons: the last one out stops what any of them started.
  if (otherUsers().length > 0) return;
  const started = [...new Set([...startedBySuite(), ...startedHere])];
  rmSync(STARTED_FILE, { force: true });
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
