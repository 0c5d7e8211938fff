// The inspector's HTTP server: loopback only, token on every request, the page, the event stream
// (with resume after a reconnect) and the JSON Lines export, which also goes to a file as it happens.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Inspector } from '../../src/inspector/server.js';
import { startInspector } from '../../src/inspector/server.js';
import type { InspectorRecord } from '../../src/inspector/records.js';
import { parseJsonl } from '../../src/inspector/records.js';

const dir = mkdtempSync(join(tmpdir(), 'blockcopy-inspector-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let inspector: Inspector | null = null;
afterEach(async () => {
  await inspector?.close();
  inspector = null;
});

const progress = (cur: number): Omit<Extract<InspectorRecord, { kind: 'progress' }>, 'seq'> & { seq: number } => ({
  kind: 'progress',
  seq: 0,
  time: cur,
  jobId: 'job-1',
  cur,
  end: 100,
  speed: 0,
  rate: null,
  etaMs: null,
});

/** Reads an SSE stream until `count` data messages arrived. */
function readEvents(url: string, count: number, headers: Record<string, string> = {}): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let buffer = '';
      const messages: unknown[] = [];
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (data) messages.push(JSON.parse(data.slice(6)));
          if (messages.length === count) {
            req.destroy();
            resolve(messages);
            return;
          }
        }
      });
      // The server ended the stream (closed): what arrived is all there is.
      res.on('end', () => resolve(messages));
    });
    req.on('error', (e) => {
      if (!req.destroyed) reject(e);
    });
    req.end();
  });
}

describe('inspector server', () => {
  it('listens on 127.0.0.1 with a long random token in the URL', async () => {
    inspector = await startInspector();
    expect(inspector.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}$/);
    const other = await startInspector();
    expect(other.token).not.toBe(inspector.token);
    await other.close();
  });

  it('answers 403 to every request without the right token', async () => {
    inspector = await startInspector();
    const base = `http://127.0.0.1:${inspector.port}`;
    const wrong = inspector.token.replace(/^./, (c) => (c === 'a' ? 'b' : 'a'));
    for (const path of [
      '/',
      '/events',
      '/export.jsonl',
      '/nope',
      `/?token=${wrong}`,
      `/?token=${inspector.token}x`,
      '/?token=',
    ]) {
      const res = await fetch(base + path);
      expect(res.status, path).toBe(403);
      expect(await res.text()).not.toContain('<html');
    }
    const post = await fetch(`${base}/?token=${inspector.token}`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect((await fetch(`${base}/nope?token=${inspector.token}`)).status).toBe(404);
  });

  it('serves a self-contained page with a strict content security policy', async () => {
    inspector = await startInspector();
    const res = await fetch(inspector.url);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)![1]!;
    const html = await res.text();
    expect(html).toContain(`<script nonce="${nonce}">`);
    expect(html).toContain('data-state="mirroring.running"');
    expect(html).toContain('data-edge="settled:completed:always"');
    // Block pull jobs get the pull chart (machines/block-pull-job.ts) from their own template.
    expect(html).toContain('<template id="chart-template-pull">');
    expect(html).toContain('data-state="streaming.running"');
    // Nothing is loaded from anywhere else, and every copy of the chart can be in the page at once.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(html).not.toMatch(/ id="state:/);
  });

  it('streams the records so far, then live ones, and resumes after a reconnect', async () => {
    inspector = await startInspector({ records: [progress(1), progress(2)] });
    const events = `http://127.0.0.1:${inspector.port}/events?token=${inspector.token}`;
    const first = readEvents(events, 4);
    await new Promise((r) => setTimeout(r, 50));
    inspector.recorder.load([progress(3)]);
    const messages = (await first) as InspectorRecord[];
    expect(messages.map((m) => m.kind)).toEqual(['header', 'progress', 'progress', 'progress']);
    expect(messages.slice(1).map((m) => m.kind === 'progress' && [m.seq, m.cur])).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
    // An EventSource that saw seq 2 gets the rest only.
    const resumed = (await readEvents(events, 1, { 'Last-Event-ID': '2' })) as InspectorRecord[];
    expect(resumed).toEqual([expect.objectContaining({ kind: 'progress', seq: 3 })]);
  });

  it('exports JSON Lines over HTTP and to a file as records happen', async () => {
    const file = join(dir, 'run.jsonl');
    inspector = await startInspector({ exportPath: file });
    inspector.recorder.load([progress(10), progress(20)]);
    const res = await fetch(`http://127.0.0.1:${inspector.port}/export.jsonl?token=${inspector.token}`);
    expect(res.headers.get('content-disposition')).toContain('attachment');
    const overHttp = parseJsonl(await res.text())._unsafeUnwrap();
    expect(overHttp.map((r) => r.kind)).toEqual(['header', 'progress', 'progress']);
    await inspector.close();
    inspector = null;
    const inFile = parseJsonl(readFileSync(file, 'utf8'))._unsafeUnwrap();
    expect(inFile.slice(1)).toEqual(overHttp.slice(1));
    expect(inFile[0]).toMatchObject({
      kind: 'header',
      format: 'blockcopy-inspection',
      version: 1,
      machine: 'blockCopyJob',
    });
  });

  it('closes with an event stream still open', async () => {
    inspector = await startInspector();
    const open = readEvents(`http://127.0.0.1:${inspector.port}/events?token=${inspector.token}`, 99);
    await new Promise((r) => setTimeout(r, 50));
    await inspector.close();
    inspector = null;
    expect(await open).toEqual([expect.objectContaining({ kind: 'header' })]);
  });
});
