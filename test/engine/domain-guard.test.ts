/** The seed's interlocks: save, snapshot, detach and define refused while a copy is active. */
import { describe, expect, it } from 'vitest';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { DEST, engineOnSim } from './harness.js';

describe('domain guard', () => {
  it('refuses save, snapshot, detach of the disk and define of the transient domain while a copy is active', async () => {
    const { engine, until, settle } = engineOnSim();
    for (const op of ['save', 'snapshot-create', 'define'] as const) {
      expect((await engine.checkDomainOperation('demo', op)).isOk()).toBe(true);
    }
    const job = (await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
    for (const op of ['save', 'snapshot-create', 'define'] as const) {
      const refused = await engine.checkDomainOperation('demo', op);
      expect(refused._unsafeUnwrapErr()).toMatchObject({ code: 'VIR_ERR_BLOCK_COPY_ACTIVE', number: 83 });
    }
    expect((await engine.checkDomainOperation('demo', 'detach', 'vda'))._unsafeUnwrapErr().detail).toBe(
      "disk 'vda' is in an active block copy job",
    );
    expect((await engine.checkDomainOperation('demo', 'detach', 'vdb')).isOk()).toBe(true);
    expect((await engine.checkDomainOperation('other', 'save')).isOk()).toBe(true);
    await until(job, 'ready');
    await engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT | AbortFlags.ASYNC);
    await settle(job);
    for (const op of ['save', 'snapshot-create', 'define'] as const) {
      expect((await engine.checkDomainOperation('demo', op)).isOk()).toBe(true);
    }
    expect((await engine.checkDomainOperation('demo', 'detach', 'vda')).isOk()).toBe(true);
  });

  it('allows define of a persistent domain during a TRANSIENT_JOB copy', async () => {
    const { engine } = engineOnSim({
      domains: [
        {
          name: 'pers',
          persistent: true,
          disks: [{ name: 'vda', virtualSize: 1 << 26, chain: [{ path: '/images/pers.qcow2', allocated: 1 << 26 }] }],
        },
      ],
    });
    const refused = await engine.blockRebase('pers', 'vda', DEST, 0, RebaseFlags.COPY);
    expect(refused._unsafeUnwrapErr().detail).toBe('domain is not transient');
    const started = await engine.blockCopy('pers', 'vda', { path: DEST }, {}, 4 /* TRANSIENT_JOB */);
    expect(started.isOk()).toBe(true);
    expect((await engine.checkDomainOperation('pers', 'define')).isOk()).toBe(true);
    expect((await engine.checkDomainOperation('pers', 'save')).isErr()).toBe(true);
  });
});
