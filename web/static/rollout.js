// rollout.js: keeps one rollout's page live, draws its charts, and runs
// the operator's buttons through the REST API.
(() => {
  'use strict';
  const S = window.serin;
  const { api, el, svg, timeEl, lower, phaseOf, stepsOf, changedAt, refreshTimes } = S;
  const root = document.getElementById('rollout');
  const ns = root.dataset.ns, name = root.dataset.name;
  const traceURL = root.dataset.traceUrl || '';
  const base = `/api/v1/rollouts/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
  const series = new Map(); // chart key -> points, oldest first
  const MAX_POINTS = 600;
  let current = null;

  const $ = (id) => document.getElementById(id);
  const terminal = (p) => ['Succeeded', 'RolledBack', 'Aborted', 'Failed'].includes(p);
  const num = (v, unit) => {
    if (typeof v !== 'number') return '–';
    const p = unit === 'ms' ? (v < 10 ? 1 : 0) : 2;
    return `${v.toFixed(p)}${unit ? ' ' + unit : ''}`;
  };

  function outcome(r) {
    const st = r.status, h = st.history || [];
    let msg = st.message || (h.length ? h[h.length - 1].message : '') || '';
    msg = msg.charAt(0).toUpperCase() + msg.slice(1);
    switch (st.phase) {
      case 'RolledBack': return 'Rolled back: all traffic went back to the stable version. ' + msg;
      case 'Aborted': return 'Aborted: all traffic went back to the stable version. ' + msg;
      case 'Failed': return 'Failed: ' + msg;
    }
    return '';
  }

  function drawLadder(r) {
    const cur = r.status.currentStep, phase = r.status.phase;
    $('ladder').replaceChildren(...stepsOf(r).map((w, i) => {
      let state = 'todo';
      if (phase === 'Succeeded' || (phase && i < cur)) state = 'done';
      else if (phase && i === cur) state = terminal(phase) ? 'stopped' : 'current';
      return el('li', { class: `step ${state}` }, `${w}%`);
    }));
  }

  function drawWeight(r) {
    const w = r.status.canaryWeight || 0;
    $('canary-rect').setAttribute('width', String(w));
    $('weight').textContent = `${w}%`;
    $('stable-weight').textContent = `${100 - w}%`;
    const a = r.status.analysis || {};
    const v = $('verdict');
    v.className = `verdict-${lower(a.lastVerdict)}`;
    v.textContent = a.lastVerdict || 'none yet';
    $('reason').textContent = a.lastReason || '';
  }

  const rank = { Skipped: 1, Pass: 2, Inconclusive: 3, Fail: 4 };
  function hopRows(checks) {
    const rows = new Map();
    for (const c of checks) {
      if (c.unit !== 'ms' && c.unit !== '%') continue;
      const edge = c.hop || 'inbound', key = `${edge}|${c.source}`;
      if (!rows.has(key)) rows.set(key, { edge, source: c.source, p99: ['–', '–'], err: ['–', '–'], verdict: '', dry: false, trace: '' });
      const h = rows.get(key);
      if (c.unit === 'ms') h.p99 = [num(c.canary, 'ms'), num(c.stable, 'ms')];
      else h.err = [num(c.canary, '%'), num(c.stable, '%')];
      if ((rank[c.verdict] || 0) > (rank[h.verdict] || 0)) h.verdict = c.verdict;
      h.dry = h.dry || !!c.dryRun;
      if (c.traceID) h.trace = c.traceID;
    }
    return [...rows.values()];
  }

  function drawHops(r) {
    const rows = hopRows((r.status.analysis || {}).checks || []);
    $('hops').replaceChildren(...rows.map((h) => el('tr', {},
      el('td', {}, h.edge), el('td', {}, h.source),
      el('td', { class: 'num' }, `${h.p99[0]} / ${h.p99[1]}`),
      el('td', { class: 'num' }, `${h.err[0]} / ${h.err[1]}`),
      el('td', {}, el('span', { class: `verdict-${lower(h.verdict)}` }, h.verdict)),
      el('td', {}, h.dry ? 'dry run' : ''),
      el('td', {}, !h.trace ? '' : traceURL
        ? el('a', { href: traceURL + encodeURIComponent(h.trace), target: '_blank', rel: 'noopener noreferrer' }, h.trace)
        : el('code', {}, h.trace)))));
    $('no-hops').hidden = rows.length > 0;
  }

  function drawHistory(r) {
    const h = [...(r.status.history || [])].reverse();
    $('history').replaceChildren(...h.map((x) => el('tr', {},
      el('td', {}, timeEl(x.time)), el('td', {}, `${x.from} → ${x.to}`), el('td', {}, x.reason), el('td', {}, x.message || ''))));
  }

  function drawHeader(r) {
    const phase = phaseOf(r);
    $('phase').className = `badge phase-${lower(phase)}`;
    $('phase').textContent = phase;
    const o = outcome(r);
    $('message').textContent = o ? '' : r.status.message || '';
    $('outcome').textContent = o;
    $('outcome').hidden = !o;
    $('changed').setAttribute('datetime', changedAt(r));
    const done = terminal(r.status.phase);
    const paused = !!r.spec.paused;
    const state = { pause: done || paused, resume: done || !paused, promote: done, abort: done };
    for (const [op, disabled] of Object.entries(state)) {
      const b = $(`op-${op}`);
      if (b) b.disabled = disabled;
    }
  }

  // addPoint records the rollout's latest analysis tick in the charts'
  // series, so that they move between fetches of /series.
  function addPoint(r) {
    const a = r.status.analysis || {};
    const t = Date.parse(a.lastTickAt || '');
    if (!Number.isFinite(t)) return;
    push('canary weight', { t, canary: r.status.canaryWeight || 0, unit: '%' });
    for (const c of a.checks || []) {
      if (!c.hop && measured(c)) push(c.check, { t, canary: c.canary, stable: c.stable, limit: c.limit, unit: c.unit || '', verdict: c.verdict });
    }
  }

  // measured is true for a check that produced numbers this tick: an
  // inconclusive or skipped one has none, and must not plot as zeros.
  const measured = (c) => c.verdict === 'Pass' || c.verdict === 'Fail';

  function push(key, p) {
    if (!series.has(key)) series.set(key, []);
    const pts = series.get(key);
    if (pts.length && pts[pts.length - 1].t >= p.t) return;
    pts.push(p);
    if (pts.length > MAX_POINTS) pts.shift();
  }

  // loadSeries reads /series, accepting points that hold all checks
  // ({time, weight, checks: [...] or {name: {...}}}).
  async function loadSeries() {
    let d;
    try { d = await api('GET', `${base}/series`); } catch (_) { return; }
    const pts = Array.isArray(d) ? d : (d && (d.points || d.series || d.items)) || [];
    const fresh = new Map(series);
    series.clear();
    for (const p of pts) {
      const t = Date.parse(p.time || p.t || '');
      if (!Number.isFinite(t)) continue;
      const w = typeof p.canaryWeight === 'number' ? p.canaryWeight : p.weight;
      if (typeof w === 'number') push('canary weight', { t, canary: w, unit: '%' });
      let checks = p.checks || [];
      if (!Array.isArray(checks)) checks = Object.entries(checks).map(([k, v]) => Object.assign({ check: k }, v));
      for (const c of checks) {
        if (!c.hop && measured(c)) push(c.check || c.name, { t, canary: c.canary, stable: c.stable, limit: c.limit, unit: c.unit || '', verdict: c.verdict });
      }
    }
    for (const [k, old] of fresh) for (const p of old) push(k, p); // keep newer live points
    drawCharts();
  }

  function drawCharts() {
    const box = $('charts');
    const latest = new Map();
    for (const c of ((current && current.status.analysis) || {}).checks || []) if (!c.hop) latest.set(c.check, c);
    const keys = [...series.keys()].sort((a, b) => (a === 'canary weight' ? -1 : b === 'canary weight' ? 1 : a.localeCompare(b)));
    for (const key of keys) {
      let fig = box.querySelector(`figure[data-check="${CSS.escape(key)}"]`);
      if (!fig) {
        fig = el('figure', { class: 'chart', 'data-check': key }, el('figcaption', {}));
        if (key === 'canary weight') box.prepend(fig); else box.append(fig);
      }
      const c = latest.get(key);
      const cap = fig.querySelector('figcaption');
      cap.replaceChildren(el('strong', {}, key), ' ',
        c ? el('span', { class: `verdict-${lower(c.verdict)}` }, c.verdict) : '', ' ',
        c ? el('span', { class: 'muted' }, `canary ${num(c.canary, c.unit)} · stable ${num(c.stable, c.unit)} · limit ${num(c.limit, c.unit)}`) : '',
        legend(key === 'canary weight'));
      S.drawChart(fig, series.get(key));
    }
    const none = $('no-charts');
    if (none && keys.length) none.remove();
  }

  function legend(weightOnly) {
    const item = (cls, label) => {
      const s = svg('svg', { viewBox: '0 0 16 4', class: 'key' });
      s.append(svg('line', { x1: 0, y1: 2, x2: 16, y2: 2, class: `line ${cls}` }));
      return el('span', { class: 'key-item' }, s, label);
    };
    return weightOnly ? el('span', { class: 'legend' }, item('canary', 'canary %'))
      : el('span', { class: 'legend' }, item('canary', 'canary'), item('stable', 'stable'), item('limit', 'limit'));
  }

  function render(r) {
    current = r;
    drawHeader(r);
    drawLadder(r);
    drawWeight(r);
    drawHops(r);
    drawHistory(r);
    addPoint(r);
    drawCharts();
    refreshTimes();
  }

  async function refresh() {
    try {
      render(await api('GET', base));
    } catch (e) {
      if (e.status === 401) window.location.assign('/login?next=' + encodeURIComponent(location.pathname));
    }
  }
  const refreshSoon = S.debounce(refresh, 250);
  let seriesAt = 0;

  // streamDoc is the rollout as the stream's events make it: a whole
  // "rollout" event first, then "patch" events that each carry only what
  // changed since the previous event.
  let streamDoc = null;

  function onFrame(f) {
    if (f.event === 'rollout') streamDoc = f.json;
    else if (f.event === 'patch' && streamDoc && f.json) streamDoc = S.mergePatch(streamDoc, f.json);
    const r = f.event === 'rollout' || f.event === 'patch' ? S.rolloutOf(streamDoc) : null;
    if (r && r.namespace === ns && r.name === name) render(r);
    else refreshSoon();
    if (Date.now() - seriesAt > 15000) { seriesAt = Date.now(); loadSeries(); }
  }

  async function act(op, body) {
    const msg = $('action-msg');
    msg.className = 'action-msg';
    msg.textContent = `${op}…`;
    try {
      render(await api('POST', `${base}/${op}`, body));
      msg.textContent = `${op} requested`;
    } catch (e) {
      msg.className = 'action-msg error';
      msg.textContent = `${op} refused: ${e.message}`;
    }
  }

  for (const b of document.querySelectorAll('button.op')) b.addEventListener('click', () => act(b.dataset.op));
  const form = $('abort-form');
  if (form) {
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const reason = $('abort-reason').value.trim();
      if (reason) act('abort', { reason });
    });
  }

  seriesAt = Date.now();
  loadSeries();
  S.live(`${base}/events`, onFrame, refreshSoon);
})();
