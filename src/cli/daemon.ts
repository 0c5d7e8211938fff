/**
 * `blockcopy daemon [--store PATH] [--socket PATH] [--inspector-port PORT]`: runs the daemon
 * (src/daemon/server.ts) in the foreground until SIGTERM or SIGINT, logging to stderr (journald
 * under systemd), the live inspector's address among the first lines.
 */
import { parseArgs } from 'node:util';
import { startDaemon } from '../daemon/server.js';
import type { Output } from './copy.js';
import { openStore, socketPath, storePath } from './durable.js';
import { openHypervisorByName } from './hypervisor.js';

const DAEMON_USAGE = 'usage: blockcopy daemon [--store PATH] [--socket PATH] [--inspector-port PORT]';

export async function runDaemonCommand(argv: readonly string[], out: Output): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { store: { type: 'string' }, socket: { type: 'string' }, 'inspector-port': { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    out.error(`error: ${e instanceof Error ? e.message : String(e)}\n\n${DAEMON_USAGE}`);
    return 2;
  }
  const inspectorPort = values['inspector-port'];
  if (inspectorPort !== undefined && !(/^\d+$/.test(inspectorPort) && Number(inspectorPort) <= 65535)) {
    out.error(`error: --inspector-port expects a TCP port (0..65535), got '${inspectorPort}'\n\n${DAEMON_USAGE}`);
    return 2;
  }
  const store = storePath(values.store);
  const opened = openStore(store);
  if (opened.isErr()) {
    out.error(`error: ${opened.error}`);
    return 1;
  }
  const daemon = await startDaemon({
    socketPath: socketPath(values.socket, store),
    store: opened.value,
    open: (spec) => openHypervisorByName(spec),
    pollIntervalMs: 200,
    inspector: { ...(inspectorPort !== undefined ? { port: Number(inspectorPort) } : {}) },
    log: (line) => out.error(`blockcopy daemon: ${line}`),
  });
  if (daemon.isErr()) {
    out.error(`error: ${daemon.error}`);
    opened.value.close();
    return 1;
  }
  out.error(`blockcopy daemon: store ${store}`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await daemon.value.close();
  opened.value.close();
  return 0;
}
