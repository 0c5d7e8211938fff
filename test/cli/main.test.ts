/**
 * `blockcopy` as a user meets it through main(): help, --version, usage errors (one line plus
 * where the help is), the explicit hypervisor (--hypervisor or BLOCKCOPY_HYPERVISOR), the
 * simulator saying it is one in every output mode, and exit codes 0 / 1 / 2.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COPY_HELP, DEMO_HELP, DOMBLKLIST_HELP, USAGE } from '../../src/cli/help.js';
import { SIMULATOR_NOTICE } from '../../src/cli/hypervisor.js';
import type { SignalSource } from '../../src/cli/interrupts.js';
import { main } from '../../src/cli/main.js';
import { captureOutput } from './capture.js';

const DEST = '/var/lib/blockcopy/main-copy.qcow2';

async function run(argv: string[], env: Record<string, string> = {}) {
  const out = captureOutput();
  const signals = new EventEmitter() as unknown as SignalSource;
  const code = await main(argv, out, { env, signals });
  return { code, lines: out.lines, errors: out.errors };
}

const version = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

describe('blockcopy help and version', () => {
  it.each([[['copy', '--help']], [['copy', '-h']], [['help', 'copy']], [['copy', 'vda', '--frobnicate', '--help']]])(
    '%j prints the copy help on stdout and exits 0',
    async (argv) => {
      expect(await run(argv)).toEqual({ code: 0, lines: [COPY_HELP], errors: [] });
    },
  );

  it('the general help, and each command help', async () => {
    expect(await run([])).toEqual({ code: 0, lines: [USAGE], errors: [] });
    expect(await run(['--help'])).toEqual({ code: 0, lines: [USAGE], errors: [] });
    expect(await run(['domblklist', '--help'])).toEqual({ code: 0, lines: [DOMBLKLIST_HELP], errors: [] });
    expect(await run(['demo', '-h'])).toEqual({ code: 0, lines: [DEMO_HELP], errors: [] });
  });

  it('--version prints the package version', async () => {
    expect(await run(['--version'])).toEqual({ code: 0, lines: [version], errors: [] });
  });
});

describe('blockcopy usage errors: one line, then where the help is, exit 2', () => {
  it.each([
    [
      ['copy', 'vda'],
      ["error: command 'copy' requires <dest> option", 'see blockcopy copy --help'],
    ],
    [
      ['copy', 'vda', DEST, '--hypervisor', 'sim', '--pivot', '--finish'],
      ['error: Options --pivot and --finish are mutually exclusive', 'see blockcopy copy --help'],
    ],
    [
      ['copy', 'vda', DEST, '--hypervisor', 'sim', '--bandwidth', 'fast'],
      [
        "error: Scaled numeric value 'fast' for <--bandwidth> option is malformed or out of range",
        'see blockcopy copy --help',
      ],
    ],
    [['explode'], ["error: unknown command: 'explode'", 'see blockcopy --help']],
    [
      ['domblklist', 'extra'],
      ["error: unexpected data 'extra'", 'see blockcopy domblklist --help'],
    ],
  ])('%j', async (argv, errors) => {
    expect(await run(argv)).toEqual({ code: 2, lines: [], errors });
  });
});

describe('the hypervisor is explicit', () => {
  it('copy without --hypervisor or BLOCKCOPY_HYPERVISOR is a usage error naming both', async () => {
    expect(await run(['copy', 'vda', DEST, '--pivot'])).toEqual({
      code: 2,
      lines: [],
      errors: [
        'error: copy needs a hypervisor: --hypervisor sim|qmp:SOCKET, --connect URI or the BLOCKCOPY_HYPERVISOR environment variable',
        'see blockcopy copy --help',
      ],
    });
  });

  it.each([
    [{ option: 'bogus' }, "error: unknown hypervisor 'bogus' in --hypervisor: use sim or qmp:SOCKET"],
    [
      { env: 'qemu:///system' },
      "error: unknown hypervisor 'qemu:///system' in BLOCKCOPY_HYPERVISOR: use sim or qmp:SOCKET",
    ],
    [{ env: 'qmp:' }, 'error: BLOCKCOPY_HYPERVISOR qmp: needs a socket path, e.g. qmp:/run/qsd/qmp.sock'],
  ] as [{ option?: string; env?: string }, string][])('%j is a usage error', async (where, message) => {
    const argv = ['copy', 'vda', DEST, ...(where.option ? ['--hypervisor', where.option] : [])];
    const env: Record<string, string> = where.env ? { BLOCKCOPY_HYPERVISOR: where.env } : {};
    expect(await run(argv, env)).toEqual({ code: 2, lines: [], errors: [message, 'see blockcopy copy --help'] });
  });

  it('BLOCKCOPY_HYPERVISOR=sim picks the simulator, which says so on stderr and in --json', async () => {
    const r = await run(['copy', 'vda', DEST, '--dry-run', '--json'], { BLOCKCOPY_HYPERVISOR: 'sim' });
    expect(r.code).toBe(0);
    expect(r.errors).toEqual([SIMULATOR_NOTICE]);
    expect(r.lines).toHaveLength(1);
    expect(JSON.parse(r.lines[0]!)).toMatchObject({ status: 'planned', hypervisor: 'sim', states: [], left: null });
  });

  it('--hypervisor wins over BLOCKCOPY_HYPERVISOR, and plain output says it is the simulator too', async () => {
    const r = await run(['copy', 'vda', DEST, '--dry-run', '--hypervisor', 'sim'], {
      BLOCKCOPY_HYPERVISOR: 'qmp:/nonexistent/qmp.sock',
    });
    expect(r.code).toBe(0);
    expect(r.errors).toEqual([SIMULATOR_NOTICE]);
    expect(r.lines).toEqual([
      `Plan: full copy (whole chain flattened) of demo/vda (1.0 GiB) from /var/lib/blockcopy/snap2.qcow2 to ${DEST} (qcow2, create)`,
    ]);
  });

  it('a hypervisor that cannot be reached: the operation failed, exit 1', async () => {
    const r = await run(['copy', 'vda', DEST, '--hypervisor', 'qmp:/nonexistent/qmp.sock']);
    expect(r).toEqual({
      code: 1,
      lines: [],
      errors: [
        'error: cannot connect to qmp:/nonexistent/qmp.sock: /nonexistent/qmp.sock: connect ENOENT /nonexistent/qmp.sock',
      ],
    });
    const json = await run(['copy', 'vda', DEST, '--hypervisor', 'qmp:/nonexistent/qmp.sock', '--json']);
    expect(json.code).toBe(1);
    expect(json.errors).toEqual([]);
    expect(JSON.parse(json.lines[0]!)).toEqual({
      status: 'failed',
      pivoted: false,
      destinationConsistent: false,
      error: {
        code: 'VIR_ERR_OPERATION_FAILED',
        number: 9,
        message:
          'operation failed: cannot connect to qmp:/nonexistent/qmp.sock: /nonexistent/qmp.sock: connect ENOENT /nonexistent/qmp.sock',
      },
      states: [],
      hypervisor: 'qmp:/nonexistent/qmp.sock',
      left: null,
    });
  });

  it('a refused copy exits 1 with the libvirt error; the --json status agrees with its (empty) states', async () => {
    const r = await run(['copy', 'vdz', DEST, '--hypervisor', 'sim', '--pivot', '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.lines[0]!)).toMatchObject({
      status: 'failed',
      states: [],
      error: { code: 'VIR_ERR_INVALID_ARG', number: 8 },
    });
  });
});

describe('copy --inspect', () => {
  it('the inspector stops when the copy ends', async () => {
    const r = await run(['copy', 'vda', DEST, '--hypervisor', 'sim', '--pivot', '--inspect', '--json']);
    expect(r.code).toBe(0);
    expect(r.errors).toHaveLength(2);
    expect(r.errors[0]).toBe(SIMULATOR_NOTICE);
    expect(r.errors[1]).toMatch(/^inspector: http:\/\/127\.0\.0\.1:\d+\//);
    expect(JSON.parse(r.lines[0]!)).toMatchObject({ status: 'completed' });
  });

  it('--inspect-keep keeps serving after the copy, until Ctrl-C', async () => {
    const signals = new EventEmitter();
    const out = captureOutput();
    const error = (text: string) => out.error(text);
    let keptServing = false;
    const watching = {
      ...out,
      error: (text: string) => {
        error(text);
        if (text.startsWith('the copy has ended; the inspector keeps serving')) {
          keptServing = true;
          // The user looks at the page, then presses Ctrl-C.
          signals.emit('SIGINT');
        }
      },
    };
    const code = await main(
      ['copy', 'vda', DEST, '--hypervisor', 'sim', '--pivot', '--inspect', '--inspect-keep'],
      watching,
      { env: {}, signals: signals as unknown as SignalSource },
    );
    expect(keptServing).toBe(true);
    expect(code).toBe(0);
    expect(out.lines.at(-1)).toBe('Successfully pivoted');
    expect(out.errors.at(-1)).toMatch(
      /^the copy has ended; the inspector keeps serving http:\/\/127\.0\.0\.1:\d+\/\S* until Ctrl-C$/,
    );
  });
});
