/**
 * Edges of the block-copy argument checks and planning that mutation testing found untested
 * (README, Verification: validate.ts survivors): the int32 spelling of bit 31, the raw
 * destination format, policies and keepDestinationBacking in both APIs, unknown typed parameters,
 * granularity at UINT_MAX, buf-size against LLONG_MAX and ULLONG_MAX, a rebase without COPY,
 * a disk busy with another job, a reused block device (COPY_DEV|REUSE_EXT) and the empty job's
 * progress. Each refusal by code, number and message; each acceptance by the request it makes.
 */
import type { Result } from 'neverthrow';
import { describe, expect, it } from 'vitest';
import type { BlockCopyError } from '../../src/core/errors.js';
import { errors } from '../../src/core/errors.js';
import { RebaseFlags } from '../../src/core/flags.js';
import type { DestinationProbe, HypervisorJobInfo } from '../../src/core/hypervisor-port.js';
import type { CopyFacts } from '../../src/core/plan.js';
import type { CopyArgs, RebaseArgs } from '../../src/core/validate.js';
import { planCopy, translateJobInfo, validateAbort, validateCopy, validateRebase } from '../../src/core/validate.js';

const GiB = 2 ** 30;

function errorOf<T>(result: Result<T, BlockCopyError>): { code: string; number: number; message: string } {
  if (result.isOk()) throw new Error(`expected an error, got ${JSON.stringify(result.value)}`);
  return { code: result.error.code, number: result.error.number, message: result.error.message };
}
function valueOf<T>(result: Result<T, BlockCopyError>): T {
  if (result.isErr()) throw new Error(`expected ok, got ${result.error.message}`);
  return result.value;
}

const rebase = (over: Partial<RebaseArgs>): RebaseArgs => ({
  domain: 'vm1',
  disk: 'vda',
  base: '/images/copy.qcow2',
  bandwidth: 0,
  flags: RebaseFlags.COPY,
  ...over,
});
const copy = (over: Partial<CopyArgs>): CopyArgs => ({
  domain: 'vm1',
  disk: 'vda',
  destination: { path: '/images/copy.qcow2' },
  flags: 0,
  ...over,
});

describe('flags as JS numbers', () => {
  it('INT_MIN is bit 31 as JS writes it (1 << 31): an unknown flag, not a bad number', () => {
    expect(errorOf(validateAbort(-(2 ** 31)))).toEqual({
      code: 'VIR_ERR_INVALID_ARG',
      number: 8,
      message: 'invalid argument: unsupported flags (0x80000000) in function virDomainBlockJobAbort',
    });
    expect(errorOf(validateAbort(-(2 ** 31) - 1))).toEqual({
      code: 'VIR_ERR_INVALID_ARG',
      number: 8,
      message: "invalid argument: flags must be an unsigned 32-bit integer, not '-2147483649'",
    });
  });
});

describe('validateRebase edges', () => {
  it('without COPY it is a block pull, not a copy request (whatever the base)', () => {
    for (const base of ['/images/base.qcow2', null])
      expect(errorOf(validateRebase(rebase({ flags: 0, base })))).toEqual({
        code: 'VIR_ERR_ARGUMENT_UNSUPPORTED',
        number: 74,
        message:
          'argument unsupported: block pull (virDomainBlockRebase without VIR_DOMAIN_BLOCK_REBASE_COPY) is not a copy request: validate it with validateRebasePull',
      });
  });

  it('checks the source-error policy as well as the target-error one', () => {
    expect(errorOf(validateRebase(rebase({ options: { onSourceError: 'panic' as never } })))).toEqual({
      code: 'VIR_ERR_INVALID_ARG',
      number: 8,
      message: "invalid argument: invalid on-source-error policy 'panic', expected one of report, stop, ignore, enospc",
    });
    expect(valueOf(validateRebase(rebase({ options: { onSourceError: 'stop' } })))).toMatchObject({
      onSourceError: 'stop',
      onTargetError: 'report',
    });
  });

  it('keepDestinationBacking: a boolean or refused; only true is carried into the request', () => {
    expect(errorOf(validateRebase(rebase({ options: { keepDestinationBacking: 'yes' as never } })))).toEqual({
      code: 'VIR_ERR_INVALID_ARG',
      number: 8,
      message: 'invalid argument: keepDestinationBacking must be a boolean',
    });
    expect(valueOf(validateRebase(rebase({ options: { keepDestinationBacking: true } }))).keepDestinationBacking).toBe(
      true,
    );
    expect(valueOf(validateRebase(rebase({ options: { keepDestinationBacking: false } })))).not.toHaveProperty(
      'keepDestinationBacking',
    );
    expect(valueOf(validateRebase(rebase({})))).not.toHaveProperty('keepDestinationBacking');
  });
});

