/**
 * Reader for the recorded QEMU 7.2 QMP traces (test/fixtures/traces/qemu-7.2/*.jsonl) and a replay
 * harness that drives the simulator with the same commands at the same points, so tests can
 * compare what QEMU did with what the simulator does.
 *
 * "The same points": before each recorded action (QMP command, guest write) the harness lets as
 * much virtual time pass as passed in the recording, then keeps advancing until the simulator has
 * produced at least as many job events as QEMU had produced before that action. A simulator that
 * is faster or slower than the recording therefore still sees each command in the same job state;
 * one that runs ahead (emits an event QEMU emitted only after the command) shows up as a mismatch.
 */
import { readFileSync } from 'node:fs';
import { VirtualClock } from '../../src/core/clock.js';
import type { HypervisorEvent } from '../../src/core/hypervisor-port.js';
import { SimQmp } from '../../adapters/sim/qmp.js';
import { MiB, SimulatedHypervisor } from '../../adapters/sim/index.js';

export const TRACE_DIR = new URL('../fixtures/traces/qemu-7.2/', import.meta.url);

export interface TraceLine {
  readonly seq: number;
  readonly t: number;
  readonly dir: 'send' | 'recv' | 'local';
  readonly kind: 'greeting' | 'command' | 'return' | 'error' | 'event' | 'note';
  readonly msg: any;
}

/**
 * The VM and block-stream traces (v*, s*: qemu-system-x86_64 devices, legacy drives, busy disks,
 * block pull). The simulator's VM tests read them; `blockcopy replay` does not replay them yet
 * (its setup reads a storage daemon's mirror session).
 */
export const VM_TRACE_DIR = new URL('../fixtures/traces/qemu-7.2-vm/', import.meta.url);

export function loadTrace(name: string): TraceLine[] {
  const dir = /^[vs]\d/.test(name) ? VM_TRACE_DIR : TRACE_DIR;
  const text = readFileSync(new URL(`${name}.jsonl`, dir), 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      const o = JSON.parse(l);
      // Post-run checks (after quit) carry no seq: order them after everything else.
      return { ...o, seq: typeof o.seq === 'number' ? o.seq : 1_000_000 + i };
    });
}

/** A job event in a normalized form both sides can produce: "JSC:ready", "READY", "COMPLETED", … */
export interface JobEvent {
  readonly name: string;
  readonly jobId: string;
  /** The last job command sent before the event (label), e.g. "block-job-complete". */
  readonly after: string;
  readonly data: Readonly<Record<string, unknown>>;
}

const QMP_EVENT_NAMES: Record<string, string> = {
  BLOCK_JOB_READY: 'READY',
  BLOCK_JOB_COMPLETED: 'COMPLETED',
  BLOCK_JOB_CANCELLED: 'CANCELLED',
  BLOCK_JOB_ERROR: 'ERROR',
  BLOCK_JOB_PENDING: 'PENDING',
};

/** Commands that act on jobs: the labels events are attributed to. */
export function isJobCommand(execute: string): boolean {
  return execute === 'blockdev-mirror' || execute.startsWith('block-job-') || execute.startsWith('job-');
}

/** A QMP event as a JobEvent, or null for events that are not about jobs. */
export function fromQmpEvent(msg: any, after: string): JobEvent | null {
  const data = msg.data ?? {};
  if (msg.event === 'JOB_STATUS_CHANGE') return { name: `JSC:${data.status}`, jobId: data.id, after, data: {} };
  const name = QMP_EVENT_NAMES[msg.event as string];
  if (name === undefined) return null;
  const { device, id, type: _type, ...rest } = data;
  return { name, jobId: device ?? id, after, data: rest };
}

/** A simulator event as a JobEvent (connection events are not job events). */
export function fromSimEvent(e: HypervisorEvent, after: string): JobEvent | null {
  switch (e.kind) {
    case 'job-status':
      return { name: `JSC:${e.status}`, jobId: e.jobId, after, data: {} };
    case 'job-ready':
      return { name: 'READY', jobId: e.jobId, after, data: { len: e.len, offset: e.offset, speed: e.speed } };
    case 'job-completed': {
      const data = {
        len: e.len,
        offset: e.offset,
        speed: e.speed,
        ...(e.error === undefined ? {} : { error: e.error }),
      };
      return { name: 'COMPLETED', jobId: e.jobId, after, data };
    }
    case 'job-cancelled':
      return { name: 'CANCELLED', jobId: e.jobId, after, data: { len: e.len, offset: e.offset, speed: e.speed } };
    case 'job-error':
      return { name: 'ERROR', jobId: e.jobId, after, data: { operation: e.operation, action: e.action } };
    default:
      return null;
  }
}

