/**
 * The `blockcopy` command. Parses the arguments, runs the command and sets the exit code:
 * 0 success, 1 a refused or failed job, 2 a usage error.
 */
import { USAGE, parseCommand } from './args.js';
import type { CopyReport, Output } from './copy.js';
import { runCopy } from './copy.js';
import { runDemo } from './demo.js';
import { runDiagramCommand } from './diagram.js';
import { openHypervisor } from './hypervisor.js';
import { runInspectCommand, startInspector } from './inspect.js';
import { runReplayCommand } from './replay.js';
import { runBlockjobCommand } from './blockjob.js';
import { runDaemonCommand } from './daemon.js';
import { runListCommand } from './list.js';
import type { CopyCommand } from './args.js';
import type { JobStore } from '../core/job-store.js';
import { daemonRuns, openStore, socketPath, storePath } from './durable.js';
import { runRemoteCopy } from './remote-copy.js';

export const processOutput: Output = {
  line: (text) => process.stdout.write(`${text}\n`),
  overwrite: (text) => process.stdout.write(`\r${text}\u001b[K`),
  error: (text) => process.stderr.write(`${text}\n`),
  tty: process.stdout.isTTY,
};

function printJson(out: Output, report: CopyReport): void {
  out.line(JSON.stringify(report));
}

/** After a copy with --inspect, the page stays up to be looked at until Ctrl-C. */
function servedUntilInterrupted(out: Output, url: string): Promise<void> {
  out.error(`the copy has ended; the inspector keeps serving ${url} until Ctrl-C`);
  return new Promise((resolve) => process.once('SIGINT', () => resolve()));
}

export async function main(argv: readonly string[], out: Output = processOutput): Promise<number> {
  const parsed = parseCommand(argv);
  if (parsed.isErr()) {
    out.error(`error: ${parsed.error.message}\n\n${USAGE}`);
    return 2;
  }
  const cmd = parsed.value;
  switch (cmd.command) {
    case 'help':
      out.line(USAGE);
      return 0;
    case 'demo':
      return runDemo(cmd, out);
    case 'diagram':
      return runDiagramCommand(cmd.argv, out);
    case 'inspect':
      return runInspectCommand(cmd.argv, out);
    case 'replay':
      return runReplayCommand(cmd.argv, out);
    case 'blockjob':
      return runBlockjobCommand(cmd.argv, out);
    case 'list':
      return runListCommand(cmd.argv, out);
    case 'daemon':
      return runDaemonCommand(cmd.argv, out);
    case 'copy': {
      // Durable unless on the in-process simulator: through the daemon when one runs, else
      // recorded in the store by this process.
      const durable = cmd.hypervisor !== 'sim' || cmd.store !== undefined;
      const store = durable ? storePath(cmd.store) : null;
      if (store !== null && !cmd.dryRun && !cmd.inspect) {
        const socket = socketPath(undefined, store);
        if (await daemonRuns(socket)) return runRemoteCopy(cmd, socket, out);
      }
      const opened = store !== null ? openStore(store) : null;
      if (opened?.isErr()) {
        out.error(`error: ${opened.error}`);
        return 1;
      }
      const jobStore = opened?.isOk() ? opened.value : undefined;
      try {
        return await runLocalCopy(cmd, out, jobStore);
      } finally {
        jobStore?.close();
      }
    }
  }
}

async function runLocalCopy(cmd: CopyCommand, out: Output, store: JobStore | undefined): Promise<number> {
  const hypervisor = await openHypervisor(cmd.hypervisor);
  if (hypervisor.isErr()) {
    out.error(`error: ${hypervisor.error}`);
    return 2;
  }
  const inspector = cmd.inspect ? await startInspector() : undefined;
  if (inspector) out.error(`inspector: ${inspector.url}`);
  try {
    const run = await runCopy(cmd, {
      hypervisor: hypervisor.value,
      out,
      ...(store ? { store } : {}),
      ...(inspector ? { inspector } : {}),
      onStarted: (abort) => {
        // Ctrl-C aborts the copy, as virsh does.
        process.once('SIGINT', abort);
        return () => process.removeListener('SIGINT', abort);
      },
    });
    if (cmd.json) printJson(out, run.report);
    if (inspector) await servedUntilInterrupted(out, inspector.url);
    return run.exitCode;
  } finally {
    await inspector?.close();
    await hypervisor.value.close();
  }
}
