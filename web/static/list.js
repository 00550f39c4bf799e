// list.js: keeps the list of rollouts live. The server rendered the first
// paint; this redraws the rows from the API's summaries: every page of
// GET /api/v1/rollouts, then the list stream's "summary" and "deleted"
// events. It shows the summaries as they are (phase, step, times): the
// display rules live in the API, not here.
(() => {
  'use strict';
  const { api, el, svg, timeEl, live, debounce, lower, refreshTimes } = window.serin;
  const root = document.getElementById('list');
  const ns = root.dataset.namespace || '';
  const byKey = new Map(); // namespace/name -> summary
  let loaded = false;

  const keyOf = (s) => `${s.namespace}/${s.name}`;
  const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  // order is the API's list order: active rollouts first, then by
  // namespace and name (compared as the server does, not by locale).
  const order = (a, b) => (a.active === b.active ? 0 : a.active ? -1 : 1) || cmp(a.namespace, b.namespace) || cmp(a.name, b.name);

  function row(s) {
    const w = s.weight || 0;
    const bar = svg('svg', { class: 'minibar', viewBox: '0 0 100 6', preserveAspectRatio: 'none', 'aria-hidden': 'true' });
    bar.append(svg('rect', { class: 'stable', width: 100, height: 6 }), svg('rect', { class: 'canary', width: w, height: 6 }));
    const href = `/rollouts/${encodeURIComponent(s.namespace)}/${encodeURIComponent(s.name)}`;
    return el('tr', { 'data-key': keyOf(s) },
      el('td', {}, el('a', { href }, el('span', { class: 'muted' }, `${s.namespace}/`), s.name)),
      el('td', {}, el('span', { class: `badge phase-${lower(s.phase)}` }, s.phase)),
      el('td', { class: 'num' }, s.step),
      el('td', { class: 'weight-cell' }, bar, el('span', { class: 'weight' }, `${w}%`)),
      el('td', {}, timeEl(s.createdAt)),
      el('td', {}, timeEl(s.updatedAt)));
  }

  function draw() {
    if (!loaded) return; // keep the server's rows until the API has answered
    const items = [...byKey.values()].sort(order);
    document.getElementById('rows').replaceChildren(...items.map(row));
    document.getElementById('empty').hidden = items.length > 0;
    const loading = document.getElementById('loading');
    if (loading) loading.remove();
    refreshTimes();
  }
  // drawSoon redraws once per frame however many events arrive in it.
  let frame = 0;
  const drawSoon = () => { if (!frame) frame = requestAnimationFrame(() => { frame = 0; draw(); }); };

  // loadAll reads every page of the list, following its continue tokens.
  async function loadAll() {
    const items = [];
    let token = '';
    do {
      const q = new URLSearchParams({ limit: '500' });
      if (ns) q.set('namespace', ns);
      if (token) q.set('continue', token);
      const page = await api('GET', `/api/v1/rollouts?${q}`);
      items.push(...(page.items || []));
      token = page.continue || '';
    } while (token);
    return items;
  }

  async function refresh() {
    try {
      const items = await loadAll();
      byKey.clear();
      for (const s of items) byKey.set(keyOf(s), s);
      loaded = true;
      drawSoon();
    } catch (e) {
      if (e.status === 401) window.location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
      // 503 while the read model loads: the next refresh tries again
    }
  }
  const refreshSoon = debounce(refresh, 300);

  function onFrame(f) {
    const s = f.json;
    if (!loaded || !s || !s.namespace || !s.name) { refreshSoon(); return; }
    if (f.event === 'deleted') byKey.delete(keyOf(s));
    else if (f.event === 'summary') byKey.set(keyOf(s), s);
    else { refreshSoon(); return; }
    drawSoon();
  }

  live(`/api/v1/events${ns ? `?namespace=${encodeURIComponent(ns)}` : ''}`, onFrame, refreshSoon);
})();
