/**
 * Whole-chain live storage migration (`migrateStorage`), one disk or several with a coordinated
 * pivot, as the migrate-storage chart (machines/migrate-storage.ts) with its IO steps provided
 * here, on the engine's public API and the chain-files port:
 *
 *   copy each backing image to DEST-DIR (read-only in the guest, so a plain copy is consistent),
 *   rewrite their backing names to relative ones (qemu-img rebase -u), verify every layer
 *   (qemu-img compare through the new chain), pre-create the new top with a relative backing
 *   name, start a REUSE_EXT|SHALLOW copy into it per disk (child actors), wait until every copy
 *   is ready, pivot them back to back, confirm in listDisks that the guest reads the new chain,
 *   hand the new files over. The old chain is never written; before the first pivot any failure
 *   or cancel aborts every copy and removes only what the migration created. With deleteSource,
 *   once every disk pivoted onto its verified, confirmed new chain, the old chains' files are
 *   deleted (src/workflows/delete-source.ts).
 *
 * Durable with a workflow-capable store (both bundled stores): the record is saved before every
 * side effect; recoverMigrations() after a restart rolls back a migration that had not begun to
 * pivot, and carries one that had forward (see the chart's `reconciling`).
 */
import type { Result } from 'neverthrow';
import { ResultAsync, err, errAsync, ok } from 'neverthrow';
import type { Subscription } from 'rxjs';
import { BehaviorSubject, Observable, ReplaySubject } from 'rxjs';
import { posix } from 'node:path';
import type { InspectionEvent } from 'xstate';
import { createActor, fromCallback, fromPromise } from 'xstate';
import type {
  CopyChildEvent,
  CopyChildInput,
  DiskPlan,
  LayerPlan,
  MigrationContext,
  MigrationInput,
  MigrationOutput,
  MigrationRequest,
  Reconciled,
  SourceDeletion,
} from '../../machines/migrate-storage.js';
import { FORWARD_STATES, migrateStorageMachine } from '../../machines/migrate-storage.js';
import type { ChainFiles } from '../core/chain-files.js';
import { resolveDisk } from '../core/disk-identity.js';
import type { BlockCopyError } from '../core/errors.js';
import { blockCopyError, errors } from '../core/errors.js';
import { AbortFlags, RebaseFlags } from '../core/flags.js';
import type { DiskNames, HypervisorError, HypervisorPort } from '../core/hypervisor-port.js';
import type { LeaseOwner } from '../core/job-store.js';
import type { WorkflowRecord, WorkflowStore } from '../core/workflow-store.js';
import { WORKFLOW_RECORD_FORMAT, isWorkflowStore } from '../core/workflow-store.js';
import type { BlockCopyEngine, BlockCopyJob } from '../engine/engine.js';
import { storeFailure } from '../engine/engine.js';
import { stateName } from '../engine/job-runner.js';
import { localOwner, ownerAlive } from '../engine/lease.js';
import { deleteOldChains, oldFiles } from './delete-source.js';
import { WorkflowJournal } from './workflow-journal.js';

export const MIGRATE_STORAGE_KIND = 'migrate-storage';

/** What a migration runs on. */
export interface MigrationSetup {
  readonly engine: BlockCopyEngine;
  /** The engine's hypervisor (its name keys the records; recovery takes this hypervisor's). */
  readonly hypervisor: HypervisorPort;
  readonly files: ChainFiles;
  /** This process as a lease holder (default: host, pid, start time). */
  readonly owner?: LeaseOwner;
  readonly now?: () => number;
  /** XState inspection observer, installed on the migration actor. */
  readonly inspect?: (event: InspectionEvent) => void;
  /**
   * Called once the record of a step is durable and before the step's side effect, with the
   * step's name ("copy:/dest/base.qcow2", "pivot:vda", …): kill points and fault hooks in tests.
   */
  readonly beforeEffect?: (step: string) => void | Promise<void>;
}

