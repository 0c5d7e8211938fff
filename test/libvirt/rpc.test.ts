// The libvirt RPC client against a fake daemon: framing across arbitrary reads, malformed
// packets (short, oversized, unknown procedures, undecodable replies, error replies), events
// before replies, keepalive, access refusal, reconnect and re-registration of event callbacks.
import { afterEach, describe, expect, it } from 'vitest';
import { firstValueFrom, filter, take, toArray } from 'rxjs';
import { LibvirtClient, type LibvirtLifecycleEvent } from '../../adapters/libvirt/rpc/client.js';
import { encodePacket, FrameDecoder, PacketType } from '../../adapters/libvirt/rpc/framing.js';
import {
  args,
  EventId,
  KeepaliveProc,
  KEEPALIVE_PROGRAM,
  Proc,
  REMOTE_PROGRAM,
  rets,
  XdrWriter,
} from '../../adapters/libvirt/rpc/protocol.js';
import { FakeDaemon, type FakeCall } from './fake-daemon.js';

const daemons: FakeDaemon[] = [];
const clients: LibvirtClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const d of daemons.splice(0)) await d.close();
});

/** Answers CONNECT_GET_LIB_VERSION with 9000000 unless a test says otherwise. */
function libVersion(call: FakeCall): boolean {
  if (call.packet.header.proc !== Proc.CONNECT_GET_LIB_VERSION) return false;
  call.conn.reply(call.packet, new XdrWriter().uhyper(9000000n).toBuffer());
  return true;
}

async function setup(onCall?: (call: FakeCall) => boolean | void, authTypes?: number[]) {
  const daemon = new FakeDaemon({ onCall: onCall ?? libVersion, ...(authTypes ? { authTypes } : {}) });
  daemons.push(daemon);
  await daemon.listen();
  const connected = await LibvirtClient.connect({
    socket: daemon.socketPath,
    uri: 'qemu:///system',
    reconnect: { attempts: 50, initialDelayMs: 20, maxDelayMs: 100 },
  });
  if (connected.isErr()) throw new Error(JSON.stringify(connected.error));
  clients.push(connected.value);
  return { daemon, client: connected.value };
}

const version = (c: LibvirtClient) => c.call(Proc.CONNECT_GET_LIB_VERSION, args.none(), rets.uhyper);

function blockJobEvent(callbackId: number, disk: string, status: number): Buffer {
  return new XdrWriter()
    .int(callbackId)
    .string('guest')
    .fixedOpaque(Buffer.alloc(16, 7))
    .int(1)
    .string(disk)
    .int(2)
    .int(status)
    .toBuffer();
}

describe('FrameDecoder', () => {
  const packets = [
    encodePacket(
      { prog: REMOTE_PROGRAM, vers: 1, proc: 157, type: 1, serial: 5, status: 0 },
      Buffer.from([0, 0, 0, 0, 0, 137, 84, 64]),
    ),
    encodePacket(
      { prog: REMOTE_PROGRAM, vers: 1, proc: 339, type: 2, serial: 1, status: 0 },
      blockJobEvent(0, 'vda', 3),
    ),
    encodePacket({ prog: KEEPALIVE_PROGRAM, vers: 1, proc: 1, type: 2, serial: 0, status: 0 }),
  ];
  const stream = Buffer.concat(packets);

  it('reassembles the same packets whatever the split point, including one byte at a time', () => {
    const whole = new FrameDecoder().push(stream);
    expect(whole).toHaveLength(3);
    for (let cut = 1; cut < stream.length; cut++) {
      const d = new FrameDecoder();
      const got = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
      expect(got).toEqual(whole);
      expect(d.held).toBe(0);
    }
    const d = new FrameDecoder();
    const bytewise = [...stream].flatMap((b) => d.push(Buffer.from([b])));
    expect(bytewise).toEqual(whole);
  });

  it('rejects a packet shorter than its header and one over the 32 MiB cap, and then nothing more', () => {
    const short = Buffer.alloc(12);
    short.writeUInt32BE(12, 0);
    const d1 = new FrameDecoder();
    expect(d1.push(Buffer.concat([short, packets[0]!]))).toEqual([
      { fatal: 'packet length 12 outside [28, 33554432]' },
    ]);
    expect(d1.push(packets[0]!)).toEqual([]);
    const big = Buffer.alloc(8);
    big.writeUInt32BE(32 * 1024 * 1024 + 1, 0);
    const d2 = new FrameDecoder();
    const r = d2.push(Buffer.concat([packets[0]!, big]));
    expect(r).toHaveLength(2);
    expect(r[1]).toEqual({ fatal: `packet length ${32 * 1024 * 1024 + 1} outside [28, 33554432]` });
  });
});

