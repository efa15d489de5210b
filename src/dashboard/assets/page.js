// @ts-check
// The dashboard page's script (served as /assets/page.js: the page has no inline script). Plain DOM and uPlot,
// refreshed every 3 s from the JSON API; the session cookie (from /?token=) authorizes its requests.
/** @param {string} id */
const $ = (id) => document.getElementById(id);
/** A form field of the page, by id. @param {string} id @returns {HTMLInputElement} */
const field = (id) => /** @type {HTMLInputElement} */ (document.getElementById(id));
/** A <select> of the page, by id. @param {string} id @returns {HTMLSelectElement} */
const choice = (id) => /** @type {HTMLSelectElement} */ (document.getElementById(id));
const esc = (s) =>
  String(s ?? '').replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const api = async (path, init = {}) => {
  const r = await fetch(path, init);
  const body = await r.json();
  if (!r.ok) throw Object.assign(new Error(body.error || r.status), { status: r.status, body });
  return body;
};
const table = (cols, rows) =>
  '<table><tr>' +
  cols.map((c) => '<th>' + esc(c) + '</th>').join('') +
  '</tr>' +
  rows.map((r) => '<tr>' + r.map((v) => '<td class="num">' + v + '</td>').join('') + '</tr>').join('') +
  '</table>';
// A fetcher that holds no partition while its topic has lag (its heartbeat's info.idle): who holds the group.
// Why a fetcher is paused (its heartbeat's info.pausedReason): a full disk is the one to act on.
const pausedNote = (i) =>
  !i.paused
    ? ''
    : i.pausedReason === 'disk full'
      ? ' <span class="stale">paused: disk full (' +
        fmt(i.freeBytes === null || i.freeBytes === undefined ? null : Math.round(i.freeBytes / 1048576)) +
        ' MiB free)</span>'
      : ' <span class="muted">paused: ' + esc(i.pausedReason || 'high-water mark') + '</span>';
const idleNote = (idle) =>
  !idle
    ? ''
    : ' <span class="stale">holds no partition (lag ' +
      fmt(idle.lag) +
      '; other members: ' +
      esc(
        (idle.members || [])
          .map((m) => m.clientId + '@' + m.host + ' on ' + ((m.topics || []).join(',') || '?'))
          .join('; ') || 'none',
      ) +
      ')</span>';
const fmt = (n) => (n === null || n === undefined ? '-' : Number(n).toLocaleString('en'));
const filter = () => ({
  key: field('q-key').value,
  errorClass: choice('q-class').value,
  stage: field('q-stage').value,
  since: field('q-since').value,
  until: field('q-until').value,
});
let charts = {};

