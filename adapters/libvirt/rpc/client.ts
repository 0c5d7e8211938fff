/**
 * A libvirt RPC client over libvirtd's unix socket: the handshake libvirt's own client does
 * (AUTH_LIST, keepalive, CONNECT_OPEN, event callbacks), calls paired with replies by serial,
 * events dispatched by packet type before serial (events carry serial 1), keepalive PINGs
 * answered and sent, reconnect with back-off after the daemon goes away, and re-registration of
 * event callbacks afterwards (callback ids restart at 0 in a new daemon; events missed while
 * disconnected are never replayed, so users must resync on `connection-restored`).
 *
 * Why hand-written: the npm bindings are dead or lack block jobs, and libvirt-dbus loses events
 * across a daemon restart (libvirt-rpc.md §1). Every call returns a ResultAsync that never
 * rejects; errors are LibvirtRpcError values carrying libvirt's code, domain and message.
 */
import { createConnection, type Socket } from 'node:net';
import { err, ok, ResultAsync, type Result } from 'neverthrow';
import { Observable, Subject } from 'rxjs';
import { systemClock, type Clock } from '../../../src/core/clock.js';
import { encodePacket, FrameDecoder, MAX_PACKET, PacketStatus, PacketType, type Packet } from './framing.js';
import {
  args,
  AuthType,
  decodeEvent,
  EventId,
  Feature,
  KEEPALIVE_PROGRAM,
  KEEPALIVE_VERSION,
  KeepaliveProc,
  Proc,
  readError,
  REMOTE_PROGRAM,
  REMOTE_VERSION,
  rets,
  XdrReader,
  type LibvirtEvent,
  type RemoteError,
} from './protocol.js';

export type LibvirtRpcError =
  /** The daemon answered with an error: libvirt's own code, domain and message. */
  | { readonly kind: 'libvirt'; readonly proc: number; readonly error: RemoteError }
  /** No answer: not connected, the connection dropped, or the daemon is gone. */
  | { readonly kind: 'connection'; readonly proc: number; readonly message: string }
  | { readonly kind: 'timeout'; readonly proc: number; readonly message: string }
  /** An answer that could not be decoded (only this call fails). */
  | { readonly kind: 'protocol'; readonly proc: number; readonly message: string }
  /** The socket or the daemon refused us for lack of privilege; the message names the fix. */
  | { readonly kind: 'access-denied'; readonly proc: number; readonly message: string };

export interface LibvirtReconnectOptions {
  /** Attempts after a drop before the client reports `gone`. Default 60. */
  readonly attempts?: number;
  /** First pause, doubled per attempt up to maxDelayMs. Default 100 ms. */
  readonly initialDelayMs?: number;
  /** Default 1000 ms. */
  readonly maxDelayMs?: number;
}

export interface LibvirtClientOptions {
  /** libvirtd's socket, e.g. /var/run/libvirt/libvirt-sock. */
  readonly socket: string;
  /** The URI CONNECT_OPEN names, e.g. qemu:///system. */
  readonly uri: string;
  readonly clock?: Clock;
  /** Per-call reply deadline (default 30 s). */
  readonly callTimeoutMs?: number;
  /** Keepalive: PING after this much silence (default 5 s); the peer is dead after interval × (count + 1). */
  readonly keepaliveIntervalMs?: number;
  readonly keepaliveCount?: number;
  /** false: a drop is final (`gone`). */
  readonly reconnect?: false | LibvirtReconnectOptions;
  /** Event ids to register (default LIFECYCLE and BLOCK_JOB_2); [] for none. */
  readonly events?: readonly number[];
  /** Packet cap (default 32 MiB, libvirt's). */
  readonly maxPacket?: number;
}

export type LibvirtLifecycleEvent =
  | { readonly kind: 'connection-lost'; readonly reason: string }
  | { readonly kind: 'connection-restored' }
  | { readonly kind: 'gone'; readonly reason: string }
  /** A packet that could not be used (unknown serial, undecodable event, …); the stream goes on. */
  | { readonly kind: 'protocol-error'; readonly message: string };

