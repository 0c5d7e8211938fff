/**
 * The engine process the block-pull kill test kills: a block pull through the public API on real
 * QEMU with a SQLite store (the whole chain, or down to BASE), which SIGKILLs itself at one point:
 * on entering a pull chart state ("state:NAME"), or right after a side effect returned and before
 * the engine recorded it ("after:METHOD").
 * Usage: node --import tsx pull-kill-child.ts QMP_SOCKET STORE BASE|- KILLPOINT
 */
import { connectQemu } from '../../adapters/qmp/qemu-adapter.js';
import { openSqliteStore } from '../../adapters/store/sqlite.js';
import { createEngine } from '../../src/engine/engine.js';
import type { BlockPullJob } from '../../src/engine/pull-jobs.js';
import { killPoint } from './kill-point.js';

const [socket, storePath, base, point] = process.argv.slice(2) as [string, string, string, string];
const hv = (await connectQemu({ socket, domain: 'qemu' }))._unsafeUnwrap();
const { kind, name, port, die } = killPoint(hv, point);
const store = openSqliteStore(storePath)._unsafeUnwrap();
const engine = createEngine({ hypervisor: port, store, pollIntervalMs: 100 });
engine.jobStates$.subscribe((s) => {
  if (kind === 'state' && s.state === name) die();
});
const started =
  base === '-'
    ? await engine.blockPull('qemu', 'vda', 0, 0)
    : await engine.blockRebase<BlockPullJob>('qemu', 'vda', base, 0, 0);
if (started.isErr()) {
  process.stderr.write(`refused: ${started.error.message}\n`);
  process.exit(3);
}
const result = await started.value.result;
process.stdout.write(`${JSON.stringify(result)}\n`);
// Reaching here means the kill point was never reached: the test counts that as a failure.
process.exit(4);
