/** A client of the daemon's control API (HTTP over its unix socket). */
import { request } from 'node:http';
import type { BlockCopyError } from '../core/errors.js';
import { blockCopyError } from '../core/errors.js';
import type { ControlAnswer, Verb } from './protocol.js';

/** null: no daemon answers on the socket. */
export function callDaemon(
  socketPath: string,
  verb: Verb,
  hypervisor: string,
  args: Record<string, unknown> = {},
): Promise<ControlAnswer | null> {
  return new Promise((resolve) => {
    const body = JSON.stringify({ verb, hypervisor, args });
    const req = request(
      // One connection per call (no keep-alive pool): a daemon restart never leaves a dead socket behind.
      { socketPath, path: '/v1', method: 'POST', agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as ControlAnswer);
          } catch {
            resolve({ ok: false, error: daemonError('the daemon sent an answer that is not JSON') });
          }
        });
        res.on('error', () => resolve(null));
      },
    );
    req.on('error', () => resolve(null));
    req.end(body);
  });
}

function daemonError(detail: string): BlockCopyError {
  return blockCopyError('VIR_ERR_INTERNAL_ERROR', detail);
}
