/**
 * Loop devices for the COPY_DEV tests: a sparse file in the test's own directory attached with
 * `losetup -f --show` (root, as CI runs), detached again with `losetup -d` by the test's cleanup.
 * Only the devices made here are ever detached.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface LoopDevice {
  /** /dev/loopN */
  readonly path: string;
  /** The sparse file behind it. */
  readonly file: string;
  /** losetup -d; idempotent. */
  detach(): Promise<void>;
}

/** A loop device of exactly `size` bytes over a new sparse file `file`. */
export async function attachLoop(file: string, size: number): Promise<LoopDevice> {
  const fh = await fs.open(file, 'wx');
  try {
    await fh.truncate(size);
  } finally {
    await fh.close();
  }
  const { stdout } = await exec('losetup', ['-f', '--show', file]);
  const path = stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(path)) throw new Error(`losetup printed '${stdout}'`);
  let attached = true;
  return {
    path,
    file,
    async detach() {
      if (!attached) return;
      attached = false;
      await exec('losetup', ['-d', path]);
    },
  };
}

/** Detaches every device in `devices` (cleanup: one failure does not keep the others attached). */
export async function detachAll(devices: LoopDevice[]): Promise<void> {
  const errors: unknown[] = [];
  for (const d of devices.splice(0)) await d.detach().catch((e: unknown) => errors.push(e));
  if (errors.length > 0) throw new Error(`losetup -d failed: ${errors.map(String).join('; ')}`);
}