async function refresh() {
  const p = choice('pipeline').value;
  if (!p) return;
  const s = await api('/api/pipelines/' + encodeURIComponent(p));
  const frac = s.source === 0 ? 1 : s.done / s.source;
  $('progress').innerHTML =
    '<div><span class="bar"><div id="bar-done"></div></span> <b id="done" class="num">' +
    fmt(s.done) +
    '</b> of <span class="num">' +
    fmt(s.source) +
    '</span> done (' +
    (frac * 100).toFixed(1) +
    '%), ' +
    s.throughput.resultsPerSecond.toFixed(1) +
    '/s, ETA ' +
    (s.etaSeconds === null ? 'unknown' : s.etaSeconds + ' s') +
    '</div>' +
    '<div class="num">pending <b id="pending">' +
    fmt(s.pending) +
    '</b> &nbsp; in flight ' +
    fmt(s.inFlight) +
    ' &nbsp; quarantined <b id="quarantined">' +
    fmt(s.quarantined) +
    '</b> &nbsp; bad messages ' +
    fmt(s.badMessages) +
    (s.orphans ? ' &nbsp; results without a source row ' + fmt(s.orphans) : '') +
    '</div>';
  // Set through the DOM, not a style attribute: the page's policy allows no inline style.
  $('bar-done').style.width = (frac * 100).toFixed(1) + '%';
  $('bottleneck').textContent = s.bottleneck ? 'bottleneck: ' + s.bottleneck : '';
  $('stages').innerHTML =
    table(
      ['stage', 'done', 'per second', 'failed tries (last min)', 'retry ratio', 'version', 'other versions'],
      s.stages.map((x) => {
        const v = (s.versions || []).find((y) => y.stage === x.stage);
        return [
          esc(x.stage),
          fmt(x.milestones),
          x.perSecond.toFixed(1),
          fmt(x.failedLastMinute),
          (x.retryRatio * 100).toFixed(1) + '%',
          esc(v ? v.version : ''),
          v && v.others.length
            ? v.others.map((o) => esc(o.version) + ': ' + fmt(o.count)).join(', ')
            : '<span class="muted">none</span>',
        ];
      }),
    ) +
    (s.errors.length
      ? '<p>errors by class</p>' +
        table(
          ['class', 'count', 'last', 'example'],
          s.errors.map((e) => [esc(e.errorClass), fmt(e.count), esc(e.lastAt), esc(e.example)]),
        )
      : '');
  $('resources').innerHTML =
    s.resources.length === 0
      ? '<span class="muted">none</span>'
      : table(
          ['resource', 'limit', 'in flight', 'overload signals', 'processes (in flight / share)'],
          s.resources.map((r) => [
            esc(r.name),
            (r.configured === 'auto' ? 'learned ' : '') + fmt(r.limit),
            fmt(r.inFlight),
            fmt(r.overloads),
            esc(r.processes.map((x) => x.process + ' ' + x.inFlight + '/' + x.share).join(', ')),
          ]),
        );
  drawResources(s.resources);
  $('processes').innerHTML =
    s.processes.length === 0
      ? '<span class="muted">no process has a heartbeat</span>'
      : table(
          ['role', 'host', 'pid', 'up since', 'spool / in flight', 'last heartbeat'],
          s.processes.map((x) => [
            esc(x.role),
            esc(x.host),
            x.pid,
            esc(x.startedAt),
            x.role === 'fetcher'
              ? fmt(x.info.depth && x.info.depth.items) +
                ' spooled waiting' +
                pausedNote(x.info) +
                idleNote(x.info.idle)
              : fmt(x.info.inFlight) + ' in flight',
            '<span class="' +
              (x.stale ? 'stale' : '') +
              '">' +
              x.ageSeconds.toFixed(0) +
              ' s ago' +
              (x.stale ? ' (stale)' : '') +
              '</span>',
          ]),
        ) +
        (s.lag
          ? '<p class="num">consumer lag: ' +
            Object.entries(s.lag)
              .map(([k, v]) => 'p' + k + ' ' + v)
              .join(', ') +
            '</p>'
          : '');
  const c = s.connections;
  $('connections').textContent =
    'database connections: ' +
    fmt(c.heldByProcesses) +
    ' held by ' +
    fmt(c.processes) +
    ' live process(es), ' +
    (c.heldHere === null ? '?' : fmt(c.heldHere)) +
    ' by this dashboard; ' +
    (c.server === null
      ? 'the server did not say'
      : fmt(c.server) + ' session(s) of this account on this database (server)') +
    '; at most ' +
    fmt(c.poolSize) +
    ' per process (database.poolSize)';
  const classes = new Set([...choice('q-class').options].map((o) => o.value));
  for (const e of s.errors)
    if (!classes.has(e.errorClass)) choice('q-class').add(new Option(e.errorClass, e.errorClass));
  $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  drawCharts(await api('/api/pipelines/' + encodeURIComponent(p) + '/stages'));
}

// At least the last 5 minutes on the time axis: one bucket alone would otherwise span years.
/** The x range: at least the last 5 minutes, up to now. @returns {[number, number]} */
const timeRange = (u, min, max) => {
  const now = Date.now() / 1000;
  return [Math.min(min ?? now, (max ?? now) - 300), Math.max(max ?? now, now)];
};

