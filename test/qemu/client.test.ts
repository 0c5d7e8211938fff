/**
 * QmpClient against a real qemu-storage-daemon: handshake, id pairing, events that overtake
 * replies, timeouts on an injected clock, EOF when QEMU dies, reconnect without replay.
 */
import { promises as fs } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { QmpClient, type QmpEvent, type QmpLifecycleEvent } from '../../adapters/qmp/client.js';
import { VirtualClock } from '../../src/core/clock.js';
import { MiB, Recorder, run, useQemu } from './harness.js';

const qemu = useQemu();

async function connect(socket: string, extra: Partial<Parameters<typeof QmpClient.connect>[0]> = {}) {
  const r = await QmpClient.connect({ socket, ...extra });
  if (r.isErr()) throw new Error(r.error.desc);
  return r.value;
}

/** Attaches an empty qcow2 destination `dst` through the harness monitor. */
async function addTarget(name = 'dst'): Promise<void> {
  const fx = qemu();
  const path = await fx.createImage(`${name}.qcow2`, 'qcow2');
  await fx.cmd('blockdev-add', { driver: 'file', 'node-name': `${name}-file`, filename: path });
  await fx.cmd('blockdev-add', { driver: 'qcow2', 'node-name': name, file: `${name}-file`, backing: null });
}