export type LibvirtClientState = 'connecting' | 'connected' | 'reconnecting' | 'gone' | 'closed';

interface Pending {
  readonly proc: number;
  readonly resolve: (r: Result<Buffer, LibvirtRpcError>) => void;
  readonly timer: unknown;
}

/** The fix for an access refusal, as the README states it. */
export const ACCESS_DENIED_FIX =
  "run blockcopy as root, or add the user to group 'libvirt' (usermod -aG libvirt USER, then log in again), " +
  'or allow org.libvirt.unix.manage through polkit (needs a running polkitd)';

export class LibvirtClient {
  readonly socketPath: string;
  readonly uri: string;
  private readonly clock: Clock;
  private readonly callTimeoutMs: number;
  private readonly keepaliveIntervalMs: number;
  private readonly keepaliveCount: number;
  private readonly reconnectOptions: false | Required<LibvirtReconnectOptions>;
  private readonly eventIds: readonly number[];
  private readonly maxPacket: number;
  private sock: Socket | null = null;
  private decoder: FrameDecoder;
  private serial = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly eventsSubject = new Subject<LibvirtEvent>();
  private readonly lifecycleSubject = new Subject<LibvirtLifecycleEvent>();
  readonly events$: Observable<LibvirtEvent> = this.eventsSubject.asObservable();
  readonly lifecycle$: Observable<LibvirtLifecycleEvent> = this.lifecycleSubject.asObservable();
  private stateValue: LibvirtClientState = 'connecting';
  /** Callback ids of this daemon instance (they restart at 0 after a restart). */
  private callbackIds: number[] = [];
  private keepaliveOn = false;
  private keepaliveTimer: unknown = null;
  private lastReceived = 0;
  /** Handshake calls are allowed before the state is `connected`. */
  private handshaking = false;
  /** Keepalive traffic so far (PINGs from the daemon, our PONGs and PINGs). */
  readonly keepaliveStats = { pingsReceived: 0, pongsSent: 0, pingsSent: 0 };

  private constructor(options: LibvirtClientOptions) {
    this.socketPath = options.socket;
    this.uri = options.uri;
    this.clock = options.clock ?? systemClock;
    this.callTimeoutMs = options.callTimeoutMs ?? 30_000;
    this.keepaliveIntervalMs = options.keepaliveIntervalMs ?? 5_000;
    this.keepaliveCount = options.keepaliveCount ?? 5;
    this.reconnectOptions =
      options.reconnect === false
        ? false
        : {
            attempts: options.reconnect?.attempts ?? 60,
            initialDelayMs: options.reconnect?.initialDelayMs ?? 100,
            maxDelayMs: options.reconnect?.maxDelayMs ?? 1000,
          };
    this.eventIds = options.events ?? [EventId.LIFECYCLE, EventId.BLOCK_JOB_2];
    this.maxPacket = options.maxPacket ?? MAX_PACKET;
    this.decoder = new FrameDecoder(this.maxPacket);
  }

  /** Connects, authenticates, opens the URI and registers the event callbacks. */
  static connect(options: LibvirtClientOptions): ResultAsync<LibvirtClient, LibvirtRpcError> {
    const client = new LibvirtClient(options);
    return new ResultAsync(
      client.establish().then((r) => {
        if (r.isErr()) {
          client.stateValue = 'closed';
          client.sock?.destroy();
          return err(r.error);
        }
        client.stateValue = 'connected';
        return ok(client);
      }),
    );
  }

  get state(): LibvirtClientState {
    return this.stateValue;
  }

  /** One REMOTE call; `decode` reads the reply payload (an XdrError becomes a `protocol` error). */
  call<T>(proc: number, payload: Buffer, decode: (r: XdrReader) => T): ResultAsync<T, LibvirtRpcError> {
    return new ResultAsync(
      this.send(proc, payload).then((r) => {
        if (r.isErr()) return err(r.error);
        try {
          const reader = new XdrReader(r.value);
          const value = decode(reader);
          return ok(value);
        } catch (e) {
          return err({ kind: 'protocol' as const, proc, message: `bad reply to procedure ${proc}: ${String(e)}` });
        }
      }),
    );
  }

