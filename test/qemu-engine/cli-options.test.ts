/** virsh blockcopy's options from the command line to QEMU: the job QEMU runs has what was typed. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { captureOutput } from '../cli/capture.js';
import { useQemu } from '../qemu/harness.js';

const qemu = useQemu();

interface BlockJob {
  readonly device: string;
  readonly speed: number;
  readonly type: string;
}

describe('blockcopy copy options on QEMU', () => {
  it.each([
    // virDomainBlockCopy (granularity, buf-size, synchronous writes): MiB/s become bytes/s.
    [['--bandwidth', '3', '--granularity', '65536', '--buf-size', '1048576', '--synchronous-writes'], 3 * 1024 * 1024],
    // virDomainBlockRebase with BANDWIDTH_BYTES.
    [['--bandwidth', '524288', '--bytes'], 524288],
    // A scaled value is bytes/s, in MiB/s for the API.
    [['--bandwidth', '2M'], 2 * 1024 * 1024],
  ])('%j: QEMU runs the job at %d bytes/s', async (args, speed) => {
    const fx = qemu();
    const dest = join(fx.dir, 'options.qcow2');
    const out = captureOutput();
    const code = await main(['copy', '--hypervisor', `qmp:${fx.qmpSocket}`, 'vda', dest, '--json', ...args], out);
    expect(code).toBe(0);
    const report = JSON.parse(out.lines[0]!) as { left: { jobId: string } };
    const jobs = await fx.cmd<BlockJob[]>('query-block-jobs');
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ device: report.left.jobId, type: 'mirror', speed });
    await fx.cmd('block-job-cancel', { device: report.left.jobId, force: true });
  });
});
