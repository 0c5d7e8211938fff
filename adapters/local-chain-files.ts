/**
 * The chain-files port on local files with qemu-img (the QMP adapter's host): what the whole-chain
 * migration does beside the hypervisor. Files are made under a claim (a hidden hard link named
 * after the workflow id, as createDestination does) and linked into place with link(2), which
 * never replaces an existing file: a file that appears meanwhile is never overwritten.
 *
 * The copy is GNU cp (sparse-aware, reflink where the filesystem has it) into the claim's name,
 * then fsync, then link: the name appears only once the whole copy is on disk.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { err, ok, type ResultAsync } from 'neverthrow';
import type { ChainFiles, CompareResult, ImageHeader } from '../src/core/chain-files.js';
import type { HypervisorError, ImageFormat } from '../src/core/hypervisor-port.js';
import { type Res, invalid, ioError, wrap } from './hypervisor-results.js';
import { parseJson } from './local-images.js';
import { claimPath } from './qmp/qemu-adapter.js';

export interface LocalChainFilesOptions {
  readonly qemuImg?: string;
  readonly cp?: string;
  /** Per tool run (default 30 min: a copy of a large image). */
  readonly toolTimeoutMs?: number;
}

export class LocalChainFiles implements ChainFiles {
  readonly name = 'local';
  private readonly qemuImg: string;
  private readonly cp: string;
  private readonly timeoutMs: number;

  constructor(options: LocalChainFilesOptions = {}) {
    this.qemuImg = options.qemuImg ?? 'qemu-img';
    this.cp = options.cp ?? 'cp';
    this.timeoutMs = options.toolTimeoutMs ?? 30 * 60_000;
  }