function drawCharts(series) {
  for (const [stage, points] of Object.entries(series)) {
    const xs = points.map((x) => Date.parse(x.at) / 1000);
    const data = [xs, points.map((x) => x.done / 10), points.map((x) => x.p50Ms), points.map((x) => x.p99Ms)];
    if (charts[stage]) {
      charts[stage].setData(data);
      continue;
    }
    const el = document.createElement('div');
    $('charts').appendChild(el);
    charts[stage] = new uPlot(
      {
        title: stage,
        width: 420,
        height: 200,
        scales: { x: { time: true, range: timeRange }, ms: {} },
        axes: [{}, { label: 'per s' }, { scale: 'ms', side: 1, label: 'ms', grid: { show: false } }],
        series: [
          {},
          { label: 'done/s', stroke: '#2ca02c' },
          { label: 'p50 ms', stroke: '#1f77b4', scale: 'ms' },
          { label: 'p99 ms', stroke: '#d62728', scale: 'ms' },
        ],
      },
      data,
      el,
    );
  }
}

// Resources over time, since the page opened: one point per refresh, the last 30 minutes.
const resourceHistory = {};
let resourceCharts = {};
function drawResources(resources) {
  const now = Date.now() / 1000;
  for (const r of resources) {
    const h = resourceHistory[r.name] || (resourceHistory[r.name] = [[], [], [], []]);
    h[0].push(now);
    h[1].push(r.limit);
    h[2].push(r.inFlight);
    h[3].push(r.processes.length);
    while (h[0].length > 600) for (const col of h) col.shift();
    if (resourceCharts[r.name]) {
      resourceCharts[r.name].setData(h);
      continue;
    }
    const el = document.createElement('div');
    $('resource-charts').appendChild(el);
    resourceCharts[r.name] = new uPlot(
      {
        title: r.name + ' (since this page opened)',
        width: 420,
        height: 200,
        series: [
          {},
          { label: 'limit', stroke: '#d62728' },
          { label: 'in flight', stroke: '#1f77b4' },
          { label: 'processes', stroke: '#7f7f7f' },
        ],
      },
      h,
      el,
    );
  }
}

// The filter the table on screen was searched with: what a requeue acts on, whatever the form says now.
/** @type {Record<string, string>} */
let shown = {};

async function search(ev) {
  if (ev) ev.preventDefault();
  const p = choice('pipeline').value;
  shown = Object.fromEntries(Object.entries(filter()).filter(([, v]) => v));
  const r = await api('/api/pipelines/' + encodeURIComponent(p) + '/quarantine?' + new URLSearchParams(shown));
  $('quarantine').innerHTML =
    '<p id="matched">' +
    r.total +
    ' matching</p>' +
    table(
      ['key', 'stage', 'class', 'message', 'attempts', 'quarantined'],
      r.tasks.map((t) => [
        '<a href="#" data-key="' + esc(t.key) + '">' + esc(t.key) + '</a>',
        esc(t.stage),
        esc(t.errorClass),
        esc(t.errorMessage),
        t.attempts,
        esc(t.quarantinedAt),
      ]),
    );
  for (const a of $('quarantine').querySelectorAll('a[data-key]')) {
    if (!(a instanceof HTMLAnchorElement)) continue;
    a.onclick = (e) => {
      e.preventDefault();
      showTask(a.dataset.key);
    };
  }
}

async function showTask(key) {
  const t = await api(
    '/api/pipelines/' + encodeURIComponent(choice('pipeline').value) + '/tasks/' + encodeURIComponent(key),
  );
  $('timeline').hidden = false;
  $('timeline').textContent =
    'task ' +
    t.key +
    ': ' +
    t.state +
    '\n\nattempts:\n' +
    t.attempts
      .map(
        (a) => '  ' + a.created_at + '  ' + a.stage + ' #' + a.attempt + '  ' + a.error_class + ': ' + a.error_message,
      )
      .join('\n') +
    '\n\nmilestones:\n' +
    t.milestones.map((m) => '  ' + m.created_at + '  ' + m.stage + '  version ' + m.version).join('\n') +
    (t.quarantine ? '\n\nquarantine: ' + JSON.stringify(t.quarantine) : '');
}

