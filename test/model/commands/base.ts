/** Shared plumbing of the model commands: each command file holds one command. */
import type fc from 'fast-check';
import type { Model } from '../model.js';
import type { System } from '../system.js';

export abstract class Command implements fc.AsyncCommand<Model, System, false> {
  /** Preconditions: the command runs only where the model predicts exactly one outcome. */
  abstract check(m: Readonly<Model>): boolean;
  abstract exec(m: Model, s: System): Promise<void>;
  abstract toString(): string;
  async run(m: Model, s: System): Promise<void> {
    s.commands++;
    await this.exec(m, s);
    m.advanceTo(s.clock.now());
    s.verify();
  }
}

/** The code of a Result's error, or 'ok'. */
export function codeOf(
  r: { isOk(): boolean; isErr(): boolean } & ({ error: { code: string } } | { value: unknown }),
): string {
  return r.isOk() ? 'ok' : (r as { error: { code: string } }).error.code;
}

/** A call to the hypervisor fails with this code while it is unreachable (connection error). */
export const UNREACHABLE = 'VIR_ERR_OPERATION_FAILED';
/** QEMU refused the command (GenericError), as libvirt reports it. */
export const QEMU_REFUSED = 'VIR_ERR_INTERNAL_ERROR';
