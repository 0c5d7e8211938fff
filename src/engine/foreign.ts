/**
 * Foreign jobs: block jobs on a hypervisor that no blockcopy record knows (a mirror started by
 * another tool, or by a blockcopy process that had no store). They are listed as they stand,
 * read-only, before anyone adopts them; `blockjob` adopts one when asked to act on it.
 */
import type { HypervisorPort, JobStatus } from '../core/hypervisor-port.js';

export interface ForeignJob {
  readonly jobId: string;
  readonly hypervisor: string;
  readonly domain: string;
  readonly disk: string;
  readonly origin: 'foreign';
  /** QEMU's job type ('mirror', 'stream', 'commit', …). */
  readonly type: string;
  /** QEMU's job status ('running', 'ready', …). */
  readonly status: JobStatus;
  /** Progress in bytes, where the hypervisor reports it with the disks (libvirt). */
  readonly offset?: number;
  readonly len?: number;
  /** Every name of the disk (a record may hold it under another spelling). */
  readonly names: readonly string[];
}

/**
 * The block jobs on the domains' disks whose ids are not in `known` (the store's jobs). A domain
 * that does not exist or cannot be asked is skipped: listing never fails for a foreign job.
 */
export async function foreignJobs(
  port: HypervisorPort,
  domains: readonly string[],
  known: ReadonlySet<string>,
): Promise<ForeignJob[]> {
  const found: ForeignJob[] = [];
  for (const domain of new Set(domains)) {
    const disks = await port.listDisks(domain);
    if (disks.isErr() || disks.value === null) continue;
    for (const d of disks.value) {
      if (!d.job || known.has(d.job.jobId)) continue;
      found.push({
        jobId: d.job.jobId,
        hypervisor: port.name,
        domain,
        disk: d.disk,
        origin: 'foreign',
        type: d.job.type,
        status: d.job.status,
        ...(d.job.offset !== undefined && d.job.len !== undefined ? { offset: d.job.offset, len: d.job.len } : {}),
        names: [d.disk, d.device, d.drive, d.nodeName, d.source].filter((n): n is string => n !== null),
      });
    }
  }
  return found;
}
