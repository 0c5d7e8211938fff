/**
 * The real-QEMU adapter's public surface (`blockcopy/adapters/qmp`): connect to a QEMU process's
 * QMP socket and hand the adapter to `createEngine`. Node naming and event mapping stay internal.
 */
export { connectQemu, QemuHypervisor, type QemuHypervisorOptions } from './qemu-adapter.js';
export type { QmpClient, QmpReconnectOptions } from './client.js';
export { LocalChainFiles, type LocalChainFilesOptions } from '../local-chain-files.js';
