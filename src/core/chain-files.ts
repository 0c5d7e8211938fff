/**
 * The chain-files port: what the whole-chain storage migration does to image files outside the
 * hypervisor (the seed's "management application also copies the backing files"): copy a backing
 * image, rewrite its backing name (`qemu-img rebase -u`), compare two images (`qemu-img compare`),
 * pre-create the new top, and remove only what it created. Two implementations: real files with
 * qemu-img (adapters/local-chain-files.ts) and the simulator's files (adapters/sim/chain-files.ts).
 *
 * Ownership: every file the migration creates is made under a claim (the workflow id): a hidden
 * hard link beside it, kept until release. A rerun after a crash tells "the file this migration
 * created" (same inode as its claim) from one that appeared meanwhile, which it never touches.
 * Every method is idempotent and returns a ResultAsync that never rejects.
 */
import type { ResultAsync } from 'neverthrow';
import type { HypervisorError, ImageFormat } from './hypervisor-port.js';

/** One image as `qemu-img info` reports it, with the backing name as written in its header. */
export interface ImageHeader {
  readonly path: string;
  readonly format: ImageFormat;
  readonly virtualSize: number;
  /** Backing name as written (relative or absolute); null without a backing file. */
  readonly backingName: string | null;
  readonly backingFormat: ImageFormat | null;
}

export interface CompareResult {
  readonly identical: boolean;
  /** qemu-img compare's message ("Images are identical.", "Content mismatch at offset …"). */
  readonly detail: string;
}

export interface ChainFiles {
  /** "local" or "sim". */
  readonly name: string;
  /** Header of one image; null when there is no such file. */
  header(path: string): ResultAsync<ImageHeader | null, HypervisorError>;
  /** True when `path` is an existing directory. */
  isDirectory(path: string): ResultAsync<boolean, HypervisorError>;
  /** True when `path` exists (any kind of file). */
  exists(path: string): ResultAsync<boolean, HypervisorError>;
  /**
   * Copies the image file `from` to `to` byte for byte, under `claim`. Never overwrites: an
   * existing `to` is fine only when it is this claim's file (a retry); otherwise an error.
   */
  copyImage(from: string, to: string, claim: string): ResultAsync<void, HypervisorError>;
  /** `qemu-img rebase -u`: writes `backingName` (format `backingFormat`) into the header. Idempotent. */
  rebaseUnsafe(path: string, backingName: string, backingFormat: ImageFormat): ResultAsync<void, HypervisorError>;
  /** `qemu-img compare` of what a guest reads through each image (its backing chain included). */
  compare(a: string, b: string): ResultAsync<CompareResult, HypervisorError>;
  /**
   * `qemu-img compare` of the two images' own layers, each opened without its backing file
   * (what is not allocated in a layer reads as zeros on both sides): a copy checked against its
   * original at the cost of reading the layer, not the whole chain under it.
   */
  compareLayer(a: string, b: string, format: ImageFormat): ResultAsync<CompareResult, HypervisorError>;
  /** `qemu-img create -f qcow2 -b backingName -F backingFormat`, under `claim`; never overwrites. */
  createOverlay(
    path: string,
    backingName: string,
    backingFormat: ImageFormat,
    virtualSize: number,
    claim: string,
  ): ResultAsync<void, HypervisorError>;
  /**
   * Removes `path` if this claim created it (and the claim itself, and a half-made file under the
   * claim's name); leaves a file someone else made. Idempotent: nothing there is fine.
   */
  removeOwned(path: string, claim: string): ResultAsync<void, HypervisorError>;
  /** Drops the claim; the file stays (the migration has handed it over to the guest). */
  release(path: string, claim: string): ResultAsync<void, HypervisorError>;
  /**
   * Which file is at `path` now (device and inode for local files), null when there is none:
   * recorded when the old chain is planned, so that `--delete-source` never deletes a file that
   * replaced it meanwhile.
   */
  identity(path: string): ResultAsync<string | null, HypervisorError>;
  /**
   * `--delete-source`: deletes the old chain's file at `path` if it still is the file `identity`
   * named when planned. Idempotent: 'missing' when there is nothing there (deleted before a
   * restart); 'changed' (nothing deleted) when another file took its place.
   */
  removeSource(path: string, identity: string): ResultAsync<'deleted' | 'missing' | 'changed', HypervisorError>;
}
