/**
 * Typed libvirt-style errors. Every refusal the engine makes carries libvirt's error code name,
 * its ABI number and a message shaped like libvirt's ("<template>: <detail>"), so that a caller
 * used to libvirt can match on the same codes. See libvirt-api.md in the reference notes §1.11.
 */

/** libvirt virErrorNumber values used by block copy (ABI, include/libvirt/virterror.h). */
export const ErrorNumber = {
  VIR_ERR_INTERNAL_ERROR: 1,
  VIR_ERR_NO_SUPPORT: 3,
  VIR_ERR_INVALID_ARG: 8,
  VIR_ERR_OPERATION_FAILED: 9,
  VIR_ERR_OPERATION_DENIED: 29,
  VIR_ERR_SYSTEM_ERROR: 38,
  VIR_ERR_NO_DOMAIN: 42,
  VIR_ERR_OPERATION_INVALID: 55,
  VIR_ERR_CONFIG_UNSUPPORTED: 67,
  VIR_ERR_ARGUMENT_UNSUPPORTED: 74,
  VIR_ERR_OPERATION_ABORTED: 78,
  VIR_ERR_OVERFLOW: 82,
  VIR_ERR_BLOCK_COPY_ACTIVE: 83,
  VIR_ERR_OPERATION_UNSUPPORTED: 84,
  // Further codes a libvirt daemon may answer with (passed through by the libvirt adapter).
  VIR_ERR_INVALID_DOMAIN: 7,
  VIR_ERR_XML_ERROR: 27,
  VIR_ERR_DOM_EXIST: 28,
  VIR_ERR_RPC: 39,
  VIR_ERR_AUTH_FAILED: 45,
  VIR_ERR_OPERATION_TIMEOUT: 68,
  VIR_ERR_RESOURCE_BUSY: 87,
  VIR_ERR_ACCESS_DENIED: 88,
  VIR_ERR_XML_INVALID_SCHEMA: 92,
  VIR_ERR_AUTH_UNAVAILABLE: 94,
} as const;

export type ErrorCode = keyof typeof ErrorNumber;

/** The message template libvirt prefixes to the detail (src/util/virerror.c). */
const templates: Record<ErrorCode, string> = {
  VIR_ERR_INTERNAL_ERROR: 'internal error',
  VIR_ERR_NO_SUPPORT: 'this function is not supported by the connection driver',
  VIR_ERR_INVALID_ARG: 'invalid argument',
  VIR_ERR_OPERATION_FAILED: 'operation failed',
  VIR_ERR_OPERATION_DENIED: 'operation forbidden',
  VIR_ERR_SYSTEM_ERROR: 'system error',
  VIR_ERR_NO_DOMAIN: 'Domain not found',
  VIR_ERR_OPERATION_INVALID: 'Requested operation is not valid',
  VIR_ERR_CONFIG_UNSUPPORTED: 'unsupported configuration',
  VIR_ERR_ARGUMENT_UNSUPPORTED: 'argument unsupported',
  VIR_ERR_OPERATION_ABORTED: 'operation aborted',
  VIR_ERR_OVERFLOW: 'numerical overflow',
  VIR_ERR_BLOCK_COPY_ACTIVE: 'block copy still active',
  VIR_ERR_OPERATION_UNSUPPORTED: 'Operation not supported',
  VIR_ERR_INVALID_DOMAIN: 'invalid domain pointer in',
  VIR_ERR_XML_ERROR: 'XML description is invalid or not well formed',
  VIR_ERR_DOM_EXIST: 'operation failed',
  VIR_ERR_RPC: 'RPC error',
  VIR_ERR_AUTH_FAILED: 'authentication failed',
  VIR_ERR_OPERATION_TIMEOUT: 'Timed out during operation',
  VIR_ERR_RESOURCE_BUSY: 'resource busy',
  VIR_ERR_ACCESS_DENIED: 'access denied',
  VIR_ERR_XML_INVALID_SCHEMA: 'XML document failed to validate against schema',
  VIR_ERR_AUTH_UNAVAILABLE: 'authentication unavailable',
};

/** A refusal or failure, as plain serializable data (it may be stored in machine context). */
export interface BlockCopyError {
  readonly code: ErrorCode;
  readonly number: number;
  /** Full message: "<template>: <detail>". */
  readonly message: string;
  /** The detail alone, without libvirt's template. */
  readonly detail: string;
}

export function blockCopyError(code: ErrorCode, detail: string): BlockCopyError {
  return { code, number: ErrorNumber[code], message: `${templates[code]}: ${detail}`, detail };
}

/**
 * An error a libvirt daemon sent, unchanged: its number and its full message. Numbers outside
 * the table keep their message and are reported as VIR_ERR_INTERNAL_ERROR with the number named.
 */
export function libvirtError(number: number, message: string): BlockCopyError {
  const entry = (Object.entries(ErrorNumber) as [ErrorCode, number][]).find(([, n]) => n === number);
  if (!entry) {
    const e = blockCopyError('VIR_ERR_INTERNAL_ERROR', `${message} (libvirt error ${number})`);
    return e;
  }
  const [code] = entry;
  const prefix = `${templates[code]}: `;
  return { code, number, message, detail: message.startsWith(prefix) ? message.slice(prefix.length) : message };
}