export interface MigrateStorageRequest {
  readonly domain: string;
  /** The disks to move, by any name; 'all': every disk of the domain. */
  readonly disks: readonly string[] | 'all';
  /** Absolute path of an existing directory. */
  readonly destDir: string;
  /**
   * Once every disk pivoted onto its verified new chain and the guest was seen reading it, delete
   * the old chains' files (`--delete-source`): only files of the old chains that no node of the
   * domain uses and that are still the files planned; never a new file. Default false.
   */
  readonly deleteSource?: boolean;
  /** Default: "migrate-<random>". */
  readonly workflowId?: string;
}

/** How far the migration is, over all its steps. */
export interface MigrationProgress {
  readonly state: string;
  /** Units done and total: one per layer copied and verified, per step, and the mirrors' share. */
  readonly done: number;
  readonly total: number;
  /** Mirror progress per disk (bytes), once its copy runs. */
  readonly copies: Readonly<Record<string, { readonly cur: number; readonly end: number }>>;
}

export interface MigrationResult extends MigrationOutput {
  readonly workflowId: string;
  readonly domain: string;
  readonly states: readonly string[];
  /** Every file the migration created, and which of them it removed again. */
  readonly created: readonly string[];
}

export interface StorageMigration {
  readonly workflowId: string;
  readonly domain: string;
  readonly origin: 'new' | 'recovered';
  state(): string;
  states(): readonly string[];
  /** The disks' plans, once planned. */
  plan(): readonly DiskPlan[] | null;
  progress(): MigrationProgress | null;
  readonly progress$: Observable<MigrationProgress>;
  readonly stateChanges$: Observable<string>;
  /** Rolls back if no disk has been asked to pivot yet; ignored afterwards. */
  cancel(): void;
  /** Resolves when the migration has ended; never rejects. */
  readonly result: Promise<MigrationResult>;
}

/** What the record keeps beside the chart's context. */
interface Ledger {
  /** Every path the migration created or was about to create, in order (written ahead). */
  created: string[];
  /** deleteSource: each old file's identity when planned (absent in older records). */
  sources?: Record<string, string>;
  /** deleteSource: the files decided for deletion, recorded before the first is deleted. */
  deleting?: string[];
}

interface RecordData {
  readonly context: MigrationContext;
  readonly ledger: Ledger;
}

const SHALLOW_REUSE = RebaseFlags.COPY | RebaseFlags.REUSE_EXT | RebaseFlags.SHALLOW;
const FULL_COPY = RebaseFlags.COPY;
const LEASE_MS = 60_000;

function randomId(): string {
  return `migrate-${Math.floor(Math.random() * 0xffffffff)
    .toString(16)
    .padStart(8, '0')}`;
}

function invalidArg(message: string): BlockCopyError {
  return blockCopyError('VIR_ERR_INVALID_ARG', message);
}

function failed(message: string): BlockCopyError {
  return blockCopyError('VIR_ERR_OPERATION_FAILED', message);
}

/** Throws a port error as a BlockCopyError (the chart's onError reads it). */
async function must<T>(r: ResultAsync<T, HypervisorError>, what: string): Promise<T> {
  const v = await r;
  if (v.isErr()) throw blockCopyError('VIR_ERR_OPERATION_FAILED', `${what}: ${v.error.desc}`);
  return v.value;
}

async function mustEngine<T>(r: ResultAsync<T, BlockCopyError>): Promise<T> {
  const v = await r;
  if (v.isErr()) throw v.error;
  return v.value;
}

/** Checks a request's shape before anything is read or written. */
export function checkMigrationRequest(request: MigrateStorageRequest): BlockCopyError | null {
  if (typeof request !== 'object' || request === null) return invalidArg('migration request must be an object');
  if (typeof request.domain !== 'string' || request.domain === '') return invalidArg('domain must be a name');
  if (typeof request.destDir !== 'string' || !posix.isAbsolute(request.destDir) || request.destDir.includes('\0'))
    return invalidArg(`destination directory must be an absolute path, not '${String(request.destDir)}'`);
  if (request.disks !== 'all') {
    if (!Array.isArray(request.disks) || request.disks.length === 0)
      return invalidArg("disks must be a non-empty list of disk names, or 'all'");
    if (request.disks.some((d) => typeof d !== 'string' || d === ''))
      return invalidArg('every disk must be a non-empty name');
  }
  if (request.deleteSource !== undefined && typeof request.deleteSource !== 'boolean')
    return invalidArg('deleteSource must be true or false');
  if (request.workflowId !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(request.workflowId))
    return invalidArg(`workflow id '${String(request.workflowId)}' must be letters, digits, '.', '_' or '-'`);
  return null;
}

