/**
 * One set of manners for every command: `--help`, `-h` and `blockcopy help COMMAND` print the
 * command's usage and exit 0; an unknown option is one line in virsh's words plus where the help
 * is, exit 2, and nothing runs; blockjob, like copy, never falls back to the simulator.
 */
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { captureOutput } from './capture.js';

const COMMANDS = [
  'copy',
  'domblklist',
  'demo',
  'blockjob',
  'blockpull',
  'list',
  'daemon',
  'migrate-storage',
  'replay',
  'inspect',
  'diagram',
];
const env = { env: {}, signals: { on: () => undefined, off: () => undefined } } as never;

describe('every command', () => {
  it.each(COMMANDS)('%s: --help, -h and help COMMAND print its usage, exit 0', async (command) => {
    for (const argv of [
      [command, '--help'],
      [command, '-h'],
      ['help', command],
      [command, '--bogus', '--help'],
    ]) {
      const out = captureOutput();
      expect(await main(argv, out, env), argv.join(' ')).toBe(0);
      expect(out.lines[0], argv.join(' ')).toMatch(new RegExp(`^usage: blockcopy ${command} `));
      expect(out.errors).toEqual([]);
    }
  });

  it.each(COMMANDS)('%s: an unknown option is one line and a pointer to the help, exit 2', async (command) => {
    const out = captureOutput();
    expect(await main([command, '--bogus'], out, env)).toBe(2);
    expect(out.errors).toEqual([
      `error: command '${command}' doesn't support option --bogus`,
      `see blockcopy ${command} --help`,
    ]);
    expect(out.lines).toEqual([]);
  });

  it('blockjob without a hypervisor is a usage error, not the simulator', async () => {
    const out = captureOutput();
    expect(await main(['blockjob', 'vda', '--info'], out, env)).toBe(2);
    expect(out.errors).toEqual([
      'error: blockjob needs a hypervisor: --hypervisor sim|qmp:SOCKET, --connect URI or the BLOCKCOPY_HYPERVISOR environment variable',
      'see blockcopy blockjob --help',
    ]);
  });
});
