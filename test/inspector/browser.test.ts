// The inspector page in a real browser: Debian's chromium driven by playwright-core (headless, no
// sandbox as root, a fresh profile). A simulated job runs while the page watches; the highlighted
// state must move through mirroring → ready → pivoting → completed. Screenshots go to
// .tmp/artifacts/ (git-ignored) for a person to look at.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import type { Output } from '../../src/cli/copy.js';
import { runInspectCommand } from '../../src/cli/inspect.js';
import type { BlockCopyEngine } from '../../src/engine/engine.js';
import { createEngine } from '../../src/engine/engine.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import type { Inspector } from '../../src/inspector/server.js';
import { startInspector } from '../../src/inspector/server.js';

// The page functions below run in the browser. The project compiles without the DOM library (it
// would change Node's globals for every file), so this file declares the little they touch.
interface PageElement {
  getAttribute(name: string): string | null;
  textContent: string | null;
  value: string;
  max: string;
  dispatchEvent(event: Event): boolean;
}
declare const document: {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): { length: number };
  getElementById(id: string): PageElement | null;
};
declare const window: Record<string, unknown>;
declare class MutationObserver {
  constructor(callback: () => void);
  observe(target: PageElement, options: Record<string, unknown>): void;
}

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(import.meta.dirname, '..', '..', '.tmp', 'artifacts');
const MiB = 1024 * 1024;

let context: BrowserContext;
let profile: string;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), 'blockcopy-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1500, height: 1100 },
  });
});

afterAll(async () => {
  await context?.close();
  rmSync(profile, { recursive: true, force: true });
});

async function openPage(url: string): Promise<Page> {
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  (page as Page & { problems: string[] }).problems = problems;
  await page.goto(url);
  return page;
}

const problemsOf = (page: Page) => (page as Page & { problems: string[] }).problems;

/** Records every change of the highlighted leaf state of the first job card, as the DOM changes. */
async function recordHighlights(page: Page): Promise<void> {
  await page.evaluate(() => {
    const seen: string[] = [];
    window.highlights = seen;
    const note = () => {
      const active = document.querySelector('article.job g.node.active');
      const state = active?.getAttribute('data-state');
      if (state && seen[seen.length - 1] !== state) seen.push(state);
    };
    new MutationObserver(note).observe(document.getElementById('jobs')!, {
      subtree: true,
      childList: true,
      attributes: true,
      attributeFilter: ['class'],
    });
  });
}

