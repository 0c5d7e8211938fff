/**
 * A scriptable stand-in for libvirtd on a unix socket, for the RPC client tests: it answers the
 * handshake the way libvirtd 9.0 does and lets a test answer (or mangle) every other call.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  encodePacket,
  FrameDecoder,
  PacketStatus,
  PacketType,
  type Packet,
} from '../../adapters/libvirt/rpc/framing.js';
import { KEEPALIVE_PROGRAM, Proc, REMOTE_PROGRAM, XdrReader, XdrWriter } from '../../adapters/libvirt/rpc/protocol.js';

export interface FakeCall {
  readonly packet: Packet;
  readonly conn: FakeConnection;
}

export class FakeConnection {
  readonly received: Packet[] = [];
  nextCallbackId = 0;
  constructor(readonly socket: Socket) {}

  reply(call: Packet, payload: Buffer = Buffer.alloc(0), status: number = PacketStatus.OK): void {
    this.socket.write(encodePacket({ ...call.header, type: PacketType.REPLY, status }, payload));
  }

  /** A REPLY with status ERROR carrying a remote_error. */
  replyError(call: Packet, code: number, domain: number, message: string): void {
    const w = new XdrWriter()
      .int(code)
      .int(domain)
      .optional(message, (x, v) => x.string(v))
      .int(2) // level
      .uint(0) // dom
      .optional(message, (x, v) => x.string(v)) // str1
      .uint(0)
      .uint(0)
      .int(-1)
      .int(-1)
      .uint(0); // net
    this.reply(call, w.toBuffer(), PacketStatus.ERROR);
  }

  /** An event (MESSAGE, serial 1) of the REMOTE program. */
  event(proc: number, payload: Buffer): void {
    this.socket.write(
      encodePacket({ prog: REMOTE_PROGRAM, vers: 1, proc, type: PacketType.MESSAGE, serial: 1, status: 0 }, payload),
    );
  }

  keepalive(proc: number): void {
    this.socket.write(
      encodePacket({ prog: KEEPALIVE_PROGRAM, vers: 1, proc, type: PacketType.MESSAGE, serial: 0, status: 0 }),
    );
  }
}

export interface FakeDaemonOptions {
  /** AUTH_LIST answer (default [0]: root, no auth). */
  readonly authTypes?: readonly number[];
  /** Calls after the handshake; return true when handled. */
  readonly onCall?: (call: FakeCall) => boolean | void;
}

export class FakeDaemon {
  readonly dir = mkdtempSync(join(tmpdir(), 'blockcopy-fake-libvirtd-'));
  readonly socketPath = join(this.dir, 'libvirt-sock');
  readonly connections: FakeConnection[] = [];
  private server: Server | null = null;
  onCall: FakeDaemonOptions['onCall'];

  constructor(private readonly options: FakeDaemonOptions = {}) {
    this.onCall = options.onCall;
  }

  listen(): Promise<void> {
    const server = createServer((socket) => {
      const conn = new FakeConnection(socket);
      this.connections.push(conn);
      const decoder = new FrameDecoder();
      socket.on('error', () => {});
      socket.on('data', (chunk: Buffer) => {
        for (const r of decoder.push(chunk)) {
          if (!('packet' in r)) continue;
          conn.received.push(r.packet);
          if (r.packet.header.prog !== REMOTE_PROGRAM) continue;
          this.answer(conn, r.packet);
        }
      });
    });
    this.server = server;
    return new Promise((resolve) => server.listen(this.socketPath, () => resolve()));
  }

  private answer(conn: FakeConnection, call: Packet): void {
    const proc = call.header.proc;
    switch (proc) {
      case Proc.AUTH_LIST:
        conn.reply(call, new XdrWriter().array(this.options.authTypes ?? [0], (w, v) => w.int(v)).toBuffer());
        return;
      case Proc.CONNECT_SUPPORTS_FEATURE:
        conn.reply(call, new XdrWriter().int(1).toBuffer());
        return;
      case Proc.CONNECT_OPEN:
      case Proc.CONNECT_CLOSE:
        conn.reply(call);
        return;
      case Proc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY:
        conn.reply(call, new XdrWriter().int(conn.nextCallbackId++).toBuffer());
        return;
    }
    if (this.onCall?.({ packet: call, conn })) return;
    conn.replyError(call, 3, 7, `this function is not supported by the connection driver: procedure ${proc}`);
  }

  /** Registrations seen on a connection (event ids). */
  static registrations(conn: FakeConnection): number[] {
    return conn.received
      .filter(
        (p) => p.header.proc === Proc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY && p.header.prog === REMOTE_PROGRAM,
      )
      .map((p) => new XdrReader(p.payload).int());
  }

  /** Drops every client connection (as a daemon restart does) and keeps listening. */
  dropClients(): void {
    for (const c of this.connections) c.socket.destroy();
  }

  async close(): Promise<void> {
    this.dropClients();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
