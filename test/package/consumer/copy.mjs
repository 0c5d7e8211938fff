// A new user's plain Node ESM script, run from a project that installed the packed tarball: a
// whole copy on the simulator (start, ready, pivot) in virtual time. Prints one JSON report.
import { AbortFlags, RebaseFlags, VirtualClock, createEngine } from 'blockcopy';
import { SimulatedHypervisor } from 'blockcopy/adapters/sim';

const DEST = '/var/lib/blockcopy/copy.qcow2';
const clock = new VirtualClock();
const hypervisor = new SimulatedHypervisor({ clock });
const engine = createEngine({ hypervisor, clock });
const events = [];
engine.events$.subscribe((e) => events.push(e.status));

const started = await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY);
if (started.isErr()) throw new Error(`blockRebase refused: ${started.error.message}`);
const job = started.value;
await clock.runUntil(() => job.state().startsWith('ready'), 600_000, 50);

const pivot = engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT);
let settled = false;
void job.result.then(() => (settled = true));
await clock.runUntil(() => settled, 600_000, 50);
const pivotResult = await pivot;
const result = await job.result;
const active = await hypervisor.activeImage('demo', 'vda');
engine.close();
await hypervisor.close();

console.log(
  JSON.stringify({
    pivot: pivotResult.isOk(),
    outcome: result.outcome,
    pivoted: result.pivoted,
    states: result.states,
    events,
    activeImage: active.isOk() ? active.value : null,
  }),
);
