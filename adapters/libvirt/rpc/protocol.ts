/**
 * The part of libvirt's REMOTE program blockcopy speaks: program numbers, the procedures it
 * calls (numbers and argument/result layouts as verified in libvirt-rpc.md §4), the error
 * struct, and the two events it subscribes to. Numbers only: libvirt's remote_protocol.x is not
 * vendored.
 */
import { XdrError, XdrReader, XdrWriter } from './xdr.js';

export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_VERSION = 1;
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_VERSION = 1;
export const KeepaliveProc = { PING: 1, PONG: 2 } as const;

export const Proc = {
  CONNECT_OPEN: 1,
  CONNECT_CLOSE: 2,
  DOMAIN_CREATE_XML: 10,
  DOMAIN_DESTROY: 12,
  DOMAIN_GET_XML_DESC: 14,
  DOMAIN_LOOKUP_BY_NAME: 23,
  DOMAIN_LOOKUP_BY_UUID: 24,
  CONNECT_SUPPORTS_FEATURE: 60,
  AUTH_LIST: 66,
  AUTH_POLKIT: 70,
  DOMAIN_IS_ACTIVE: 150,
  DOMAIN_IS_PERSISTENT: 151,
  CONNECT_GET_LIB_VERSION: 157,
  DOMAIN_GET_BLOCK_INFO: 194,
  DOMAIN_GET_STATE: 212,
  DOMAIN_BLOCK_JOB_ABORT: 237,
  DOMAIN_GET_BLOCK_JOB_INFO: 238,
  DOMAIN_BLOCK_JOB_SET_SPEED: 239,
  DOMAIN_BLOCK_REBASE: 266,
  CONNECT_LIST_ALL_DOMAINS: 273,
  CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: 316,
  CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: 317,
  DOMAIN_EVENT_CALLBACK_LIFECYCLE: 318,
  DOMAIN_EVENT_BLOCK_JOB_2: 339,
  DOMAIN_BLOCK_COPY: 345,
} as const;

export const Feature = { PROGRAM_KEEPALIVE: 10, REMOTE_EVENT_CALLBACK: 14 } as const;
export const EventId = { LIFECYCLE: 0, BLOCK_JOB_2: 16 } as const;
export const AuthType = { NONE: 0, SASL: 1, POLKIT: 2 } as const;

/** virTypedParameterType */
export const ParamType = { INT: 1, UINT: 2, LLONG: 3, ULLONG: 4, DOUBLE: 5, BOOLEAN: 6, STRING: 7 } as const;

/** remote_nonnull_domain: the daemon resolves it by uuid, so it survives a daemon restart. */
export interface DomainRef {
  readonly name: string;
  readonly uuid: Buffer;
  readonly id: number;
}

export type TypedParam =
  | { readonly field: string; readonly type: 'uint'; readonly value: number }
  | { readonly field: string; readonly type: 'ullong'; readonly value: bigint };

/** remote_error, as the daemon sends it in a REPLY with status ERROR. */
export interface RemoteError {
  readonly code: number;
  /** virErrorDomain (10 = QEMU, 7 = RPC/remote, …). */
  readonly domain: number;
  readonly message: string | null;
  readonly level: number;
  readonly str1: string | null;
  readonly int1: number;
}

export function writeDomain(w: XdrWriter, d: DomainRef): void {
  w.string(d.name).fixedOpaque(d.uuid).int(d.id);
}

export function readDomain(r: XdrReader): DomainRef {
  return { name: r.string(), uuid: r.fixedOpaque(16), id: r.int() };
}

function writeParam(w: XdrWriter, p: TypedParam): void {
  w.string(p.field);
  if (p.type === 'uint') w.int(ParamType.UINT).uint(p.value);
  else w.int(ParamType.ULLONG).uhyper(p.value);
}

export function readError(r: XdrReader): RemoteError {
  const code = r.int();
  const domain = r.int();
  const message = r.optional((x) => x.string());
  const level = r.int();
  r.optional(readDomain);
  const str1 = r.optional((x) => x.string());
  r.optional((x) => x.string());
  r.optional((x) => x.string());
  const int1 = r.int();
  r.int();
  r.optional((x) => {
    x.string();
    x.fixedOpaque(16);
  });
  return { code, domain, message, level, str1, int1 };
}

