/**
 * A QMP client over a unix socket (node:net), written for the QEMU adapter: greeting +
 * `qmp_capabilities`, one id per command, replies paired by id, per-command timeouts on the
 * injected Clock, events as an Observable, EOF detection and reconnect.
 *
 * Why hand-written: the only QMP package on npm is years stale, and the protocol is small.
 *
 * Facts from qemu-mirror.md that shape it:
 * - Events can arrive *before* the reply of the command that caused them (blockdev-mirror's
 *   `created/running`, job-finalize's COMPLETED), so events are routed as they arrive and never
 *   wait for, or get attached to, a pending command.
 * - After a reconnect QEMU sends a new greeting and does not replay events (scenario j); the
 *   client reports `connection-lost` / `connection-restored` so that its user resyncs from queries.
 * - If QEMU dies there is only EOF (k2); when reconnecting fails the client reports `gone`.
 *
 * Every command returns a ResultAsync that never rejects; errors are HypervisorError values.
 */
import { createConnection, type Socket } from 'node:net';
import { err, ok, ResultAsync, type Result } from 'neverthrow';
import { Observable, Subject } from 'rxjs';
import type { HypervisorError } from '../../src/core/hypervisor-port.js';
import { systemClock, type Clock } from '../../src/core/clock.js';
import { QmpDecoder, type QmpDecodeError, type QmpMessage } from './decoder.js';

export type QmpGreeting = Extract<QmpMessage, { type: 'greeting' }>;
export type QmpEvent = Extract<QmpMessage, { type: 'event' }>;

export interface QmpReconnectOptions {
  /** Connection attempts after a drop before the client gives up (reports `gone`). Default 5. */
  readonly attempts?: number;
  /** Pause before each attempt, in ms. Default 200. */
  readonly delayMs?: number;
}

export interface QmpClientOptions {
  /** Path of QEMU's QMP unix socket. */
  readonly socket: string;
  readonly clock?: Clock;
  /** Reply deadline per command, in ms (default 30 s); a command may override it. */
  readonly commandTimeoutMs?: number;
  /** Deadline for greeting + qmp_capabilities on each (re)connect, in ms. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** Cap for one QMP line (default 1 MiB). */
  readonly maxLineBytes?: number;
  /** false: an EOF is final. Default: { attempts: 5, delayMs: 200 }. */
  readonly reconnect?: false | QmpReconnectOptions;
}

export type QmpLifecycleEvent =
  /** The connection dropped; commands fail until it is restored; events in between are lost. */
  | { readonly kind: 'connection-lost'; readonly reason: string }
  /** Reconnected (a new greeting was received and capabilities negotiated). */
  | { readonly kind: 'connection-restored'; readonly greeting: QmpGreeting }
  /** Reconnecting failed (or was disabled): the QEMU process is taken to be gone. */
  | { readonly kind: 'gone'; readonly reason: string }
  /** A line that could not be decoded; the stream goes on. */
  | { readonly kind: 'protocol-error'; readonly error: QmpDecodeError };

export type QmpClientState = 'connecting' | 'connected' | 'reconnecting' | 'gone' | 'closed';

interface Pending {
  readonly command: string;
  readonly resolve: (r: Result<unknown, HypervisorError>) => void;
  readonly timer: unknown;
}

interface Handshake {
  readonly resolve: (r: Result<QmpGreeting, HypervisorError>) => void;
}

const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Dial failures that a live QEMU gives for a moment. */
const RETRYABLE_DIAL = /\b(ECONNREFUSED|EAGAIN)\b|: EOF from QEMU$/;
// libvirt waits up to 30 s for a starting monitor; a CLI should not hang that long on a dead one.
const REFUSED_RETRY_MS = 3_000;

export class QmpClient {
  readonly socket: string;
  private readonly clock: Clock;
  private readonly commandTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxLineBytes: number | undefined;
  private readonly reconnectAttempts: number;
  private readonly reconnectDelayMs: number;

  private readonly eventsSubject = new Subject<QmpEvent>();
  private readonly lifecycleSubject = new Subject<QmpLifecycleEvent>();
  /** QMP events in arrival order, independent of pending commands. */
  readonly events$: Observable<QmpEvent> = this.eventsSubject.asObservable();
  readonly lifecycle$: Observable<QmpLifecycleEvent> = this.lifecycleSubject.asObservable();

  private sock: Socket | null = null;
  /** Bumped on every dial, so callbacks of an old socket are ignored. */
  private generation = 0;
  private currentState: QmpClientState = 'connecting';
  private lastGreeting: QmpGreeting | null = null;
  private greetings = 0;
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private handshake: Handshake | null = null;
  private reconnectTimer: unknown = null;
  private closedPromise: Promise<void> = Promise.resolve();

