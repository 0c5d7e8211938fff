/**
 * Runs a kill-test child (a TypeScript file under tsx) to its end: how it ended and what it
 * printed. One helper for the QEMU, VM and migration kill tests.
 */
import { spawn } from 'node:child_process';

export interface ChildEnd {
  readonly signal: NodeJS.Signals | null;
  readonly code: number | null;
  /** stdout and stderr, interleaved as they came. */
  readonly output: string;
}

export function runChild(script: string, args: readonly string[]): Promise<ChildEnd> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr.on('data', (d: Buffer) => (output += d.toString()));
    p.on('exit', (code, signal) => resolve({ code, signal, output }));
  });
}

/** The assertion message when a child did not die at its kill point: its output and the hypervisor's state. */
export function childFailure(end: ChildEnd, hypervisorAlive: boolean, log = ''): string {
  return `child exited code=${end.code} signal=${end.signal}; hypervisor alive=${hypervisorAlive}\n${end.output}${
    log ? `\nhypervisor log:\n${log.slice(-2000)}` : ''
  }`;
}
