/**
 * What the durable commands (daemon, blockjob, list, copy --store) share: where the job store
 * and the daemon's socket are, opening the store with a clear refusal, and reaching the daemon.
 */
import { dirname, join } from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import { defaultStorePath } from '../../adapters/store/location.js';
import { openSqliteStore } from '../../adapters/store/sqlite.js';
import type { JobStore } from '../core/job-store.js';
import { callDaemon } from '../daemon/client.js';

export function storePath(option: string | undefined): string {
  return option ?? defaultStorePath();
}

/** --socket, else $BLOCKCOPY_SOCKET, else /run/blockcopy/control.sock for root; $XDG_RUNTIME_DIR/blockcopy/… or beside the store otherwise. */
export function socketPath(option: string | undefined, store: string): string {
  if (option !== undefined) return option;
  const env = process.env['BLOCKCOPY_SOCKET'];
  if (env) return env;
  if (process.getuid?.() === 0) return '/run/blockcopy/control.sock';
  const runtime = process.env['XDG_RUNTIME_DIR'];
  return runtime ? join(runtime, 'blockcopy', 'control.sock') : join(dirname(store), 'control.sock');
}

export function openStore(path: string): Result<JobStore, string> {
  const opened = openSqliteStore(path);
  return opened.isOk() ? ok(opened.value) : err(opened.error.message);
}

/** True when a daemon answers on the socket. */
export async function daemonRuns(socket: string): Promise<boolean> {
  return (await callDaemon(socket, 'ping', '-')) !== null;
}

/** The domain a hypervisor spec has when none is named: the simulator's 'demo', QEMU's 'qemu'. */
export function defaultDomainOf(hypervisor: string): string {
  return hypervisor === 'sim' ? 'demo' : 'qemu';
}
