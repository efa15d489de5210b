// The dashboard page: one HTML document; its script and style are files (assets/page.js, page.css) served like
// uPlot's, so the Content-Security-Policy allows no inline script or style.

export function page(opts: { readOnly: boolean }): string {
  const ro = opts.readOnly ? 'disabled title="read-only"' : '';
  return HTML.replace('{{requeue}}', ro).replace('{{recompute}}', ro);
}

const HTML =
  `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sluice ` +
  `dashboard</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/uplot.css">
<link rel="stylesheet" href="/assets/page.css">
</head><body>
<h1>sluice <select id="pipeline"></select> <span id="updated" ` +
  `class="muted"></span></h1>
<div id="progress"></div>
<h2>Stages <span id="bottleneck" class="muted"></span></h2><div ` +
  `id="stages"></div><div id="charts"></div>
<h2>Recompute</h2>
<form id="recompute-form">from stage <select id="r-stage"><option value="">the stale ones (versions)</option></select>
 key <input id="r-key" size="16"> <label><input type="checkbox" id="r-offline"> offline results too</label>
 <button type="submit">count stale</button> <button type="button" ` +
  `id="recompute" {{recompute}}>recompute</button>
 <span id="recompute-msg"></span></form>
<div id="recompute-groups"></div>
<h2>Resources</h2><div id="resources"></div><div ` +
  `id="resource-charts"></div>
<h2>Machines</h2><div id="processes"></div><p id="connections" ` +
  `class="num"></p>
<h2>Quarantined tasks</h2>
<form id="search">key <input id="q-key" size="16"> error class <select ` +
  `id="q-class"><option value="">any</option></select>
 stage <input id="q-stage" size="8"> since <input id="q-since" size="20" ` +
  `placeholder="2026-11-26T00:00:00Z"> until <input id="q-until" size="20">
 <button type="submit">search</button> <button type="button" ` +
  `id="requeue" {{requeue}}>requeue matching</button>
 <span id="requeue-msg"></span></form>
<div id="quarantine"></div><pre id="timeline" hidden></pre>
<script src="/assets/uplot.js"></script>
<script src="/assets/page.js"></script>
</body></html>
`;