/**
 * Starts a whole-chain migration of the request's disks to DEST-DIR. Resolves once the plan is
 * made (every check passed) with the running migration, or with the reason nothing was started.
 */
export function migrateStorage(
  setup: MigrationSetup,
  request: MigrateStorageRequest,
): ResultAsync<StorageMigration, BlockCopyError> {
  const bad = checkMigrationRequest(request);
  if (bad) return errAsync(bad);
  const store = setup.engine.store;
  if (store !== null && !isWorkflowStore(store))
    return errAsync(
      blockCopyError('VIR_ERR_OPERATION_UNSUPPORTED', `job store ${store.location} cannot keep workflow records`),
    );
  const workflowId = request.workflowId ?? randomId();
  const input: MigrationInput = {
    workflowId,
    request: {
      domain: request.domain,
      disks: request.disks === 'all' ? 'all' : [...request.disks],
      destDir: posix.normalize(request.destDir),
      ...(request.deleteSource === true ? { deleteSource: true } : {}),
    },
  };
  return new ResultAsync(
    (async (): Promise<Result<StorageMigration, BlockCopyError>> => {
      if (store !== null) {
        const existing = await (store as WorkflowStore).loadWorkflow(workflowId);
        if (existing.isErr()) return err(storeFailure(existing.error));
        if (existing.value !== null) return err(invalidArg(`workflow id '${workflowId}' is already in use`));
      }
      const run = new MigrationRun(setup, input, { created: [] }, 'new', null);
      const first = await run.journal.checkpoint();
      if (first) return err(storeFailure(first));
      run.start();
      // Planning decides whether there is a migration at all: its refusal is the call's error.
      const planned = await run.planned;
      if (planned !== null) return err(planned);
      return ok(run.handle);
    })(),
  );
}

/**
 * Takes over every unfinished migration of this hypervisor in the store whose process is gone:
 * first the engine's own recovery (the copy jobs), then each migration's chart from its record.
 */
export function recoverMigrations(setup: MigrationSetup): ResultAsync<readonly StorageMigration[], BlockCopyError> {
  const store = setup.engine.store;
  if (!isWorkflowStore(store)) return new ResultAsync(Promise.resolve(ok([])));
  const owner = setup.owner ?? localOwner();
  const now = setup.now ?? Date.now;
  return setup.engine.recover().andThen(() =>
    store
      .listWorkflows({ hypervisor: setup.hypervisor.name, kind: MIGRATE_STORAGE_KIND })
      .mapErr(storeFailure)
      .andThen((records) =>
        ResultAsync.fromSafePromise(
          (async () => {
            const out: StorageMigration[] = [];
            for (const r of records) {
              if (r.owner !== owner.id && ownerAlive(r.owner, r.leaseUntil, now())) continue;
              if (r.format !== WORKFLOW_RECORD_FORMAT) continue;
              const claimed = await store.claimWorkflow(r.workflowId, r.owner, owner, now() + LEASE_MS);
              if (claimed.isErr()) continue;
              const data = claimed.value.data as RecordData;
              const run = new MigrationRun(
                setup,
                { workflowId: r.workflowId, request: data.context.request, resume: data.context },
                {
                  ...data.ledger,
                  created: [...data.ledger.created],
                },
                'recovered',
                claimed.value,
              );
              run.start();
              out.push(run.handle);
            }
            return out;
          })(),
        ),
      ),
  );
}

