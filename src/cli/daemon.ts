/**
 * `blockcopy daemon [--store PATH] [--socket PATH]`: runs the daemon (src/daemon/server.ts) in the
 * foreground until SIGTERM or SIGINT, logging to stderr (journald under systemd).
 */
import { parseArgs } from 'node:util';
import { startDaemon } from '../daemon/server.js';
import type { Output } from './copy.js';
import { openStore, socketPath, storePath } from './durable.js';
import { openHypervisorByName } from './hypervisor.js';

export async function runDaemonCommand(argv: readonly string[], out: Output): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { store: { type: 'string' }, socket: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    out.error(
      `error: ${e instanceof Error ? e.message : String(e)}\n\nusage: blockcopy daemon [--store PATH] [--socket PATH]`,
    );
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
