/** `npm start` / `blockcopy demo` without QEMU: it runs on the simulator and says so in every output mode. */
import { describe, expect, it } from 'vitest';
import { runDemo } from '../../src/cli/demo.js';
import { SIMULATOR_NOTICE } from '../../src/cli/hypervisor.js';
import { captureOutput } from './capture.js';

describe('blockcopy demo without QEMU', () => {
  it('--json: stderr says the tools are missing and that this is the simulator; the report says "sim"', async () => {
    const path = process.env['PATH'];
    const out = captureOutput();
    let code: number;
    try {
      process.env['PATH'] = '/nonexistent';
      code = await runDemo({ command: 'demo', json: true, hypervisor: undefined }, out);
    } finally {
      process.env['PATH'] = path;
    }
    expect(code).toBe(0);
    expect(out.errors).toEqual([
      'blockcopy demo: qemu-storage-daemon, qemu-img, qemu-io not found on PATH',
      SIMULATOR_NOTICE,
    ]);
    expect(out.lines).toHaveLength(1);
    expect(JSON.parse(out.lines[0]!)).toMatchObject({
      status: 'completed',
      hypervisor: 'sim',
      guestReadsFrom: '/var/lib/blockcopy/vda-copy.qcow2',
    });
  });
});
