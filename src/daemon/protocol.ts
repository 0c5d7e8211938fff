/**
 * The daemon's control API: one JSON request per HTTP POST on a unix socket, one JSON answer.
 * Requests name a verb, the hypervisor connection and the verb's arguments, which reach the
 * engine as they are, so they get the library's own validation and libvirt error codes. This
 * module only checks the envelope (pure, no IO).
 */
import { err, ok, type Result } from 'neverthrow';
import type { BlockCopyError } from '../core/errors.js';
import { blockCopyError } from '../core/errors.js';

/** Largest request body accepted, in bytes. */
export const MAX_BODY_BYTES = 64 * 1024;

export const VERBS = [
  'copy',
  'info',
  'abort',
  'speed',
  'pause',
  'resume',
  'job',
  'list',
  'disks',
  'foreign',
  'ping',
] as const;
export type Verb = (typeof VERBS)[number];

export interface ControlRequest {
  readonly verb: Verb;
  /** The hypervisor connection, as --hypervisor names it ("sim", "qmp:/run/vm.qmp"). */
  readonly hypervisor: string;
  readonly args: Readonly<Record<string, unknown>>;
}

export type ControlAnswer =
  { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: BlockCopyError };

const invalid = (detail: string) => blockCopyError('VIR_ERR_INVALID_ARG', detail);

export function parseRequest(body: string): Result<ControlRequest, BlockCopyError> {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return err(invalid('control request is not valid JSON'));
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return err(invalid('control request must be a JSON object'));
  const { verb, hypervisor, args } = value as Record<string, unknown>;
  if (typeof verb !== 'string' || !(VERBS as readonly string[]).includes(verb))
    return err(invalid(`unknown verb '${String(verb)}' (expected one of ${VERBS.join(', ')})`));
  if (typeof hypervisor !== 'string' || hypervisor.length === 0 || hypervisor.length > 4096)
    return err(invalid('hypervisor must be a non-empty string'));
  if (args !== undefined && (typeof args !== 'object' || args === null || Array.isArray(args)))
    return err(invalid('args must be a JSON object'));
  return ok({ verb: verb as Verb, hypervisor, args: (args ?? {}) as Record<string, unknown> });
}

/** Reads a string argument (absent → undefined; any other type → a typed error). */
export function stringArg(
  args: Readonly<Record<string, unknown>>,
  name: string,
): Result<string | undefined, BlockCopyError> {
  const v = args[name];
  if (v === undefined) return ok(undefined);
  return typeof v === 'string' ? ok(v) : err(invalid(`argument '${name}' must be a string`));
}

/** Reads a number argument (absent → the default; a non-number → a typed error). */
export function numberArg(
  args: Readonly<Record<string, unknown>>,
  name: string,
  fallback: number,
): Result<number, BlockCopyError> {
  const v = args[name];
  if (v === undefined) return ok(fallback);
  return typeof v === 'number' && Number.isFinite(v) ? ok(v) : err(invalid(`argument '${name}' must be a number`));
}
