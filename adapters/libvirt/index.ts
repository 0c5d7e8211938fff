/**
 * The libvirt adapter's public surface (`blockcopy/adapters/libvirt`): connect to libvirtd over
 * its RPC protocol and hand the adapter to `createEngine`. The RPC client and XML reading stay
 * internal.
 */
export { connectLibvirt, LibvirtHypervisor, type LibvirtBlockJob, type LibvirtHypervisorOptions } from './adapter.js';
