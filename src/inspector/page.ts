/**
 * The inspector page: one self-contained HTML document (inline CSS, inline script, the job
 * machine's SVG chart inlined as a template), so it works offline and loads nothing from anywhere
 * but its own server. The script keeps every record it has received and rebuilds the view from
 * them: live records arrive over server-sent events, a loaded export replaces them, and a slider
 * scrubs back through either.
 *
 * The chart is the generated Graphviz SVG (src/diagram): state elements carry `data-state`
 * ("mirroring.running") and transitions `data-edge`, so highlighting is a class toggle.
 */

export interface PageOptions {
  /** The job machine's chart as rendered by dotToSvg(toDot(...)). */
  readonly svg: string;
  /** The block-pull job machine's chart, for pull jobs (machines/block-pull-job.ts). */
  readonly pullSvg?: string;
  /** The storage migration's chart with its child copies drawn in (machines/migrate-storage.ts). */
  readonly migrateSvg?: string;
  /** The convergence policy's chart (machines/convergence-policy.ts), one card per watched copy. */
  readonly convergenceSvg?: string;
  /** CSP nonce for the inline style and script. */
  readonly nonce: string;
  readonly title?: string;
}

/**
 * The SVG as the page embeds it: the XML prologue dropped, fixed size replaced by the viewBox
 * (it scales to the card), and element ids turned into data attributes, because every job card
 * holds a copy and ids must be unique in a document.
 */