  private constructor(options: QmpClientOptions) {
    this.socket = options.socket;
    this.clock = options.clock ?? systemClock;
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.maxLineBytes = options.maxLineBytes;
    const rc = options.reconnect === false ? { attempts: 0, delayMs: 0 } : (options.reconnect ?? {});
    this.reconnectAttempts = rc.attempts ?? 5;
    this.reconnectDelayMs = rc.delayMs ?? 200;
  }

  /** Connects, reads the greeting and negotiates capabilities. */
  static connect(options: QmpClientOptions): ResultAsync<QmpClient, HypervisorError> {
    const client = new QmpClient(options);
    return new ResultAsync(
      client.dialRetryingRefusals().then((r) =>
        r.map(() => {
          // (unless the connection already dropped again and a reconnect is under way)
          if (client.currentState === 'connecting') client.currentState = 'connected';
          return client;
        }),
      ),
    );
  }

  /**
   * QEMU's monitor socket refuses a connect for a moment (between bind and listen at start, or
   * EAGAIN while its one-deep backlog is full), and a connect queued while the previous client
   * leaves may be accepted and closed before the greeting (seen on 7.2 about once in 150 fresh
   * daemons): retry those for up to 3 s before failing.
   */
  private async dialRetryingRefusals(): Promise<Result<QmpGreeting, HypervisorError>> {
    const deadline = this.clock.now() + Math.min(REFUSED_RETRY_MS, this.connectTimeoutMs);
    for (;;) {
      const r = await this.dial();
      if (r.isOk() || !RETRYABLE_DIAL.test(r.error.desc) || this.clock.now() >= deadline) return r;
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, 50));
    }
  }

  get state(): QmpClientState {
    return this.currentState;
  }

  /** The greeting of the current connection. */
  get greeting(): QmpGreeting | null {
    return this.lastGreeting;
  }

  /** Greetings received so far (1 after connect, +1 per reconnect). */
  get greetingCount(): number {
    return this.greetings;
  }

  /**
   * Runs one QMP command. Resolves with the `return` value, or a HypervisorError: `qmp` (QEMU's
   * error class and text, verbatim), `timeout` (no reply within the deadline; a late reply is
   * dropped) or `connection` (not connected, or the connection dropped before the reply).
   */
  execute<T = unknown>(
    command: string,
    args?: Readonly<Record<string, unknown>>,
    options: { readonly timeoutMs?: number } = {},
  ): ResultAsync<T, HypervisorError> {
    if (this.currentState !== 'connected') {
      return new ResultAsync(
        Promise.resolve(err(connectionError(command, `QMP connection is ${this.currentState} (${this.socket})`))),
      );
    }
    return new ResultAsync(this.send(command, args, options.timeoutMs ?? this.commandTimeoutMs)) as ResultAsync<
      T,
      HypervisorError
    >;
  }

  /** Closes the connection for good (no reconnect). Pending commands fail with `connection`. */
  async close(): Promise<void> {
    if (this.currentState === 'closed') return this.closedPromise;
    this.currentState = 'closed';
    if (this.reconnectTimer !== null) this.clock.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.failPending('QMP client closed');
    this.handshake?.resolve(err(connectionError('connect', 'QMP client closed')));
    this.handshake = null;
    const sock = this.sock;
    this.sock = null;
    if (sock && !sock.destroyed) {
      this.closedPromise = new Promise((resolve) => sock.once('close', () => resolve()));
      sock.destroy();
    }
    this.eventsSubject.complete();
    this.lifecycleSubject.complete();
    return this.closedPromise;
  }

  // ------------------------------------------------------------------ internals

  private send(command: string, args: unknown, timeoutMs: number): Promise<Result<unknown, HypervisorError>> {
    const sock = this.sock;
    if (!sock || sock.destroyed) return Promise.resolve(err(connectionError(command, 'QMP socket is not open')));
    const id = `bc${this.nextId++}`;
    const msg: Record<string, unknown> = { execute: command, id };
    if (args !== undefined && Object.keys(args as object).length > 0) msg['arguments'] = args;
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(() => {
        if (!this.pending.delete(id)) return;
        resolve(err({ kind: 'timeout', command, desc: `no reply to '${command}' within ${timeoutMs} ms` }));
      }, timeoutMs);
      this.pending.set(id, { command, resolve, timer });
      sock.write(JSON.stringify(msg) + '\n', (e) => {
        if (!e) return;
        const p = this.pending.get(id);
        if (!p) return;
        this.pending.delete(id);
        this.clock.clearTimeout(p.timer);
        resolve(err(connectionError(command, `write failed: ${e.message}`)));
      });
    });
  }

  /** Opens a socket, waits for the greeting and negotiates capabilities. */
  private dial(): Promise<Result<QmpGreeting, HypervisorError>> {
    const gen = ++this.generation;
    const decoder = new QmpDecoder(this.maxLineBytes === undefined ? {} : { maxLineBytes: this.maxLineBytes });
    return new Promise<Result<QmpGreeting, HypervisorError>>((resolveDial) => {
      const sock = createConnection(this.socket);
      this.sock = sock;
      let settled = false;
      let established = false;
      const finish = (r: Result<QmpGreeting, HypervisorError>) => {
        if (settled) return;
        settled = true;
        this.clock.clearTimeout(timer);
        if (r.isOk()) established = true;
        else if (gen === this.generation) {
          // A failed handshake leaves no socket behind.
          this.handshake = null;
          this.sock = null;
          sock.destroy();
        }
        resolveDial(r);
      };
      const timer = this.clock.setTimeout(() => {
        finish(
          err({ kind: 'timeout', command: 'connect', desc: `no QMP greeting within ${this.connectTimeoutMs} ms` }),
        );
      }, this.connectTimeoutMs);

      let lastError = '';
      this.handshake = {
        resolve: (r) => {
          this.handshake = null;
          if (r.isErr()) return finish(r);
          const greeting = r.value;
          void this.send('qmp_capabilities', undefined, this.connectTimeoutMs).then((c) =>
            finish(c.map(() => greeting)),
          );
        },
      };
      sock.on('data', (chunk: Buffer) => {
        if (gen !== this.generation) return;
        for (const r of decoder.push(chunk)) {
          if (r.isErr()) this.onProtocolError(r.error);
          else this.route(r.value);
        }
      });
      sock.on('error', (e) => {
        lastError = e.message;
      });
      sock.on('close', () => {
        if (gen !== this.generation) return;
        for (const r of decoder.end()) if (r.isErr()) this.onProtocolError(r.error);
        const reason = lastError || 'EOF from QEMU';
        if (established) return this.onDrop(reason);
        this.failPending(`QMP connection closed during handshake: ${reason}`);
        finish(err(connectionError('connect', `${this.socket}: ${reason}`)));
      });
    });
  }

  private route(msg: QmpMessage): void {
    switch (msg.type) {
      case 'greeting':
        this.lastGreeting = msg;
        this.greetings++;
        this.handshake?.resolve(ok(msg));
        return;
      case 'event':
        this.eventsSubject.next(msg);
        return;
      case 'return':
      case 'error': {
        const id = typeof msg.id === 'string' ? msg.id : undefined;
        const p = id === undefined ? undefined : this.pending.get(id);
        // A reply without a pending command is a late reply after a timeout: drop it.
        if (!p || id === undefined) return;
        this.pending.delete(id);
        this.clock.clearTimeout(p.timer);
        p.resolve(
          msg.type === 'return'
            ? ok(msg.value)
            : err({ kind: 'qmp', errorClass: msg.errorClass, command: p.command, desc: msg.desc }),
        );
        return;
      }
    }
  }

  private onProtocolError(error: QmpDecodeError): void {
    this.lifecycleSubject.next({ kind: 'protocol-error', error });
    // QEMU writes a reply's id last: an oversized reply can still fail its command at once
    // rather than at its timeout.
    const id = error.kind === 'oversized' ? /"id":\s*"([^"\\]+)"\s*}\s*$/.exec(error.tail ?? '')?.[1] : undefined;
    const p = id === undefined ? undefined : this.pending.get(id);
    if (!p || id === undefined) return;
    this.pending.delete(id);
    this.clock.clearTimeout(p.timer);
    p.resolve(err({ kind: 'invalid', command: p.command, desc: `reply dropped: ${error.detail}` }));
  }

  private failPending(reason: string): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      this.clock.clearTimeout(p.timer);
      p.resolve(err(connectionError(p.command, reason)));
    }
  }

  /** The established connection dropped (EOF, reset, or the peer closed it). */
  private onDrop(reason: string): void {
    if (this.currentState === 'closed' || this.currentState === 'gone') return;
    this.sock = null;
    this.failPending(`QMP connection lost: ${reason}`);
    this.lifecycleSubject.next({ kind: 'connection-lost', reason });
    if (this.reconnectAttempts <= 0) return this.giveUp(reason);
    this.currentState = 'reconnecting';
    this.scheduleReconnect(1, reason);
  }

  private scheduleReconnect(attempt: number, lastReason: string): void {
    if (attempt > this.reconnectAttempts) return this.giveUp(lastReason);
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = null;
      if (this.currentState !== 'reconnecting') return;
      void this.dial().then((r) => {
        if (this.currentState !== 'reconnecting') return;
        if (r.isOk()) {
          this.currentState = 'connected';
          this.lifecycleSubject.next({ kind: 'connection-restored', greeting: r.value });
        } else this.scheduleReconnect(attempt + 1, r.error.desc);
      });
    }, this.reconnectDelayMs);
  }

  private giveUp(reason: string): void {
    this.currentState = 'gone';
    this.lifecycleSubject.next({
      kind: 'gone',
      reason: `QEMU at ${this.socket} unreachable after ${this.reconnectAttempts} reconnect attempt(s): ${reason}`,
    });
  }
}

function connectionError(command: string, desc: string): HypervisorError {
  return { kind: 'connection', command, desc };
}