describe('inspector page', () => {
  let inspector: Inspector;
  let engine: BlockCopyEngine;
  let hypervisor: SimulatedHypervisor;
  /** The state path the live page showed, to compare with the loaded export. */
  let livePath: string[] = [];

  beforeAll(async () => {
    inspector = await startInspector();
    // About a second of mirroring for a 1 GiB disk: long enough to see, short enough for CI.
    hypervisor = new SimulatedHypervisor({ copyRate: 768 * MiB });
    engine = createEngine({ hypervisor, inspect: inspector.inspect, pollIntervalMs: 100 });
    inspector.attach(engine);
  });

  afterAll(async () => {
    engine?.close();
    await hypervisor?.close();
    await inspector?.close();
  });

  it('highlights the active state as a job moves through mirroring, ready, pivoting, completed', async () => {
    const page = await openPage(inspector.url);
    await page.waitForSelector('#mode.live');
    await recordHighlights(page);

    const started = await engine.blockRebase('demo', 'vda', '/var/lib/blockcopy/copy.qcow2', 0, RebaseFlags.COPY);
    const job = started._unsafeUnwrap();

    await page.waitForSelector('article.job g.node.active[data-state="mirroring.running"]', { state: 'attached' });
    await page.waitForSelector('article.job g.cluster.active[data-state="mirroring"]', { state: 'attached' });
    // Progress: bytes copied, a rate and a time to ready, from the engine's progress$.
    await page.waitForFunction(() => {
      const stats = document.querySelector('article.job .stats')?.textContent ?? '';
      return /GiB|MiB/.test(stats) && /\/s/.test(stats) && /ready in ~\d+ s/.test(stats);
    });

    // The test holds the pivot until the page shows ready: that highlight must be there to see.
    await page.waitForSelector('article.job g.node.active[data-state="ready.synced"]', { state: 'attached' });
    expect(await page.textContent('article.job .state-badge')).toBe('ready.synced');
    expect(await page.textContent('article.job .stats')).toContain('synchronised');
    await page.screenshot({ path: join(ARTIFACTS, 'inspector-ready.png') });
    (await engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT))._unsafeUnwrap();

    await page.waitForSelector('article.job[data-state="completed"] g.node.active[data-state="completed"]', {
      state: 'attached',
    });
    const result = await job.result;
    expect(result.outcome).toBe('completed');
    await page.waitForFunction(() => document.querySelector('article.job .outcome')?.textContent === 'completed');

    // Every state the job entered was highlighted, in order (settled passes within one macrostep:
    // the chart shows it, the job's own list does not).
    const highlights = await page.evaluate(() => window.highlights as string[]);
    expect(highlights.filter((s) => s !== 'settled')).toEqual(result.states);
    expect(highlights).toEqual(expect.arrayContaining(['mirroring.running', 'ready.synced', 'pivoting', 'completed']));
    livePath = await page.$$eval('article.job ol.path li', (items) => items.map((li) => li.textContent ?? ''));
    expect(livePath).toEqual(highlights);

    // The last transition taken is marked on the chart, and the log has the job's events.
    await page.waitForSelector('article.job g.edge.taken[data-edge="settled:completed:always"]', { state: 'attached' });
    const log = await page.textContent('article.job .log');
    for (const text of ['HV.READY', 'PIVOT', 'invoke completeJob', 'COMPLETED (pivoted)', '→ pivoting']) {
      expect(log).toContain(text);
    }
    await page.screenshot({ path: join(ARTIFACTS, 'inspector-completed.png'), fullPage: true });
    expect(problemsOf(page)).toEqual([]);
    await page.close();
  });

  it('refuses requests without the token', async () => {
    const origin = new URL(inspector.url).origin;
    const page = await context.newPage();
    expect((await page.goto(`${origin}/`))!.status()).toBe(403);
    expect((await page.goto(`${origin}/?token=${'0'.repeat(64)}`))!.status()).toBe(403);
    expect(await page.textContent('body')).toContain('403 forbidden');
    // Even from the page's own origin, the event stream and the export need the token.
    const statuses = await page.evaluate(async () =>
      Promise.all(['/events', '/export.jsonl'].map(async (path) => (await fetch(path)).status)),
    );
    expect(statuses).toEqual([403, 403]);
    await page.close();
  });

  it('loads an export into the page and scrubs back through it', async () => {
    expect(livePath).toContain('completed');
    const exported = await (await fetch(inspector.url.replace('/?', '/export.jsonl?'))).text();
    const file = join(ARTIFACTS, 'inspection.jsonl');
    writeFileSync(file, exported);
    const records = exported.trim().split('\n').length;

    // A page of another, empty inspector: everything it shows comes from the file.
    const empty = await startInspector();
    try {
      const page = await openPage(empty.url);
      await page.waitForSelector('#mode.live');
      await page.setInputFiles('#load', file);
      await page.waitForSelector('#mode.file');
      expect(await page.textContent('#mode')).toBe(`file: inspection.jsonl (${records} records)`);
      await page.waitForSelector('article.job[data-state="completed"] g.node.active[data-state="completed"]', {
        state: 'attached',
      });
      expect(await page.$$eval('article.job ol.path li', (items) => items.map((li) => li.textContent))).toEqual(
        livePath,
      );

      // Back to where the job was mirroring.
      const at = await page.evaluate(() => {
        const scrub = document.getElementById('scrub')!;
        for (let n = 1; n <= Number(scrub.max); n++) {
          scrub.value = String(n);
          scrub.dispatchEvent(new Event('input'));
          if (document.querySelector('article.job')?.getAttribute('data-state') === 'mirroring.running') return n;
        }
        return -1;
      });
      expect(at).toBeGreaterThan(0);
      expect(await page.isVisible('#follow')).toBe(true);
      expect(await page.getAttribute('article.job g.node.active[data-state="mirroring.running"]', 'class')).toContain(
        'active',
      );
      await page.click('#follow');
      await page.waitForSelector('article.job[data-state="completed"]');
      expect(problemsOf(page)).toEqual([]);
      await page.close();
    } finally {
      await empty.close();
    }
  });
});

describe('blockcopy inspect (demo)', () => {
  it('runs simulated jobs that a newcomer can watch', async () => {
    const lines: string[] = [];
    const out: Output = { line: (t) => lines.push(t), overwrite: () => {}, error: (t) => lines.push(t), tty: false };
    const stop = new AbortController();
    let url = '';
    const exportPath = join(ARTIFACTS, 'demo.jsonl');
    const command = runInspectCommand(['--rounds', '1', '--export', exportPath], out, {
      signal: stop.signal,
      onReady: (u) => (url = u),
      demoPace: 0.15,
      demoCopyRate: 1536 * MiB,
    });
    try {
      await expect.poll(() => url).not.toBe('');
      const page = await openPage(url);
      await page.waitForFunction(
        () => document.querySelectorAll('article.job[data-status="done"]').length === 3,
        null,
        {
          timeout: 30_000,
        },
      );
      const jobs = await page.$$eval('article.job', (cards) =>
        cards.map((c) => ({
          where: c.querySelector('.where')?.textContent ?? '',
          outcome: c.querySelector('.outcome')?.textContent ?? '',
          path: [...c.querySelectorAll('ol.path li')].map((li) => li.textContent),
          log: c.querySelector('.log')?.textContent ?? '',
        })),
      );
      const byDisk = (disk: string) => jobs.find((j) => j.where.startsWith(`demo/${disk} `))!;
      expect(byDisk('vda').outcome).toBe('completed');
      expect(byDisk('vda').log).toContain('not ready for pivot yet');
      expect(byDisk('vdb').outcome).toBe('canceled');
      expect(byDisk('vdb').path).toContain('mirroring.paused');
      expect(byDisk('vdc').outcome).toBe('completed');
      expect(byDisk('vdc').path).toContain('mirroring.errorPaused');
      await page.screenshot({ path: join(ARTIFACTS, 'inspector-demo.png'), fullPage: true });
      expect(problemsOf(page)).toEqual([]);
      await page.close();
    } finally {
      stop.abort();
    }
    expect(await command).toBe(0);
    expect(lines[0]).toMatch(/^blockcopy inspector: http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}$/);
    expect(lines).toEqual(expect.arrayContaining(['demo: vda completed', 'demo: vdb canceled', 'demo: vdc completed']));
  });
});
