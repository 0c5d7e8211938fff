/**
 * The flag and status values are libvirt's ABI (include/libvirt/libvirt-domain.h): a caller
 * passes libvirt's numbers, so each must be exactly libvirt's, not merely distinct.
 */
import { describe, expect, it } from 'vitest';
import {
  AbortFlags,
  BandwidthFlags,
  BlockJobStatus,
  BlockJobType,
  CopyFlags,
  flagNames,
  RebaseFlags,
} from '../../src/core/flags.js';

describe("libvirt's block-job ABI values", () => {
  it('virDomainBlockRebaseFlags', () => {
    expect(RebaseFlags).toEqual({
      SHALLOW: 1,
      REUSE_EXT: 2,
      COPY_RAW: 4,
      COPY: 8,
      RELATIVE: 16,
      COPY_DEV: 32,
      BANDWIDTH_BYTES: 64,
    });
  });

  it('virDomainBlockCopyFlags', () => {
    expect(CopyFlags).toEqual({ SHALLOW: 1, REUSE_EXT: 2, TRANSIENT_JOB: 4, SYNCHRONOUS_WRITES: 8 });
  });

  it('virDomainBlockJobAbortFlags and the bandwidth-in-bytes flag', () => {
    expect(AbortFlags).toEqual({ ASYNC: 1, PIVOT: 2 });
    expect(BandwidthFlags).toEqual({ BYTES: 1 });
  });

  it('virConnectDomainEventBlockJobStatus and virDomainBlockJobType', () => {
    expect(BlockJobStatus).toEqual({ COMPLETED: 0, FAILED: 1, CANCELED: 2, READY: 3 });
    expect(BlockJobType).toEqual({ UNKNOWN: 0, PULL: 1, COPY: 2, COMMIT: 3, ACTIVE_COMMIT: 4, BACKUP: 5 });
  });

  it('flagNames names the set bits, in the table order, and nothing for 0 or unknown bits', () => {
    expect(flagNames(RebaseFlags.COPY | RebaseFlags.SHALLOW, RebaseFlags)).toEqual(['SHALLOW', 'COPY']);
    expect(flagNames(AbortFlags.PIVOT, AbortFlags)).toEqual(['PIVOT']);
    expect(flagNames(0, RebaseFlags)).toEqual([]);
    expect(flagNames(1 << 20, RebaseFlags)).toEqual([]);
  });
});
