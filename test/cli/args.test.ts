/** The CLI's argument rules and messages, as virsh blockcopy's (tools/virsh-domain.c cmdBlockcopy). */
import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../src/cli/args.js';
import type { CopyCommand } from '../../src/cli/args.js';
import { copyCall } from '../../src/cli/copy-call.js';
import { CopyFlags, RebaseFlags } from '../../src/core/flags.js';

const DEST = '/var/lib/blockcopy/c.qcow2';
const copy = (...rest: string[]) => parseCommand(['copy', 'vda', DEST, ...rest]);
const copyCmd = (...rest: string[]) => copy(...rest)._unsafeUnwrap() as CopyCommand;
const usage = (...argv: string[]) => parseCommand(argv)._unsafeUnwrapErr();

describe('blockcopy copy arguments (virsh blockcopy rules)', () => {
  it('reads flags, bandwidth and the end mode', () => {
    const cmd = copyCmd('--shallow', '--reuse-external', '--raw', '--bandwidth', '10', '--pivot', '--verbose');
    expect(cmd).toMatchObject({
      command: 'copy',
      disk: 'vda',
      destination: DEST,
      shallow: true,
      reuseExternal: true,
      format: 'raw',
      bandwidth: 10,
      end: 'pivot',
      wait: true,
      verbose: true,
      hypervisor: undefined,
    });
  });

  it.each([
    [['--pivot', '--finish'], 'Options --pivot and --finish are mutually exclusive'],
    [['--async'], '--async requires at least one of --timeout, --wait, --pivot, or --finish'],
    [['--verbose'], '--verbose requires at least one of --timeout, --wait, --pivot, or --finish'],
    [['--verbose', '--async'], '--verbose requires at least one of --timeout, --wait, --pivot, or --finish'],
    [['--bandwidth=-5'], "Scaled numeric value '-5' for <--bandwidth> option is malformed or out of range"],
    [['--bandwidth', '1.5'], "Scaled numeric value '1.5' for <--bandwidth> option is malformed or out of range"],
    [['--bandwidth', '10Q'], "Scaled numeric value '10Q' for <--bandwidth> option is malformed or out of range"],
    [
      ['--bandwidth', '18446744073709551616'],
      "Scaled numeric value '18446744073709551616' for <--bandwidth> option is malformed or out of range",
    ],
    [['--timeout', '0'], "Numeric value '0' for <timeout> option is malformed or out of range"],
    [['--timeout', 'soon'], "Numeric value 'soon' for <timeout> option is malformed or out of range"],
    [['--timeout', '2147484'], "Numeric value '2147484' for <timeout> option is malformed or out of range"],
    [['--granularity', '-1'], "Numeric value '-1' for <granularity> option is malformed or out of range"],
    [
      ['--granularity', '4294967296'],
      "Numeric value '4294967296' for <granularity> option is malformed or out of range",
    ],
    [['--buf-size', '0x10'], "Numeric value '0x10' for <buf-size> option is malformed or out of range"],
    [
      ['--on-target-error', 'explode', '--wait'],
      "--on-target-error expects report, stop, ignore or enospc, got 'explode'",
    ],
    [['--frobnicate'], "command 'copy' doesn't support option --frobnicate"],
    [['-x'], "command 'copy' doesn't support option -x"],
    [['--pivot=yes'], "invalid '=' after option --pivot"],
    [['--raw=1'], "invalid '=' after option --raw"],
    [['--bandwidth'], 'expected syntax: --bandwidth <number>'],
    [['--domain'], 'expected syntax: --domain <string>'],
    [['--raw', '--format', 'qcow2'], 'option --format already seen'],
    [['--wait', '--wait'], 'option --wait already seen'],
    [['extra'], "unexpected data 'extra'"],
    [['--inspect-keep', '--wait'], '--inspect-keep requires --inspect'],
    // cmdBlockcopy: a MiB/s bandwidth must fit the new API's bytes/s parameter.
    [['--bandwidth', '17592186044416', '--granularity', '65536'], 'bandwidth must be less than 17592186044415'],
  ])("refuses %j with virsh's message", (args, message) => {
    expect(copy(...args)._unsafeUnwrapErr()).toEqual({ command: 'copy', error: { message } });
  });

  it('names the missing positional argument', () => {
    expect(usage('copy').error.message).toBe("command 'copy' requires <disk> option");
    expect(usage('copy', 'vda').error.message).toBe("command 'copy' requires <dest> option");
  });

  it('--help and -h win over everything else, as in virsh', () => {
    expect(parseCommand(['copy', '--help'])._unsafeUnwrap()).toEqual({ command: 'help', topic: 'copy' });
    expect(parseCommand(['copy', '-h', '--frobnicate'])._unsafeUnwrap()).toEqual({ command: 'help', topic: 'copy' });
    expect(parseCommand(['help', 'copy'])._unsafeUnwrap()).toEqual({ command: 'help', topic: 'copy' });
    expect(parseCommand([])._unsafeUnwrap()).toEqual({ command: 'help', topic: null });
    expect(parseCommand(['--version'])._unsafeUnwrap()).toEqual({ command: 'version' });
  });

  it('--timeout, --pivot, --finish and --wait make --async and --verbose legal', () => {
    expect(copyCmd('--async', '--timeout', '5')).toMatchObject({ async: true, timeout: 5, wait: true });
    expect(copyCmd('--verbose', '--wait')).toMatchObject({ verbose: true, end: null, wait: true });
    expect(copyCmd('--async', '--finish')).toMatchObject({ async: true, end: 'finish', wait: true });
  });

  it('reads --bandwidth as virsh does: MiB/s, bytes/s with --bytes, a suffix is bytes', () => {
    expect(copyCmd('--bandwidth', '10').bandwidth).toBe(10);
    expect(copyCmd('--bandwidth', '10', '--bytes').bandwidth).toBe(10);
    expect(copyCmd('--bandwidth', '512M').bandwidth).toBe(512);
    expect(copyCmd('--bandwidth', '1GiB').bandwidth).toBe(1024);
    expect(copyCmd('--bandwidth', '1k', '--bytes').bandwidth).toBe(1024);
    expect(copyCmd('--bandwidth', '1KB', '--bytes').bandwidth).toBe(1000);
    expect(copyCmd('--bandwidth=+7').bandwidth).toBe(7);
  });

  it('passes diagram, inspect and replay arguments through; unknown commands are usage errors', () => {
    expect(parseCommand(['replay', 'x.jsonl', '--json'])._unsafeUnwrap()).toEqual({
      command: 'replay',
      argv: ['x.jsonl', '--json'],
    });
    expect(usage('explode')).toEqual({ command: null, error: { message: "unknown command: 'explode'" } });
  });
});

