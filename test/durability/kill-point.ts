/**
 * The kill point of a kill-test child: "state:NAME" (SIGKILL on entering a chart state) or
 * "after:METHOD" (SIGKILL right after a port method's side effect returned, before the engine
 * recorded it). One helper for the QEMU and libvirt children.
 */
import type { HypervisorPort } from '../../src/core/hypervisor-port.js';

export interface KillPoint {
  readonly kind: 'state' | 'after';
  readonly name: string;
  /** The port, wrapped so that an "after:METHOD" point kills the process. */
  readonly port: HypervisorPort;
  readonly die: () => void;
}

export function killPoint(hv: HypervisorPort, point: string): KillPoint {
  const [kind, name] = point.split(':') as ['state' | 'after', string];
  const die = () => process.kill(process.pid, 'SIGKILL');
  const port = new Proxy(hv, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || kind !== 'after' || prop !== name) return value;
      return (...args: unknown[]) =>
        (value as (...a: unknown[]) => { map: (f: (v: unknown) => unknown) => unknown })
          .apply(target, args)
          .map((v) => {
            die();
            return v;
          });
    },
  });
  return { kind, name, port, die };
}
