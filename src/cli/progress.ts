/** Progress rendering for the CLI, in virsh's "Block Copy: [ 42 %]" style. */
import type { JobProgress } from '../engine/job-runner.js';

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/**
 * One progress line. Percent follows libvirt's rule: 100 % only once the hypervisor said ready
 * (at the start cur == end == 0, and len grows with guest writes).
 */
export function progressLine(p: JobProgress, ready: boolean): string {
  const fraction = p.end > 0 ? p.cur / p.end : 0;
  const percent = ready ? 100 : Math.min(99, Math.floor(fraction * 100));
  const width = 30;
  const filled = Math.round((percent / 100) * width);
  const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
  return `Block Copy: [${bar}] ${String(percent).padStart(3)} %  ${formatBytes(p.cur)} / ${formatBytes(p.end)}`;
}
