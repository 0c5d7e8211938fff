/**
 * The chain-files port on the simulator's files (its ImageStore): copies, `qemu-img rebase -u`,
 * compares and overlays without bytes. Each layer carries a content token (an original image's
 * own path; a copy inherits its source's), and compare reads the tokens down both chains, as
 * `qemu-img compare` reads what a guest would. Fault hooks stand in for what real files do
 * (ENOSPC in the destination directory, a copy that comes out different).
 */
import { errAsync, okAsync, type ResultAsync } from 'neverthrow';
import { posix } from 'node:path';
import type { ChainFiles, CompareResult, ImageHeader } from '../../src/core/chain-files.js';
import type { HypervisorError, ImageFormat } from '../../src/core/hypervisor-port.js';
import type { SimulatedHypervisor } from './hypervisor.js';
import { makeImage } from './images.js';

export type ChainFileOperation =
  'copyImage' | 'rebaseUnsafe' | 'compare' | 'createOverlay' | 'removeOwned' | 'removeSource';

export class SimChainFiles implements ChainFiles {
  readonly name = 'sim';
  /** Path → the claim it was created under. */
  private readonly claims = new Map<string, string>();
  /** Path → backing name as written by rebase/create (relative names stay relative here). */
  private readonly names = new Map<string, string>();
  /** Path → content token. */
  private readonly content = new Map<string, string>();
  private readonly failures = new Map<ChainFileOperation, { desc: string; match?: string }>();
  private readonly corrupt = new Set<string>();
  /** Identities of image objects (identity()): a file put anew at a path gets a new one. */
  private readonly ids = new WeakMap<object, string>();
  private nextId = 0;
  /** Every call, in order ("copyImage /a -> /b"), for tests. */
  readonly log: string[] = [];

  constructor(private readonly sim: SimulatedHypervisor) {}

  /** The next call of `op` (on a path containing `match`, if given) fails with `desc`. */
  failNext(op: ChainFileOperation, desc: string, match?: string): void {
    this.failures.set(op, { desc, ...(match !== undefined ? { match } : {}) });
  }

  /** The copy made from `source` comes out different from it (a bad copy). */
  corruptCopyOf(source: string): void {
    this.corrupt.add(source);
  }

  /** The backing name written in the header, as `qemu-img info` shows it. */
  backingNameOf(path: string): string | null {
    return this.names.get(path) ?? this.sim.images.get(path)?.backing?.path ?? null;
  }

  header(path: string): ResultAsync<ImageHeader | null, HypervisorError> {
    const image = this.sim.images.get(path);
    if (image === undefined) return okAsync(null);
    return okAsync({
      path,
      format: image.format,
      virtualSize: image.virtualSize,
      backingName: this.backingNameOf(path),
      backingFormat: image.backing?.format ?? null,
    });
  }

  isDirectory(path: string): ResultAsync<boolean, HypervisorError> {
    return okAsync(this.sim.images.isDir(path));
  }

  exists(path: string): ResultAsync<boolean, HypervisorError> {
    return okAsync(this.sim.images.get(path) !== undefined || this.sim.images.isDir(path));
  }

  copyImage(from: string, to: string, claim: string): ResultAsync<void, HypervisorError> {
    this.log.push(`copyImage ${from} -> ${to}`);
    const refused = this.owned('copyImage', to, claim) ?? this.fault('copyImage', to);
    if (refused === 'done') return okAsync(undefined);
    if (refused) return errAsync(refused);
    const source = this.sim.images.get(from);
    if (source === undefined) return errAsync(io('cp', `cannot stat '${from}': No such file or directory`));
    if (!this.sim.images.isDir(posix.dirname(to)))
      return errAsync(io('cp', `cannot create regular file '${to}': No such file or directory`));
    this.sim.images.put(
      makeImage({
        path: to,
        format: source.format,
        virtualSize: source.virtualSize,
        backing: source.backing,
        allocated: source.allocated,
      }),
    );
    const name = this.names.get(from);
    if (name !== undefined) this.names.set(to, name);
    this.content.set(to, this.tokenOf(from) + (this.corrupt.has(from) ? '~bitflip' : ''));
    this.claims.set(to, claim);
    return okAsync(undefined);
  }

  rebaseUnsafe(path: string, backingName: string, backingFormat: ImageFormat): ResultAsync<void, HypervisorError> {
    this.log.push(`rebaseUnsafe ${path} ${backingName}`);
    const refused = this.fault('rebaseUnsafe', path);
    if (refused) return errAsync(refused);
    const image = this.sim.images.get(path);
    if (image === undefined) return errAsync(io('qemu-img rebase', `Could not open '${path}': No such file`));
    const resolved = posix.isAbsolute(backingName) ? backingName : posix.join(posix.dirname(path), backingName);
    this.sim.images.put({ ...image, backing: { path: resolved, format: backingFormat } });
    this.names.set(path, backingName);
    return okAsync(undefined);
  }