/** One migration: its actor, journal, ledger and the IO steps the chart invokes. */
class MigrationRun {
  readonly journal: WorkflowJournal;
  readonly handle: StorageMigration;
  /** Resolves with planning's refusal, or null once past planning. */
  readonly planned: Promise<BlockCopyError | null>;
  private readonly actor;
  private readonly states: string[] = [];
  private readonly state$ = new ReplaySubject<string>(1);
  private readonly progress$ = new BehaviorSubject<MigrationProgress | null>(null);
  private readonly copies: Record<string, { cur: number; end: number }> = {};
  private unitsDone = 0;
  private readonly subs: { unsubscribe(): void }[] = [];
  private readonly engine: BlockCopyEngine;
  private readonly files: ChainFiles;
  private resolvePlanned!: (e: BlockCopyError | null) => void;

  constructor(
    private readonly setup: MigrationSetup,
    input: MigrationInput,
    private readonly ledger: Ledger,
    origin: 'new' | 'recovered',
    claimed: WorkflowRecord | null,
  ) {
    this.engine = setup.engine;
    this.files = setup.files;
    const now = setup.now ?? Date.now;
    const owner = setup.owner ?? localOwner();
    const recordedState = claimed?.state ?? 'starting';
    this.planned = new Promise((resolve) => (this.resolvePlanned = resolve));
    const machine = migrateStorageMachine.provide({ actors: this.actors(recordedState) });
    this.actor = createActor(machine, { input, ...(setup.inspect ? { inspect: setup.inspect } : {}) });
    const at = now();
    const store = isWorkflowStore(setup.engine.store) ? setup.engine.store : null;
    const record: WorkflowRecord = claimed ?? {
      format: WORKFLOW_RECORD_FORMAT,
      workflowId: input.workflowId,
      kind: MIGRATE_STORAGE_KIND,
      hypervisor: setup.hypervisor.name,
      domain: input.request.domain,
      state: 'starting',
      data: null,
      ended: false,
      createdAt: at,
      updatedAt: at,
      revision: 0,
      owner: owner.id,
      leaseUntil: null,
    };
    this.journal = new WorkflowJournal(
      store,
      record,
      () => {
        const snap = this.actor.getSnapshot();
        const ended = snap.status === 'done';
        return {
          state: stateName(snap.value),
          data: { context: snap.context, ledger: this.ledger } satisfies RecordData,
          ended,
          ...(ended ? { owner: null } : {}),
        };
      },
      now,
    );
    const result = new Promise<MigrationResult>((resolve) => {
      this.subs.push(
        this.actor.subscribe({
          next: (snap) => {
            const name = stateName(snap.value);
            if (this.states[this.states.length - 1] !== name) {
              this.states.push(name);
              this.state$.next(name);
              void this.journal.checkpoint();
              this.emitProgress();
            }
            if (name !== 'planning' && name !== 'starting') {
              if (snap.context.plan === null && snap.status === 'done' && !snap.context.resumed)
                this.resolvePlanned(snap.context.error ?? failed('storage migration failed while planning'));
              else this.resolvePlanned(null);
            }
            if (snap.status === 'done') {
              const output = snap.output;
              void this.journal.checkpoint().then(() => {
                this.state$.complete();
                this.progress$.complete();
                for (const s of this.subs) s.unsubscribe();
                resolve({
                  ...output,
                  workflowId: input.workflowId,
                  domain: input.request.domain,
                  states: [...this.states],
                  created: [...this.ledger.created],
                });
              });
            }
          },
          error: () => undefined,
        }),
      );
    });
    this.handle = {
      workflowId: input.workflowId,
      domain: input.request.domain,
      origin,
      state: () => this.states[this.states.length - 1] ?? 'starting',
      states: () => [...this.states],
      plan: () => this.actor.getSnapshot().context.plan,
      progress: () => this.progress$.getValue(),
      progress$: new Observable<MigrationProgress>((sub) =>
        this.progress$.subscribe({
          next: (p) => p && sub.next(p),
          complete: () => sub.complete(),
        }),
      ),
      stateChanges$: this.state$.asObservable(),
      cancel: () => this.actor.send({ type: 'CANCEL' }),
      result,
    };
  }

