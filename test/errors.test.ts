/** libvirt-style error values: template, detail, code number. */
import { describe, expect, it } from 'vitest';
import { blockCopyError, errors } from '../src/core/errors.js';

describe('errors', () => {
  it('formats libvirt messages with template and detail', () => {
    const e = errors.notReadyForPivot('vda');
    expect(e).toEqual(blockCopyError('VIR_ERR_BLOCK_COPY_ACTIVE', "block job 'vda' not ready for pivot yet"));
    expect(e.number).toBe(83);
    expect(e.message).toBe("block copy still active: block job 'vda' not ready for pivot yet");
  });
});
