// list.js: keeps the list of rollouts live. The server rendered the first
// paint; this redraws the rows from the API and its event stream.
(() => {
  'use strict';
  const { api, el, svg, timeEl, live, debounce, rolloutOf, lower, phaseOf, stepText, changedAt, refreshTimes } = window.serin;
  const root = document.getElementById('list');
  const ns = root.dataset.namespace || '';
  const q = ns ? `?namespace=${encodeURIComponent(ns)}` : '';
  const byKey = new Map();
  let loaded = false;

  function row(r) {
    const key = `${r.namespace}/${r.name}`;
    const phase = phaseOf(r);
    const w = r.status.canaryWeight || 0;
    const bar = svg('svg', { class: 'minibar', viewBox: '0 0 100 6', preserveAspectRatio: 'none', 'aria-hidden': 'true' });
    bar.append(svg('rect', { class: 'stable', width: 100, height: 6 }), svg('rect', { class: 'canary', width: w, height: 6 }));
    const href = `/rollouts/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}`;
    return el('tr', { 'data-key': key },
      el('td', {}, el('a', { href }, el('span', { class: 'muted' }, `${r.namespace}/`), r.name)),
      el('td', {}, el('span', { class: `badge phase-${lower(phase)}` }, phase)),
      el('td', { class: 'num' }, stepText(r)),
      el('td', { class: 'weight-cell' }, bar, el('span', { class: 'weight' }, `${w}%`)),
      el('td', {}, timeEl(r.createdAt)),
      el('td', {}, timeEl(changedAt(r))));
  }

  function draw() {
    if (!loaded) return; // keep the server's rows until the API has answered
    const keys = [...byKey.keys()].sort();
    document.getElementById('rows').replaceChildren(...keys.map((k) => row(byKey.get(k))));
    document.getElementById('empty').hidden = keys.length > 0;
    const loading = document.getElementById('loading');
    if (loading) loading.remove();
    refreshTimes();
  }

  async function refresh() {
    try {
      const list = await api('GET', `/api/v1/rollouts${q}`);
      byKey.clear();
      for (const r of list.items || []) byKey.set(`${r.namespace}/${r.name}`, r);
      loaded = true;
      draw();
    } catch (e) {
      if (e.status === 401) window.location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
      // 503 while the read model loads: the next refresh tries again
    }
  }
  const refreshSoon = debounce(refresh, 300);

  function onFrame(f) {
    const r = rolloutOf(f.json);
    if (!r || !loaded) { refreshSoon(); return; }
    const key = `${r.namespace}/${r.name}`;
    if (f.event === 'delete' || (f.json && f.json.type === 'delete')) byKey.delete(key);
    else byKey.set(key, r);
    draw();
  }

  live(`/api/v1/events${q}`, onFrame, refreshSoon);
})();