export function chartTemplate(svg: string): string {
  const start = svg.indexOf('<svg');
  return svg
    .slice(start < 0 ? 0 : start)
    .replace(/<svg width="[^"]*" height="[^"]*"/, '<svg class="chart-svg"')
    .replace(/ id="state:([^"]*)"/g, ' data-state="$1"')
    .replace(/ id="edge:([^"]*)"/g, ' data-edge="$1"')
    .replace(/ id="[^"]*"/g, '')
    .trim();
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function renderPage(options: PageOptions): string {
  const nonce = escapeHtml(options.nonce);
  const title = escapeHtml(options.title ?? 'blockcopy inspector');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>${title}</title>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<header class="top">
  <h1>${title}</h1>
  <span id="mode" class="badge">connecting…</span>
  <span class="spacer"></span>
  <span class="filters" id="filters">
    <label><input type="checkbox" data-filter="event" checked> events</label>
    <label><input type="checkbox" data-filter="state" checked> states</label>
    <label><input type="checkbox" data-filter="action" checked> actions</label>
    <label><input type="checkbox" data-filter="invoke" checked> invokes</label>
    <label><input type="checkbox" data-filter="job" checked> job events</label>
    <label><input type="checkbox" data-filter="internal"> internal</label>
  </span>
  <a id="export" class="button" download="blockcopy-inspection.jsonl">Export JSONL</a>
  <label class="button">Load JSONL<input id="load" type="file" accept=".jsonl,.ndjson,.json,.txt"></label>
</header>
<section class="timeline">
  <input id="scrub" type="range" min="0" max="0" value="0" aria-label="record">
  <span id="scrub-pos">0 / 0</span>
  <button id="follow" type="button" hidden>Follow live</button>
</section>
<p id="notice" hidden></p>
<main id="jobs"><p id="empty">No jobs yet. Run <code>blockcopy inspect</code> for the demo, or start a copy with <code>--inspect</code>.</p></main>
<template id="chart-template">${chartTemplate(options.svg)}</template>
${options.pullSvg !== undefined ? `<template id="chart-template-pull">${chartTemplate(options.pullSvg)}</template>` : ''}
${options.migrateSvg !== undefined ? `<template id="chart-template-migrate">${chartTemplate(options.migrateSvg)}</template>` : ''}
${options.convergenceSvg !== undefined ? `<template id="chart-template-convergence">${chartTemplate(options.convergenceSvg)}</template>` : ''}
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>
`;
}

const STYLE = `
:root { --fg:#1f2933; --muted:#616e7c; --line:#d9e0e6; --bg:#f5f7fa; --card:#fff; --hi:#ffb300; --hi-fill:#fff3c4; --ok:#2f6f3e; --bad:#a33a3a; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color:var(--fg); background:var(--bg); }
header.top { position:sticky; top:0; z-index:2; display:flex; gap:12px; align-items:center; flex-wrap:wrap; padding:10px 18px; background:#243b53; color:#fff; }
header.top h1 { font-size:17px; margin:0; font-weight:600; }
.badge { padding:2px 8px; border-radius:10px; background:#486581; font-size:12px; }
.badge.live { background:#2f855a; } .badge.file { background:#b7791f; } .badge.down { background:#c53030; }
.spacer { flex:1; }
.filters label { margin-left:8px; font-size:12px; white-space:nowrap; }
.button { cursor:pointer; color:#fff; background:#334e68; border:1px solid #627d98; border-radius:4px; padding:3px 10px; font-size:12px; text-decoration:none; }
.button input[type=file] { display:none; }
.timeline { display:flex; gap:10px; align-items:center; padding:6px 18px; background:#e4e9ee; font-size:12px; color:var(--muted); }
.timeline input { flex:1; }
#notice { margin:10px 18px; padding:8px 12px; background:#fff5f5; border:1px solid #feb2b2; border-radius:4px; }
main { padding:14px 18px; display:flex; flex-direction:column; gap:16px; }
#empty { color:var(--muted); }
article.job { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; box-shadow:0 1px 2px rgba(0,0,0,.04); }
article.job > header { display:flex; gap:12px; align-items:baseline; flex-wrap:wrap; }
article.job h2 { font-size:15px; margin:0; font-family:ui-monospace, Menlo, Consolas, monospace; }
.where { color:var(--muted); }
.state-badge { font-family:ui-monospace, Menlo, Consolas, monospace; background:var(--hi-fill); border:1px solid var(--hi); border-radius:4px; padding:0 6px; }
.outcome { font-weight:600; }
.outcome.completed { color:var(--ok); } .outcome.failed { color:var(--bad); } .outcome.canceled { color:#b7791f; }
.error { color:var(--bad); }
.progress { display:flex; align-items:center; gap:12px; margin:8px 0 4px; }
.bar { flex:0 0 320px; height:10px; background:#e4e9ee; border-radius:5px; overflow:hidden; }
.fill { height:100%; width:0; background:#3182ce; transition:width .2s; }
.fill.synced { background:#38a169; }
.stats { display:flex; gap:16px; font-variant-numeric:tabular-nums; color:var(--muted); }
.stats b { color:var(--fg); font-weight:600; }
ol.path { list-style:none; display:flex; flex-wrap:wrap; gap:2px 0; padding:0; margin:4px 0 8px; font:12px ui-monospace, Menlo, Consolas, monospace; color:var(--muted); }
ol.path li + li::before { content:"→"; margin:0 5px; color:#9aa5b1; }
ol.path li:last-child { color:var(--fg); font-weight:600; }
.chart { border:1px solid var(--line); border-radius:6px; background:#fbfcfd; overflow:auto; }
.chart { cursor:zoom-in; }
.chart-svg { display:block; width:100%; height:auto; max-height:520px; min-width:900px; }
.chart.zoom { cursor:zoom-out; }
.chart.zoom .chart-svg { width:2200px; max-height:none; }
.chart-svg g.node.visited > path, .chart-svg g.node.visited > polygon { fill:#eef4fb; }
.chart-svg g.node.active > path, .chart-svg g.node.active > polygon, .chart-svg g.node.active > ellipse { fill:var(--hi-fill); stroke:var(--hi); stroke-width:3; }
.chart-svg g.cluster.active > path, .chart-svg g.cluster.active > polygon { stroke:var(--hi); stroke-width:3; }
.chart-svg g.edge.taken > path { stroke:var(--hi); stroke-width:2.5; }
.chart-svg g.edge.taken > polygon { fill:var(--hi); stroke:var(--hi); }
.lower { display:grid; grid-template-columns:minmax(0,3fr) minmax(0,2fr); gap:12px; margin-top:8px; }
.log { max-height:260px; overflow:auto; border:1px solid var(--line); border-radius:6px; }
.log table { border-collapse:collapse; width:100%; font:12px ui-monospace, Menlo, Consolas, monospace; }
.log td { padding:2px 8px; border-bottom:1px solid #eef1f4; vertical-align:top; }
.log td.t { color:var(--muted); white-space:nowrap; width:1%; }
.log td.k { white-space:nowrap; width:1%; }
.log tr.event td.k { color:#2b6cb0; } .log tr.state td.k { color:#b7791f; } .log tr.action td.k { color:#6b46c1; }
.log tr.invoke td.k { color:var(--ok); } .log tr.job td.k { color:#c05621; } .log tr.internal td { color:#9aa5b1; }
.log .n { color:var(--muted); }
details.context pre { margin:0; max-height:240px; overflow:auto; font-size:11px; background:#f7f9fb; border:1px solid var(--line); border-radius:6px; padding:6px 8px; }
details.context summary { cursor:pointer; color:var(--muted); font-size:12px; }
`;

// Plain browser JavaScript (no build step, no modules): keep it ES2020 and self-contained.
const SCRIPT = String.raw`
'use strict';
(function () {
  var token = new URLSearchParams(location.search).get('token') || '';
  var query = '?token=' + encodeURIComponent(token);
  var MAX_LOG = 400, MAX_JOBS = 12, MAX_RECORDS = 50000;
  var jobsEl = document.getElementById('jobs');
  var emptyEl = document.getElementById('empty');
  var modeEl = document.getElementById('mode');
  var scrub = document.getElementById('scrub');
  var scrubPos = document.getElementById('scrub-pos');
  var followBtn = document.getElementById('follow');
  var notice = document.getElementById('notice');
  var template = document.getElementById('chart-template');
  document.getElementById('export').href = '/export.jsonl' + query;

  var filters = {};
  Array.prototype.forEach.call(document.querySelectorAll('[data-filter]'), function (box) {
    filters[box.dataset.filter] = box.checked;
    box.addEventListener('change', function () { filters[box.dataset.filter] = box.checked; renderAll(); });
  });

  /** Every record received (or loaded); the view shows the first 'shown' of them. */
  var records = [];
  var shown = 0;
  var jobs = new Map();
  var source = null;

  function setMode(text, cls) { modeEl.textContent = text; modeEl.className = 'badge ' + (cls || ''); }

  function activeIds(value) {
    if (value === null || value === undefined) return [];
    if (typeof value === 'string') return [value];
    var out = [];
    Object.keys(value).forEach(function (key) {
      out.push(key);
      activeIds(value[key]).forEach(function (child) { out.push(key + '.' + child); });
    });
    return out;
  }

  function edgeKind(eventType) {
    if (eventType === '') return 'always';
    if (eventType.indexOf('xstate.done.actor.') === 0) return 'done';
    if (eventType.indexOf('xstate.error.actor.') === 0) return 'error';
    if (eventType.indexOf('xstate.snapshot.') === 0) return 'snapshot';
    if (eventType.indexOf('xstate.after.') === 0) return 'after';
    return 'event';
  }

  function formatBytes(n) {
    if (n === null || n === undefined) return '–';
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(n >= 100 ? 0 : 1)) + ' ' + units[i];
  }

  function formatTime(ms) {
    var d = new Date(ms);
    var pad = function (v, w) { return String(v).padStart(w || 2, '0'); };
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) + '.' + pad(d.getMilliseconds(), 3);
  }

  function summarize(obj) {
    if (obj === null || obj === undefined) return '';
    var copy = {};
    Object.keys(obj).forEach(function (k) { if (k !== 'type') copy[k] = obj[k]; });
    var text = Object.keys(copy).length ? JSON.stringify(copy) : '';
    return text.length > 140 ? text.slice(0, 139) + '…' : text;
  }

  function shortEvent(type) {
    var m = /^xstate\.(done|error)\.actor\.\d+\.[^.]+\.(.+)$/.exec(type);
    return m ? m[2] + ' ' + m[1] : type;
  }

  function newJob(id) {
    return { id: id, where: '', leaf: null, active: [], path: [], visited: new Set(), status: 'active',
      context: null, progress: null, outcome: null, error: null, edges: [], log: [], first: null, dom: null, machine: 'copy' };
  }

  function job(id, time) {
    var j = jobs.get(id);
    if (!j) { j = newJob(id); j.first = time; jobs.set(id, j); }
    return j;
  }

  function log(j, time, kind, text) {
    var last = j.log[j.log.length - 1];
    if (last && last.kind === kind && last.text === text) { last.count++; last.time = time; return; }
    j.log.push({ time: time, kind: kind, text: text, count: 1 });
    if (j.log.length > MAX_LOG) j.log.shift();
  }

  /** Applies one record to the model (no DOM). */
  function apply(r) {
    if (r.kind === 'header') return;
    var j = job(r.jobId, r.time);
    if (r.kind === 'progress') { j.progress = r; return; }
    if (r.kind === 'job-event') {
      log(j, r.time, 'job', r.status + (r.pivoted ? ' (pivoted)' : '') + (r.destinationConsistent ? ' (consistent copy)' : '') +
        (r.error ? ' ' + r.error.code + ': ' + r.error.message : ''));
      return;
    }
    if (r.kind !== 'inspection') return;
    var snap = r.snapshot;
    if (r.root && snap && (r.type === '@xstate.snapshot' || r.type === '@xstate.microstep')) {
      if (snap.context) {
        j.context = snap.context;
        var req = snap.context.request;
        // A block pull's request has no destination: it pulls into the disk from its base.
        if (req) j.machine = req.destDir !== undefined ? 'migrate'
          : req.destination === undefined && 'keepRelative' in req ? 'pull' : 'copy';
        if (req) j.where = j.machine === 'pull'
          ? 'block pull ' + req.domain + '/' + req.disk + ' ← ' + (req.base || 'the whole chain')
          : j.machine === 'migrate'
            ? 'storage migration ' + req.domain + ' ' + (req.disks === 'all' ? 'all disks' : req.disks.join(', ')) +
              ' → ' + req.destDir + copiesOf(snap.context.status)
            : req.domain + '/' + req.disk + ' → ' + req.destination;
        // The convergence policy of a copy: its own card, beside the copy's.
        if (!req && snap.context.policy && snap.context.tried) {
          j.machine = 'convergence';
          j.where = 'convergence policy of ' + snap.context.jobId + ' (' + snap.context.disk + ')';
        }
        j.outcome = snap.context.outcome || null;
        j.error = snap.context.error || null;
      }
      if (snap.state && snap.state !== j.leaf) {
        j.leaf = snap.state;
        j.path.push(snap.state);
        log(j, r.time, 'state', '→ ' + snap.state);
      }
      if (snap.value !== undefined) {
        j.active = activeIds(snap.value);
        j.active.forEach(function (id) { j.visited.add(id); });
      }
      j.status = snap.status;
      if (r.type === '@xstate.microstep' && r.transitions && r.transitions.length) {
        j.edges = [];
        r.transitions.forEach(function (t) {
          t.targets.forEach(function (target) { j.edges.push(t.source + ':' + target + ':' + edgeKind(t.eventType)); });
        });
      }
      if (r.type === '@xstate.microstep') log(j, r.time, 'internal', 'microstep ' + (r.transitions || []).length + ' transition(s)');
      return;
    }
    if (r.root && r.type === '@xstate.event' && r.event) {
      if (r.event.type === 'xstate.init') { log(j, r.time, 'internal', 'start'); return; }
      var payload = /^xstate\.(done|error)\.actor\./.test(r.event.type) ? '' : summarize(r.event);
      if (r.event.type.indexOf('xstate.error.actor.') === 0 && r.event.error) payload = r.event.error.message || summarize(r.event.error);
      log(j, r.time, 'event', shortEvent(r.event.type) + (payload ? ' ' + payload : ''));
      return;
    }
    if (r.root && r.type === '@xstate.action' && r.action) {
      var type = r.action.type;
      if (type === 'xstate.emit' && r.action.params && r.action.params.event) {
        var e = r.action.params.event;
        log(j, r.time, 'action', 'emit ' + (e.type || '') + (e.request ? ' ' + e.request : '') + (e.error && e.error.message ? ': ' + e.error.message : ''));
      } else if (type.indexOf('xstate.') === 0) log(j, r.time, 'internal', type);
      else log(j, r.time, 'action', type);
      return;
    }
    if (!r.root && r.type === '@xstate.actor') { log(j, r.time, 'invoke', 'invoke ' + (r.src || r.actor)); return; }
    if (!r.root && r.type === '@xstate.snapshot' && snap && (snap.status === 'done' || snap.status === 'error')) {
      var what = (r.src || r.actor) + ' ' + snap.status;
      if (snap.status === 'error' && snap.error) what += ': ' + (snap.error.message || summarize(snap.error));
      log(j, r.time, 'invoke', what);
      return;
    }
    log(j, r.time, 'internal', r.type + ' ' + r.actor + (r.event ? ' ' + r.event.type : ''));
  }

  /** The child copies of a migration, as the engine's jobs (each has its own card). */
  function copiesOf(status) {
    var ids = Object.keys(status || {}).filter(function (d) { return status[d].jobId; })
      .map(function (d) { return 'copy:' + d + ' = ' + status[d].jobId + ' (' + status[d].state + ')'; });
    return ids.length ? '; ' + ids.join(', ') : '';
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function buildDom(j) {
    var root = el('article', 'job');
    root.dataset.jobId = j.id;
    var head = el('header');
    var title = el('h2', null, j.id);
    var where = el('span', 'where');
    var badge = el('span', 'state-badge');
    var outcome = el('span', 'outcome');
    head.append(title, where, badge, outcome);
    var progress = el('div', 'progress');
    var bar = el('div', 'bar'); var fill = el('div', 'fill'); bar.append(fill);
    var stats = el('div', 'stats');
    var bytes = el('span'); var rate = el('span'); var eta = el('span');
    stats.append(bytes, rate, eta);
    progress.append(bar, stats);
    var path = el('ol', 'path');
    var chart = el('div', 'chart');
    var chosen = j.machine === 'copy' ? null : document.getElementById('chart-template-' + j.machine);
    chart.append((chosen || template).content.cloneNode(true));
    chart.title = 'click to zoom';
    // The chart is wide; a click shows it at full size (scroll sideways), another fits it again.
    chart.addEventListener('click', function () { chart.classList.toggle('zoom'); });
    var states = new Map();
    Array.prototype.forEach.call(chart.querySelectorAll('[data-state]'), function (g) { states.set(g.dataset.state, g); });
    var edges = new Map();
    Array.prototype.forEach.call(chart.querySelectorAll('[data-edge]'), function (g) { edges.set(g.dataset.edge, g); });
    var lower = el('div', 'lower');
    var logBox = el('div', 'log'); var table = el('table'); var tbody = el('tbody'); table.append(tbody); logBox.append(table);
    var details = el('details', 'context'); details.append(el('summary', null, 'context')); var pre = el('pre'); details.append(pre);
    var error = el('div', 'error');
    var side = el('div'); side.append(error, details);
    lower.append(logBox, side);
    root.append(head, progress, path, chart, lower);
    j.dom = { root: root, where: where, badge: badge, outcome: outcome, fill: fill, bytes: bytes, rate: rate, eta: eta,
      path: path, states: states, edges: edges, tbody: tbody, pre: pre, error: error, lit: [], taken: [], pathLen: -1, logKey: '',
      machine: j.machine };
    return root;
  }

  var SYNCED = /^(ready|pivoting|confirmingPivot|aborting|finishing|settled|completed|canceled|failed)/;

  function render(j) {
    // The job's chart was drawn before its kind was known: draw it again with the right chart.
    if (j.dom && j.dom.machine !== j.machine) { j.dom.root.remove(); j.dom = null; }
    if (!j.dom) {
      jobsEl.append(buildDom(j));
      emptyEl.hidden = true;
    }
    var d = j.dom;
    d.root.dataset.state = j.leaf || '';
    d.root.dataset.status = j.status;
    d.where.textContent = j.where;
    d.badge.textContent = j.leaf || '…';
    d.outcome.textContent = j.status === 'done' && j.outcome ? j.outcome : '';
    d.outcome.className = 'outcome ' + (j.status === 'done' && j.outcome ? j.outcome : '');
    d.error.textContent = j.error ? j.error.code + ': ' + j.error.message : '';
    var p = j.progress;
    var synced = !!(j.leaf && SYNCED.test(j.leaf));
    if (p) {
      var pct = p.end > 0 ? Math.min(100, (p.cur / p.end) * 100) : 0;
      d.fill.style.width = pct.toFixed(1) + '%';
      d.fill.className = 'fill' + (synced ? ' synced' : '');
      d.bytes.innerHTML = '';
      d.bytes.append(el('b', null, formatBytes(p.cur)), ' / ' + formatBytes(p.end) + ' (' + pct.toFixed(0) + '%)');
      d.rate.textContent = p.rate === null ? 'rate –' : formatBytes(p.rate) + '/s';
      d.eta.textContent = synced ? 'synchronised' : p.etaMs === null ? 'time to ready –' : 'ready in ~' + Math.ceil(p.etaMs / 1000) + ' s';
    } else {
      d.bytes.textContent = 'no progress yet';
    }
    if (d.pathLen !== j.path.length) {
      d.path.innerHTML = '';
      j.path.forEach(function (s) { d.path.append(el('li', null, s)); });
      d.pathLen = j.path.length;
    }
    // Highlight: the active states (leaf and its parents), states seen before, the last transition.
    d.states.forEach(function (g, id) { g.classList.toggle('visited', j.visited.has(id)); });
    d.lit.forEach(function (g) { g.classList.remove('active'); });
    d.lit = j.active.map(function (id) { return d.states.get(id); }).filter(Boolean);
    d.lit.forEach(function (g) { g.classList.add('active'); });
    d.taken.forEach(function (g) { g.classList.remove('taken'); });
    d.taken = j.edges.map(function (id) { return d.edges.get(id); }).filter(Boolean);
    d.taken.forEach(function (g) { g.classList.add('taken'); });
    var visible = j.log.filter(function (entry) { return filters[entry.kind]; });
    var last = visible[visible.length - 1];
    var key = visible.length + '|' + (last ? last.time + last.count : '') + '|' + JSON.stringify(filters);
    if (key !== d.logKey) {
      d.logKey = key;
      d.tbody.innerHTML = '';
      for (var i = visible.length - 1; i >= 0; i--) {
        var entry = visible[i];
        var tr = el('tr', entry.kind);
        var text = el('td', null, entry.text);
        if (entry.count > 1) text.append(el('span', 'n', ' ×' + entry.count));
        tr.append(el('td', 't', formatTime(entry.time)), el('td', 'k', entry.kind), text);
        d.tbody.append(tr);
      }
    }
    if (d.root.querySelector('details.context').open || !d.pre.textContent) d.pre.textContent = j.context ? JSON.stringify(j.context, null, 2) : '';
  }

  function prune() {
    if (jobs.size <= MAX_JOBS) return;
    var it = jobs.keys();
    while (jobs.size > MAX_JOBS) {
      var next = it.next();
      if (next.done) break;
      var j = jobs.get(next.value);
      if (j.status === 'active') continue;
      if (j.dom) j.dom.root.remove();
      jobs.delete(next.value);
    }
  }

  function renderAll() { jobs.forEach(render); updateScrub(); }

  function updateScrub() {
    scrub.max = String(records.length);
    scrub.value = String(shown);
    var at = shown > 0 ? records[shown - 1] : null;
    scrubPos.textContent = shown + ' / ' + records.length + (at && at.time ? '  ' + formatTime(at.time) : '');
    followBtn.hidden = shown === records.length;
  }

  /** Rebuilds the view from the first n records. */
  function showUpTo(n) {
    jobs.forEach(function (j) { if (j.dom) j.dom.root.remove(); });
    jobs = new Map();
    emptyEl.hidden = false;
    shown = Math.max(0, Math.min(n, records.length));
    for (var i = 0; i < shown; i++) apply(records[i]);
    prune();
    renderAll();
  }

  function receive(r) {
    var following = shown === records.length;
    records.push(r);
    if (records.length > MAX_RECORDS) { records.shift(); if (!following) shown = Math.max(0, shown - 1); }
    if (!following) { updateScrub(); return; }
    shown = records.length;
    apply(r);
    if (r.kind !== 'header') render(jobs.get(r.jobId));
    prune();
    updateScrub();
  }

  scrub.addEventListener('input', function () { showUpTo(Number(scrub.value)); });
  followBtn.addEventListener('click', function () { showUpTo(records.length); });

  function connect() {
    source = new EventSource('/events' + query);
    source.onopen = function () { setMode('live', 'live'); };
    source.onerror = function () { setMode(source.readyState === 2 ? 'disconnected' : 'reconnecting…', 'down'); };
    source.onmessage = function (m) {
      try { receive(JSON.parse(m.data)); } catch (e) { console.error(e); }
    };
  }

  function showNotice(text) { notice.textContent = text; notice.hidden = !text; }

  document.getElementById('load').addEventListener('change', function (ev) {
    var file = ev.target.files && ev.target.files[0];
    if (!file) return;
    file.text().then(function (text) {
      var loaded = [];
      var lines = text.split('\n');
      for (var i = 0; i < lines.length; i++) {
        var line = lines[i].trim();
        if (!line) continue;
        var r;
        try { r = JSON.parse(line); } catch (e) { showNotice(file.name + ': line ' + (i + 1) + ' is not JSON'); return; }
        if (!r || ['header', 'inspection', 'progress', 'job-event'].indexOf(r.kind) < 0) { showNotice(file.name + ': line ' + (i + 1) + ' is not an inspector record'); return; }
        loaded.push(r);
      }
      if (source) { source.close(); source = null; }
      showNotice('');
      setMode('file: ' + file.name + ' (' + loaded.length + ' records)', 'file');
      records = loaded;
      showUpTo(records.length);
    });
  });

  connect();
})();
`;
