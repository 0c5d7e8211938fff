/**
 * The replay's edges: the recorded hypervisor lines really go through the adapter's QmpDecoder
 * (a corrupted line is a decode error value, not a crash), polls answered from the recorded
 * queries, a request QEMU refused, the end of a recording (EOF without
 * quit: connection lost, the job is reported as it stands; quit: QEMU gone), and a recording
 * that holds no copy.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { QmpDecoder } from '../../adapters/qmp/decoder.js';
import { replayTrace } from '../../src/replay/driver.js';
import { parseTrace } from '../../src/replay/trace.js';
import { loadTrace, traceText } from './helpers.js';

const rows = (name: string) =>
  traceText(name)
    .split('\n')
    .filter((l) => l.trim() !== '');

async function replayRows(lines: readonly string[]) {
  return (await replayTrace(parseTrace(lines.join('\n'))._unsafeUnwrap()))._unsafeUnwrap();
}

/** Replaces a line's QMP message by `msg` (a string is decoded verbatim, as a raw QMP line). */
function withMsg(line: string, msg: unknown): string {
  return JSON.stringify({ ...(JSON.parse(line) as object), msg });
}

const START = ['validating', 'preparingDestination', 'starting'];

describe('replay through the QMP decoder', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('pushes every recorded hypervisor line through QmpDecoder, as a QMP line', async () => {
    const push = vi.spyOn(QmpDecoder.prototype, 'push');
    const lines = loadTrace('e3_cancel_ready');
    const recv = lines.filter((l) => l.dir === 'recv');
    (await replayTrace(lines))._unsafeUnwrap();
    expect(push).toHaveBeenCalledTimes(recv.length);
    expect(push.mock.calls.map(([chunk]) => JSON.parse(String(chunk)) as unknown)).toEqual(recv.map((l) => l.msg));
  });

  it('reports a corrupted READY line as a decode error: the engine never sees READY and refuses the pivot', async () => {
    const text = rows('a_full_pivot');
    const ready = text.findIndex((l) => l.includes('"BLOCK_JOB_READY"'));
    const status = text.findIndex((l) => l.includes('JOB_STATUS_CHANGE') && l.includes('"status": "ready"'));
    const corrupted = [...text];
    for (const i of [status, ready]) {
      const msg = (JSON.parse(corrupted[i]!) as { msg: unknown }).msg;
      corrupted[i] = withMsg(corrupted[i]!, JSON.stringify(msg).slice(0, 40));
    }
    const report = await replayRows(corrupted);
    expect(report.decodeErrors).toEqual([
      { line: status + 1, kind: 'malformed', detail: expect.any(String) as string },
      { line: ready + 1, kind: 'malformed', detail: expect.any(String) as string },
    ]);
    expect(report.refused.map((r) => [r.request, r.command, r.error.code])).toEqual([
      ['pivot', 'block-job-complete', 'VIR_ERR_BLOCK_COPY_ACTIVE'],
    ]);
    // QEMU's reply to the refused complete is skipped; its pivot events then look unrequested.
    expect(report.status).toBe('failed');
    expect(report.error?.message).toContain('ended without a pivot or abort request');
    expect(report.states).toEqual([...START, 'mirroring.running', 'finishing', 'failed']);
  });

  it('reports a QMP message of the wrong shape as a wrong-type decode error and replays the rest', async () => {
    const text = rows('a_full_pivot');
    const ready = text.findIndex((l) => l.includes('"BLOCK_JOB_READY"'));
    const corrupted = [...text];
    corrupted[ready] = withMsg(corrupted[ready]!, { event: 42 });
    const report = await replayRows(corrupted);
    expect(report.decodeErrors).toEqual([{ line: ready + 1, kind: 'wrong-type', detail: 'event name not a string' }]);
    // JOB_STATUS_CHANGE ready alone makes the job ready: the pivot goes through.
    expect(report.status).toBe('completed');
    expect(report.pivoted).toBe(true);
  });
});

