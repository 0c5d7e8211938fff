/**
 * The XDR (RFC 4506) subset libvirt's RPC uses: int, unsigned int, (unsigned) hyper as BigInt,
 * strings and opaque data padded to 4 bytes, fixed opaque, optional values and variable arrays.
 *
 * Hand-written (see README, "libvirt"): @stellar/js-xdr is the maintained XDR library, but its
 * 5.x needs Node 22 (we support 20.19), 4.x ships no TypeScript declarations, and its
 * type-registry DSL throws on bad input; the dozen primitives below are smaller than the glue.
 * The reader never reads past its buffer: every shortfall is an XdrError, caught by decoders.
 */

/** Raised by XdrReader on truncated or invalid data; decoders turn it into a Result. */
export class XdrError extends Error {}

/** libvirt's caps (remote_protocol.x): strings up to 4 MiB. */
export const XDR_MAX_STRING = 4 * 1024 * 1024;

export class XdrWriter {
  private chunks: Buffer[] = [];
  private size = 0;

  private push(b: Buffer): this {
    this.chunks.push(b);
    this.size += b.length;
    return this;
  }

  int(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    return this.push(b);
  }

  uint(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    return this.push(b);
  }

  hyper(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(v);
    return this.push(b);
  }

  uhyper(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v);
    return this.push(b);
  }

  double(v: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v);
    return this.push(b);
  }

  /** Variable-length opaque: length, bytes, zero padding to 4. */
  opaque(data: Buffer): this {
    this.uint(data.length);
    this.push(data);
    const pad = (4 - (data.length % 4)) % 4;
    return pad ? this.push(Buffer.alloc(pad)) : this;
  }

  /** Fixed-length opaque (e.g. the 16-byte uuid): no length word. */
  fixedOpaque(data: Buffer): this {
    this.push(data);
    const pad = (4 - (data.length % 4)) % 4;
    return pad ? this.push(Buffer.alloc(pad)) : this;
  }

  string(s: string): this {
    return this.opaque(Buffer.from(s, 'utf8'));
  }

  /** `T*`: 0, or 1 then the value. */
  optional<T>(v: T | null, write: (w: this, v: T) => void): this {
    if (v === null) return this.uint(0);
    this.uint(1);
    write(this, v);
    return this;
  }

  array<T>(items: readonly T[], write: (w: this, v: T) => void): this {
    this.uint(items.length);
    for (const item of items) write(this, item);
    return this;
  }

  get length(): number {
    return this.size;
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}

export class XdrReader {
  private pos = 0;

  constructor(private readonly buf: Buffer) {}

  private need(n: number): void {
    if (this.pos + n > this.buf.length)
      throw new XdrError(`truncated XDR: need ${n} bytes at offset ${this.pos}, have ${this.buf.length - this.pos}`);
  }

  int(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  uint(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  hyper(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  uhyper(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  double(): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }

  opaque(max = XDR_MAX_STRING): Buffer {
    const len = this.uint();
    if (len > max) throw new XdrError(`XDR opaque of ${len} bytes exceeds the cap of ${max}`);
    return this.fixedOpaque(len);
  }

  fixedOpaque(len: number): Buffer {
    const padded = len + ((4 - (len % 4)) % 4);
    this.need(padded);
    const out = Buffer.from(this.buf.subarray(this.pos, this.pos + len));
    this.pos += padded;
    return out;
  }

  string(max = XDR_MAX_STRING): string {
    return this.opaque(max).toString('utf8');
  }

  optional<T>(read: (r: this) => T): T | null {
    const present = this.uint();
    if (present === 0) return null;
    if (present !== 1) throw new XdrError(`invalid XDR optional discriminant ${present}`);
    return read(this);
  }

  array<T>(read: (r: this) => T, max: number): T[] {
    const n = this.uint();
    if (n > max) throw new XdrError(`XDR array of ${n} items exceeds the cap of ${max}`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(read(this));
    return out;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }
}
