/** libvirt-style error values: template, detail, code number. */
import { describe, expect, it } from 'vitest';
import { blockCopyError, errors, libvirtError } from '../src/core/errors.js';

describe('errors', () => {
  it('formats libvirt messages with template and detail', () => {
    const e = errors.notReadyForPivot('vda');
    expect(e).toEqual(blockCopyError('VIR_ERR_BLOCK_COPY_ACTIVE', "block job 'vda' not ready for pivot yet"));
    expect(e.number).toBe(83);
    expect(e.message).toBe("block copy still active: block job 'vda' not ready for pivot yet");
  });

  // libvirt's virErrorMsg() prefixes (src/util/virerror.c) and virErrorNumber ABI values
  // (include/libvirt/virterror.h), as a caller matching on libvirt's words sees them.
  it.each([
    ['VIR_ERR_INTERNAL_ERROR', 1, 'internal error'],
    ['VIR_ERR_NO_SUPPORT', 3, 'this function is not supported by the connection driver'],
    ['VIR_ERR_INVALID_DOMAIN', 7, 'invalid domain pointer in'],
    ['VIR_ERR_INVALID_ARG', 8, 'invalid argument'],
    ['VIR_ERR_OPERATION_FAILED', 9, 'operation failed'],
    ['VIR_ERR_XML_ERROR', 27, 'XML description is invalid or not well formed'],
    ['VIR_ERR_DOM_EXIST', 28, 'operation failed'],
    ['VIR_ERR_OPERATION_DENIED', 29, 'operation forbidden'],
    ['VIR_ERR_SYSTEM_ERROR', 38, 'system error'],
    ['VIR_ERR_RPC', 39, 'RPC error'],
    ['VIR_ERR_NO_DOMAIN', 42, 'Domain not found'],
    ['VIR_ERR_AUTH_FAILED', 45, 'authentication failed'],
    ['VIR_ERR_OPERATION_INVALID', 55, 'Requested operation is not valid'],
    ['VIR_ERR_CONFIG_UNSUPPORTED', 67, 'unsupported configuration'],
    ['VIR_ERR_OPERATION_TIMEOUT', 68, 'Timed out during operation'],
    ['VIR_ERR_ARGUMENT_UNSUPPORTED', 74, 'argument unsupported'],
    ['VIR_ERR_OPERATION_ABORTED', 78, 'operation aborted'],
    ['VIR_ERR_OVERFLOW', 82, 'numerical overflow'],
    ['VIR_ERR_BLOCK_COPY_ACTIVE', 83, 'block copy still active'],
    ['VIR_ERR_OPERATION_UNSUPPORTED', 84, 'Operation not supported'],
    ['VIR_ERR_RESOURCE_BUSY', 87, 'resource busy'],
    ['VIR_ERR_ACCESS_DENIED', 88, 'access denied'],
    ['VIR_ERR_XML_INVALID_SCHEMA', 92, 'XML document failed to validate against schema'],
    ['VIR_ERR_AUTH_UNAVAILABLE', 94, 'authentication unavailable'],
  ] as const)('%s is number %d with the template %j', (code, number, template) => {
    expect(blockCopyError(code, 'x')).toEqual({ code, number, message: `${template}: x`, detail: 'x' });
    // A daemon's error with that number comes back with the same code, its detail unprefixed.
    expect(libvirtError(number, `${template}: from the daemon`)).toEqual({
      code,
      number,
      message: `${template}: from the daemon`,
      detail: 'from the daemon',
    });
  });

  it("keeps a daemon's message without libvirt's template whole", () => {
    expect(libvirtError(55, 'guest agent is not responding')).toEqual({
      code: 'VIR_ERR_OPERATION_INVALID',
      number: 55,
      message: 'guest agent is not responding',
      detail: 'guest agent is not responding',
    });
  });

  it('reports a number outside the table as an internal error naming it', () => {
    expect(libvirtError(1000, 'something new')).toEqual(
      blockCopyError('VIR_ERR_INTERNAL_ERROR', 'something new (libvirt error 1000)'),
    );
  });
});