  start(): void {
    this.actor.start();
  }

  private get claim(): string {
    return this.actor.getSnapshot().context.workflowId;
  }

  private get domain(): string {
    return this.actor.getSnapshot().context.request.domain;
  }

  /** Write-ahead: the record is durable, then the test hook, then the effect. */
  private async barrier(step: string): Promise<void> {
    const failedSave = await this.journal.checkpoint();
    if (failedSave) throw storeFailure(failedSave);
    await this.setup.beforeEffect?.(step);
  }

  private async noteCreated(path: string, step: string): Promise<void> {
    if (!this.ledger.created.includes(path)) this.ledger.created.push(path);
    await this.barrier(step);
  }

  private emitProgress(): void {
    const ctx = this.actor.getSnapshot().context;
    const plan = ctx.plan ?? [];
    const layers = new Set(plan.flatMap((d) => d.backing.map((l) => l.to))).size;
    // copy + verify per layer, rebase, tops, pivot per disk, confirm, release; mirrors weigh 2 each.
    const total = 2 * layers + 2 + 3 * plan.length + 2;
    let mirrors = 0;
    for (const d of plan) {
      const st = ctx.status[d.disk]?.state;
      if (st === 'ready' || st === 'pivoted') mirrors += 2;
      else {
        const c = this.copies[d.disk];
        if (c && c.end > 0) mirrors += (2 * c.cur) / c.end;
      }
    }
    const pivots = plan.filter((d) => ctx.status[d.disk]?.state === 'pivoted').length;
    const state = stateName(this.actor.getSnapshot().value);
    const tail = state === 'migrated' || state === 'partial' ? 2 : state === 'releasing' ? 1 : 0;
    this.progress$.next({
      state,
      done: Math.min(total, this.unitsDone + mirrors + pivots + tail),
      total,
      copies: { ...this.copies },
    });
  }

