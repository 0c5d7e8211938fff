/**
 * What a recorded session tells about the copy it ran, read ahead from the whole trace before
 * replaying it: which job is replayed (the first `blockdev-mirror`/`drive-mirror`), the disk
 * (the mirror's `device` node and its backing chain from the recorded `blockdev-add`s), the
 * destination (the file behind the mirror's `target` node, or drive-mirror's file name), and the
 * copy request that the engine is given (shallow for sync=top, REUSE_EXT for a target that
 * existed, bandwidth, copy mode and error policy from the mirror's arguments).
 *
 * The recorder gave QEMU relative file names (its working directory); the replay reports them
 * under a fixed root, REPLAY_ROOT, because the engine only accepts absolute destinations.
 */
import { err, ok, type Result } from 'neverthrow';
import type { BackingRef, DestinationProbe, ImageFormat, ImageInfo, IoErrorPolicy } from '../core/hypervisor-port.js';
import { CopyFlags } from '../core/flags.js';
import type { CopyOptions } from '../core/validate.js';
import { commandOf, type TraceLine } from './trace.js';

export const REPLAY_ROOT = '/replay';
/** The domain a replayed QEMU process answers to (as the QMP adapter's default). */
export const REPLAY_DOMAIN = 'qemu';

export interface ReplaySetup {
  readonly domain: string;
  /** The replayed job: QEMU's job id, and the mirror command's index in the trace and id. */
  readonly jobId: string;
  readonly mirrorIndex: number;
  readonly mirrorCommand: string;
  /** The disk: the mirror's source node name (e.g. "snap2"). */
  readonly disk: string;
  /** The disk's chain, top first. */
  readonly chain: readonly ImageInfo[];
  readonly destination: { readonly path: string; readonly format: ImageFormat };
  readonly probe: DestinationProbe;
  /** virDomainBlockCopy arguments. */
  readonly flags: number;
  readonly bandwidth: number;
  readonly options: CopyOptions;
}

export interface ReplaySetupError {
  readonly detail: string;
}

type Args = Readonly<Record<string, unknown>>;

function absolute(name: string): string {
  return name.startsWith('/') ? name : `${REPLAY_ROOT}/${name}`;
}

function formatOf(driver: unknown): ImageFormat | null {
  return driver === 'qcow2' || driver === 'raw' ? driver : null;
}

function policy(v: unknown): IoErrorPolicy | undefined {
  return v === 'report' || v === 'stop' || v === 'ignore' || v === 'enospc' ? v : undefined;
}

interface CreatedImage {
  readonly format: ImageFormat;
  readonly backing: BackingRef | null;
  readonly size: number;
}

/** `qemu-img create -q -f FMT [-b B -F BF] FILE SIZE` from the recorder's notes. */
function createdImages(lines: readonly TraceLine[]): Map<string, CreatedImage> {
  const out = new Map<string, CreatedImage>();
  for (const line of lines) {
    if (line.kind !== 'note') continue;
    const cmd = (line.msg as Record<string, unknown> | null)?.['cmd'];
    if (typeof cmd !== 'string' || !cmd.startsWith('qemu-img create')) continue;
    const words = cmd.split(/\s+/).slice(2);
    const opt = (flag: string) => {
      const i = words.indexOf(flag);
      return i >= 0 ? words[i + 1] : undefined;
    };
    const positional = words.filter((w, i) => !w.startsWith('-') && !['-f', '-b', '-F'].includes(words[i - 1] ?? ''));
    const [file, size] = positional;
    const format = formatOf(opt('-f'));
    const backing = opt('-b');
    const backingFormat = formatOf(opt('-F'));
    if (file === undefined || size === undefined || format === null) continue;
    out.set(absolute(file), {
      format,
      size: Number(size),
      backing:
        backing !== undefined && backingFormat !== null ? { path: absolute(backing), format: backingFormat } : null,
    });
  }
  return out;
}

/** The virtual size of the disk: named-node query, else the target's creation, else a full mirror's length. */
function virtualSizeOf(
  lines: readonly TraceLine[],
  device: string,
  jobId: string,
  full: boolean,
  created: number | undefined,
): number | null {
  const namedQueries = new Set<string>();
  for (const line of lines) {
    const c = commandOf(line);
    if (c?.execute === 'query-named-block-nodes' && c.id !== null) namedQueries.add(c.id);
    if (line.kind !== 'return') continue;
    const m = line.msg as Record<string, unknown>;
    if (!namedQueries.has(String(m['id'])) || !Array.isArray(m['return'])) continue;
    for (const n of m['return'] as Record<string, unknown>[]) {
      const size = (n['image'] as Record<string, unknown> | undefined)?.['virtual-size'];
      if (n['node-name'] === device && typeof size === 'number') return size;
    }
  }
  if (created !== undefined && Number.isFinite(created)) return created;
  if (!full) return null;
  for (const line of lines) {
    if (line.kind !== 'event') continue;
    const m = line.msg as Record<string, unknown>;
    const d = (m['data'] ?? {}) as Record<string, unknown>;
    if (
      (m['event'] === 'BLOCK_JOB_READY' || m['event'] === 'BLOCK_JOB_COMPLETED') &&
      d['device'] === jobId &&
      typeof d['len'] === 'number'
    )
      return d['len'];
  }
  return null;
}

