/**
 * HypervisorError values and the never-rejecting wrapper that the real adapters (QMP, libvirt) and
 * their local file work share, so that every port method answers a Result, never a throw.
 */
import { err, ResultAsync, type Result } from 'neverthrow';
import type { HypervisorError } from '../src/core/hypervisor-port.js';

/** An adapter step's answer. */
export type Res<T> = Promise<Result<T, HypervisorError>>;

/** A request the hypervisor (or the adapter for it) cannot take as asked. */
export function invalid(command: string, desc: string): HypervisorError {
  return { kind: 'invalid', command, desc };
}

/** A local operation (a file, a tool) failed. */
export function ioError(command: string, e: unknown): HypervisorError {
  return { kind: 'io', command, desc: e instanceof Error ? e.message : String(e) };
}

/** Runs an async body as a ResultAsync that never rejects (a bug becomes an `io` error value). */
export function wrap<T>(command: string, body: () => Res<T>): ResultAsync<T, HypervisorError> {
  return new ResultAsync(
    (async () => {
      try {
        return await body();
      } catch (e) {
        return err<T, HypervisorError>(ioError(command, e));
      }
    })(),
  );
}