  private actors(recordedState: string) {
    return {
      planMigration: fromPromise<readonly DiskPlan[], { workflowId: string; request: MigrationRequest }>(
        async ({ input }) => this.plan(input.request),
      ),
      copyBacking: fromPromise<undefined, { plan: readonly DiskPlan[] }>(async ({ input }) => {
        // Every name is recorded before any copy starts; the layers then copy side by side.
        const layers = uniqueLayers(input.plan);
        for (const layer of layers) if (!this.ledger.created.includes(layer.to)) this.ledger.created.push(layer.to);
        for (const layer of layers) await this.barrier(`copy:${layer.to}`);
        await all(
          layers.map(async (layer) => {
            await must(this.files.copyImage(layer.from, layer.to, this.claim), `copying ${layer.from} to ${layer.to}`);
            this.unitsDone++;
            this.emitProgress();
          }),
        );
        return undefined;
      }),
      rebaseBacking: fromPromise<undefined, { plan: readonly DiskPlan[] }>(async ({ input }) => {
        await this.barrier('rebase');
        for (const layer of uniqueLayers(input.plan)) {
          if (layer.backingName === null || layer.backingFormat === null || layer.format !== 'qcow2') continue;
          await must(
            this.files.rebaseUnsafe(layer.to, layer.backingName, layer.backingFormat),
            `rewriting the backing name of ${layer.to}`,
          );
        }
        this.unitsDone++;
        return undefined;
      }),
      verifyBacking: fromPromise<undefined, { plan: readonly DiskPlan[] }>(async ({ input }) => {
        await this.barrier('verify');
        // Each copy against its original, layer by layer (side by side), and each header names
        // the next copy: together, the new chain reads as the old one.
        await all(
          uniqueLayers(input.plan).map(async (layer) => {
            const c = await must(
              this.files.compareLayer(layer.to, layer.from, layer.format),
              `comparing ${layer.to} with ${layer.from}`,
            );
            if (!c.identical) throw failed(`backing copy ${layer.to} differs from ${layer.from}: ${c.detail}`);
            const h = await must(this.files.header(layer.to), `reading ${layer.to}`);
            if (
              h?.backingName !== layer.backingName ||
              (layer.backingName !== null && h.backingFormat !== layer.backingFormat)
            )
              throw failed(
                `backing copy ${layer.to} names ${h?.backingName ?? 'no backing file'}, not ${layer.backingName ?? 'none'}`,
              );
            this.unitsDone++;
            this.emitProgress();
          }),
        );
        return undefined;
      }),
      createTops: fromPromise<undefined, { plan: readonly DiskPlan[] }>(async ({ input }) => {
        for (const d of input.plan) {
          const below = d.backing[0];
          if (below === undefined) continue; // a disk without backing: the engine creates its copy
          await this.noteCreated(d.top, `create:${d.top}`);
          await must(
            this.files.createOverlay(d.top, posix.basename(below.to), below.format, d.virtualSize, this.claim),
            `creating ${d.top}`,
          );
        }
        this.unitsDone++;
        return undefined;
      }),
      copyDisk: fromCallback<CopyChildEvent, CopyChildInput>(({ input, sendBack, receive }) =>
        this.copyChild(input, sendBack as (e: unknown) => void, receive),
      ),
      recordPivot: fromPromise<undefined, { disk: string }>(async ({ input }) => {
        await this.barrier(`pivot:${input.disk}`);
        return undefined;
      }),
      confirmChains: fromPromise<Readonly<Record<string, readonly string[]>>, { disks: readonly DiskPlan[] }>(
        async ({ input }) => {
          if (input.disks.length === 0) return {};
          const listed = await mustEngine(this.engine.listDisks(this.domain));
          const out: Record<string, readonly string[]> = {};
          const wrong: string[] = [];
          for (const d of input.disks) {
            const names = resolveDisk(listed, d.disk);
            const chain = names.isOk() ? names.value.chain.map((i) => i.path) : [];
            out[d.disk] = chain;
            const expected = [d.top, ...d.backing.map((l) => l.to)];
            if (chain.join('\n') !== expected.join('\n'))
              wrong.push(`disk '${d.disk}' reads ${chain.join(' <- ') || 'nothing'}, not ${expected.join(' <- ')}`);
          }
          if (wrong.length > 0) throw failed(`pivoted, but the guest's chain is not the new one: ${wrong.join('; ')}`);
          return out;
        },
      ),
      release: fromPromise<undefined, { keep: readonly DiskPlan[]; remove: readonly DiskPlan[] }>(async ({ input }) => {
        await this.barrier('release');
        const kept = new Set(input.keep.flatMap(newPaths));
        for (const path of kept)
          if (this.ledger.created.includes(path)) await must(this.files.release(path, this.claim), `releasing ${path}`);
        await this.remove(input.remove.flatMap(newPaths).filter((p) => !kept.has(p)));
        return undefined;
      }),
      deleteSource: fromPromise<SourceDeletion, { disks: readonly DiskPlan[] }>(async ({ input }) =>
        deleteOldChains({
          plan: input.disks,
          domain: this.domain,
          hypervisor: this.setup.hypervisor,
          engine: this.engine,
          files: this.files,
          ledger: this.ledger,
          created: this.ledger.created,
          record: (step) => this.barrier(step),
          hook: async (step) => {
            await this.setup.beforeEffect?.(step);
          },
        }),
      ),
      removeCreated: fromPromise<undefined, { remove: readonly DiskPlan[] }>(async ({ input }) => {
        await this.barrier('rollback');
        const mine = new Set(input.remove.flatMap(newPaths));
        // A plan not yet recorded (killed while planning) leaves only the ledger to go by.
        await this.remove(this.ledger.created.filter((p) => mine.has(p) || input.remove.length === 0));
        return undefined;
      }),
      reconcile: fromPromise<Reconciled, { context: MigrationContext }>(async ({ input }) => {
        const plan = input.context.plan ?? [];
        const disks: Record<string, 'pivoted' | 'job' | 'none'> = {};
        if (plan.length > 0) {
          const listed = await mustEngine(this.engine.listDisks(input.context.request.domain));
          for (const d of plan) {
            const names = resolveDisk(listed, d.disk);
            const top = names.isOk() ? names.value.source : null;
            disks[d.disk] =
              top === d.top && d.backing.length > 0
                ? 'pivoted'
                : this.engine.job(input.context.request.domain, d.disk)
                  ? 'job'
                  : top === d.top
                    ? 'pivoted'
                    : 'none';
          }
        }
        const anyPivoted = Object.values(disks).includes('pivoted');
        return { decision: FORWARD_STATES.test(recordedState) || anyPivoted ? 'forward' : 'rollback', disks };
      }),
    };
  }