  compare(a: string, b: string): ResultAsync<CompareResult, HypervisorError> {
    this.log.push(`compare ${a} ${b}`);
    const refused = this.fault('compare', a);
    if (refused) return errAsync(refused);
    const ia = this.sim.images.get(a);
    const ib = this.sim.images.get(b);
    if (ia === undefined || ib === undefined)
      return errAsync(io('qemu-img compare', `Could not open '${ia === undefined ? a : b}'`));
    if (ia.virtualSize !== ib.virtualSize) return okAsync({ identical: false, detail: 'Image size mismatch!' });
    const ta = this.chainTokens(a).join('<');
    const tb = this.chainTokens(b).join('<');
    return okAsync(
      ta === tb
        ? { identical: true, detail: 'Images are identical.' }
        : { identical: false, detail: 'Content mismatch at offset 0!' },
    );
  }

  compareLayer(a: string, b: string, _format: ImageFormat): ResultAsync<CompareResult, HypervisorError> {
    this.log.push(`compareLayer ${a} ${b}`);
    const refused = this.fault('compare', a);
    if (refused) return errAsync(refused);
    const ia = this.sim.images.get(a);
    const ib = this.sim.images.get(b);
    if (ia === undefined || ib === undefined)
      return errAsync(io('qemu-img compare', `Could not open '${ia === undefined ? a : b}'`));
    if (ia.virtualSize !== ib.virtualSize) return okAsync({ identical: false, detail: 'Image size mismatch!' });
    return okAsync(
      this.tokenOf(a) === this.tokenOf(b)
        ? { identical: true, detail: 'Images are identical.' }
        : { identical: false, detail: 'Content mismatch at offset 0!' },
    );
  }

  createOverlay(
    path: string,
    backingName: string,
    backingFormat: ImageFormat,
    virtualSize: number,
    claim: string,
  ): ResultAsync<void, HypervisorError> {
    this.log.push(`createOverlay ${path} ${backingName}`);
    const refused = this.owned('qemu-img create', path, claim) ?? this.fault('createOverlay', path);
    if (refused === 'done') return okAsync(undefined);
    if (refused) return errAsync(refused);
    const resolved = posix.isAbsolute(backingName) ? backingName : posix.join(posix.dirname(path), backingName);
    if (this.sim.images.get(resolved) === undefined)
      return errAsync(io('qemu-img create', `Could not open backing file '${resolved}': No such file or directory`));
    this.sim.images.put(makeImage({ path, virtualSize, backing: { path: resolved, format: backingFormat } }));
    this.names.set(path, backingName);
    this.content.set(path, `new:${path}`);
    this.claims.set(path, claim);
    return okAsync(undefined);
  }

  removeOwned(path: string, claim: string): ResultAsync<void, HypervisorError> {
    this.log.push(`removeOwned ${path}`);
    const refused = this.fault('removeOwned', path);
    if (refused) return errAsync(refused);
    if (this.claims.get(path) === claim) {
      // As unlinking under QEMU would be a bug: refuse a file a job or a guest still uses.
      if (this.sim.jobWithTarget(path) !== null || this.sim.diskBusyWith(path) !== null || this.sim.diskWithTop(path))
        return errAsync(io('removeOwned', `'${path}' is still in use by the hypervisor`));
      this.sim.images.delete(path);
      this.claims.delete(path);
      this.names.delete(path);
      this.content.delete(path);
    }
    return okAsync(undefined);
  }

  release(path: string, claim: string): ResultAsync<void, HypervisorError> {
    if (this.claims.get(path) === claim) this.claims.delete(path);
    return okAsync(undefined);
  }

  /** A simulated file's identity: its path and the image object now stored there. */
  identity(path: string): ResultAsync<string | null, HypervisorError> {
    const image = this.sim.images.get(path);
    if (image === undefined) return okAsync(null);
    let id = this.ids.get(image);
    if (id === undefined) {
      id = `sim:${++this.nextId}`;
      this.ids.set(image, id);
    }
    return okAsync(id);
  }

  removeSource(path: string, identity: string): ResultAsync<'deleted' | 'missing' | 'changed', HypervisorError> {
    this.log.push(`removeSource ${path}`);
    const refused = this.fault('removeSource', path);
    if (refused) return errAsync(refused);
    return this.identity(path).map((now) => {
      if (now === null) return 'missing' as const;
      if (now !== identity) return 'changed' as const;
      this.sim.images.delete(path);
      this.names.delete(path);
      this.content.delete(path);
      return 'deleted' as const;
    });
  }

  private tokenOf(path: string): string {
    return this.content.get(path) ?? `orig:${path}`;
  }

  private chainTokens(path: string): string[] {
    const out: string[] = [];
    for (let p: string | undefined = path; p !== undefined && out.length < 64;) {
      out.push(this.tokenOf(p));
      p = this.sim.images.get(p)?.backing?.path;
    }
    return out;
  }

  /** 'done' when `path` is this claim's file already; an error when someone else's; else null. */
  private owned(command: string, path: string, claim: string): HypervisorError | 'done' | null {
    if (this.sim.images.get(path) === undefined) return null;
    if (this.claims.get(path) === claim) return 'done';
    return { kind: 'invalid', command, desc: `'${path}' exists and was not created by this migration` };
  }

  private fault(op: ChainFileOperation, path: string): HypervisorError | null {
    const f = this.failures.get(op);
    if (f === undefined || (f.match !== undefined && !path.includes(f.match))) return null;
    this.failures.delete(op);
    return io(op, f.desc);
  }
}

function io(command: string, desc: string): HypervisorError {
  return { kind: 'io', command, desc };
}
