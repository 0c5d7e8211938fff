/** Runs the blockcopy command as a separate process (as another shell would), and the daemon. */
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { callDaemon } from '../../src/daemon/client.js';

const entry = new URL('../../src/cli/run.ts', import.meta.url).pathname;

export interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function blockcopy(
  args: readonly string[],
  env: Record<string, string>,
): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Run>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

/** Starts `blockcopy daemon` and waits until it answers on its socket. */
export async function startDaemon(store: string, socket: string) {
  const d = blockcopy(['daemon', '--store', store, '--socket', socket], {});
  const deadline = Date.now() + 60_000;
  while ((await callDaemon(socket, 'ping', '-')) === null) {
    if (Date.now() > deadline) throw new Error('daemon did not answer within 60 s');
    if (d.child.exitCode !== null) throw new Error(`daemon exited: ${(await d.done).stderr}`);
    await sleep(100);
  }
  return d;
}