/**
 * The job events of a trace, labelled with the job command they followed. `JSC:null` events that
 * QEMU emitted on its own (auto-dismiss=true, the QMP default) are dropped: the simulator runs
 * jobs like libvirt does (auto-dismiss=false), where null only follows job-dismiss.
 */
export function traceJobEvents(lines: readonly TraceLine[]): JobEvent[] {
  const out: JobEvent[] = [];
  const autoDismiss = new Map<string, boolean>();
  let after = '';
  for (const line of lines) {
    if (line.kind === 'command') {
      const execute: string = line.msg.execute;
      if (execute === 'blockdev-mirror') {
        const args = line.msg.arguments ?? {};
        // Without a job-id the job is named after the BlockBackend (v2: drive0).
        autoDismiss.set(args['job-id'] ?? args['device'] ?? '', args['auto-dismiss'] !== false);
      }
      if (isJobCommand(execute)) after = execute;
    } else if (line.kind === 'event') {
      const e = fromQmpEvent(line.msg, after);
      if (e === null) continue;
      if (e.name === 'JSC:null' && autoDismiss.get(e.jobId) === true) continue;
      out.push(e);
    }
  }
  return out;
}

/** The command's reply in the trace, and which job events of its own job came before it. */
export interface RecordedReply {
  readonly execute: string;
  readonly args: Readonly<Record<string, unknown>>;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: { readonly class: string; readonly desc: string };
  /** Job events (for the job the command names) between sending and the reply. */
  readonly eventsBeforeReply: readonly string[];
}

function commandJobId(args: Readonly<Record<string, unknown>>): string {
  const v = args['job-id'] ?? args['device'] ?? args['id'];
  return typeof v === 'string' ? v : '';
}

export function traceReplies(lines: readonly TraceLine[]): RecordedReply[] {
  const out: RecordedReply[] = [];
  lines.forEach((line, i) => {
    if (line.kind !== 'command') return;
    const id = line.msg.id;
    const args = line.msg.arguments ?? {};
    const jobId = commandJobId(args);
    const before: string[] = [];
    for (const later of lines.slice(i + 1)) {
      if ((later.kind === 'return' || later.kind === 'error') && later.msg.id === id) {
        out.push({
          execute: line.msg.execute,
          args,
          ok: later.kind === 'return',
          ...(later.kind === 'return' ? { value: later.msg.return } : { error: later.msg.error }),
          eventsBeforeReply: before,
        });
        return;
      }
      if (later.kind === 'event') {
        const e = fromQmpEvent(later.msg, '');
        if (e !== null && e.jobId === jobId && jobId !== '') before.push(e.name);
      }
    }
  });
  return out;
}

// ---------------------------------------------------------------- replay

/** Commands that only set up the recording environment or inspect QEMU's graph: not replayed. */
const NOT_REPLAYED = new Set([
  'nbd-server-start',
  'block-export-add',
  'query-named-block-nodes',
  'x-debug-query-block-graph',
  'quit',
]);

const DIR = '/trace';

/** The recorded chain (qemu-mirror.md §2.1): 256 MiB virtual, base full, snap1 64 MiB, snap2 64+4 MiB. */
export function traceSimulator(clock: VirtualClock): SimulatedHypervisor {
  return new SimulatedHypervisor({
    clock,
    domains: [
      {
        name: 'trace',
        disks: [
          {
            name: 'vda',
            virtualSize: 256 * MiB,
            chain: [
              { path: `${DIR}/snap2.qcow2`, allocated: 68 * MiB },
              { path: `${DIR}/snap1.qcow2`, allocated: 64 * MiB },
              { path: `${DIR}/base.qcow2`, allocated: 256 * MiB },
            ],
          },
        ],
      },
    ],
    // d's undersized target was created without a note in the trace.
    images: [{ path: `${DIR}/small.qcow2`, virtualSize: 128 * MiB }],
  });
}

