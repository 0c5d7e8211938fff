/**
 * Virtual sizes of a disk's backing images, remembered per file. libvirt's domain XML names the
 * backing chain but not its sizes, and a `qemu-img info` run costs a process start (tens to
 * hundreds of milliseconds on a loaded host) while a block copy starts in a few RPC round trips.
 * Backing images are read-only while in a chain, so a size read once stays true as long as the
 * file is the same: its inode, length and mtime are the key (a resize rewrites the header, which
 * changes the mtime), checked with one stat per image on every use. (The active image's size comes
 * from libvirt itself: virDomainGetBlockInfo.) Hand-written: a stat-keyed map is smaller than any
 * cache library's configuration.
 */
import { promises as fs } from 'node:fs';
import { err, ok } from 'neverthrow';
import { type Res, ioError } from '../hypervisor-results.js';
import { type LocalImages, parseJson } from '../local-images.js';

interface Known {
  readonly key: string;
  readonly virtualSize: number;
}

export class BackingSizes {
  private readonly known = new Map<string, Known>();

  constructor(private readonly images: LocalImages) {}

  /** Sizes of `paths` (a backing chain, nearest first), reading the images only when one changed. */
  async sizes(paths: readonly string[]): Res<number[]> {
    if (paths.length === 0) return ok([]);
    const keys = await Promise.all(paths.map((p) => statKey(p)));
    const cached = paths.map((p, i) => {
      const k = this.known.get(p);
      return k !== undefined && keys[i] !== null && k.key === keys[i] ? k.virtualSize : null;
    });
    if (cached.every((s) => s !== null)) return ok(cached);
    // One run reads the whole chain below the first image.
    const r = await this.images.tool('qemu-img info', ['info', '-U', '--backing-chain', '--output=json', paths[0]!]);
    if (r.isErr()) return err(r.error);
    const infos = parseJson(r.value);
    if (!Array.isArray(infos)) return err(ioError('qemu-img info', `unreadable output for '${paths[0]!}'`));
    const sizes: number[] = [];
    for (let i = 0; i < paths.length; i++) {
      const size = (infos[i] as Record<string, unknown> | undefined)?.['virtual-size'];
      if (typeof size !== 'number') return err(ioError('qemu-img info', `no size for '${paths[i]!}'`));
      sizes.push(size);
      const key = keys[i];
      if (key !== null && key !== undefined) this.known.set(paths[i]!, { key, virtualSize: size });
    }
    return ok(sizes);
  }
}

async function statKey(path: string): Promise<string | null> {
  try {
    const st = await fs.stat(path, { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
  } catch {
    return null;
  }
}
