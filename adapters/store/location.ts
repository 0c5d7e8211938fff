/**
 * Where the job store lives by default: /var/lib/blockcopy/jobs.db for root (as libvirt keeps
 * its status files under /var/lib or /run), $XDG_STATE_HOME/blockcopy/jobs.db otherwise
 * (~/.local/state/blockcopy/jobs.db when XDG_STATE_HOME is unset or relative). An absolute
 * BLOCKCOPY_STORE overrides both (as LIBVIRT_DEFAULT_URI does for the connection).
 */
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

export function defaultStorePath(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? -1): string {
  const chosen = env['BLOCKCOPY_STORE'];
  if (chosen && isAbsolute(chosen)) return chosen;
  if (uid === 0) return '/var/lib/blockcopy/jobs.db';
  const xdg = env['XDG_STATE_HOME'];
  const base = xdg && isAbsolute(xdg) ? xdg : join(env['HOME'] ?? homedir(), '.local', 'state');
  return join(base, 'blockcopy', 'jobs.db');
}
