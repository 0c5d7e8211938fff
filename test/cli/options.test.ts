/**
 * virsh blockcopy's options end to end through main() on the simulator (--dry-run --json): each
 * reaches the engine as virsh passes it to libvirt, and the engine's refusals come back as
 * libvirt errors with exit code 1.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { SignalSource } from '../../src/cli/interrupts.js';
import { main } from '../../src/cli/main.js';
import { captureOutput } from './capture.js';

const DEST = '/var/lib/blockcopy/options.qcow2';
const MiB = 1024 * 1024;

async function dryRun(...args: string[]) {
  const out = captureOutput();
  const code = await main(['copy', 'vda', DEST, '--hypervisor', 'sim', '--dry-run', '--json', ...args], out, {
    env: {},
    signals: new EventEmitter() as unknown as SignalSource,
  });
  return { code, report: JSON.parse(out.lines[0]!) as Record<string, any> };
}

describe('virsh blockcopy options reach the engine', () => {
  it.each([
    [['--bandwidth', '2'], 2 * MiB],
    [['--bandwidth', '4096', '--bytes'], 4096],
    [['--bandwidth', '1G'], 1024 * MiB],
    // Through virDomainBlockCopy: the MiB/s value becomes the bytes/s typed parameter.
    [['--bandwidth', '3', '--granularity', '65536'], 3 * MiB],
    [['--bandwidth', '5000', '--bytes', '--transient-job'], 5000],
  ])('%j: the plan runs at %d bytes/s', async (args, speed) => {
    const { code, report } = await dryRun(...args);
    expect(code).toBe(0);
    expect(report['plan'].speed).toBe(speed);
  });

  it('--granularity and --buf-size: in the plan (blockdev-mirror), absent when not given', async () => {
    const { code, report } = await dryRun('--granularity', '65536', '--buf-size', '1048576');
    expect(code).toBe(0);
    expect(report['plan']).toMatchObject({ granularity: 65536, bufSize: 1048576 });
    const plain = (await dryRun()).report['plan'] as Record<string, unknown>;
    expect(plain['granularity']).toBeUndefined();
    expect(plain['bufSize']).toBeUndefined();
  });

  it('--synchronous-writes: write-blocking copy mode', async () => {
    const { code, report } = await dryRun('--synchronous-writes');
    expect(code).toBe(0);
    expect(report['plan'].copyMode).toBe('write-blocking');
    expect((await dryRun()).report['plan'].copyMode).toBe('background');
  });

  it('--format raw and --raw: a raw destination; --format qcow2 a qcow2 one', async () => {
    expect((await dryRun('--raw')).report['plan'].destination).toEqual({ path: DEST, format: 'raw' });
    expect((await dryRun('--format', 'raw')).report['plan'].destination).toEqual({ path: DEST, format: 'raw' });
    expect((await dryRun('--format', 'qcow2')).report['plan'].destination).toEqual({ path: DEST, format: 'qcow2' });
  });

  it.each([
    [['--granularity', '3'], 'VIR_ERR_INVALID_ARG', 'invalid argument: granularity must be power of 2'],
    [
      ['--granularity', '256'],
      'VIR_ERR_INVALID_ARG',
      "invalid argument: Parameter 'granularity' expects a value in range [512B, 64MB]",
    ],
    [['--format', 'vmdk'], 'VIR_ERR_INVALID_ARG', "invalid argument: unsupported block copy target format 'vmdk'"],
    [
      ['--bandwidth', '8796093022208'],
      'VIR_ERR_OVERFLOW',
      'numerical overflow: bandwidth must be less than 8796093022207',
    ],
    // --blockdev is passed on (COPY_DEV, or destxml type='block'), never dropped: a block device
    // must exist (libvirt's words; the simulator has no device at this path).
    [['--blockdev'], 'VIR_ERR_SYSTEM_ERROR', `system error: missing destination file for disk vda: ${DEST}`],
    [
      ['--blockdev', '--transient-job'],
      'VIR_ERR_SYSTEM_ERROR',
      `system error: missing destination file for disk vda: ${DEST}`,
    ],
  ])('%j: the engine refuses as libvirt does, exit 1', async (args, code, message) => {
    const r = await dryRun(...args);
    expect(r.code).toBe(1);
    expect(r.report).toMatchObject({ status: 'failed', states: [], error: { code, message } });
  });
});
