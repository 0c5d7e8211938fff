/**
 * The engine process the kill tests kill: a copy through the public API on real QEMU with a
 * SQLite store, which SIGKILLs itself at one point: on entering a chart state ("state:NAME"), or
 * right after a side effect returned and before the engine recorded it ("after:METHOD").
 * Usage: node --import tsx kill-child.ts QMP_SOCKET STORE DEST pivot|finish KILLPOINT
 */
import { connectQemu } from '../../adapters/qmp/qemu-adapter.js';
import { openSqliteStore } from '../../adapters/store/sqlite.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { createEngine } from '../../src/engine/engine.js';
import { killPoint } from './kill-point.js';

const [socket, storePath, dest, intent, point] = process.argv.slice(2) as [
  string,
  string,
  string,
  'pivot' | 'finish',
  string,
];
const hv = (await connectQemu({ socket, domain: 'qemu' }))._unsafeUnwrap();
const { kind, name, port, die } = killPoint(hv, point);
const store = openSqliteStore(storePath)._unsafeUnwrap();
const engine = createEngine({ hypervisor: port, store, pollIntervalMs: 100 });
let endSent = false;
engine.jobStates$.subscribe((s) => {
  if (kind === 'state' && s.state === name) die();
  if (s.state === 'ready.synced' && !endSent) {
    endSent = true;
    queueMicrotask(() => void engine.blockJobAbort('qemu', 'vda', intent === 'pivot' ? AbortFlags.PIVOT : 0));
  }
});
const started = await engine.blockRebase('qemu', 'vda', dest, 0, RebaseFlags.COPY, { endIntent: intent });
if (started.isErr()) {
  process.stderr.write(`refused: ${started.error.message}\n`);
  process.exit(3);
}
const result = await started.value.result;
process.stdout.write(`${JSON.stringify(result)}\n`);
// Reaching here means the kill point was never reached: the test counts that as a failure.
process.exit(4);