describe('polls and QEMU refusals', () => {
  it("answers the engine's polls from the recorded queries: READY lost, the polled ready:true makes the job ready", async () => {
    const text = rows('f_set_speed_polling');
    const readyEvents = (l: string) =>
      l.includes('"BLOCK_JOB_READY"') || (l.includes('JOB_STATUS_CHANGE') && l.includes('"status": "ready"'));
    expect(text.filter(readyEvents)).toHaveLength(3);
    const report = await replayRows(text.filter((l) => !readyEvents(l)));
    expect(report).toMatchObject({ status: 'completed', pivoted: true, destinationConsistent: true });
    // No ready event after the resume from standby either: the pivot is requested in standby.
    expect(report.states).toEqual([
      ...START,
      'mirroring.running',
      'mirroring.paused',
      'mirroring.running',
      'ready.synced',
      'ready.standby',
      'pivoting',
      'confirmingPivot',
      'finishing',
      'completed',
    ]);
  });

  it("lists a request QEMU refused (its recorded error consumed by the engine's call) under refused", async () => {
    const text = rows('a_full_pivot');
    const complete = text.findIndex((l) => l.includes('"block-job-complete"'));
    const reply = JSON.parse(text[complete + 1]!) as { msg: { id: string } };
    expect(reply.msg.id).toBe('c19');
    const refusing = [...text];
    refusing[complete + 1] = withMsg(text[complete + 1]!, {
      error: { class: 'GenericError', desc: 'simulated refusal' },
      id: 'c19',
    });
    const report = await replayRows(refusing);
    expect(report.refused).toEqual([
      {
        request: 'pivot',
        command: 'block-job-complete',
        id: 'c19',
        error: {
          code: 'VIR_ERR_INTERNAL_ERROR',
          number: 1,
          message: "internal error: unable to execute QEMU command 'block-job-complete': simulated refusal",
        },
      },
    ]);
    // The chart returns to ready; QEMU's recorded pivot events then are a conclusion nobody asked
    // for, which might be another client's pivot: the replayed graph says it is not.
    expect(report.states).toEqual([
      ...START,
      'mirroring.running',
      'ready.synced',
      'pivoting',
      'ready.synced',
      'confirmingPivot',
      'finishing',
      'failed',
    ]);
    expect(report.error?.message).toContain('ended outside blockcopy without a pivot');
  });
});

describe('end of a recording', () => {
  it('a recording that stops while the job is ready reports it as ready (connection lost, not gone)', async () => {
    const text = rows('a_full_pivot');
    const ready = text.findIndex((l) => l.includes('"BLOCK_JOB_READY"'));
    const report = await replayRows(text.slice(0, ready + 1));
    expect(report).toMatchObject({ status: 'ready', pivoted: false, destinationConsistent: false, error: null });
    expect(report.states).toEqual([...START, 'mirroring.running', 'ready.synced']);
  });

  it('a recording that stops before the mirror was answered fails the start (no reply ever came)', async () => {
    const text = rows('a_full_pivot');
    const mirror = text.findIndex((l) => l.includes('"blockdev-mirror"'));
    const report = await replayRows(text.slice(0, mirror + 1));
    expect(report.status).toBe('failed');
    expect(report.error?.message).toContain('the recording ended before QEMU replied');
    expect(report.states).toEqual([...START, 'finishing', 'failed']);
  });

  it('a recorded quit while the job runs is QEMU gone: the job fails', async () => {
    const text = rows('a_full_pivot');
    const ready = text.findIndex((l) => l.includes('"BLOCK_JOB_READY"'));
    const quit = [
      '{"seq": 900, "t": 1.95, "dir": "send", "kind": "command", "msg": {"execute": "quit", "id": "c99"}}',
      '{"seq": 901, "t": 1.96, "dir": "recv", "kind": "return", "msg": {"return": {}, "id": "c99"}}',
    ];
    const report = await replayRows([...text.slice(0, ready + 1), ...quit]);
    expect(report.status).toBe('failed');
    expect(report.error?.code).toBe('VIR_ERR_OPERATION_FAILED');
    expect(report.error?.message).toContain('domain is not running: QEMU quit');
    expect(report.states).toEqual([...START, 'mirroring.running', 'ready.synced', 'finishing', 'failed']);
  });

  it('a recording without a mirror has no copy to replay', async () => {
    const text = rows('a_full_pivot');
    const mirror = text.findIndex((l) => l.includes('"blockdev-mirror"'));
    const replayed = await replayTrace(parseTrace(text.slice(0, mirror).join('\n'))._unsafeUnwrap());
    expect(replayed._unsafeUnwrapErr().detail).toContain('no blockdev-mirror or drive-mirror');
  });
});
