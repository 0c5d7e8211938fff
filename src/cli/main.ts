/**
 * The `blockcopy` command. Parses the arguments, runs the command and sets the exit code:
 * 0 success, 1 the operation failed (refused, failed, timed out, interrupted, or the hypervisor
 * could not be reached), 2 a usage error (one line, then where the help is). Each command's modules
 * are imported when it runs, so `--help` and `--version` start without loading the engine, RxJS
 * or Graphviz.
 */
import { parseCommand } from './args.js';
import type { CopyCommand, DomblklistCommand } from './args.js';
import type { CopyReport, Output } from './copy.js';
import { helpText, seeHelp } from './help.js';
import type { HypervisorSources, HypervisorSpec } from './hypervisor.js';
import type { JobStore } from '../core/job-store.js';
import type { Interrupts, SignalSource } from './interrupts.js';
import { trapInterrupts } from './interrupts.js';

export const processOutput: Output = {
  line: (text) => process.stdout.write(`${text}\n`),
  overwrite: (text) => process.stdout.write(`\r${text}\u001b[K`),
  error: (text) => process.stderr.write(`${text}\n`),
  tty: process.stdout.isTTY,
};

/** What main reads from its process; tests pass their own. */
export interface MainEnvironment {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly signals: SignalSource;
}

const processEnvironment: MainEnvironment = { env: process.env, signals: process };

export async function main(
  argv: readonly string[],
  out: Output = processOutput,
  environment: MainEnvironment = processEnvironment,
): Promise<number> {
  const parsed = parseCommand(argv);
  if (parsed.isErr()) {
    out.error(`error: ${parsed.error.error.message}`);
    out.error(seeHelp(parsed.error.command));
    return 2;
  }
  const cmd = parsed.value;
  switch (cmd.command) {
    case 'help':
      out.line(helpText(cmd.topic));
      return 0;
    case 'version':
      out.line((await import('./version.js')).packageVersion());
      return 0;
    case 'demo':
      return (await import('./demo.js')).runDemo(cmd, out);
    case 'diagram':
      return (await import('./diagram.js')).runDiagramCommand(cmd.argv, out);
    case 'inspect':
      return (await import('./inspect.js')).runInspectCommand(cmd.argv, out);
    case 'replay':
      return (await import('./replay.js')).runReplayCommand(cmd.argv, out);
    case 'blockjob':
      return (await import('./blockjob.js')).runBlockjobCommand(cmd.argv, out, environment.env);
    case 'blockpull':
      return (await import('./blockpull.js')).runBlockpullCommand(cmd.argv, out, environment);
    case 'list':
      return (await import('./list.js')).runListCommand(cmd.argv, out);
    case 'daemon':
      return (await import('./daemon.js')).runDaemonCommand(cmd.argv, out);
    case 'migrate-storage':
      return (await import('./migrate-storage.js')).runMigrateStorageCommand(
        cmd.argv,
        out,
        environment.signals,
        environment.env,
      );
    case 'copy':
    case 'domblklist': {
      const { SIMULATOR_NOTICE, describeSpec, selectHypervisor } = await import('./hypervisor.js');
      const spec = selectHypervisor(cmd.command, hypervisorSources(cmd, environment));
      if (spec.isErr()) {
        out.error(`error: ${spec.error.message}`);
        out.error(seeHelp(cmd.command));
        return 2;
      }
      if (cmd.command === 'domblklist') {
        if (spec.value.kind === 'sim') out.error(SIMULATOR_NOTICE);
        return runDomblklistCommand(cmd, spec.value, out);
      }
      // Durable unless on the in-process simulator: through the daemon when one runs, else
      // recorded in the store by this process.
      const { daemonRuns, openStore, socketPath, storePath } = await import('./durable.js');
      const store = spec.value.kind !== 'sim' || cmd.store !== undefined ? storePath(cmd.store) : null;
      if (store !== null && !cmd.dryRun && !cmd.inspect) {
        const socket = socketPath(undefined, store);
        if (await daemonRuns(socket)) {
          return (await import('./remote-copy.js')).runRemoteCopy(cmd, describeSpec(spec.value), socket, out);
        }
      }
      const opened = store !== null ? openStore(store) : null;
      if (opened?.isErr()) {
        out.error(`error: ${opened.error}`);
        return 1;
      }
      const jobStore = opened?.isOk() ? opened.value : undefined;
      // Trapped from here on: a Ctrl-C while connecting or creating the destination still cleans up.
      const interrupts = trapInterrupts(out, environment.signals);
      try {
        if (spec.value.kind === 'sim') out.error(SIMULATOR_NOTICE);
        return await runCopyCommand(cmd, spec.value, out, interrupts, jobStore);
      } finally {
        interrupts.dispose();
        jobStore?.close();
      }
    }
  }
}

function hypervisorSources(cmd: CopyCommand | DomblklistCommand, environment: MainEnvironment): HypervisorSources {
  return { option: cmd.hypervisor, connect: cmd.connect, env: environment.env };
}

/** The report of a copy that never reached the engine: the hypervisor could not be opened. */
function unreachable(
  spec: HypervisorSpec,
  message: string,
  describeSpec: (spec: HypervisorSpec) => string,
): CopyReport {
  return {
    status: 'failed',
    pivoted: false,
    destinationConsistent: false,
    error: { code: 'VIR_ERR_OPERATION_FAILED', number: 9, message: `operation failed: ${message}` },
    states: [],
    hypervisor: describeSpec(spec),
    left: null,
  };
}

async function runCopyCommand(
  cmd: CopyCommand,
  spec: HypervisorSpec,
  out: Output,
  interrupts: Interrupts,
  store: JobStore | undefined,
): Promise<number> {
  const [{ describeSpec, openHypervisor }, { runCopy }] = await Promise.all([
    import('./hypervisor.js'),
    import('./copy.js'),
  ]);
  const hypervisor = await openHypervisor(spec);
  if (hypervisor.isErr()) {
    if (cmd.json) out.line(JSON.stringify(unreachable(spec, hypervisor.error, describeSpec)));
    else out.error(`error: ${hypervisor.error}`);
    return 1;
  }
  const inspector = cmd.inspect ? await (await import('./inspect.js')).startInspector() : undefined;
  if (inspector) out.error(`inspector: ${inspector.url}`);
  try {
    const run = await runCopy(cmd, {
      hypervisor: hypervisor.value,
      out,
      interrupts,
      ...(store ? { store } : {}),
      ...(inspector ? { inspector } : {}),
    });
    if (cmd.json) out.line(JSON.stringify(run.report));
    if (inspector && cmd.inspectKeep && interrupts.caught === null) {
      out.error(`the copy has ended; the inspector keeps serving ${inspector.url} until Ctrl-C`);
      await interrupts.interrupted;
    }
    return run.exitCode;
  } finally {
    await inspector?.close();
    await hypervisor.value.close();
  }
}

async function runDomblklistCommand(cmd: DomblklistCommand, spec: HypervisorSpec, out: Output): Promise<number> {
  const [{ openHypervisor }, { runDomblklist }] = await Promise.all([
    import('./hypervisor.js'),
    import('./domblklist.js'),
  ]);
  const hypervisor = await openHypervisor(spec);
  if (hypervisor.isErr()) {
    out.error(`error: ${hypervisor.error}`);
    return 1;
  }
  try {
    return await runDomblklist(cmd, { hypervisor: hypervisor.value, out });
  } finally {
    await hypervisor.value.close();
  }
}
