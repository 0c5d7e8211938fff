/**
 * libvirt RPC packets: a u32 length (counting itself), a 24-byte header, an XDR payload.
 * FrameDecoder reassembles packets from reads that split and coalesce them arbitrarily, and
 * rejects lengths libvirt itself rejects (under 28 bytes, over 32 MiB). A bad length leaves the
 * stream unsynchronised, so it is fatal to the connection; a bad payload is only fatal to the
 * one call it answers (see client.ts).
 */

export const PacketType = {
  CALL: 0,
  REPLY: 1,
  MESSAGE: 2,
  STREAM: 3,
  CALL_WITH_FDS: 4,
  REPLY_WITH_FDS: 5,
} as const;

export const PacketStatus = { OK: 0, ERROR: 1, CONTINUE: 2 } as const;

export const HEADER_BYTES = 24;
export const LEN_BYTES = 4;
export const MIN_PACKET = LEN_BYTES + HEADER_BYTES;
/** virNetMessage's cap: 32 MiB per packet. */
export const MAX_PACKET = 32 * 1024 * 1024;

export interface PacketHeader {
  readonly prog: number;
  readonly vers: number;
  readonly proc: number;
  readonly type: number;
  readonly serial: number;
  readonly status: number;
}

export interface Packet {
  readonly header: PacketHeader;
  readonly payload: Buffer;
}

export function encodePacket(header: PacketHeader, payload: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(MIN_PACKET + payload.length);
  out.writeUInt32BE(out.length, 0);
  out.writeUInt32BE(header.prog >>> 0, 4);
  out.writeUInt32BE(header.vers >>> 0, 8);
  out.writeInt32BE(header.proc, 12);
  out.writeInt32BE(header.type, 16);
  out.writeUInt32BE(header.serial >>> 0, 20);
  out.writeInt32BE(header.status, 24);
  payload.copy(out, MIN_PACKET);
  return out;
}

export type FrameResult = { readonly packet: Packet } | { readonly fatal: string };

export class FrameDecoder {
  private pending: Buffer[] = [];
  private buffered = 0;
  private broken: string | null = null;

  constructor(private readonly maxPacket = MAX_PACKET) {}

  /** Feeds one read; returns the packets it completed, then a fatal error if the stream broke. */
  push(chunk: Buffer): FrameResult[] {
    if (this.broken !== null) return [];
    this.pending.push(chunk);
    this.buffered += chunk.length;
    const out: FrameResult[] = [];
    for (;;) {
      if (this.buffered < LEN_BYTES) break;
      const head = this.peek(LEN_BYTES);
      const len = head.readUInt32BE(0);
      if (len < MIN_PACKET || len > this.maxPacket) {
        this.broken = `packet length ${len} outside [${MIN_PACKET}, ${this.maxPacket}]`;
        this.pending = [];
        this.buffered = 0;
        out.push({ fatal: this.broken });
        break;
      }
      if (this.buffered < len) break;
      const whole = this.take(len);
      out.push({
        packet: {
          header: {
            prog: whole.readUInt32BE(4),
            vers: whole.readUInt32BE(8),
            proc: whole.readInt32BE(12),
            type: whole.readInt32BE(16),
            serial: whole.readUInt32BE(20),
            status: whole.readInt32BE(24),
          },
          payload: whole.subarray(MIN_PACKET),
        },
      });
    }
    return out;
  }

  /** Bytes of an incomplete packet still held. */
  get held(): number {
    return this.buffered;
  }

  private peek(n: number): Buffer {
    if (this.pending[0]!.length < n) this.pending = [Buffer.concat(this.pending)];
    return this.pending[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length > 0 ? [rest] : [];
    this.buffered -= n;
    return out;
  }
}