  async close(): Promise<void> {
    if (this.stateValue === 'closed') return;
    const wasConnected = this.stateValue === 'connected';
    if (wasConnected) {
      // Polite close; the daemon drops our callbacks with the connection anyway.
      await Promise.race([
        this.send(Proc.CONNECT_CLOSE, args.none()),
        new Promise((resolve) => this.clock.setTimeout(() => resolve(undefined), 1000)),
      ]);
    }
    this.stateValue = 'closed';
    this.stopKeepalive();
    this.sock?.destroy();
    this.sock = null;
    this.failPending('connection', 'client closed');
    this.eventsSubject.complete();
    this.lifecycleSubject.complete();
  }

  // ------------------------------------------------------------------ connection

  private async establish(): Promise<Result<void, LibvirtRpcError>> {
    const opened = await this.openSocket();
    if (opened.isErr()) return err(opened.error);
    this.handshaking = true;
    try {
      return await this.handshake();
    } finally {
      this.handshaking = false;
    }
  }

  private openSocket(): Promise<Result<void, LibvirtRpcError>> {
    return new Promise((resolve) => {
      const sock = createConnection(this.socketPath);
      let settled = false;
      sock.once('connect', () => {
        settled = true;
        this.attach(sock);
        resolve(ok(undefined));
      });
      sock.once('error', (e: NodeJS.ErrnoException) => {
        if (settled) return;
        settled = true;
        sock.destroy();
        if (e.code === 'EACCES' || e.code === 'EPERM')
          resolve(
            err({
              kind: 'access-denied',
              proc: 0,
              message: `access denied on ${this.socketPath} (${e.code}): ${ACCESS_DENIED_FIX}`,
            }),
          );
        else
          resolve(err({ kind: 'connection', proc: 0, message: `cannot connect to ${this.socketPath}: ${e.message}` }));
      });
    });
  }

  private attach(sock: Socket): void {
    this.sock = sock;
    this.decoder = new FrameDecoder(this.maxPacket);
    this.lastReceived = this.clock.now();
    sock.on('data', (chunk: Buffer) => {
      if (this.sock !== sock) return;
      this.lastReceived = this.clock.now();
      for (const r of this.decoder.push(chunk)) {
        if ('fatal' in r) {
          this.lifecycleSubject.next({ kind: 'protocol-error', message: r.fatal });
          sock.destroy(); // unsynchronised stream: drop it (then reconnect)
          this.dropped(sock, `protocol error: ${r.fatal}`);
          return;
        }
        this.dispatch(r.packet);
      }
    });
    sock.on('error', () => {}); // 'close' follows and carries the consequence
    sock.on('close', () => this.dropped(sock, 'connection closed by libvirtd'));
  }

  private async handshake(): Promise<Result<void, LibvirtRpcError>> {
    // AUTH_LIST is where the daemon checks the peer's uid: mandatory even for root.
    const auth = await this.call(Proc.AUTH_LIST, args.none(), rets.authList);
    if (auth.isErr()) return err(auth.error);
    if (!auth.value.includes(AuthType.NONE)) {
      if (!auth.value.includes(AuthType.POLKIT))
        return err({
          kind: 'access-denied',
          proc: Proc.AUTH_LIST,
          message: `libvirtd asks for authentication blockcopy does not speak (types ${auth.value.join(',')}): ${ACCESS_DENIED_FIX}`,
        });
      const polkit = await this.call(Proc.AUTH_POLKIT, args.none(), rets.int);
      if (polkit.isErr())
        return err({
          kind: 'access-denied',
          proc: Proc.AUTH_POLKIT,
          message: `libvirtd refused polkit authentication (${describeError(polkit.error)}): ${ACCESS_DENIED_FIX}`,
        });
    }
    const ka = await this.call(
      Proc.CONNECT_SUPPORTS_FEATURE,
      args.supportsFeature(Feature.PROGRAM_KEEPALIVE),
      rets.int,
    );
    if (ka.isErr()) return err(ka.error);
    this.keepaliveOn = ka.value === 1;
    const open = await this.call(Proc.CONNECT_OPEN, args.connectOpen(this.uri), rets.void);
    if (open.isErr()) return err(open.error);
    this.callbackIds = [];
    if (this.eventIds.length > 0) {
      const cb = await this.call(
        Proc.CONNECT_SUPPORTS_FEATURE,
        args.supportsFeature(Feature.REMOTE_EVENT_CALLBACK),
        rets.int,
      );
      if (cb.isErr()) return err(cb.error);
      if (cb.value !== 1)
        return err({
          kind: 'protocol',
          proc: Proc.CONNECT_SUPPORTS_FEATURE,
          message: 'libvirtd lacks event callbacks',
        });
      for (const id of this.eventIds) {
        const reg = await this.call(
          Proc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
          args.registerAny(id, null),
          rets.int,
        );
        if (reg.isErr()) return err(reg.error);
        this.callbackIds.push(reg.value);
      }
    }
    this.startKeepalive();
    return ok(undefined);
  }

