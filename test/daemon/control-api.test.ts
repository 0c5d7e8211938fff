/**
 * Bad input to the daemon's control API (a daemon on the simulator, in this process): malformed
 * JSON, unknown verbs, huge bodies, wrong argument types, a path that is not the disk, wrong
 * flags. Each gets a typed libvirt-style error, the same the library gives, and changes nothing.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ok } from 'neverthrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { MemoryJobStore } from '../../adapters/store/memory.js';
import { RebaseFlags } from '../../src/core/flags.js';
import { callDaemon } from '../../src/daemon/client.js';
import type { Daemon } from '../../src/daemon/server.js';
import { startDaemon } from '../../src/daemon/server.js';
import { createEngine } from '../../src/engine/engine.js';

const dir = mkdtempSync(join(tmpdir(), 'blockcopy-control-'));
const socket = join(dir, 'run', 'control.sock');
const sim = new SimulatedHypervisor();
const store = new MemoryJobStore();
let daemon: Daemon;

beforeAll(async () => {
  daemon = (
    await startDaemon({ socketPath: socket, store, open: (spec) => Promise.resolve(ok(spec === 'sim' ? sim : sim)) })
  )._unsafeUnwrap();
});
afterAll(async () => {
  await daemon.close();
  rmSync(dir, { recursive: true, force: true });
});

function raw(body: string | Buffer): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path: '/v1', method: 'POST' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** What the library answers for the same request (the reference). */
const library = createEngine({ hypervisor: new SimulatedHypervisor() });

describe('daemon control API: bad input', () => {
  it('listens on an owner-only socket', () => {
    expect(statSync(socket).mode & 0o777).toBe(0o600);
  });

  it.each([
    ['malformed JSON', '{"verb": "copy",', /not valid JSON/],
    ['a JSON array', '[1,2]', /must be a JSON object/],
    ['an unknown verb', '{"verb":"destroy","hypervisor":"sim"}', /unknown verb 'destroy'/],
    ['no hypervisor', '{"verb":"info"}', /hypervisor must be a non-empty string/],
    ['args not an object', '{"verb":"info","hypervisor":"sim","args":"vda"}', /args must be a JSON object/],
  ])('%s: VIR_ERR_INVALID_ARG', async (_what, body, message) => {
    const r = await raw(body);
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ ok: false, error: { code: 'VIR_ERR_INVALID_ARG', number: 8 } });
    expect(r.json.error.message).toMatch(message);
  });

  it('a body above 64 KiB is refused unread', async () => {
    const r = await raw(Buffer.alloc(200 * 1024, 0x20));
    expect(r.status).toBe(413);
    expect(r.json.error).toMatchObject({ code: 'VIR_ERR_INVALID_ARG' });
  });

  it.each([
    ['wrong copy flags', { domain: 'demo', disk: 'vda', destination: '/x/c.qcow2', flags: 1 << 20 }, 'copy'],
    [
      'a relative destination',
      { domain: 'demo', disk: 'vda', destination: 'c.qcow2', flags: RebaseFlags.COPY },
      'copy',
    ],
    [
      'a path that is not the disk',
      { domain: 'demo', disk: '/etc/passwd', destination: '/x/c.qcow2', flags: RebaseFlags.COPY },
      'copy',
    ],
    ['an unknown domain', { domain: 'nope', disk: 'vda', destination: '/x/c.qcow2', flags: RebaseFlags.COPY }, 'copy'],
    ['wrong abort flags', { domain: 'demo', disk: 'vda', flags: 1 << 9 }, 'abort'],
    ['a pivot without a job', { domain: 'demo', disk: 'vda', flags: 2 }, 'abort'],
  ] as const)("%s: the library's error, nothing started", async (_what, args, verb) => {
    const r = await callDaemon(socket, verb, 'sim', { ...args });
    const reference =
      verb === 'copy'
        ? await library.blockRebase(
            args.domain,
            args.disk,
            (args as { destination: string }).destination,
            0,
            args.flags,
          )
        : await library.blockJobAbort(args.domain, args.disk, args.flags);
    expect(reference.isErr()).toBe(true);
    expect(r).toEqual({ ok: false, error: reference._unsafeUnwrapErr() });
    expect(sim.listJobs()).toEqual([]);
    expect((await store.list({ includeEnded: true }))._unsafeUnwrap().filter((j) => j.end === null)).toEqual([]);
  });

  it.each([
    ['a number as disk', { domain: 'demo', disk: 7 }, /argument 'disk' must be a string/],
    ['a string as flags', { domain: 'demo', disk: 'vda', flags: '4' }, /argument 'flags' must be a number/],
    ['no domain', { disk: 'vda' }, /argument 'domain' is required/],
  ])('%s: a typed error', async (_what, args, message) => {
    const r = await callDaemon(socket, 'info', 'sim', args);
    expect(r).toMatchObject({ ok: false, error: { code: 'VIR_ERR_INVALID_ARG' } });
    expect(r && !r.ok && r.error.message).toMatch(message);
  });
});
