/**
 * The help texts of `blockcopy` and its commands, and the one-line pointer a usage error ends
 * with ("see blockcopy copy --help") instead of the whole usage.
 */
import type { HelpCommand } from './args.js';

export const USAGE = `usage:
  blockcopy copy DISK DEST --hypervisor sim|qmp:SOCKET | --connect URI --domain NAME [options]
  blockcopy domblklist [--domain NAME] [--json] --hypervisor sim|qmp:SOCKET | --connect URI
  blockcopy blockpull DISK [--base PATH] [--bandwidth N] [--wait] [--async] [--keep-relative] [--json] ...
  blockcopy demo [--json] [--hypervisor sim|qemu]
  blockcopy replay TRACE.jsonl [--json]
  blockcopy diagram [--format mermaid|dot|svg] [--output FILE]
  blockcopy inspect [--port N] [--load FILE.jsonl] [--export FILE.jsonl] [--rounds N]
  blockcopy migrate-storage DISK DEST-DIR | (--all | --disk NAME...) DEST-DIR | --recover [options]
  blockcopy help [COMMAND] | blockcopy --version

copy       starts a block copy of DISK into DEST, as virsh blockcopy does.
blockpull  pulls DISK's backing images into its active image, as virsh blockpull does.
domblklist lists a domain's disks: every name that refers to each, its images, any block job.
demo       runs a whole copy with progress and pivot: on real QEMU when qemu-storage-daemon,
           qemu-img and qemu-io are installed, otherwise on the simulator (it says which).
replay     feeds a recorded QMP session through the engine.
diagram    prints the job statechart, generated from the machine.
inspect    serves the live inspector with simulated demo jobs, or a recorded run (--load).
migrate-storage moves disks with their whole backing chains to DEST-DIR while the guest runs.

The hypervisor is --hypervisor, else the BLOCKCOPY_HYPERVISOR environment variable (like
LIBVIRT_DEFAULT_URI): sim is the in-process simulator (it copies nothing on this host),
qmp:SOCKET a QEMU monitor socket. --connect URI drives libvirtd as virsh -c does
(qemu:///system, or qemu+unix:///system?socket=PATH), with --domain NAME. Exit codes: 0 success, 1 the operation failed, 2 usage.`;

export const COPY_HELP = `usage: blockcopy copy DISK DEST [--domain NAME] --hypervisor sim|qmp:SOCKET | --connect URI [options]

Copies DISK's image chain into DEST (an absolute path) while the guest runs, as virsh
blockcopy does, then waits, pivots or finishes as asked. DISK is any name of the disk: the
device id (vda), the drive id, the root node name, the export id or the active image's path
(blockcopy domblklist lists them).

  --hypervisor SPEC     sim | qmp:SOCKET (default: BLOCKCOPY_HYPERVISOR)
  --connect URI         libvirtd: qemu:///system or qemu+unix:///system?socket=PATH (needs --domain)
  --domain NAME         the domain (default: the hypervisor's only one: demo on sim, qemu on QMP)
  --shallow             copy only the top image; DEST gets the source's backing chain
  --reuse-external      DEST exists already (an empty image, or the backing chain's copy)
  --format raw|qcow2    DEST's format (--raw is --format raw)
  --blockdev            DEST is a block device, not a regular file
  --bandwidth N         speed limit in MiB/s (bytes/s with --bytes; a suffix as in 512M is bytes)
  --bytes               --bandwidth is in bytes/s
  --granularity N       power-of-two dirty-bitmap granularity in bytes
  --buf-size N          most bytes in flight during the copy
  --transient-job       the job is not kept across a restart of the domain
  --synchronous-writes  guest writes go to DEST too before they complete (write-blocking mode)
  --wait                wait until the mirror is synchronised (the mirroring phase)
  --pivot               wait, then switch the disk to DEST
  --finish              wait, then stop, leaving DEST a consistent copy; the disk stays
  --timeout S           wait, and abort the copy after S seconds
  --converge-timeout S  a copy the guest outruns: lift its bandwidth limit, then restart it in
                        write-blocking mode; give up (guest on its source) if not ready after S s
  --async               end the job without waiting for the hypervisor's answer (blockcopy still
                        stays until the job is dismissed and its nodes removed)
  --verbose             with waiting: progress and every state change
  --on-target-error P   report | stop | ignore | enospc (stop and enospc pause the job on error)
  --dry-run             check everything and print the plan; touch nothing
  --json                print one JSON object (the report) on stdout
  --inspect             serve the live inspector on 127.0.0.1 while the copy runs
  --inspect-keep        with --inspect: keep serving after the copy ended, until Ctrl-C
  -h, --help            this help

Ctrl-C or SIGTERM aborts the copy and cleans up (a pivot or finish already requested completes);
a second one does not interrupt the clean-up.
Without --wait, --pivot, --finish or --timeout the job is started and left running.
Exit codes: 0 success, 1 the copy was refused, failed, timed out or was interrupted, 2 usage.`;

export const DOMBLKLIST_HELP = `usage: blockcopy domblklist [--domain NAME] [--json] --hypervisor sim|qmp:SOCKET | --connect URI

Lists the domain's disks, as virsh domblklist does, with every name that refers to each (device
id, drive id, root node name, export id), its active image and backing chain, and any block job
running on it. --json prints an array of disks.`;

export const DEMO_HELP = `usage: blockcopy demo [--json] [--hypervisor sim|qemu]

Runs a whole block copy with guest writes, progress and pivot, then verifies it: on real QEMU (a
temporary qemu-storage-daemon) when qemu-storage-daemon, qemu-img and qemu-io are installed,
otherwise on the in-process simulator; it says which. --hypervisor chooses.`;

export function helpText(topic: HelpCommand['topic']): string {
  switch (topic) {
    case 'copy':
      return COPY_HELP;
    case 'domblklist':
      return DOMBLKLIST_HELP;
    case 'demo':
      return DEMO_HELP;
    case null:
      return USAGE;
  }
}

/** The line after a usage error. */
export function seeHelp(command: string | null): string {
  return command === null ? 'see blockcopy --help' : `see blockcopy ${command} --help`;
}