  /** Removes the files the migration created among `paths`, newest first. */
  private async remove(paths: readonly string[]): Promise<void> {
    const problems: string[] = [];
    for (const path of [...this.ledger.created].reverse()) {
      if (!paths.includes(path)) continue;
      const r = await this.files.removeOwned(path, this.claim);
      if (r.isErr()) problems.push(`${path}: ${r.error.desc}`);
    }
    if (problems.length > 0) throw failed(`could not remove what the migration created: ${problems.join('; ')}`);
  }

  /** The plan: each disk's chain, its new names in DEST-DIR, every refusal before any write. */
  private async plan(request: MigrationRequest): Promise<readonly DiskPlan[]> {
    const destDir = request.destDir;
    if (!(await must(this.files.isDirectory(destDir), `checking ${destDir}`)))
      throw blockCopyError('VIR_ERR_INVALID_ARG', `destination directory '${destDir}' does not exist`);
    const listed = await mustEngine(this.engine.listDisks(request.domain));
    let chosen: DiskNames[];
    if (request.disks === 'all') chosen = listed.filter((d) => d.chain.length > 0);
    else {
      chosen = [];
      for (const typed of request.disks) {
        const r = resolveDisk(listed, typed);
        if (r.isErr()) throw r.error;
        if (chosen.some((c) => c.disk === r.value.disk)) throw invalidArg(`disk '${typed}' is named twice`);
        chosen.push(r.value);
      }
    }
    if (chosen.length === 0) throw invalidArg(`domain '${request.domain}' has no disk to migrate`);
    const plans: DiskPlan[] = [];
    const targets = new Map<string, string>();
    for (const d of chosen) {
      if (d.job !== null || this.engine.job(request.domain, d.disk)) throw errors.diskInCopyJob(d.disk);
      const top = d.chain[0];
      if (top === undefined) throw failed(`disk '${d.disk}' has no image`);
      const place = (path: string) => {
        const to = posix.join(destDir, posix.basename(path));
        const other = targets.get(to);
        if (other !== undefined && other !== path)
          throw invalidArg(`'${path}' and '${other}' would both be copied to ${to}`);
        targets.set(to, path);
        return to;
      };
      const chain = d.chain.map((img) => ({ ...img, to: place(img.path) }));
      const backing: LayerPlan[] = chain.slice(1).map((img, i) => {
        const below = chain[i + 2];
        return {
          from: img.path,
          to: img.to,
          format: img.format,
          backingName: below ? posix.basename(below.to) : null,
          backingFormat: below ? below.format : null,
        };
      });
      plans.push({
        disk: d.disk,
        source: top.path,
        top: chain[0]!.to,
        topFormat: backing.length > 0 ? 'qcow2' : top.format,
        virtualSize: top.virtualSize,
        backing,
        oldChain: d.chain.map((i) => i.path),
      });
    }
    for (const [to, from] of targets) {
      if (to === from) throw invalidArg(`'${from}' is already in ${destDir}`);
      if (await must(this.files.exists(to), `checking ${to}`))
        throw errors.destinationExists(plans.find((p) => newPaths(p).includes(to))?.disk ?? '?', to);
    }
    // A layer shared by two disks (one base under both) is copied once and serves both.
    if (request.deleteSource === true) {
      // Which file each old path is now: deletion later takes only these very files.
      const sources: Record<string, string> = {};
      for (const path of oldFiles(plans)) {
        const id = await must(this.files.identity(path), `reading ${path}`);
        if (id !== null) sources[path] = id;
      }
      this.ledger.sources = sources;
    }
    return plans;
  }