/** Builders for call payloads. */
export const args = {
  none: () => Buffer.alloc(0),
  connectOpen: (uri: string | null, flags = 0) =>
    new XdrWriter()
      .optional(uri, (w, v) => w.string(v))
      .uint(flags)
      .toBuffer(),
  supportsFeature: (feature: number) => new XdrWriter().int(feature).toBuffer(),
  string: (s: string) => new XdrWriter().string(s).toBuffer(),
  uuid: (uuid: Buffer) => new XdrWriter().fixedOpaque(uuid).toBuffer(),
  domain: (d: DomainRef) => {
    const w = new XdrWriter();
    writeDomain(w, d);
    return w.toBuffer();
  },
  domainFlags: (d: DomainRef, flags: number) => {
    const w = new XdrWriter();
    writeDomain(w, d);
    return w.uint(flags).toBuffer();
  },
  createXml: (xml: string, flags: number) => new XdrWriter().string(xml).uint(flags).toBuffer(),
  diskFlags: (d: DomainRef, disk: string, flags: number) => {
    const w = new XdrWriter();
    writeDomain(w, d);
    return w.string(disk).uint(flags).toBuffer();
  },
  setSpeed: (d: DomainRef, disk: string, bandwidth: bigint, flags: number) => {
    const w = new XdrWriter();
    writeDomain(w, d);
    return w.string(disk).uhyper(bandwidth).uint(flags).toBuffer();
  },
  blockRebase: (d: DomainRef, disk: string, base: string | null, bandwidth: bigint, flags: number) => {
    const w = new XdrWriter();
    writeDomain(w, d);
    return w
      .string(disk)
      .optional(base, (x, v) => x.string(v))
      .uhyper(bandwidth)
      .uint(flags)
      .toBuffer();
  },
  blockCopy: (d: DomainRef, disk: string, destXml: string, params: readonly TypedParam[], flags: number) => {
    const w = new XdrWriter();
    writeDomain(w, d);
    return w.string(disk).string(destXml).array(params, writeParam).uint(flags).toBuffer();
  },
  registerAny: (eventId: number, dom: DomainRef | null) =>
    new XdrWriter()
      .int(eventId)
      .optional(dom, (w, v) => writeDomain(w, v))
      .toBuffer(),
  deregisterAny: (callbackId: number) => new XdrWriter().int(callbackId).toBuffer(),
  listAllDomains: (flags: number) => new XdrWriter().int(1).uint(flags).toBuffer(),
};

/** Decoders for reply payloads; each throws XdrError on bad data (the client catches it). */
export const rets = {
  void: () => undefined,
  int: (r: XdrReader) => r.int(),
  uhyper: (r: XdrReader) => r.uhyper(),
  string: (r: XdrReader) => r.string(),
  domain: readDomain,
  authList: (r: XdrReader) => r.array((x) => x.int(), 20),
  state: (r: XdrReader) => ({ state: r.int(), reason: r.int() }),
  /** virDomainGetBlockInfo: capacity is the guest-visible (virtual) size. */
  blockInfo: (r: XdrReader) => ({ allocation: r.uhyper(), capacity: r.uhyper(), physical: r.uhyper() }),
  blockJobInfo: (r: XdrReader) => ({
    found: r.int() !== 0,
    type: r.int(),
    bandwidth: r.uhyper(),
    cur: r.uhyper(),
    end: r.uhyper(),
  }),
  listAllDomains: (r: XdrReader) => {
    const domains = r.array(readDomain, 65536);
    r.uint();
    return domains;
  },
};

export type BlockJobInfoRet = ReturnType<typeof rets.blockJobInfo>;

export type LibvirtEvent =
  | {
      readonly kind: 'lifecycle';
      readonly callbackId: number;
      readonly domain: DomainRef;
      readonly event: number;
      readonly detail: number;
    }
  | {
      readonly kind: 'block-job';
      readonly callbackId: number;
      readonly domain: DomainRef;
      /** The disk's target (BLOCK_JOB_2), e.g. "vda". */
      readonly disk: string;
      readonly type: number;
      readonly status: number;
    };

/** A MESSAGE of the REMOTE program → an event; null for procedures blockcopy does not know. */
export function decodeEvent(proc: number, payload: Buffer): LibvirtEvent | null {
  const r = new XdrReader(payload);
  switch (proc) {
    case Proc.DOMAIN_EVENT_CALLBACK_LIFECYCLE:
      return { kind: 'lifecycle', callbackId: r.int(), domain: readDomain(r), event: r.int(), detail: r.int() };
    case Proc.DOMAIN_EVENT_BLOCK_JOB_2:
      return {
        kind: 'block-job',
        callbackId: r.int(),
        domain: readDomain(r),
        disk: r.string(),
        type: r.int(),
        status: r.int(),
      };
    default:
      return null;
  }
}

export { XdrError, XdrReader, XdrWriter };