  private dropped(sock: Socket, reason: string): void {
    if (this.sock !== sock) return;
    this.sock = null;
    this.stopKeepalive();
    this.failPending('connection', reason);
    if (this.stateValue !== 'connected') return; // during connect/reconnect the caller handles it
    if (this.reconnectOptions === false) {
      this.stateValue = 'gone';
      this.lifecycleSubject.next({ kind: 'gone', reason });
      return;
    }
    this.stateValue = 'reconnecting';
    this.lifecycleSubject.next({ kind: 'connection-lost', reason });
    void this.reconnectLoop(this.reconnectOptions, reason);
  }

  private async reconnectLoop(opts: Required<LibvirtReconnectOptions>, firstReason: string): Promise<void> {
    let delay = opts.initialDelayMs;
    let last = firstReason;
    for (let i = 0; i < opts.attempts; i++) {
      await new Promise((resolve) => this.clock.setTimeout(() => resolve(undefined), delay));
      if (this.stateValue !== 'reconnecting') return;
      delay = Math.min(delay * 2, opts.maxDelayMs);
      const r = await this.establish();
      if (this.stateValue !== 'reconnecting') {
        this.sock?.destroy();
        return;
      }
      if (r.isOk()) {
        this.stateValue = 'connected';
        this.lifecycleSubject.next({ kind: 'connection-restored' });
        return;
      }
      last = describeError(r.error);
      this.sock?.destroy();
      this.sock = null;
    }
    this.stateValue = 'gone';
    this.lifecycleSubject.next({ kind: 'gone', reason: `reconnecting failed: ${last}` });
  }

  // ------------------------------------------------------------------ packets