const post = (path, body) =>
  api(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function requeue() {
  const path = '/api/pipelines/' + encodeURIComponent(choice('pipeline').value) + '/requeue';
  const what = Object.keys(shown).length === 0 ? { all: true } : { filter: shown };
  const preview = await post(path, { ...what, dryRun: true });
  if (!confirm('Requeue the ' + preview.matched + ' task(s) of the table on screen?')) return;
  try {
    const r = await post(path, { ...what, expect: { count: preview.matched, hash: preview.hash } });
    $('requeue-msg').textContent = 'requeued ' + r.requeued + ', published ' + r.published;
  } catch (e) {
    if (e.status !== 409) throw e;
    $('requeue-msg').textContent =
      'not requeued: the table changed (' + e.body.matched + ' match now); look again and confirm';
  }
  await search();
}

// What a recompute acts on: the filter its count was taken with.
/** @type {Record<string, unknown>} */
let counted = {};

const recomputeFilter = () => {
  /** @type {Record<string, unknown>} */
  const f = {};
  if (choice('r-stage').value) f.fromStage = choice('r-stage').value;
  if (field('r-key').value) f.key = field('r-key').value;
  if (field('r-offline').checked) f.includeOffline = true;
  return f;
};

const recomputePath = () => '/api/pipelines/' + encodeURIComponent(choice('pipeline').value) + '/recompute';

async function countStale(ev) {
  if (ev) ev.preventDefault();
  counted = recomputeFilter();
  const r = await post(recomputePath(), { filter: counted, dryRun: true });
  $('recompute-msg').textContent = r.matched + ' stale';
  $('recompute-groups').innerHTML = table(
    ['from stage', 'tasks', 'old version', 'new version'],
    r.groups.map((g) => [esc(g.stage), fmt(g.tasks), esc(g.from === null ? '(no milestone)' : g.from), esc(g.to)]),
  );
  return r;
}

async function recompute() {
  const preview = await countStale();
  if (preview.matched === 0) return;
  if (!confirm('Recompute the ' + preview.matched + ' stale task(s) counted?')) return;
  try {
    const r = await post(recomputePath(), { filter: counted, expect: { count: preview.matched, hash: preview.hash } });
    $('recompute-msg').textContent = 'published ' + r.published + ' of ' + r.matched;
  } catch (e) {
    if (e.status !== 409) throw e;
    $('recompute-msg').textContent = 'not published: ' + e.body.matched + ' are stale now; count again and confirm';
  }
}

async function stageChoices() {
  const p = (await api('/api/pipelines')).find((x) => x.name === choice('pipeline').value);
  const select = choice('r-stage');
  while (select.options.length > 1) select.remove(1);
  for (const st of p ? p.stages : []) select.add(new Option(st, st));
}

(async () => {
  for (const p of await api('/api/pipelines')) choice('pipeline').add(new Option(p.name, p.name));
  $('pipeline').onchange = () => {
    charts = {};
    $('charts').innerHTML = '';
    resourceCharts = {};
    $('resource-charts').innerHTML = '';
    refresh();
    search();
    stageChoices();
  };
  $('recompute-form').onsubmit = (ev) => void countStale(ev).catch((e) => ($('recompute-msg').textContent = e.message));
  $('recompute').onclick = () => recompute().catch((e) => ($('recompute-msg').textContent = e.message));
  await stageChoices().catch(() => {});
  $('search').onsubmit = search;
  $('requeue').onclick = () => requeue().catch((e) => ($('requeue-msg').textContent = e.message));
  await refresh().catch((e) => ($('updated').textContent = e.message));
  await search().catch(() => {});
  setInterval(() => refresh().catch((e) => ($('updated').textContent = e.message)), 3000);
})();