describe('which libvirt API a copy uses (cmdBlockcopy)', () => {
  it('plain options: virDomainBlockRebase with COPY and the rebase flags', () => {
    expect(
      copyCall(copyCmd('--shallow', '--reuse-external', '--raw', '--blockdev', '--bandwidth', '3', '--bytes'), 'demo'),
    ).toEqual({
      api: 'virDomainBlockRebase',
      domain: 'demo',
      disk: 'vda',
      base: DEST,
      bandwidth: 3,
      flags:
        RebaseFlags.COPY |
        RebaseFlags.SHALLOW |
        RebaseFlags.REUSE_EXT |
        RebaseFlags.COPY_RAW |
        RebaseFlags.COPY_DEV |
        RebaseFlags.BANDWIDTH_BYTES,
      onTargetError: 'report',
    });
  });

  it.each([
    [['--granularity', '65536'], { granularity: 65536 }],
    [['--buf-size', '1048576'], { bufSize: 1048576 }],
    [['--format', 'qcow2'], {}],
    [['--transient-job'], {}],
    [['--synchronous-writes'], {}],
  ])('%j: virDomainBlockCopy with typed parameters in bytes', (args, params) => {
    const call = copyCall(copyCmd(...args, '--bandwidth', '2'), 'demo');
    expect(call).toMatchObject({ api: 'virDomainBlockCopy', params: { bandwidth: 2 * 1024 * 1024, ...params } });
  });

  it('virDomainBlockCopy flags and destination', () => {
    const call = copyCall(
      copyCmd(
        '--shallow',
        '--reuse-external',
        '--transient-job',
        '--synchronous-writes',
        '--format',
        'qcow2',
        '--bytes',
        '--bandwidth',
        '4096',
      ),
      'demo',
    );
    expect(call).toEqual({
      api: 'virDomainBlockCopy',
      domain: 'demo',
      disk: 'vda',
      destination: { path: DEST, format: 'qcow2', blockdev: false },
      params: { bandwidth: 4096 },
      flags: CopyFlags.SHALLOW | CopyFlags.REUSE_EXT | CopyFlags.TRANSIENT_JOB | CopyFlags.SYNCHRONOUS_WRITES,
      onTargetError: 'report',
    });
  });

  it('--raw alone stays on the old API (COPY_RAW), as in virsh', () => {
    expect(copyCall(copyCmd('--format', 'raw'), 'demo')).toMatchObject({
      api: 'virDomainBlockRebase',
      flags: RebaseFlags.COPY | RebaseFlags.COPY_RAW,
    });
  });
});
