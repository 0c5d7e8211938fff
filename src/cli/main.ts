/**
 * The `blockcopy` command. Parses the arguments, runs the command and sets the exit code:
 * 0 success, 1 a refused or failed job, 2 a usage error.
 */
import { USAGE, parseCommand } from './args.js';
import type { CopyReport, Output } from './copy.js';
import { runCopy } from './copy.js';
import { runDemo } from './demo.js';
import { openHypervisor } from './hypervisor.js';

export const processOutput: Output = {
  line: (text) => process.stdout.write(`${text}\n`),
  overwrite: (text) => process.stdout.write(`\r${text}\u001b[K`),
  error: (text) => process.stderr.write(`${text}\n`),
  tty: process.stdout.isTTY,
};

function printJson(out: Output, report: CopyReport): void {
  out.line(JSON.stringify(report));
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
    case 'copy': {
      const hypervisor = await openHypervisor(cmd.hypervisor);
      if (hypervisor.isErr()) {
        out.error(`error: ${hypervisor.error}`);
        return 2;
      }
      try {
        const run = await runCopy(cmd, {
          hypervisor: hypervisor.value,
          out,
          onStarted: (abort) => {
            // Ctrl-C aborts the copy, as virsh does.
            process.once('SIGINT', abort);
            return () => process.removeListener('SIGINT', abort);
          },
        });
        if (cmd.json) printJson(out, run.report);
        return run.exitCode;
      } finally {
        await hypervisor.value.close();
      }
    }
  }
}
