// analysis.js: the rollout page's analysis: the latest verdict in one
// line, the failing checks, the charts of the inbound checks and the
// per-hop table, all drawn from the API's fields (never from its message
// text). Adds serin.analysis.
(() => {
  'use strict';
  const S = window.serin;
  const { el, svg, lower, formatValue, timeEl } = S;
  const MAX_POINTS = 600;
  const WEIGHT = 'canary weight';

  // hasValues is false for a check that has no numbers to show: one that
  // was skipped or had no data before anything was measured. Such a check
  // leaves its limit at zero (a judged one always has a limit), so that
  // its zeros must not be shown as a measurement.
  // A check whose side had no data at all says so (noData).
  const hasValues = (c) => !c.noData && (c.verdict === 'Pass' || c.verdict === 'Fail' || c.limit > 0 || c.canary > 0 || c.stable > 0);

  // verdictLabel is how a verdict reads: an undecided check is gathering
  // evidence, calmly, not a warning.
  const verdictLabel = (v) => (v === 'Inconclusive' ? 'gathering evidence' : v === 'Skipped' ? 'skipped' : v || '');
  const verdictClass = (v) => (v === 'Inconclusive' ? 'verdict-gathering' : `verdict-${lower(v)}`);
  const where = (c) => `${c.hop || 'inbound'} · ${c.source}`;
  const failing = (c) => c.verdict === 'Fail' && !c.dryRun;

  // summary is the latest analysis in one line, counted from the checks'
  // verdicts: [label, class, text]. An undecided analysis is gathering
  // evidence while the rollout runs, and undecided once it has ended.
  function summary(a, ended) {
    const checks = a.checks || [];
    const n = checks.length;
    const count = (f) => checks.filter(f).length;
    const fails = checks.filter(failing);
    const dry = count((c) => c.verdict === 'Fail' && c.dryRun);
    const dryText = dry ? ` · ${dry} would fail (dry run)` : '';
    if (!a.lastVerdict) return ['none yet', '', ''];
    if (a.lastVerdict === 'Fail' || fails.length) {
      const names = fails.map((c) => `${c.check} (${c.hop || 'inbound'})`).join(', ');
      return ['Fail', 'verdict-fail', `${fails.length} of ${n} checks failed${names ? ': ' + names : ''}${dryText}`];
    }
    if (n === 0) return [verdictLabel(a.lastVerdict), verdictClass(a.lastVerdict), ''];
    const pass = count((c) => c.verdict === 'Pass');
    const skipped = count((c) => c.verdict === 'Skipped');
    const skipText = skipped ? ` · ${skipped} skipped (too few calls)` : '';
    if (a.lastVerdict === 'Inconclusive' && ended) {
      return ['Undecided', 'verdict-skipped', `when the rollout ended: ${pass} of ${n} checks passed${skipText}${dryText}`];
    }
    if (a.lastVerdict === 'Inconclusive') {
      const more = n - pass - skipped;
      return ['Gathering evidence', 'verdict-gathering', `${pass} of ${n} checks pass so far, ${more} need${more === 1 ? 's' : ''} more traffic${skipText}${dryText}`];
    }
    return [a.lastVerdict, verdictClass(a.lastVerdict), `${pass === n ? 'all ' : ''}${pass} of ${n} checks pass${skipText}${dryText}`];
  }

  // drawSummary draws the latest analysis; ended says the rollout has
  // finished, and gathers no more evidence.
  function drawSummary(a, ended) {
    const [label, cls, text] = summary(a, ended);
    const v = document.getElementById('verdict');
    v.className = cls;
    v.textContent = label;
    const s = document.getElementById('summary');
    const at = a.lastTickAt ? [' · ', timeEl(a.lastTickAt)] : [];
    s.replaceChildren(text, ...at);
  }

  // drawFailures lists the checks that failed in the outcome banner, from
  // the API's view of each (api.CheckView: values with intervals and
  // units, the limit, how far over it, the window); it returns how many
  // there are.
  function drawFailures(r) {
    const list = document.getElementById('failures');
    const rolledBack = r.status.phase === 'RolledBack';
    const fails = rolledBack ? (r.checks || []).filter((c) => c.failing) : [];
    list.replaceChildren(...fails.map((c) => el('li', {},
      el('strong', {}, c.check), ' ', el('span', { class: 'where' }, `${c.hop} · ${c.source}`), ': ',
      `canary ${c.canary} vs stable ${c.stable} · limit ${c.limit}`,
      c.timesLimit ? el('span', { class: 'times-limit' }, ` (${c.timesLimit})`) : '',
      c.window ? el('span', { class: 'window muted' }, ` · ${c.window}`) : '')));
    list.hidden = fails.length === 0;
    return fails.length;
  }

  // names are the checks' sources as the API's view names them
  // (metrics, traces), by key: every surface says them one way.
  let names = new Map();

  // keyOf is a status check's key, as the API keys its points and its
  // view (readmodel.CheckKey).
  const keyOf = (c) => `${c.check}|${c.hop || ''}|${c.source}`;

  function cell(label, ...children) { return el('td', { 'data-label': label }, ...children); }

  // hopRows groups the latency and error checks by edge and source, each
  // side by side; a check with no numbers says so.
  function hopRows(checks) {
    const rows = new Map();
    for (const c of checks) {
      const kind = c.kind || (c.unit === 'ms' ? 'latency-p99' : c.unit === '%' ? 'error-rate' : '');
      if (kind !== 'latency-p99' && kind !== 'error-rate') continue;
      const edge = c.hop || 'inbound', key = `${edge}|${c.source}`;
      if (!rows.has(key)) rows.set(key, { edge, source: c.source, p99: null, err: null, checks: [], dry: false, trace: '' });
      const h = rows.get(key);
      h[kind === 'latency-p99' ? 'p99' : 'err'] = c;
      h.checks.push(c);
      h.dry = h.dry || !!c.dryRun;
      if (c.traceID) h.trace = c.traceID;
    }
    return [...rows.values()];
  }

  const rank = { Skipped: 1, Pass: 2, Inconclusive: 3, Fail: 4 };
  function worst(checks) {
    return checks.reduce((w, c) => ((rank[c.verdict] || 0) > (rank[w.verdict] || 0) ? c : w), {});
  }
  const pair = (c) => (!c ? '–' : hasValues(c) ? `${formatValue(c.canary, c.unit)} / ${formatValue(c.stable, c.unit)}` : 'no data');

  // drawHops draws the per-hop table from the status's checks, each
  // source named as the API's view of the checks names it (views).
  function drawHops(a, views) {
    names = new Map(views.map((v) => [v.key, v.source]));
    const rows = hopRows(a.checks || []);
    document.getElementById('hops').replaceChildren(...rows.map((h) => {
      const w = worst(h.checks);
      // The example trace opens as a waterfall on this page (trace.js),
      // read through the API: no link to a Jaeger UI that may not exist.
      const trace = !h.trace ? '' : el('button', { type: 'button', class: 'trace-open', 'data-trace': h.trace, 'data-hop': h.edge,
        title: `Show trace ${h.trace}` }, el('code', {}, h.trace.slice(0, 8)), '…');
      return el('tr', { class: hasValues(w) ? '' : 'no-data', 'data-hop': h.checks[0].hop || '', 'data-source': h.source },
        cell('Edge', h.edge), cell('Source', names.get(keyOf(h.checks[0])) || h.source),
        el('td', { class: 'num', 'data-label': 'p99 canary / stable' }, pair(h.p99)),
        el('td', { class: 'num', 'data-label': 'Errors canary / stable' }, pair(h.err)),
        cell('Verdict', el('span', { class: verdictClass(w.verdict), title: w.reason || '' }, verdictLabel(w.verdict))),
        cell('Dry run', h.dry ? 'dry run' : ''), cell('Example trace', trace));
    }));
    document.getElementById('no-hops').hidden = rows.length > 0;
  }

  // Charts: one per inbound check, and one per hop check that failed or
  // is a dry run (the others are in the per-hop table), keyed as the API
  // keys a check's points (readmodel.CheckKey), so that two checks of the
  // same name are two charts, and the points of /series and of the
  // stream's events meet on the same key.
  const series = new Map(); // key -> {title, hop, points (oldest first), latest, failed}
  // marks are the moments drawn across every chart: step changes (from
  // the weight's points) and the rollout's end (from its history).
  let endMarks = [];
  // dryKeys are the hop checks the latest status reports as dry runs.
  let dryKeys = new Set();
  // since is when the analysis began: every sequential check counts the
  // requests since then, which the captions say.
  let since = '';

  function push(key, title, p, hop) {
    if (!series.has(key)) series.set(key, { title, hop: hop || '', points: [] });
    const s = series.get(key);
    if (p.verdict === 'Fail') s.failed = true;
    const pts = s.points;
    if (pts.length && pts[pts.length - 1].t >= p.t) return;
    pts.push(p);
    if (pts.length > MAX_POINTS) pts.shift();
  }

  // titleOf names a chart: the check, its hop, and its source unless it
  // is the inbound metrics, the default.
  const titleOf = (c) => {
    const source = names.get(c.key) || c.source;
    return [c.check, c.hop, !c.hop && source === 'metrics' ? '' : source].filter(Boolean).join(' · ');
  };

  // addPoint records one analysis tick (a readmodel.Point): the weight
  // and every check that measured something. An undecided or skipped
  // check has no numbers, and must not plot as zeros.
  function addPoint(p) {
    const t = Date.parse((p && p.time) || '');
    if (!Number.isFinite(t)) return;
    if (typeof p.canaryWeight === 'number') push(WEIGHT, WEIGHT, { t, canary: p.canaryWeight, unit: '%' });
    for (const c of p.checks || []) {
      if (series.has(c.key)) series.get(c.key).latest = c;
      if (c.verdict !== 'Pass' && c.verdict !== 'Fail') continue;
      push(c.key, titleOf(c), { t, canary: c.canary, stable: c.stable, limit: c.limit, unit: c.unit || '', verdict: c.verdict }, c.hop);
      series.get(c.key).latest = c;
    }
  }

  // setSeries replaces the points with /series' answer, keeping the
  // stream's points that are newer.
  function setSeries(points) {
    const live = new Map([...series].map(([k, s]) => [k, s]));
    series.clear();
    for (const p of points) addPoint(p);
    for (const [k, s] of live) for (const p of s.points) push(k, s.title, p, s.hop);
  }

  // setRollout takes what the charts need of the rollout drawn: its dry
  // runs, when its analysis began, and the moment it ended, if it did.
  function setRollout(r) {
    const a = r.status.analysis || {};
    dryKeys = new Set((a.checks || []).filter((c) => c.dryRun && c.hop).map(keyOf));
    since = a.since || '';
    endMarks = (r.status.history || [])
      .filter((h) => /^(RolledBack|Aborted)\b/.test(h.to || ''))
      .map((h) => ({ t: Date.parse(h.time), label: h.to.startsWith('RolledBack') ? 'rollback' : 'abort', cls: 'mark-end' }))
      .filter((m) => Number.isFinite(m.t));
  }

  // marks are the step changes, read from the weight's points, and the
  // rollout's end.
  function marks() {
    const w = series.get(WEIGHT);
    const out = [];
    if (w) {
      for (let i = 1; i < w.points.length; i++) {
        const a = w.points[i - 1], b = w.points[i];
        if (b.canary !== a.canary && b.canary > 0) out.push({ t: b.t, label: `${b.canary}%`, cls: 'mark-step' });
      }
    }
    return out.concat(endMarks);
  }

  // charted says whether a series has a chart: the weight, every inbound
  // check, and a hop's check that failed or is a dry run.
  const charted = (key, s) => key === WEIGHT || !s.hop || s.failed || dryKeys.has(key);

  function legend(weightOnly) {
    const item = (cls, label) => {
      const s = svg('svg', { viewBox: '0 0 16 4', class: 'key' });
      s.append(svg('line', { x1: 0, y1: 2, x2: 16, y2: 2, class: `line ${cls}` }));
      return el('span', { class: 'key-item' }, s, label);
    };
    return weightOnly ? el('span', { class: 'legend' }, item('canary', 'canary %'))
      : el('span', { class: 'legend' }, item('canary', 'canary'), item('stable', 'stable'), item('limit', 'limit'));
  }

  function caption(key, s) {
    const c = s.latest;
    const parts = [el('strong', {}, c ? titleOf(c) : s.title), ' '];
    if (c) {
      parts.push(el('span', { class: verdictClass(c.verdict) }, verdictLabel(c.verdict)), ' ',
        el('span', { class: 'muted' }, hasValues(c)
          ? `canary ${formatValue(c.canary, c.unit)} · stable ${formatValue(c.stable, c.unit)} · limit ${formatValue(c.limit, c.unit)}`
          : 'no data yet'));
    }
    parts.push(legend(key === WEIGHT));
    if (key !== WEIGHT && since) parts.push(el('span', { class: 'window muted' }, 'each point counts every request since the analysis began, ', timeEl(since)));
    return parts;
  }

  function drawCharts() {
    const box = document.getElementById('charts');
    const keys = [...series.keys()].filter((k) => charted(k, series.get(k)))
      .sort((a, b) => (a === WEIGHT ? -1 : b === WEIGHT ? 1 : a.localeCompare(b)));
    const ms = marks();
    for (const key of keys) {
      let fig = box.querySelector(`figure[data-check="${CSS.escape(key)}"]`);
      if (!fig) {
        fig = el('figure', { class: 'chart', 'data-check': key }, el('figcaption', {}));
        if (key === WEIGHT) box.prepend(fig); else box.append(fig);
      }
      const s = series.get(key);
      fig.querySelector('figcaption').replaceChildren(...caption(key, s));
      fig.classList.toggle('failing-hop', !!s.hop && !!s.failed);
      S.drawChart(fig, s.points, { marks: ms, log: key !== WEIGHT });
    }
    const none = document.getElementById('no-charts');
    if (none && keys.length) none.remove();
  }
  // The charts are drawn at their width in pixels (chart.js): when the
  // width changes (a window resized, a phone turned), they are drawn again.
  let drawnWidth = 0;
  const redraw = S.debounce(() => {
    const w = document.getElementById('charts').clientWidth;
    if (w !== drawnWidth) { drawnWidth = w; drawCharts(); }
  }, 150);
  new ResizeObserver(redraw).observe(document.getElementById('charts'));

  S.analysis = { summary, drawSummary, drawFailures, drawHops, addPoint, setSeries, setRollout, drawCharts, hasValues };
})();
