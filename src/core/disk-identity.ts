/**
 * Disk identity: what a user typed → one canonical disk of the domain. A disk answers to its
 * device id (qdev id / libvirt target), its legacy drive id, its root node name, its NBD export
 * id, or its active image's path (as libvirt's virDomainDiskByName accepts a target or a source
 * path). Backing and internal nodes are not disks. Pure: the adapter lists, this decides.
 */
import { err, ok, type Result } from 'neverthrow';
import type { BlockCopyError } from './errors.js';
import { blockCopyError } from './errors.js';
import type { DiskNames } from './hypervisor-port.js';

/** Every name the disk answers to, canonical first, without duplicates. */
export function namesOf(d: DiskNames): string[] {
  const all = [d.disk, d.device, d.drive, d.nodeName, d.exportId, d.source];
  return [...new Set(all.filter((n): n is string => n !== null && n !== ''))];
}

/** Lexical path normalization (no IO): collapses '//', '/./' and '/../'. */
function normalizePath(p: string): string {
  if (!p.startsWith('/')) return p;
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return `/${out.join('/')}`;
}

/**
 * The disk `typed` names. Identifiers are matched exactly (QEMU ids are case-sensitive), in the
 * order device, drive, node, export, so that a name that is one disk's device id and another's
 * node name means the device; then the active image's path, normalized.
 */
export function resolveDisk<D extends DiskNames>(disks: readonly D[], typed: string): Result<D, BlockCopyError> {
  const fields = ['device', 'drive', 'nodeName', 'exportId'] as const;
  for (const field of fields) {
    const hit = disks.find((d) => d[field] === typed);
    if (hit) return ok(hit);
  }
  if (typed.startsWith('/')) {
    const want = normalizePath(typed);
    const hit = disks.find((d) => normalizePath(d.source) === want);
    if (hit) return ok(hit);
  }
  return err(notFound(disks, typed));
}

function notFound(disks: readonly DiskNames[], typed: string): BlockCopyError {
  const backingOf = typed.startsWith('/')
    ? disks.find((d) => d.chain.slice(1).some((i) => normalizePath(i.path) === normalizePath(typed)))
    : undefined;
  const hint = backingOf ? ` ('${typed}' is a backing image of disk '${backingOf.disk}', not a disk)` : '';
  const names =
    disks.length === 0
      ? 'the domain has no disks'
      : `names that work: ${disks.map((d) => namesOf(d).join(', ')).join('; ')}`;
  return blockCopyError('VIR_ERR_INVALID_ARG', `disk '${typed}' not found in domain${hint}; ${names}`);
}
