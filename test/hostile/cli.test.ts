/** Hostile command lines: a typed usage error or a normal run, never a crash, never a file touched. */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UsageError, parseCommand } from '../../src/cli/args.js';
import { main } from '../../src/cli/main.js';

const OPTIONS = [
  '--shallow',
  '--reuse-external',
  '--raw',
  '--bandwidth',
  '--wait',
  '--pivot',
  '--finish',
  '--async',
  '--verbose',
  '--timeout',
  '--dry-run',
  '--json',
  '--on-target-error',
  '--domain',
  '--',
  '-x',
  '--bandwidth=-1',
  '--bandwidth=1e309',
  '--timeout=0',
  '--on-target-error=explode',
];
const hostileString = fc.oneof(
  fc.string(),
  fc.constantFrom(
    '',
    '\0',
    '../../etc/passwd',
    '/var/lib/blockcopy/../blockcopy/snap2.qcow2',
    'NaN',
    '-1',
    '1e400',
    '0x10',
  ),
  fc.string({ unit: 'binary' }),
);
const argv = fc.array(fc.oneof(fc.constantFrom(...OPTIONS), hostileString), { maxLength: 8 });

describe('CLI arguments under hostile input', () => {
  it('parseCommand never throws: a command or a UsageError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom('copy', 'demo', 'help', 'diagram'), hostileString), argv, (cmd, rest) => {
        const r = parseCommand([cmd, ...rest]);
        if (r.isErr()) {
          expect(r.error.error).toBeInstanceOf(UsageError);
          expect(typeof r.error.error.message).toBe('string');
        }
      }),
      { numRuns: 5_000 },
    );
  });

  it('main on the simulator with hostile copy arguments: exit 0, 1 or 2 and no file in the working directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'blockcopy-hostile-'));
    const cwd = process.cwd();
    process.chdir(dir);
    const codes = new Map<number, number>();
    try {
      await fc.assert(
        fc.asyncProperty(hostileString, argv, async (dest, rest) => {
          const lines: string[] = [];
          const out = {
            line: (t: string) => lines.push(t),
            overwrite: () => {},
            error: (t: string) => lines.push(t),
            tty: false,
          };
          // --dry-run keeps real-time waits out; the hypervisor is always the in-memory one.
          const args = [
            'copy',
            'vda',
            dest,
            '--dry-run',
            '--hypervisor',
            'sim',
            ...rest.filter((a) => !a.startsWith('--hypervisor')),
          ];
          const code = await main(args, out);
          codes.set(code, (codes.get(code) ?? 0) + 1);
          expect([0, 1, 2]).toContain(code);
          expect(readdirSync(dir)).toEqual([]);
        }),
        { numRuns: 300 },
      );
    } finally {
      process.chdir(cwd);
      rmSync(dir, { recursive: true, force: true });
    }
    console.log(`hostile CLI: exit codes ${JSON.stringify(Object.fromEntries(codes))}`);
    expect(codes.get(2)).toBeGreaterThan(0);
  });
});
