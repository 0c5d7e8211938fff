/** Shared plumbing of the model commands: each command file holds one command. */
import type fc from 'fast-check';
import type { Model } from '../model.js';
import type { System } from '../system.js';

export abstract class Command implements fc.AsyncCommand<Model, System, false> {
  abstract check(m: Readonly<Model>): boolean;
  abstract exec(m: Model, s: System): Promise<void>;
  abstract toString(): string;
  async run(m: Model, s: System): Promise<void> {
    s.commands++;
    await this.exec(m, s);
    s.checkInvariants();
  }
}

/** The code of a Result's error, or 'ok'. */
export function codeOf(
  r: { isOk(): boolean; isErr(): boolean } & ({ error: { code: string } } | { value: unknown }),
): string {
  return r.isOk() ? 'ok' : (r as { error: { code: string } }).error.code;
}