  /** The child copy actor: one disk's block copy through the engine's public API. */
  private copyChild(
    input: CopyChildInput,
    sendBack: (e: unknown) => void,
    receive: (listener: (e: CopyChildEvent) => void) => void,
  ): () => void {
    const { domain, plan } = input;
    const disk = plan.disk;
    let job: BlockCopyJob | undefined;
    let stopped = false;
    let readySent = false;
    let queued: CopyChildEvent | null = input.abortAtOnce ? { type: 'ABORT' } : null;
    const subs: Subscription[] = [];
    const act = (e: CopyChildEvent) => {
      if (!job) {
        queued = e;
        return;
      }
      if (e.type === 'ABORT') {
        void this.engine.blockJobAbort(domain, disk, 0, { force: true });
        return;
      }
      void this.engine.blockJobAbort(domain, disk, AbortFlags.PIVOT).then((r) => {
        if (r.isErr() && !stopped) sendBack({ type: 'COPY.PIVOT_REFUSED', disk, error: r.error });
      });
    };
    const hold = (j: BlockCopyJob) => {
      job = j;
      sendBack({ type: 'COPY.STARTED', disk, jobId: j.jobId });
      subs.push(
        j.progress$.subscribe((p) => {
          this.copies[disk] = { cur: p.cur, end: p.end };
          this.emitProgress();
        }),
        j.stateChanges$.subscribe((s) => {
          if (!readySent && s.startsWith('ready')) {
            readySent = true;
            sendBack({ type: 'COPY.READY', disk });
          }
        }),
      );
      void j.result.then((r) => {
        if (stopped || r.outcome === 'detached') return;
        sendBack({ type: 'COPY.ENDED', disk, pivoted: r.pivoted, error: r.error });
      });
      const pending = queued;
      queued = null;
      if (pending) act(pending);
    };
    receive(act);
    void (async () => {
      if (input.attach) {
        const j = this.engine.job(domain, disk);
        if (j) hold(j);
        else
          sendBack({
            type: 'COPY.ENDED',
            disk,
            pivoted: false,
            error: failed(`block copy of disk '${disk}' was lost with the process that ran it`),
          });
        return;
      }
      try {
        await this.barrier(`start:${disk}`);
      } catch (e) {
        sendBack({ type: 'COPY.ENDED', disk, pivoted: false, error: e as BlockCopyError });
        return;
      }
      const shallow = plan.backing.length > 0;
      const started = await this.engine.blockRebase(domain, disk, plan.top, 0, shallow ? SHALLOW_REUSE : FULL_COPY, {
        ...(shallow ? { keepDestinationBacking: true } : {}),
      });
      if (started.isErr()) {
        if (!stopped) sendBack({ type: 'COPY.ENDED', disk, pivoted: false, error: started.error });
        return;
      }
      hold(started.value);
    })();
    return () => {
      stopped = true;
      for (const s of subs) s.unsubscribe();
    };
  }
}

/** Waits for every promise; the first failure is thrown once all have settled (no step left running). */
async function all(promises: readonly Promise<void>[]): Promise<void> {
  const settled = await Promise.allSettled(promises);
  const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
}

/** Every backing layer once (a base shared by two disks is copied once). */
function uniqueLayers(plan: readonly DiskPlan[]): LayerPlan[] {
  const seen = new Map<string, LayerPlan>();
  for (const d of plan) for (const l of d.backing) if (!seen.has(l.to)) seen.set(l.to, l);
  return [...seen.values()];
}

/** The files a disk's migration makes in DEST-DIR. */
function newPaths(d: DiskPlan): string[] {
  return [d.top, ...d.backing.map((l) => l.to)];
}