  header(path: string): ResultAsync<ImageHeader | null, HypervisorError> {
    return wrap('qemu-img info', async () => {
      try {
        await fs.stat(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok(null);
        return err(ioError('stat', e));
      }
      const r = await this.tool('qemu-img info', this.qemuImg, ['info', '-U', '--output=json', path]);
      if (r.isErr()) return err(r.error);
      const j = parseJson(r.value) as Record<string, unknown> | undefined;
      const format = j?.['format'];
      const size = j?.['virtual-size'];
      if ((format !== 'qcow2' && format !== 'raw') || typeof size !== 'number')
        return err(invalid('qemu-img info', `'${path}' is not a qcow2 or raw image`));
      const name = j?.['backing-filename'];
      const bformat = j?.['backing-filename-format'];
      return ok({
        path,
        format,
        virtualSize: size,
        backingName: typeof name === 'string' ? name : null,
        backingFormat: bformat === 'qcow2' || bformat === 'raw' ? bformat : null,
      });
    });
  }

  isDirectory(path: string): ResultAsync<boolean, HypervisorError> {
    return wrap('stat', async () => {
      const st = await fs.stat(path).catch(() => null);
      return ok(st?.isDirectory() ?? false);
    });
  }

  exists(path: string): ResultAsync<boolean, HypervisorError> {
    return wrap('stat', async () => ok((await fs.lstat(path).catch(() => null)) !== null));
  }

  copyImage(from: string, to: string, claim: string): ResultAsync<void, HypervisorError> {
    return wrap('copyImage', () =>
      this.underClaim('copyImage', to, claim, (tmp) =>
        this.tool('cp', this.cp, ['--sparse=auto', '--reflink=auto', '--', from, tmp]),
      ),
    );
  }

  rebaseUnsafe(path: string, backingName: string, backingFormat: ImageFormat): ResultAsync<void, HypervisorError> {
    return wrap('qemu-img rebase', async () => {
      const r = await this.tool('qemu-img rebase', this.qemuImg, [
        'rebase',
        '-u',
        '-f',
        'qcow2',
        '-b',
        backingName,
        '-F',
        backingFormat,
        path,
      ]);
      return r.isErr() ? err(r.error) : ok(undefined);
    });
  }

  compare(a: string, b: string): ResultAsync<CompareResult, HypervisorError> {
    return wrap('qemu-img compare', async () => {
      // Exit 0: identical; 1: they differ; anything else: it could not compare.
      const r = await this.run(this.qemuImg, ['compare', '-U', a, b]);
      if (r.code === 0 || r.code === 1)
        return ok({ identical: r.code === 0, detail: (r.stdout + r.stderr).trim() || 'no output' });
      return err({ kind: 'io', command: 'qemu-img compare', desc: (r.stderr || r.stdout).trim().slice(0, 2000) });
    });
  }

  compareLayer(a: string, b: string, format: ImageFormat): ResultAsync<CompareResult, HypervisorError> {
    const alone = (path: string) =>
      format === 'qcow2'
        ? `json:${JSON.stringify({ driver: 'qcow2', backing: null, file: { driver: 'file', filename: path } })}`
        : path;
    return wrap('qemu-img compare', async () => {
      const r = await this.run(this.qemuImg, ['compare', '-U', '-f', format, '-F', format, alone(a), alone(b)]);
      if (r.code === 0 || r.code === 1)
        return ok({ identical: r.code === 0, detail: (r.stdout + r.stderr).trim() || 'no output' });
      return err({ kind: 'io', command: 'qemu-img compare', desc: (r.stderr || r.stdout).trim().slice(0, 2000) });
    });
  }

  createOverlay(
    path: string,
    backingName: string,
    backingFormat: ImageFormat,
    virtualSize: number,
    claim: string,
  ): ResultAsync<void, HypervisorError> {
    return wrap('qemu-img create', () =>
      this.underClaim('qemu-img create', path, claim, async (tmp) => {
        // The backing name is relative to the image's directory: create it there, under the claim.
        const r = await this.tool('qemu-img create', this.qemuImg, [
          'create',
          '-q',
          '-f',
          'qcow2',
          '-b',
          backingName,
          '-F',
          backingFormat,
          tmp,
          String(virtualSize),
        ]);
        return r.isErr() ? err({ ...r.error, desc: r.error.desc.split(tmp).join(path) }) : ok('');
      }),
    );
  }

  removeOwned(path: string, claim: string): ResultAsync<void, HypervisorError> {
    return wrap('removeOwned', async () => {
      const c = claimPath(path, claim);
      if (await sameFile(c, path)) {
        const r = await unlinkIfThere(path);
        if (r.isErr()) return r;
      }
      return unlinkIfThere(c);
    });
  }

  release(path: string, claim: string): ResultAsync<void, HypervisorError> {
    return wrap('release', () => unlinkIfThere(claimPath(path, claim)));
  }

  identity(path: string): ResultAsync<string | null, HypervisorError> {
    return wrap('stat', async () => {
      try {
        const st = await fs.lstat(path, { bigint: true });
        return ok(`${st.dev}:${st.ino}`);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok(null);
        return err(ioError('stat', e));
      }
    });
  }

  removeSource(path: string, identity: string): ResultAsync<'deleted' | 'missing' | 'changed', HypervisorError> {
    return wrap('removeSource', async () => {
      const now = await this.identity(path);
      if (now.isErr()) return err(now.error);
      if (now.value === null) return ok('missing' as const);
      if (now.value !== identity) return ok('changed' as const);
      const r = await unlinkIfThere(path);
      return r.isErr() ? err(r.error) : ok('deleted' as const);
    });
  }

  /**
   * Makes `to` by `make(tmp)` under the claim's name, fsyncs it and links it into place. A `to`
   * that already is the claim's file is a retry: done. Anything else at `to` is refused.
   */
  private async underClaim(command: string, to: string, claim: string, make: (tmp: string) => Res<string>): Res<void> {
    const c = claimPath(to, claim);
    if ((await fs.lstat(to).catch(() => null)) !== null) {
      if (await sameFile(c, to)) return ok(undefined);
      return err(invalid(command, `'${to}' exists and was not created by this migration`));
    }
    await fs.rm(c, { force: true }); // half-made by a run killed before its link
    const made = await make(c);
    if (made.isErr()) {
      await fs.rm(c, { force: true });
      return err(made.error);
    }
    try {
      const fh = await fs.open(c, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.link(c, to);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && !(await sameFile(c, to))) {
        await fs.rm(c, { force: true });
        return err(invalid(command, `'${to}' appeared while it was being created`));
      }
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        await fs.rm(c, { force: true });
        return err(ioError(command, e));
      }
    }
    return ok(undefined);
  }

  private async tool(command: string, bin: string, argv: readonly string[]): Res<string> {
    const r = await this.run(bin, argv);
    if (r.code === 0) return ok(r.stdout);
    return err({ kind: 'io', command, desc: (r.stderr.trim() || r.error || `exit ${r.code}`).slice(0, 2000) });
  }

  private run(
    bin: string,
    argv: readonly string[],
  ): Promise<{ code: number | null; stdout: string; stderr: string; error: string }> {
    return new Promise((resolve) => {
      execFile(bin, argv, { timeout: this.timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (e, stdout, stderr) => {
        const code = e ? (typeof e.code === 'number' ? e.code : null) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr), error: e ? e.message : '' });
      });
    });
  }
}

async function unlinkIfThere(path: string): Res<void> {
  try {
    await fs.unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return err(ioError('unlink', e));
  }
  return ok(undefined);
}

/** Both names are links to one inode. */
async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [x, y] = await Promise.all([fs.stat(a), fs.stat(b)]);
    return x.ino === y.ino && x.dev === y.dev;
  } catch {
    return false;
  }
}
