/**
 * The conformance table on the libvirt adapter against a real libvirtd (transient, paused TCG
 * guests). libvirtd and virtlogd are started when not running and stopped only if started here.
 */
import { afterAll } from 'vitest';
import { disposeLibvirtLab, libvirtDriver } from './libvirt-driver.js';
import { runConformance } from './table.js';

runConformance(libvirtDriver());
afterAll(disposeLibvirtLab, 120_000);
