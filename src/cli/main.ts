/**
 * The `blockcopy` command. Parses the arguments, runs the command and sets the exit code:
 * 0 success, 1 a refused or failed job, 2 a usage error. Each command's modules are imported
 * when it runs, so `--help` and `--version` start without loading the engine, RxJS or Graphviz.
 */
import { USAGE, parseCommand } from './args.js';
import type { CopyReport, Output } from './copy.js';

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
    case 'copy': {
      const [{ runCopy }, { openHypervisor }] = await Promise.all([import('./copy.js'), import('./hypervisor.js')]);
      const hypervisor = await openHypervisor(cmd.hypervisor);
      if (hypervisor.isErr()) {
        out.error(`error: ${hypervisor.error}`);
        return 2;
      }
      const inspector = cmd.inspect ? await (await import('./inspect.js')).startInspector() : undefined;
      if (inspector) out.error(`inspector: ${inspector.url}`);
      try {
        const run = await runCopy(cmd, {
          hypervisor: hypervisor.value,
          out,
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
  }
}
