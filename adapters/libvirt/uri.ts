/**
 * virsh-style connection URIs: `qemu:///system` (libvirtd's default socket) and
 * `qemu+unix:///system?socket=PATH` (another socket, e.g. a modular daemon's virtqemud-sock).
 * Only local unix transports: blockcopy opens no TCP, TLS or ssh connections.
 */
import { err, ok, type Result } from 'neverthrow';

export const DEFAULT_SOCKET = '/var/run/libvirt/libvirt-sock';

export interface ConnectUri {
  /** The unix socket to connect to. */
  readonly socket: string;
  /** What CONNECT_OPEN names (transport and query stripped, as libvirt's remote driver does). */
  readonly openUri: string;
}

export function parseConnectUri(uri: string): Result<ConnectUri, string> {
  const m = /^([a-z0-9]+)(?:\+([a-z0-9]+))?:\/\/([^/?]*)(\/[^?]*)?(?:\?(.*))?$/i.exec(uri);
  if (!m) return err(`invalid connection URI '${uri}': expected e.g. qemu:///system`);
  const [, driver, transport, host, path = '', query = ''] = m;
  if (transport !== undefined && transport !== 'unix')
    return err(`unsupported transport '${transport}' in '${uri}': only local unix sockets (qemu+unix://)`);
  if (host !== '') return err(`remote host '${host}' in '${uri}': only the local host is supported`);
  if (driver !== 'qemu')
    return err(`unsupported driver '${driver}' in '${uri}': blockcopy drives QEMU (qemu:///system)`);
  let socket = DEFAULT_SOCKET;
  for (const part of query.split('&').filter((p) => p !== '')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
    if (key === 'socket') {
      if (!value.startsWith('/')) return err(`socket in '${uri}' must be an absolute path`);
      socket = value;
    } else return err(`unsupported URI parameter '${key}' in '${uri}'`);
  }
  return ok({ socket, openUri: `${driver}://${path}` });
}
