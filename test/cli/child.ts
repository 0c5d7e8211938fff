/**
 * `blockcopy` as a real child process (node + tsx on src/cli/run.ts), for tests that need real
 * signals and real exit codes. Output is collected; `waitFor` resolves once stdout or stderr
 * matches, so that tests synchronise on what the command said, never on sleeps.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliChild {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout + stderr matches; rejects if the process exits first. */
  waitFor(pattern: RegExp): Promise<void>;
  /** Exit code (a signal death is reported as 128 + signal number, as a shell would). */
  readonly exited: Promise<number>;
}

export function spawnCli(args: readonly string[], env: Record<string, string | undefined> = {}): CliChild {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, BLOCKCOPY_HYPERVISOR: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters: { pattern: RegExp; resolve: () => void; reject: (e: Error) => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      if (w.pattern.test(out + err)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    check();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    check();
  });
  const exited = new Promise<number>((resolve) => {
    child.once('close', (code, signal) => {
      for (const w of waiters.splice(0)) {
        w.reject(new Error(`exited (${code ?? signal}) before ${w.pattern}:\n${out}\n${err}`));
      }
      resolve(code ?? 128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 9));
    });
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor: (pattern) =>
      new Promise<void>((resolve, reject) => {
        if (pattern.test(out + err)) resolve();
        else waiters.push({ pattern, resolve, reject });
      }),
    exited,
  };
}