  private send(proc: number, payload: Buffer): Promise<Result<Buffer, LibvirtRpcError>> {
    const sock = this.sock;
    const usable = this.stateValue === 'connected' || this.handshaking;
    if (!sock || !usable) {
      return Promise.resolve(
        err({ kind: 'connection', proc, message: `not connected to libvirtd (${this.stateValue})` }),
      );
    }
    const serial = this.nextSerial();
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(() => {
        if (this.pending.delete(serial))
          resolve(err({ kind: 'timeout', proc, message: `no reply to procedure ${proc} in ${this.callTimeoutMs} ms` }));
      }, this.callTimeoutMs);
      this.pending.set(serial, { proc, resolve, timer });
      sock.write(
        encodePacket(
          { prog: REMOTE_PROGRAM, vers: REMOTE_VERSION, proc, type: PacketType.CALL, serial, status: PacketStatus.OK },
          payload,
        ),
      );
    });
  }

  private nextSerial(): number {
    const s = this.serial;
    this.serial = this.serial >= 0x7fffffff ? 1 : this.serial + 1;
    return s;
  }

  private dispatch(packet: Packet): void {
    const h = packet.header;
    // Type first: events are MESSAGEs with serial 1, which may equal a pending call's serial.
    if (h.prog === KEEPALIVE_PROGRAM) {
      if (h.type === PacketType.MESSAGE && h.proc === KeepaliveProc.PING) {
        this.keepaliveStats.pingsReceived++;
        this.writeKeepalive(KeepaliveProc.PONG);
        this.keepaliveStats.pongsSent++;
      }
      return; // a PONG only proves liveness, which lastReceived already recorded
    }
    if (h.prog !== REMOTE_PROGRAM) {
      this.lifecycleSubject.next({
        kind: 'protocol-error',
        message: `packet of unknown program 0x${h.prog.toString(16)}`,
      });
      return;
    }
    if (h.type === PacketType.MESSAGE) {
      let event: LibvirtEvent | null;
      try {
        event = decodeEvent(h.proc, packet.payload);
      } catch (e) {
        this.lifecycleSubject.next({ kind: 'protocol-error', message: `bad event ${h.proc}: ${String(e)}` });
        return;
      }
      if (event === null) {
        this.lifecycleSubject.next({ kind: 'protocol-error', message: `unknown event procedure ${h.proc}` });
        return;
      }
      // Only our current callbacks: a stale id is from a registration of an earlier daemon.
      if (this.callbackIds.includes(event.callbackId)) this.eventsSubject.next(event);
      return;
    }
    if (h.type !== PacketType.REPLY) {
      this.lifecycleSubject.next({ kind: 'protocol-error', message: `unexpected packet type ${h.type}` });
      return;
    }
    const p = this.pending.get(h.serial);
    if (!p) {
      this.lifecycleSubject.next({ kind: 'protocol-error', message: `reply with unknown serial ${h.serial}` });
      return;
    }
    this.pending.delete(h.serial);
    this.clock.clearTimeout(p.timer);
    if (h.proc !== p.proc) {
      p.resolve(err({ kind: 'protocol', proc: p.proc, message: `reply names procedure ${h.proc}, not ${p.proc}` }));
      return;
    }
    if (h.status === PacketStatus.OK) {
      p.resolve(ok(packet.payload));
      return;
    }
    if (h.status === PacketStatus.ERROR) {
      try {
        p.resolve(err({ kind: 'libvirt', proc: p.proc, error: readError(new XdrReader(packet.payload)) }));
      } catch (e) {
        p.resolve(err({ kind: 'protocol', proc: p.proc, message: `undecodable error reply: ${String(e)}` }));
      }
      return;
    }
    p.resolve(err({ kind: 'protocol', proc: p.proc, message: `reply status ${h.status}` }));
  }

  private failPending(kind: 'connection', message: string): void {
    for (const [serial, p] of this.pending) {
      this.pending.delete(serial);
      this.clock.clearTimeout(p.timer);
      p.resolve(err({ kind, proc: p.proc, message }));
    }
  }

  // ------------------------------------------------------------------ keepalive

  private writeKeepalive(proc: number): void {
    this.sock?.write(
      encodePacket({
        prog: KEEPALIVE_PROGRAM,
        vers: KEEPALIVE_VERSION,
        proc,
        type: PacketType.MESSAGE,
        serial: 0,
        status: PacketStatus.OK,
      }),
    );
  }

  private startKeepalive(): void {
    this.stopKeepalive();
    if (!this.keepaliveOn) return;
    const tick = () => {
      const sock = this.sock;
      if (!sock) return;
      const silent = this.clock.now() - this.lastReceived;
      if (silent >= this.keepaliveIntervalMs * (this.keepaliveCount + 1)) {
        sock.destroy();
        this.dropped(sock, `keepalive: no answer from libvirtd in ${silent} ms`);
        return;
      }
      if (silent >= this.keepaliveIntervalMs) {
        this.writeKeepalive(KeepaliveProc.PING);
        this.keepaliveStats.pingsSent++;
      }
      this.keepaliveTimer = this.clock.setTimeout(tick, this.keepaliveIntervalMs);
    };
    this.keepaliveTimer = this.clock.setTimeout(tick, this.keepaliveIntervalMs);
  }

  private stopKeepalive(): void {
    if (this.keepaliveTimer !== null) this.clock.clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = null;
  }
}

/** One line for any client error: libvirt's own message where there is one. */
export function describeError(e: LibvirtRpcError): string {
  if (e.kind === 'libvirt') return e.error.message ?? `libvirt error ${e.error.code}`;
  return e.message;
}