describe('QmpClient (real qemu-storage-daemon)', () => {
  it('reads the greeting, negotiates capabilities and runs commands', async () => {
    const client = await connect(qemu().qmpSocket);
    expect(client.state).toBe('connected');
    expect(client.greeting?.version).toMatchObject({ major: 7, minor: 2 });
    expect(client.greeting?.capabilities).toContain('oob');
    expect(client.greetingCount).toBe(1);
    const v = await client.execute<{ qemu: { major: number } }>('query-version');
    expect(v._unsafeUnwrap().qemu.major).toBe(7);
    await client.close();
    expect(client.state).toBe('closed');
    const after = await client.execute('query-version');
    expect(after._unsafeUnwrapErr()).toMatchObject({ kind: 'connection', command: 'query-version' });
  });

  it('pairs concurrent replies with their commands by id, errors included', async () => {
    const client = await connect(qemu().qmpSocket);
    const calls = Array.from({ length: 30 }, (_, i) => {
      switch (i % 3) {
        case 0:
          return client.execute<{ qemu: { major: number } }>('query-version').map((v) => `version ${v.qemu.major}`);
        case 1:
          return client.execute<{ id: string }[]>('query-block-exports').map((e) => `exports ${e.map((x) => x.id)}`);
        default:
          return client
            .execute('blockdev-del', { 'node-name': `nope${i}` })
            .mapErr((e) => `${e.errorClass}: ${e.desc}`);
      }
    });
    const results = await Promise.all(calls);
    results.forEach((r, i) => {
      if (i % 3 === 0) expect(r._unsafeUnwrap()).toBe('version 7');
      else if (i % 3 === 1) expect(r._unsafeUnwrap()).toBe('exports vda');
      else expect(r._unsafeUnwrapErr()).toBe(`GenericError: Failed to find node with node-name='nope${i}'`);
    });
    const unknown = await client.execute('no-such-command');
    expect(unknown._unsafeUnwrapErr()).toEqual({
      kind: 'qmp',
      errorClass: 'CommandNotFound',
      command: 'no-such-command',
      desc: 'The command no-such-command has not been found',
    });
    await client.close();
  });

  it("routes blockdev-mirror's events that arrive before its reply", async () => {
    await addTarget();
    const client = await connect(qemu().qmpSocket);
    const order: string[] = [];
    const sub = client.events$.subscribe((e) =>
      order.push(`${e.event}:${typeof e.data['status'] === 'string' ? e.data['status'] : ''}`),
    );
    const r = await client
      .execute('blockdev-mirror', { 'job-id': 'j1', device: 'snap2', target: 'dst', sync: 'full', speed: MiB })
      .map((v) => {
        order.push('reply');
        return v;
      });
    expect(r.isOk()).toBe(true);
    // §0.1: created and running come before {"return": {}}.
    expect(order.slice(0, 3)).toEqual(['JOB_STATUS_CHANGE:created', 'JOB_STATUS_CHANGE:running', 'reply']);
    sub.unsubscribe();
    await client.close();
  });

  it('times out on the injected clock, drops the late reply, and goes on', async () => {
    const fx = qemu();
    const clock = new VirtualClock();
    const client = await connect(fx.qmpSocket, { clock, commandTimeoutMs: 1_000 });
    fx.freeze(); // SIGSTOP: QEMU cannot answer
    try {
      const pending = client.execute('query-version');
      await clock.advance(999);
      let settled = false;
      void pending.then(() => (settled = true));
      await clock.advance(0);
      expect(settled).toBe(false);
      await clock.advance(1);
      expect((await pending)._unsafeUnwrapErr()).toEqual({
        kind: 'timeout',
        command: 'query-version',
        desc: "no reply to 'query-version' within 1000 ms",
      });
    } finally {
      fx.thaw();
    }
    // The late reply to the timed-out command must not be taken for this one's.
    const exports = await client.execute<{ id: string }[]>('query-block-exports');
    expect(exports._unsafeUnwrap().map((e) => e.id)).toEqual(['vda']);
    expect(client.state).toBe('connected');
    await client.close();
  });

  it('detects EOF when QEMU is killed: pending commands fail, then gone', async () => {
    const fx = qemu();
    await addTarget();
    const client = await connect(fx.qmpSocket, { reconnect: { attempts: 3, delayMs: 50 } });
    const life = new Recorder<QmpLifecycleEvent>(client.lifecycle$);
    await client.execute('blockdev-mirror', {
      'job-id': 'j1',
      device: 'snap2',
      target: 'dst',
      sync: 'full',
      speed: MiB,
    });
    fx.freeze();
    const pending = client.execute('query-jobs');
    await fx.kill();
    expect((await pending)._unsafeUnwrapErr()).toMatchObject({ kind: 'connection', command: 'query-jobs' });
    const gone = await life.waitFor((e) => e.kind === 'gone', 10_000);
    expect(life.items.map((e) => e.kind)).toEqual(['connection-lost', 'gone']);
    expect(gone.kind === 'gone' && gone.reason).toMatch(/3 reconnect attempt/);
    expect(client.state).toBe('gone');
    expect((await client.execute('query-jobs'))._unsafeUnwrapErr()).toMatchObject({ kind: 'connection' });
    await client.close();
  });

  it('reconnects to the same QEMU: new greeting, no replay of missed events, state from queries', async () => {
    const fx = qemu();
    await addTarget();
    const proxy = await fx.proxy();
    const client = await connect(proxy.path, { reconnect: { attempts: 3, delayMs: 20 }, connectTimeoutMs: 15_000 });
    const events = new Recorder<QmpEvent>(client.events$);
    const life = new Recorder<QmpLifecycleEvent>(client.lifecycle$);
    const harnessEvents = new Recorder<QmpEvent>(fx.qmp.events$);
    await client.execute('blockdev-mirror', {
      'job-id': 'j1',
      device: 'snap2',
      target: 'dst',
      sync: 'full',
      speed: MiB,
      'auto-dismiss': false,
    });
    proxy.hold(); // the reconnect attempt waits in the proxy
    proxy.drop();
    await life.waitFor((e) => e.kind === 'connection-lost');
    expect(client.state).toBe('reconnecting');
    expect((await client.execute('query-jobs'))._unsafeUnwrapErr()).toMatchObject({ kind: 'connection' });

    // While the client is away the job becomes READY.
    await fx.cmd('block-job-set-speed', { device: 'j1', speed: 0 });
    await harnessEvents.waitFor((e) => e.event === 'BLOCK_JOB_READY');
    proxy.release();
    await life.waitFor((e) => e.kind === 'connection-restored');
    expect(client.greetingCount).toBe(2);
    expect(client.state).toBe('connected');
    expect(events.items.some((e) => e.event === 'BLOCK_JOB_READY')).toBe(false); // §0.11: no replay

    const jobs = await client.execute<{ device: string; ready: boolean; status: string }[]>('query-block-jobs');
    expect(jobs._unsafeUnwrap()).toEqual([expect.objectContaining({ device: 'j1', ready: true, status: 'ready' })]);
    expect((await client.execute('block-job-complete', { device: 'j1' })).isOk()).toBe(true);
    await events.waitFor((e) => e.event === 'BLOCK_JOB_COMPLETED');
    expect(await fx.exportNode()).toBe('dst');
    await client.close();
  });

  it('fails a command whose reply exceeds the line cap at once, and goes on', async () => {
    const clock = new VirtualClock(); // no timer ever fires: the failure cannot be a timeout
    const client = await connect(qemu().qmpSocket, { maxLineBytes: 2_000, clock });
    const life = new Recorder<QmpLifecycleEvent>(client.lifecycle$);
    const big = await client.execute('query-named-block-nodes', { flat: true });
    expect(big._unsafeUnwrapErr()).toEqual({
      kind: 'invalid',
      command: 'query-named-block-nodes',
      desc: 'reply dropped: line longer than 2000 bytes',
    });
    expect(life.items).toMatchObject([{ kind: 'protocol-error', error: { kind: 'oversized' } }]);
    expect((await client.execute<{ id: string }[]>('query-block-exports'))._unsafeUnwrap()).toHaveLength(1);
    await client.close();
  });

  it('fails to connect to a missing socket with a connection error', async () => {
    const r = await QmpClient.connect({ socket: join(qemu().dir, 'nothing.sock') });
    expect(r._unsafeUnwrapErr()).toMatchObject({ kind: 'connection', command: 'connect' });
    expect(r._unsafeUnwrapErr().desc).toMatch(/ENOENT/);
  });

  it('retries a refused connect (socket bound, not yet listening) for a moment, then connects', async () => {
    const fx = qemu();
    const stale = join(fx.dir, 'starting.sock');
    // A socket file nobody listens on, as QEMU's between bind and listen: connect is refused.
    await run('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stale)})`]);
    // Time stands still for the retry deadline (no flake under load); the retry's wait is real.
    let refused!: () => void;
    const refusedOnce = new Promise<void>((resolve) => (refused = resolve));
    const clock = {
      now: () => 0,
      setTimeout: (callback: () => void, ms: number) => {
        if (ms === 50) refused();
        return setTimeout(callback, ms);
      },
      clearTimeout: (handle: unknown) => clearTimeout(handle as NodeJS.Timeout),
    };
    const pending = QmpClient.connect({ socket: stale, reconnect: false, clock });
    await refusedOnce;
    // QEMU now listens there (the real monitor, moved onto that path atomically).
    await fs.rename(fx.qmpSocket, stale);
    const client = (await pending)._unsafeUnwrap();
    expect(client.greeting?.version).toMatchObject({ major: 7 });
    await client.close();
  });

  it('a connect that QEMU accepts and closes before its greeting is dialled again', async () => {
    // A fake monitor that drops the first client unanswered, as QEMU 7.2 sometimes does with a
    // connect queued while the previous client leaves; the second gets QEMU's greeting.
    const path = join(qemu().dir, 'drop-first.sock');
    let accepted = 0;
    const server = createServer((s) => {
      accepted++;
      if (accepted === 1) return void s.destroy();
      s.write('{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}\n');
      s.on('data', (d: Buffer) => {
        const id = (JSON.parse(d.toString().trim()) as { id?: string }).id;
        s.write(`${JSON.stringify({ return: {}, id })}\n`);
      });
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      const client = (await QmpClient.connect({ socket: path, reconnect: false }))._unsafeUnwrap();
      expect({ accepted, major: client.greeting?.version.major }).toEqual({ accepted: 2, major: 7 });
      await client.close();
    } finally {
      server.close();
    }
  });

  it('gives up on a socket that stays refused (a dead QEMU) with a connection error', async () => {
    const stale = join(qemu().dir, 'dead.sock');
    await run('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stale)})`]);
    const r = await QmpClient.connect({ socket: stale, reconnect: false });
    expect(r._unsafeUnwrapErr()).toMatchObject({ kind: 'connection', command: 'connect' });
    expect(r._unsafeUnwrapErr().desc).toMatch(/ECONNREFUSED/);
  });

  it('survives garbage from the peer: protocol errors are reported, the session goes on', async () => {
    // A fake monitor: QEMU itself never sends bad lines.
    const path = join(qemu().dir, 'fake.sock');
    const server = createServer((s) => {
      s.write(
        'this is not json\n{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}\n',
      );
      s.on('data', (d) => {
        for (const line of d.toString().split('\n').filter(Boolean)) {
          const { id, execute } = JSON.parse(line) as { id: string; execute: string };
          s.write(`[1,2]\n{"return": {"echo": "${execute}"}, "id": "${id}"}\n`);
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      const client = await connect(path, { reconnect: false });
      const life = new Recorder<QmpLifecycleEvent>(client.lifecycle$);
      expect((await client.execute('ping'))._unsafeUnwrap()).toEqual({ echo: 'ping' });
      expect(life.items).toEqual([
        { kind: 'protocol-error', error: { kind: 'wrong-type', detail: 'not a JSON object', excerpt: '[1,2]' } },
      ]);
      await client.close();
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