describe('validateCopy edges', () => {
  it('a raw destination format is taken as given', () => {
    expect(valueOf(validateCopy(copy({ destination: { path: '/images/copy.raw', format: 'raw' } }))).format).toBe(
      'raw',
    );
    expect(errorOf(validateCopy(copy({ destination: { path: '/images/copy', format: 'vmdk' as never } })))).toEqual({
      code: 'VIR_ERR_INVALID_ARG',
      number: 8,
      message: "invalid argument: unsupported block copy target format 'vmdk'",
    });
  });

  it('a typed parameter the driver does not know is refused, not ignored', () => {
    expect(errorOf(validateCopy(copy({ params: { bandwidth: 1, speed: 5 } as never })))).toEqual({
      code: 'VIR_ERR_ARGUMENT_UNSUPPORTED',
      number: 74,
      message: "argument unsupported: parameter 'speed' not supported",
    });
  });

  it('granularity UINT_MAX fits an unsigned int: refused as not a power of two', () => {
    expect(errorOf(validateCopy(copy({ params: { granularity: 0xffffffff } })))).toEqual({
      code: 'VIR_ERR_INVALID_ARG',
      number: 8,
      message: 'invalid argument: granularity must be power of 2',
    });
    expect(errorOf(validateCopy(copy({ params: { granularity: 2 ** 32 } })))).toEqual({
      code: 'VIR_ERR_INVALID_ARG',
      number: 8,
      message: "invalid argument: invalid value '4294967296' for parameter 'granularity', expected an unsigned int",
    });
  });

  it('buf-size above LLONG_MAX is refused, unless the hypervisor checks it (up to ULLONG_MAX)', () => {
    const overflow = {
      code: 'VIR_ERR_INVALID_ARG',
      number: 8,
      message: "invalid argument: buf-size must be less than '9223372036854775807'",
    };
    expect(errorOf(validateCopy(copy({ params: { bufSize: 2 ** 63 } })))).toEqual(overflow);
    expect(valueOf(validateCopy(copy({ params: { bufSize: 2 ** 62 } }))).bufSize).toBe(2 ** 62);
    expect(valueOf(validateCopy(copy({ params: { bufSize: 2 ** 63 } }), { hypervisorLimits: true })).bufSize).toBe(
      2 ** 63,
    );
    // 2^64 does not fit a typed parameter at all.
    expect(errorOf(validateCopy(copy({ params: { bufSize: 2 ** 64 } }), { hypervisorLimits: true }))).toEqual(overflow);
  });

  it('checks the I/O error policies and keepDestinationBacking as validateRebase does', () => {
    expect(errorOf(validateCopy(copy({ options: { onTargetError: 'retry' as never } })))).toEqual({
      code: 'VIR_ERR_INVALID_ARG',
      number: 8,
      message: "invalid argument: invalid on-target-error policy 'retry', expected one of report, stop, ignore, enospc",
    });
    expect(errorOf(validateCopy(copy({ options: { keepDestinationBacking: 1 as never } }))).message).toBe(
      'invalid argument: keepDestinationBacking must be a boolean',
    );
    expect(valueOf(validateCopy(copy({ options: { onTargetError: 'enospc' } })))).toMatchObject({
      onTargetError: 'enospc',
      onSourceError: 'report',
    });
  });
});

describe('planCopy edges', () => {
  const top = { path: '/vm/disk.qcow2', format: 'qcow2' as const, virtualSize: GiB, backing: null };
  const facts = (over: Partial<CopyFacts>): CopyFacts => ({
    domain: { name: 'vm1', running: true, persistent: false, disks: ['vda'] },
    disk: { domain: 'vm1', disk: 'vda', chain: [top] },
    diskBusy: false,
    destination: { exists: false },
    ...over,
  });
  const request = (flags: number, base = '/dev/sdz') =>
    valueOf(validateRebase({ domain: 'vm1', disk: 'vda', base, bandwidth: 0, flags }));

  it('a disk busy with a job that is not a copy: OPERATION_UNSUPPORTED; with a copy: BLOCK_COPY_ACTIVE', () => {
    const req = request(RebaseFlags.COPY, '/images/copy.qcow2');
    expect(errorOf(planCopy(req, facts({ diskBusy: true, busyWithOther: true })))).toEqual({
      code: 'VIR_ERR_OPERATION_UNSUPPORTED',
      number: 84,
      message: "Operation not supported: disk 'vda' already in active block job",
    });
    expect(errorOf(planCopy(req, facts({ diskBusy: true })))).toEqual({
      code: errors.diskInCopyJob('vda').code,
      number: errors.diskInCopyJob('vda').number,
      message: errors.diskInCopyJob('vda').message,
    });
  });

  it('a reused block device (COPY_DEV|REUSE_EXT) is reused as it is, never formatted', () => {
    const device: DestinationProbe = {
      exists: true,
      kind: 'block',
      size: 2 * GiB,
      image: { path: '/dev/sdz', format: 'qcow2', virtualSize: GiB, backing: null },
      empty: true,
    };
    const plan = valueOf(
      planCopy(
        request(RebaseFlags.COPY | RebaseFlags.COPY_DEV | RebaseFlags.REUSE_EXT),
        facts({ destination: device }),
      ),
    );
    expect(plan.destinationAction).toBe('reuse');
    expect(plan.destination).toEqual({ path: '/dev/sdz', format: 'qcow2', type: 'block' });
    // Without REUSE_EXT the same device gets a fresh header.
    const formatted = valueOf(
      planCopy(request(RebaseFlags.COPY | RebaseFlags.COPY_DEV), facts({ destination: device })),
    );
    expect(formatted.destinationAction).toBe('format');
    expect(formatted.destination).toEqual({ path: '/dev/sdz', format: 'qcow2', type: 'block' });
  });
});

describe('translateJobInfo of an empty job', () => {
  const job = (over: Partial<HypervisorJobInfo>): HypervisorJobInfo => ({
    jobId: 'copy-vda',
    status: 'running',
    offset: 0,
    len: 0,
    speed: 0,
    ready: false,
    paused: false,
    ioStatus: 'ok',
    ...over,
  });
  it('0/0 is shown as 0/1, or 1/1 once ready; real progress as it is', () => {
    expect(valueOf(translateJobInfo(job({}), 0))).toEqual({ type: 2, bandwidth: 0, cur: 0, end: 1 });
    expect(valueOf(translateJobInfo(job({ ready: true }), 0))).toEqual({ type: 2, bandwidth: 0, cur: 1, end: 1 });
    expect(valueOf(translateJobInfo(job({ offset: 5, len: 10, ready: true }), 0))).toEqual({
      type: 2,
      bandwidth: 0,
      cur: 5,
      end: 10,
    });
  });
});