export interface SimReply {
  readonly execute: string;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: { readonly class: string; readonly desc: string };
  readonly eventsBeforeReply: readonly string[];
  /** The recorded reply it is compared with. */
  readonly recorded: RecordedReply;
}

export interface Replay {
  readonly sim: SimulatedHypervisor;
  readonly clock: VirtualClock;
  readonly qmp: SimQmp;
  readonly recordedEvents: readonly JobEvent[];
  readonly simEvents: readonly JobEvent[];
  readonly replies: readonly SimReply[];
  /** Harness-level problems (the simulator never caught up with the recording, …). */
  readonly problems: readonly string[];
  /** Recorded automatic node names ("#block174") → the simulator's. */
  readonly aliases: ReadonlyMap<string, string>;
}

function sizeArg(s: string): number {
  const m = /^(\d+)([KMG]?)$/.exec(s);
  if (m === null) throw new Error(`bad size ${s}`);
  const unit = { '': 1, K: 1024, M: MiB, G: 1024 * MiB }[m[2] as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * unit;
}

/** Replace trace-side node names (e.g. QEMU's "#block032") by the simulator's. */
function aliasArgs(args: Readonly<Record<string, unknown>>, aliases: Map<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) out[k] = typeof v === 'string' ? (aliases.get(v) ?? v) : v;
  return out;
}

export interface ReplayOptions {
  /** The simulator to replay on (default traceSimulator: the storage daemon's chain). */
  readonly simulator?: (clock: VirtualClock) => SimulatedHypervisor;
}

