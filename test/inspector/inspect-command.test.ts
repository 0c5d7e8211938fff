// `blockcopy inspect`: option errors, serving a recorded export with --load, and the demo's export.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Output } from '../../src/cli/copy.js';
import { runInspectCommand } from '../../src/cli/inspect.js';
import type { InspectorRecord } from '../../src/inspector/records.js';
import { headerRecord, parseJsonl, toJsonLine } from '../../src/inspector/records.js';

const dir = mkdtempSync(join(tmpdir(), 'blockcopy-inspect-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture(): Output & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lines, errors, line: (t) => lines.push(t), overwrite: () => {}, error: (t) => errors.push(t), tty: false };
}

/** Runs the command until `whileServing` is done, then stops it like Ctrl-C would. */
async function serve(
  argv: string[],
  whileServing: (url: string, out: ReturnType<typeof capture>) => Promise<void>,
  extra = {},
) {
  const out = capture();
  const stop = new AbortController();
  let ready!: (url: string) => void;
  const url = new Promise<string>((resolve) => (ready = resolve));
  const code = runInspectCommand(argv, out, { signal: stop.signal, onReady: ready, ...extra });
  try {
    await whileServing(
      await Promise.race([url, code.then(() => Promise.reject(new Error(out.errors.join('\n'))))]),
      out,
    );
  } finally {
    stop.abort();
  }
  return { code: await code, out };
}

describe('blockcopy inspect', () => {
  it('rejects bad options with exit 2 and prints help', async () => {
    for (const argv of [['--port', 'x'], ['--rounds', '-1'], ['--bogus'], ['--load', 'a.jsonl', '--rounds', '1']]) {
      const out = capture();
      expect(await runInspectCommand(argv, out), argv.join(' ')).toBe(2);
      expect(out.errors[0]).toMatch(/^error: /);
    }
    const help = capture();
    expect(await runInspectCommand(['--help'], help)).toBe(0);
    expect(help.lines[0]).toMatch(/^usage: blockcopy inspect/);
  });

  it('exits 1 when --load cannot be read or is not an export', async () => {
    const missing = capture();
    expect(await runInspectCommand(['--load', join(dir, 'missing.jsonl')], missing)).toBe(1);
    expect(missing.errors[0]).toMatch(/cannot read/);
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"kind":"header","format":"blockcopy-inspection","version":1}\nhello\n');
    const out = capture();
    expect(await runInspectCommand(['--load', bad], out)).toBe(1);
    expect(out.errors[0]).toContain('line 2: not JSON');
  });

  it('--load serves a recording on 127.0.0.1 and runs no demo', async () => {
    const records: InspectorRecord[] = [
      headerRecord('blockCopyJob', new Date()),
      { kind: 'progress', seq: 1, time: 1, jobId: 'copy-vda-1', cur: 1, end: 2, speed: 0, rate: null, etaMs: null },
    ];
    const file = join(dir, 'run.jsonl');
    writeFileSync(file, records.map(toJsonLine).join(''));
    const { code, out } = await serve(['--load', file], async (url) => {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=/);
      const page = await fetch(url);
      expect(await page.text()).toContain(`blockcopy inspector: ${file}`);
      const exported = parseJsonl(await (await fetch(url.replace('/?', '/export.jsonl?'))).text())._unsafeUnwrap();
      expect(exported.slice(1)).toEqual(records.slice(1));
      expect((await fetch(new URL(url).origin)).status).toBe(403);
    });
    expect(code).toBe(0);
    expect(out.lines).toEqual([expect.stringMatching(/^blockcopy inspector: http/), 'showing 2 recorded records']);
  });

  it('the demo writes its inspection events to --export', async () => {
    const file = join(dir, 'demo.jsonl');
    const { code, out } = await serve(
      ['--rounds', '1', '--export', file],
      async (_url, out) => {
        await expect.poll(() => out.lines.filter((l) => /^demo: vd[abc] /.test(l)).length, { timeout: 20_000 }).toBe(3);
      },
      { demoPace: 0.05, demoCopyRate: 4096 * 1024 * 1024 },
    );
    expect(code).toBe(0);
    expect(out.lines).toContain('demo finished; the page stays up until Ctrl-C');
    const records = parseJsonl(readFileSync(file, 'utf8'))._unsafeUnwrap();
    expect(records[0]).toMatchObject({ kind: 'header', machine: 'blockCopyJob' });
    const jobs = new Set(records.flatMap((r) => (r.kind === 'inspection' ? [r.jobId] : [])));
    expect([...jobs].map((j) => j.replace(/-[0-9a-f]+$/, '')).sort()).toEqual(['copy-vda', 'copy-vdb', 'copy-vdc']);
    expect(records.filter((r) => r.kind === 'job-event').map((r) => r.kind === 'job-event' && r.status)).toEqual(
      expect.arrayContaining(['READY', 'COMPLETED', 'CANCELED']),
    );
    expect(records.some((r) => r.kind === 'progress')).toBe(true);
  });
});
