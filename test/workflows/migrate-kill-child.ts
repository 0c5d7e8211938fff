/**
 * The process the migration kill test SIGKILLs: a whole-chain migration through the public API
 * on real QEMU with a SQLite store, which kills itself at one point: "step:NAME" once the record
 * of a workflow step is durable and before its side effect; "job:STATE" when the copy job enters
 * a chart state; "after:METHOD" right after a hypervisor call returned, before anything recorded it.
 * Usage: node --import tsx migrate-kill-child.ts QMP_SOCKET STORE DEST-DIR KILLPOINT [delete-source]
 */
import { LocalChainFiles } from '../../adapters/local-chain-files.js';
import { connectQemu } from '../../adapters/qmp/qemu-adapter.js';
import { openSqliteStore } from '../../adapters/store/sqlite.js';
import type { HypervisorPort } from '../../src/core/hypervisor-port.js';
import { createEngine } from '../../src/engine/engine.js';
import { migrateStorage } from '../../src/workflows/migrate-storage.js';

const [socket, storePath, destDir, killPoint, option] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string | undefined,
];
const [kind, name] = killPoint.split(/:(.*)/s) as ['step' | 'job' | 'after', string];
const die = () => process.kill(process.pid, 'SIGKILL');

const hv = (await connectQemu({ socket, domain: 'qemu' }))._unsafeUnwrap();
const port = new Proxy(hv, {
  get(target, prop, receiver) {
    const value: unknown = Reflect.get(target, prop, receiver);
    if (typeof value !== 'function') return value;
    if (kind !== 'after' || prop !== name) return (value as (...a: unknown[]) => unknown).bind(target);
    return (...args: unknown[]) =>
      (value as (...a: unknown[]) => { map: (f: (v: unknown) => unknown) => unknown }).apply(target, args).map((v) => {
        die();
        return v;
      });
  },
}) as HypervisorPort;
const store = openSqliteStore(storePath)._unsafeUnwrap();
const engine = createEngine({ hypervisor: port, store, pollIntervalMs: 100 });
engine.jobStates$.subscribe((s) => {
  if (kind === 'job' && s.state === name) die();
});
const started = await migrateStorage(
  {
    engine,
    hypervisor: port,
    files: new LocalChainFiles(),
    beforeEffect: (step) => {
      if (kind === 'step' && step === name) die();
    },
  },
  { domain: 'qemu', disks: ['vda'], destDir, ...(option === 'delete-source' ? { deleteSource: true } : {}) },
);
if (started.isErr()) {
  process.stderr.write(`refused: ${started.error.message}\n`);
  process.exit(3);
}
const result = await started.value.result;
process.stdout.write(`${JSON.stringify(result)}\n`);
// Reaching here means the kill point was never reached: the test counts that as a failure.
process.exit(4);
