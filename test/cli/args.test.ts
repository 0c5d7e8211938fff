/** The CLI's argument rules, as virsh blockcopy's (libvirt-api.md §6.2). */
import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../src/cli/args.js';

const copy = (...rest: string[]) => parseCommand(['copy', 'vda', '/var/lib/blockcopy/c.qcow2', ...rest]);

describe('blockcopy copy arguments (virsh blockcopy rules)', () => {
  it('reads flags, bandwidth and the end mode', () => {
    const cmd = copy(
      '--shallow',
      '--reuse-external',
      '--raw',
      '--bandwidth',
      '10',
      '--pivot',
      '--verbose',
    )._unsafeUnwrap();
    expect(cmd).toMatchObject({
      command: 'copy',
      shallow: true,
      reuseExternal: true,
      raw: true,
      bandwidth: 10,
      end: 'pivot',
      wait: true,
      verbose: true,
      hypervisor: 'sim',
    });
  });

  it.each([
    [['--pivot', '--finish'], '--pivot and --finish are mutually exclusive'],
    [['--async'], '--async and --verbose need one of --wait, --timeout, --pivot or --finish'],
    [['--verbose'], '--async and --verbose need one of --wait, --timeout, --pivot or --finish'],
    [['--bandwidth=-5'], "--bandwidth expects a non-negative number, got '-5'"],
    [['--bandwidth', '1.5'], '--bandwidth expects a whole number of MiB/s'],
    [['--timeout', '0'], '--timeout expects a positive number of seconds'],
    [['--timeout', 'soon'], "--timeout expects a non-negative number, got 'soon'"],
    [
      ['--on-target-error', 'explode', '--wait'],
      "--on-target-error expects report, stop, ignore or enospc, got 'explode'",
    ],
  ])('refuses %j', (args, message) => {
    expect(copy(...args)._unsafeUnwrapErr().message).toBe(message);
  });

  it('refuses unknown options and a missing destination', () => {
    expect(copy('--frobnicate').isErr()).toBe(true);
    expect(parseCommand(['copy', 'vda']).isErr()).toBe(true);
    expect(parseCommand(['explode']).isErr()).toBe(true);
  });

  it('--timeout and --wait make --async legal', () => {
    expect(copy('--async', '--timeout', '5')._unsafeUnwrap()).toMatchObject({ async: true, timeout: 5, wait: true });
    expect(copy('--verbose', '--wait')._unsafeUnwrap()).toMatchObject({ verbose: true, end: null, wait: true });
  });

  it('passes diagram, inspect and replay arguments through', () => {
    expect(parseCommand(['replay', 'x.jsonl', '--json'])._unsafeUnwrap()).toEqual({
      command: 'replay',
      argv: ['x.jsonl', '--json'],
    });
    expect(parseCommand([])._unsafeUnwrap()).toEqual({ command: 'help' });
  });
});
