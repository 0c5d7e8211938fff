/**
 * Who holds a job's lease on this host: "<hostname>:<pid>:<process start time>". The start time
 * (from /proc) tells a live holder from a dead one whose pid was reused. A holder on another
 * host is judged by the lease expiry alone (a shared store, later), so a running engine renews
 * the lease of each of its jobs well before it runs out, however long the job takes.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { LeaseOwner } from '../core/job-store.js';

function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime), counted after the parenthesised command name, which may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/** How long a lease lasts from its last renewal (epoch ms). */
export const LEASE_MS = 60_000;
/** How often the engine looks for leases to renew: three chances before one runs out. */
export const RENEW_EVERY_MS = LEASE_MS / 4;

/** The lease is due for renewal: it ends within the next two renewal rounds (or was never set). */
export function leaseDue(leaseUntil: number | null, now: number): boolean {
  return leaseUntil === null || leaseUntil - now < 2 * RENEW_EVERY_MS;
}

export function localOwner(pid = process.pid): LeaseOwner {
  return { id: `${hostname()}:${pid}:${startTime(pid) ?? '0'}` };
}

/** False when the holder is provably gone (this host, process dead or pid reused) or the lease expired. */
export function ownerAlive(id: string | null, leaseUntil: number | null, now: number): boolean {
  if (id === null) return false;
  const [host, pid, start] = id.split(':');
  if (host === hostname() && pid !== undefined) {
    const current = startTime(Number(pid));
    return current !== null && current === start;
  }
  return leaseUntil !== null && leaseUntil > now;
}

/**
 * ownerAlive over many records: a holder on this host is judged once (one /proc read for all
 * the jobs of a dead process); one on another host, by each record's own lease expiry.
 */
export function ownersAlive(now: number): (id: string | null, leaseUntil: number | null) => boolean {
  const local = new Map<string, boolean>();
  return (id, leaseUntil) => {
    if (id === null || !id.startsWith(`${hostname()}:`)) return ownerAlive(id, leaseUntil, now);
    let alive = local.get(id);
    if (alive === undefined) {
      alive = ownerAlive(id, leaseUntil, now);
      local.set(id, alive);
    }
    return alive;
  };
}