/** Named constructors for the catalogue, in the wording of today's libvirt. */
export const errors = {
  unsupportedFlags: (flags: number, fn: string) =>
    blockCopyError('VIR_ERR_INVALID_ARG', `unsupported flags (0x${flags.toString(16)}) in function ${fn}`),
  diskNull: (fn: string) => blockCopyError('VIR_ERR_INVALID_ARG', `disk in ${fn} must not be NULL`),
  baseNull: (fn: string) => blockCopyError('VIR_ERR_INVALID_ARG', `base in ${fn} must not be NULL`),
  flagsRequireCopy: () => blockCopyError('VIR_ERR_INVALID_ARG', 'use of flags requires a copy job'),
  noDomain: (domain: string) => blockCopyError('VIR_ERR_NO_DOMAIN', `no domain with matching name '${domain}'`),
  domainNotRunning: () => blockCopyError('VIR_ERR_OPERATION_INVALID', 'domain is not running'),
  domainNotTransient: () => blockCopyError('VIR_ERR_OPERATION_INVALID', 'domain is not transient'),
  diskNotFound: (disk: string) => blockCopyError('VIR_ERR_INVALID_ARG', `disk '${disk}' not found in domain`),
  diskInCopyJob: (disk: string) =>
    blockCopyError('VIR_ERR_BLOCK_COPY_ACTIVE', `disk '${disk}' already in active block job`),
  relativeDestination: () => blockCopyError('VIR_ERR_INVALID_ARG', 'absolute path must be used as block copy target'),
  bandwidthBytesOverflow: () =>
    blockCopyError(
      'VIR_ERR_INVALID_ARG',
      "bandwidth must be less than '9223372036854775807' bytes/s (8796093022207 MiB/s)",
    ),
  bandwidthMiBOverflow: () => blockCopyError('VIR_ERR_OVERFLOW', 'bandwidth must be less than 8796093022207'),
  granularityNotPowerOfTwo: () => blockCopyError('VIR_ERR_INVALID_ARG', 'granularity must be power of 2'),
  relativeBackingDuringCopy: () =>
    blockCopyError('VIR_ERR_ARGUMENT_UNSUPPORTED', 'Relative backing during copy not supported yet'),
  shallowIntoRaw: (disk: string) =>
    blockCopyError('VIR_ERR_CONFIG_UNSUPPORTED', `shallow copy of disk '${disk}' into a raw file is not possible`),
  destinationStatFailed: (path: string) =>
    blockCopyError('VIR_ERR_SYSTEM_ERROR', `unable to stat block copy target '${path}'`),
  destinationMissing: (disk: string, path: string) =>
    blockCopyError('VIR_ERR_SYSTEM_ERROR', `missing destination file for disk ${disk}: ${path}`),
  destinationExists: (disk: string, path: string) =>
    blockCopyError(
      'VIR_ERR_CONFIG_UNSUPPORTED',
      `external destination file for disk ${disk} already exists and is not a block device: ${path}`,
    ),
  /** qemuDomainBlockCopyValidateMirror: COPY_DEV (type='block') on a path that is no block device. */
  blockdevNotBlockDevice: (disk: string, path: string) =>
    blockCopyError(
      'VIR_ERR_INVALID_ARG',
      `blockdev flag requested for disk ${disk}, but file '${path}' is not a block device`,
    ),
  reusedFormatUnknown: () =>
    blockCopyError('VIR_ERR_CONFIG_UNSUPPORTED', 'reused mirror destination format must be specified'),
  createFailed: (why: string) => blockCopyError('VIR_ERR_SYSTEM_ERROR', `failed to create copy target: ${why}`),
  noActiveJob: (disk: string) =>
    blockCopyError('VIR_ERR_INVALID_ARG', `disk ${disk} does not have an active block job`),
  stillBeingEnded: (disk: string) =>
    blockCopyError('VIR_ERR_OPERATION_INVALID', `block job on disk '${disk}' is still being ended`),
  jobPaused: (disk: string) =>
    blockCopyError('VIR_ERR_OPERATION_INVALID', `block job on disk '${disk}' is paused; resume it before pivoting`),
  notReadyForPivot: (disk: string) =>
    blockCopyError('VIR_ERR_BLOCK_COPY_ACTIVE', `block job '${disk}' not ready for pivot yet`),
  failedWhilePivoting: (disk: string, why?: string) =>
    blockCopyError('VIR_ERR_OPERATION_FAILED', `block job '${disk}' failed while pivoting${why ? `: ${why}` : ''}`),
  hypervisorCommand: (command: string, why: string) =>
    blockCopyError('VIR_ERR_INTERNAL_ERROR', `unable to execute QEMU command '${command}': ${why}`),
  noActiveQemuJob: (job: string) => blockCopyError('VIR_ERR_OPERATION_INVALID', `No active block job '${job}'`),
  domainOperationRefused: (what: string) => blockCopyError('VIR_ERR_BLOCK_COPY_ACTIVE', what),
} as const;