export async function replayTrace(name: string, options: ReplayOptions = {}): Promise<Replay> {
  const lines = loadTrace(name);
  const clock = new VirtualClock();
  const sim = (options.simulator ?? traceSimulator)(clock);
  const qmp = new SimQmp(sim, DIR);
  const recordedEvents = traceJobEvents(lines);
  const recordedReplies = traceReplies(lines);
  const simEvents: JobEvent[] = [];
  const replies: SimReply[] = [];
  const problems: string[] = [];
  const aliases = new Map<string, string>();
  let label = '';
  let current: { jobId: string; events: string[] } | null = null;
  // Jobs the recording ran with auto-dismiss=true: the harness dismisses them once concluded.
  const autoDismiss = new Set<string>();
  let dismissing = false;
  sim.events$.subscribe((e) => {
    const je = fromSimEvent(e, label);
    if (je === null || dismissing) return;
    simEvents.push(je);
    if (current !== null && current.jobId === je.jobId && current.jobId !== '') current.events.push(je.name);
  });

  const dismissConcluded = async () => {
    for (const job of sim.listJobs()) {
      if (job.status !== 'concluded' || !autoDismiss.has(job.id)) continue;
      dismissing = true;
      const r = await sim.dismissJob(job.id);
      dismissing = false;
      if (r.isErr()) problems.push(`auto-dismiss ${job.id}: ${r.error.desc}`);
    }
  };

  let lastT: number | null = null;
  let replyIndex = 0;
  // Map each recorded action to the number of (normalized) job events recorded before it.
  const countBefore = (seq: number): number => {
    let n = 0;
    const auto = new Map<string, boolean>();
    for (const l of lines) {
      if (l.seq >= seq) break;
      if (l.kind === 'command' && l.msg.execute === 'blockdev-mirror') {
        const a = l.msg.arguments ?? {};
        auto.set(a['job-id'] ?? a['device'] ?? '', a['auto-dismiss'] !== false);
      }
      if (l.kind !== 'event') continue;
      const e = fromQmpEvent(l.msg, '');
      if (e === null || (e.name === 'JSC:null' && auto.get(e.jobId) === true)) continue;
      n++;
    }
    return n;
  };

  for (const line of lines) {
    const isCommand = line.kind === 'command';
    const write =
      line.kind === 'note'
        ? /qemu-io via NBD export: write (?:-P \S+ |-z )?(\d+[KMG]?) (\d+[KMG]?)/.exec(line.msg.note)
        : null;
    const create =
      line.kind === 'note' && typeof line.msg.cmd === 'string' && line.msg.cmd.startsWith('qemu-img create');
    if (!isCommand && write === null && !create) continue;
    if (isCommand && line.msg.execute === 'quit') break;

    // Let the recorded amount of time pass, then catch up with the recorded events.
    if (lastT !== null) await clock.advance(Math.max(0, Math.round((line.t - lastT) * 1000)));
    lastT = line.t;
    const recordedSoFar = countBefore(line.seq);
    const caught = await clock.runUntil(() => simEvents.length >= recordedSoFar, 120_000, 10);
    if (!caught) problems.push(`seq ${line.seq}: simulator produced ${simEvents.length} of ${recordedSoFar} events`);
    await dismissConcluded();

    if (create) {
      const words = (line.msg.cmd as string).split(/\s+/);
      const opt = (flag: string) => {
        const i = words.indexOf(flag);
        return i >= 0 ? words[i + 1] : undefined;
      };
      const positional = words.filter((w, i) => !w.startsWith('-') && !['-f', '-b', '-F'].includes(words[i - 1] ?? ''));
      const [file, size] = positional.slice(2);
      const backing = opt('-b');
      const r = await sim.createDestination({
        path: `${DIR}/${file}`,
        format: opt('-f') === 'raw' ? 'raw' : 'qcow2',
        virtualSize: sizeArg(size ?? '0'),
        backing:
          backing === undefined ? null : { path: `${DIR}/${backing}`, format: opt('-F') === 'raw' ? 'raw' : 'qcow2' },
      });
      if (r.isErr()) problems.push(`seq ${line.seq}: ${r.error.desc}`);
      continue;
    }
    if (write !== null) {
      const r = sim.guestWrite('trace', 'vda', sizeArg(write[2] ?? '0'));
      if (r.isErr()) problems.push(`seq ${line.seq}: ${r.error.desc}`);
      continue;
    }

    const execute: string = line.msg.execute;
    const recorded = recordedReplies[replyIndex++];
    if (recorded === undefined || recorded.execute !== execute) {
      problems.push(`seq ${line.seq}: no recorded reply for ${execute}`);
      continue;
    }
    // The VM traces name the implicit mirror_top filter only in query-named-block-nodes (v5).
    if (execute === 'query-named-block-nodes' && Array.isArray(recorded.value)) {
      const filter = (recorded.value as { 'node-name': string; drv: string }[]).find((n) => n.drv === 'mirror_top');
      const mine = qmp.filterNodes()[0];
      if (filter !== undefined && mine !== undefined) aliases.set(filter['node-name'], mine);
    }
    if (NOT_REPLAYED.has(execute)) continue;
    if (isJobCommand(execute)) label = execute;
    const args = aliasArgs(line.msg.arguments ?? {}, aliases);
    current = { jobId: commandJobId(args), events: [] };
    const result = await qmp.execute(execute, args);
    // Only a job that started is auto-dismissed (a refused start may reuse a running job's id: v5).
    if (execute === 'blockdev-mirror' && result.isOk() && args['auto-dismiss'] !== false)
      autoDismiss.add(commandJobId(args));
    const before = current.events;
    current = null;
    replies.push({
      execute,
      ok: result.isOk(),
      ...(result.isOk() ? { value: result.value } : { error: result.error }),
      eventsBeforeReply: before,
      recorded,
    });
    // A legacy drive's automatic root node name ("#block174") differs from run to run: learn it.
    if (execute === 'query-block' && result.isOk() && Array.isArray(recorded.value)) {
      const simDevices = result.value as { inserted?: { 'node-name'?: string } }[];
      (recorded.value as { inserted?: { 'node-name'?: string } }[]).forEach((dev, i) => {
        const theirs = dev.inserted?.['node-name'];
        const mine = simDevices[i]?.inserted?.['node-name'];
        if (theirs?.startsWith('#') === true && mine !== undefined) aliases.set(theirs, mine);
      });
    }
    // QEMU names the implicit mirror_top filter "#blockNNN"; learn the simulator's name for it.
    if (execute === 'query-block-exports' && result.isOk() && Array.isArray(recorded.value)) {
      const simExports = result.value as { 'node-name': string }[];
      (recorded.value as { 'node-name': string }[]).forEach((exp, i) => {
        const mine = simExports[i]?.['node-name'];
        if (exp['node-name'].startsWith('#') && mine !== undefined) aliases.set(exp['node-name'], mine);
      });
    }
  }
  // Let whatever the last command started finish, as the recording did before quit.
  await clock.runUntil(() => simEvents.length >= recordedEvents.length, 120_000, 10);
  await dismissConcluded();
  return { sim, clock, qmp, recordedEvents, simEvents, replies, problems, aliases };
}