describe('LibvirtClient against a fake daemon', () => {
  it('handshakes like libvirt (AUTH_LIST, keepalive, OPEN, event callbacks) and pairs replies by serial', async () => {
    const { daemon, client } = await setup();
    const conn = daemon.connections[0]!;
    const procs = conn.received.map((p) => p.header.proc);
    expect(procs.slice(0, 4)).toEqual([
      Proc.AUTH_LIST,
      Proc.CONNECT_SUPPORTS_FEATURE,
      Proc.CONNECT_OPEN,
      Proc.CONNECT_SUPPORTS_FEATURE,
    ]);
    expect(FakeDaemon.registrations(conn)).toEqual([EventId.LIFECYCLE, EventId.BLOCK_JOB_2]);
    const many = await Promise.all(Array.from({ length: 50 }, () => version(client)));
    expect(many.every((r) => r.isOk() && r.value === 9000000n)).toBe(true);
  });

  it('reads replies and events written one byte per write', async () => {
    const { daemon, client } = await setup((call) => {
      if (call.packet.header.proc !== Proc.CONNECT_GET_LIB_VERSION) return false;
      const bytes = Buffer.concat([
        encodePacket(
          { prog: REMOTE_PROGRAM, vers: 1, proc: 339, type: 2, serial: 1, status: 0 },
          blockJobEvent(1, 'vda', 3),
        ),
        encodePacket({ ...call.packet.header, type: PacketType.REPLY }, new XdrWriter().uhyper(42n).toBuffer()),
      ]);
      void (async () => {
        for (const b of bytes) {
          call.conn.socket.write(Buffer.from([b]));
          await new Promise((r) => setImmediate(r));
        }
      })();
      return true;
    });
    void daemon;
    const event = firstValueFrom(client.events$);
    const r = await version(client);
    expect(r._unsafeUnwrap()).toBe(42n);
    expect(await event).toMatchObject({ kind: 'block-job', disk: 'vda', status: 3, callbackId: 1 });
  });

  it('dispatches an event whose serial equals a pending call as an event, and still answers the call', async () => {
    let pendingCall: FakeCall | null = null;
    const { client } = await setup((call) => {
      if (call.packet.header.proc !== Proc.CONNECT_GET_LIB_VERSION) return false;
      pendingCall = call;
      // An event with this call's serial arrives first.
      call.conn.socket.write(
        encodePacket(
          {
            prog: REMOTE_PROGRAM,
            vers: 1,
            proc: 339,
            type: PacketType.MESSAGE,
            serial: call.packet.header.serial,
            status: 0,
          },
          blockJobEvent(1, 'vdb', 0),
        ),
      );
      setTimeout(() => call.conn.reply(call.packet, new XdrWriter().uhyper(7n).toBuffer()), 20);
      return true;
    });
    const event = firstValueFrom(client.events$);
    const r = await version(client);
    expect(pendingCall).not.toBeNull();
    expect(await event).toMatchObject({ kind: 'block-job', disk: 'vdb', status: 0 });
    expect(r._unsafeUnwrap()).toBe(7n);
  });

  it('passes error replies through with libvirt code, domain and message, without disturbing other calls', async () => {
    const { client } = await setup((call) => {
      if (call.packet.header.proc === Proc.DOMAIN_LOOKUP_BY_NAME) {
        call.conn.replyError(call.packet, 42, 10, "Domain not found: no domain with matching name 'nope'");
        return true;
      }
      return libVersion(call);
    });
    const [a, b, c] = await Promise.all([
      version(client),
      client.call(Proc.DOMAIN_LOOKUP_BY_NAME, args.string('nope'), rets.domain),
      version(client),
    ]);
    expect(a._unsafeUnwrap()).toBe(9000000n);
    expect(c._unsafeUnwrap()).toBe(9000000n);
    expect(b._unsafeUnwrapErr()).toMatchObject({
      kind: 'libvirt',
      proc: Proc.DOMAIN_LOOKUP_BY_NAME,
      error: { code: 42, domain: 10, message: "Domain not found: no domain with matching name 'nope'" },
    });
  });

  it('fails only the call whose reply cannot be decoded; unknown events, serials and programs are reported and skipped', async () => {
    const { client } = await setup((call) => {
      if (call.packet.header.proc === Proc.DOMAIN_GET_XML_DESC) {
        call.conn.event(9999, Buffer.from([1, 2, 3, 4]));
        call.conn.socket.write(encodePacket({ ...call.packet.header, type: PacketType.REPLY, serial: 999_999 }));
        call.conn.socket.write(encodePacket({ ...call.packet.header, prog: 0x1234, type: PacketType.REPLY }));
        call.conn.event(Proc.DOMAIN_EVENT_BLOCK_JOB_2, Buffer.from([0, 0, 0, 1])); // truncated event
        call.conn.reply(call.packet, Buffer.from([0, 0, 1, 0])); // string of 256 bytes, 0 present
        return true;
      }
      return libVersion(call);
    });
    const problems: LibvirtLifecycleEvent[] = [];
    client.lifecycle$.subscribe((e) => problems.push(e));
    const [bad, good] = await Promise.all([
      client.call(Proc.DOMAIN_GET_XML_DESC, args.none(), rets.string),
      version(client),
    ]);
    expect(bad._unsafeUnwrapErr()).toMatchObject({ kind: 'protocol', proc: Proc.DOMAIN_GET_XML_DESC });
    expect(good._unsafeUnwrap()).toBe(9000000n);
    expect(
      problems.map((p) => (p.kind === 'protocol-error' ? p.message.split(' ').slice(0, 3).join(' ') : p.kind)),
    ).toEqual(['unknown event procedure', 'reply with unknown', 'packet of unknown', 'bad event 339:']);
    expect(client.state).toBe('connected');
    expect((await version(client))._unsafeUnwrap()).toBe(9000000n);
  });

  for (const [name, length] of [
    ['short', 20],
    ['oversized', 32 * 1024 * 1024 + 4],
  ] as const) {
    it(`drops the connection on a ${name} packet, fails the pending calls, reconnects and works again`, async () => {
      let mangle = true;
      const { daemon, client } = await setup((call) => {
        if (call.packet.header.proc !== Proc.CONNECT_GET_LIB_VERSION) return false;
        if (mangle) {
          mangle = false;
          const bad = Buffer.alloc(28);
          bad.writeUInt32BE(length, 0);
          call.conn.socket.write(bad);
          return true;
        }
        return libVersion(call);
      });
      const lifecycle: string[] = [];
      client.lifecycle$.subscribe((e) => lifecycle.push(e.kind));
      const restored = firstValueFrom(client.lifecycle$.pipe(filter((e) => e.kind === 'connection-restored')));
      const r = await version(client);
      expect(r._unsafeUnwrapErr()).toMatchObject({ kind: 'connection' });
      await restored;
      expect(lifecycle).toEqual(['protocol-error', 'connection-lost', 'connection-restored']);
      expect(daemon.connections).toHaveLength(2);
      expect((await version(client))._unsafeUnwrap()).toBe(9000000n);
    });
  }

  it('answers PING with PONG and pings a silent daemon', async () => {
    const daemon = new FakeDaemon({ onCall: libVersion });
    daemons.push(daemon);
    await daemon.listen();
    const c = await LibvirtClient.connect({
      socket: daemon.socketPath,
      uri: 'qemu:///system',
      keepaliveIntervalMs: 50,
    });
    clients.push(c._unsafeUnwrap());
    const conn = daemon.connections[0]!;
    conn.keepalive(KeepaliveProc.PING);
    const seen = async (proc: number) => {
      for (let i = 0; i < 400; i++) {
        if (conn.received.some((p) => p.header.prog === KEEPALIVE_PROGRAM && p.header.proc === proc)) return true;
        await new Promise((r) => setTimeout(r, 10));
      }
      return false;
    };
    expect(await seen(KeepaliveProc.PONG)).toBe(true);
    expect(await seen(KeepaliveProc.PING)).toBe(true);
  });

  it('declares a daemon that never answers keepalive dead and reconnects', async () => {
    const daemon = new FakeDaemon({ onCall: libVersion });
    daemons.push(daemon);
    await daemon.listen();
    const c = (
      await LibvirtClient.connect({
        socket: daemon.socketPath,
        uri: 'qemu:///system',
        keepaliveIntervalMs: 30,
        keepaliveCount: 2,
        reconnect: { attempts: 50, initialDelayMs: 20, maxDelayMs: 50 },
      })
    )._unsafeUnwrap();
    clients.push(c);
    const kinds = firstValueFrom(c.lifecycle$.pipe(take(2), toArray()));
    const got = await kinds;
    expect(got[0]).toMatchObject({ kind: 'connection-lost' });
    expect((got[0] as { reason: string }).reason).toMatch(/^keepalive: no answer/);
    expect(got[1]).toEqual({ kind: 'connection-restored' });
  });

  it('re-registers event callbacks after a reconnect and ignores events for stale callback ids', async () => {
    const { daemon, client } = await setup();
    const restored = firstValueFrom(client.lifecycle$.pipe(filter((e) => e.kind === 'connection-restored')));
    daemon.connections[0]!.nextCallbackId = 5; // not used: ids were handed out at connect (0, 1)
    daemon.dropClients();
    await restored;
    const second = daemon.connections[1]!;
    expect(FakeDaemon.registrations(second)).toEqual([EventId.LIFECYCLE, EventId.BLOCK_JOB_2]);
    const events = firstValueFrom(client.events$);
    second.event(Proc.DOMAIN_EVENT_BLOCK_JOB_2, blockJobEvent(7, 'stale', 3)); // unknown callback id
    second.event(Proc.DOMAIN_EVENT_BLOCK_JOB_2, blockJobEvent(1, 'vda', 3));
    expect(await events).toMatchObject({ disk: 'vda', callbackId: 1 });
  });

  it('refuses with a message naming the fix when the daemon wants polkit and polkit refuses', async () => {
    const daemon = new FakeDaemon({
      authTypes: [2],
      onCall: (call) => {
        if (call.packet.header.proc !== Proc.AUTH_POLKIT) return false;
        call.conn.replyError(
          call.packet,
          45,
          7,
          'authentication failed: no polkit agent available to authenticate action',
        );
        return true;
      },
    });
    daemons.push(daemon);
    await daemon.listen();
    const r = await LibvirtClient.connect({ socket: daemon.socketPath, uri: 'qemu:///system', reconnect: false });
    const e = r._unsafeUnwrapErr();
    expect(e.kind).toBe('access-denied');
    expect((e as { message: string }).message).toMatch(
      /polkit authentication \(authentication failed: no polkit agent.*\): run blockcopy as root, or add the user to group 'libvirt'/,
    );
  });

  it('reports a missing socket as a connection error and never hangs', async () => {
    const r = await LibvirtClient.connect({ socket: '/nonexistent/libvirt-sock', uri: 'qemu:///system' });
    expect(r._unsafeUnwrapErr()).toMatchObject({ kind: 'connection' });
  });
});