/** Reads the replayed copy's facts from the trace. */
export function deriveSetup(lines: readonly TraceLine[]): Result<ReplaySetup, ReplaySetupError> {
  const mirrorIndex = lines.findIndex((l) => {
    const c = commandOf(l);
    return c?.execute === 'blockdev-mirror' || c?.execute === 'drive-mirror';
  });
  if (mirrorIndex < 0) return err({ detail: 'the recording has no blockdev-mirror or drive-mirror command' });
  const mirror = commandOf(lines[mirrorIndex]!)!;
  if (mirror.id === null) return err({ detail: `the ${mirror.execute} command has no id` });
  const a = mirror.args;
  const device = typeof a['device'] === 'string' ? a['device'] : '';
  const jobId = typeof a['job-id'] === 'string' ? a['job-id'] : device;
  const target = typeof a['target'] === 'string' ? a['target'] : '';
  const sync = a['sync'] === 'top' ? 'top' : 'full';

  // The block graph as the recorder built it before the mirror.
  const nodes = new Map<string, Args>();
  for (const line of lines.slice(0, mirrorIndex)) {
    const c = commandOf(line);
    const name = c?.args['node-name'];
    if (c?.execute === 'blockdev-add' && typeof name === 'string') nodes.set(name, c.args);
  }
  // The protocol file under a format node, through filters (blkdebug's `image`) and inline children.
  const fileOf = (node: Args, depth = 0): string | null => {
    if (depth > 8) return null;
    if (typeof node['filename'] === 'string') return absolute(node['filename']);
    for (const key of ['file', 'image']) {
      const child = node[key];
      const args = typeof child === 'string' ? nodes.get(child) : child;
      if (typeof args === 'object' && args !== null && !Array.isArray(args)) {
        const found = fileOf(args as Args, depth + 1);
        if (found !== null) return found;
      }
    }
    return null;
  };

  const created = createdImages(lines);
  let destination: { path: string; format: ImageFormat };
  let existed: boolean;
  let targetBacking: BackingRef | null = null;
  if (mirror.execute === 'blockdev-mirror') {
    const node = nodes.get(target);
    const path = node ? fileOf(node) : null;
    const format = formatOf(node?.['driver']);
    if (!node || path === null || format === null)
      return err({ detail: `the mirror's target node '${target}' was not added as a qcow2/raw image` });
    destination = { path, format };
    existed = true;
    const b = node['backing'];
    const bNode = typeof b === 'string' ? nodes.get(b) : undefined;
    const bPath = bNode ? fileOf(bNode) : null;
    const bFormat = formatOf(bNode?.['driver']);
    if (bPath !== null && bFormat !== null) targetBacking = { path: bPath, format: bFormat };
  } else {
    destination = { path: absolute(target), format: formatOf(a['format']) ?? 'qcow2' };
    existed = a['mode'] === 'existing';
  }
  const made = created.get(destination.path);
  // The file's own header names its backing (what qemu-img create wrote), else the node's.
  if (made) targetBacking = made.backing;

  const virtualSize = virtualSizeOf(lines, device, jobId, sync === 'full', made?.size);
  if (virtualSize === null) return err({ detail: `cannot tell the virtual size of '${device}'` });

  const chain: ImageInfo[] = [];
  const seen = new Set<string>();
  for (let name: string | null = device; name !== null && !seen.has(name);) {
    seen.add(name);
    const node = nodes.get(name);
    const format = formatOf(node?.['driver']);
    const path = node ? fileOf(node) : null;
    if (!node || format === null || path === null) break;
    const b = node['backing'];
    const next = typeof b === 'string' ? nodes.get(b) : undefined;
    const nextPath = next ? fileOf(next) : null;
    const nextFormat = formatOf(next?.['driver']);
    chain.push({
      path,
      format,
      virtualSize,
      backing: nextPath !== null && nextFormat !== null ? { path: nextPath, format: nextFormat } : null,
    });
    name = typeof b === 'string' ? b : null;
  }

  const probe: DestinationProbe = existed
    ? {
        exists: true,
        kind: 'file',
        // A raw image's guest size is its file size; a fresh qcow2 file is small.
        size: destination.format === 'raw' ? (made?.size ?? virtualSize) : 196_624,
        image: {
          path: destination.path,
          format: destination.format,
          virtualSize: made?.size ?? virtualSize,
          backing: targetBacking,
        },
        empty: true,
      }
    : { exists: false };

  const speed = typeof a['speed'] === 'number' ? a['speed'] : 0;
  const onTargetError = policy(a['on-target-error']);
  const onSourceError = policy(a['on-source-error']);
  return ok({
    domain: REPLAY_DOMAIN,
    jobId,
    mirrorIndex,
    mirrorCommand: mirror.id,
    disk: device,
    chain,
    destination,
    probe,
    flags:
      (sync === 'top' ? CopyFlags.SHALLOW : 0) |
      (existed ? CopyFlags.REUSE_EXT : 0) |
      (a['copy-mode'] === 'write-blocking' ? CopyFlags.SYNCHRONOUS_WRITES : 0),
    bandwidth: speed,
    options: {
      ...(onTargetError ? { onTargetError } : {}),
      ...(onSourceError ? { onSourceError } : {}),
    },
  });
}
