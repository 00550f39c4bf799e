// list.js: the list of rollouts, live, filtered and virtualised.
//
// It reads every page of GET /api/v1/rollouts, following the continue
// tokens, and keeps the list up to date from the list stream (GET
// /api/v1/events): a "summary" event replaces one rollout's summary, a
// "deleted" event removes one. It shows the summaries as the API computed
// them (phase, step, target, reason, times): the display rules live in
// the API, not here.
//
// Only the rows in view are in the DOM. Every row has the same height
// (--row-h in console.css); two spacer rows stand for the rows above and
// below the window, so the table is as tall as the whole list; the window
// is the rows in view plus OVERSCAN on each side. A frame draws the
// window again, but a row that stays in it keeps its element, and is
// written to only when its summary changed: a change to one rollout
// touches one row, and none when that row is out of view.
(() => {
  'use strict';
  const { api, el, svg, ago, live, debounce, lower, stale } = window.serin;
  const $ = (id) => document.getElementById(id);
  const root = $('list');
  const ns = root.dataset.namespace || '';
  const scroller = $('scroller');
  const table = $('table');
  const padTop = $('pad-top');
  const padBottom = $('pad-bottom');
  const tbody = $('rows');
  const input = { text: $('filter-text'), phase: $('filter-phase'), active: $('filter-active') };

  // OVERSCAN rows are drawn above and below the ones in view, so that a
  // short scroll shows drawn rows before the next frame catches up.
  const OVERSCAN = 8;
  // PAGE is the API's largest page; FIELDS are the summary's fields this
  // page shows (the stream sends whole summaries, which hold them too).
  const PAGE = 500;
  const FIELDS = 'namespace,name,phase,active,step,weight,target,reason,createdAt,updatedAt,resourceVersion';

  // The list order is the API's: active rollouts (in progress, paused,
  // pending) before finished ones, then by namespace and name. Within
  // each group we keep the name order rather than most recent first, as
  // Argo Rollouts' dashboard does: its list comes from the Kubernetes
  // List, in name order, and its table sorts by the Name column, so its
  // users look for a rollout where its name puts it. A recency order would
  // also move a rollout to the top at every step it takes (each one
  // changes updatedAt), several times a minute across 1,000 rollouts, under
  // the reader's pointer. And it is the order the API pages in and the CLI
  // prints, so the pages arrive sorted and every surface agrees. orderOf
  // is the API's order key (readmodel's orderKey); names are DNS labels,
  // so comparing code units is comparing bytes, as the server does.
  const orderOf = (s) => `${s.active ? 0 : 1}\u0000${s.namespace}\u0000${s.name}`;

  const byKey = new Map(); // namespace/name -> entry {key, order, hay, s, seen}
  let all = []; // every entry, in the list order
  let shown = []; // the entries that pass the filters, in the list order

  function lowerBound(arr, order) {
    let lo = 0;
    let hi = arr.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (arr[mid].order < order) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  const insert = (arr, e) => arr.splice(lowerBound(arr, e.order), 0, e);
  // remove takes e out of arr, found by its current order, if it is there.
  function remove(arr, e) {
    const i = lowerBound(arr, e.order);
    if (arr[i] === e) arr.splice(i, 1);
  }

  // --- filters, kept in the URL ---

  let filter = readFilter();
  function readFilter() {
    return {
      words: input.text.value.trim().toLowerCase().split(/\s+/).filter(Boolean),
      phase: input.phase.value,
      active: input.active.checked,
    };
  }
  const filtering = () => filter.words.length > 0 || filter.phase !== '' || filter.active;
  // passes: every word of the text filter is in namespace/name, and the
  // phase and "active only" filters hold.
  function passes(e) {
    if (filter.active && !e.s.active) return false;
    if (filter.phase && e.s.phase !== filter.phase) return false;
    return filter.words.every((w) => e.hay.includes(w));
  }

  // writeURL puts the filters in the URL (?q=, ?phase=, ?active=1, next
  // to ?namespace=), where the server reads them back on a reload or from
  // a link. It replaces the history entry rather than adding one per key
  // typed.
  const writeURL = debounce(() => {
    const p = new URLSearchParams(location.search);
    const set = (k, v) => (v ? p.set(k, v) : p.delete(k));
    set('q', input.text.value.trim());
    set('phase', input.phase.value);
    set('active', input.active.checked ? '1' : '');
    const q = p.toString();
    history.replaceState(history.state, '', q ? `?${q}` : location.pathname);
  }, 200);

  function refilter() {
    filter = readFilter();
    shown = all.filter(passes);
    scroller.scrollTop = 0;
    writeURL();
    drawSoon();
  }
  input.text.addEventListener('input', refilter);
  input.phase.addEventListener('change', refilter);
  input.active.addEventListener('change', refilter);
  $('filters').addEventListener('submit', (ev) => ev.preventDefault());

  // --- the summaries ---

  // put stores a summary, unless the one held is as new (a page read
  // before a change that the stream has already sent), and moves its entry
  // when its place in the order changes. seen is the load it belongs to.
  function put(s, seen) {
    const key = `${s.namespace}/${s.name}`;
    let e = byKey.get(key);
    if (!e) {
      e = { key, order: orderOf(s), hay: key.toLowerCase(), s, seen };
      byKey.set(key, e);
      insert(all, e);
      if (passes(e)) insert(shown, e);
      drawSoon();
      return;
    }
    e.seen = Math.max(e.seen, seen);
    if (stale(s.resourceVersion, e.s.resourceVersion)) return;
    const was = passes(e);
    const order = orderOf(s);
    const moves = order !== e.order;
    if (moves) {
      remove(all, e);
      remove(shown, e);
    }
    e.s = s;
    e.order = order;
    const now = passes(e);
    if (moves) {
      insert(all, e);
      if (now) insert(shown, e);
    } else if (now && !was) {
      insert(shown, e);
    } else if (was && !now) {
      remove(shown, e);
    }
    drawSoon();
  }

  function drop(e) {
    byKey.delete(e.key);
    remove(all, e);
    remove(shown, e);
    drawSoon();
  }

  // --- loading the pages, then the stream's changes ---

  let gen = 0; // the number of the latest load of the pages
  let loading = false;
  let again = false; // a load was asked for while one ran
  let loaded = false; // a load has completed
  const gone = new Set(); // keys deleted while a load runs: its pages may be older

  // loadAll reads every page of the list, following its continue tokens,
  // into the entries, and then removes the entries it did not see that the
  // stream has not sent since it began: they were deleted meanwhile. (The
  // pages are not a snapshot: a rollout that finished between two pages
  // moved behind the ones read and may be missed, but its change came on
  // the stream; while the stream is down, the next poll brings it back.)
  async function loadAll(g) {
    let token = '';
    do {
      const q = new URLSearchParams({ limit: String(PAGE), fields: FIELDS });
      if (ns) q.set('namespace', ns);
      if (token) q.set('continue', token);
      const page = await api('GET', `/api/v1/rollouts?${q}`);
      for (const s of page.items || []) {
        if (!gone.has(`${s.namespace}/${s.name}`)) put(s, g);
      }
      token = page.continue || '';
    } while (token);
    const old = all.filter((e) => e.seen < g);
    if (old.length > 64) { // many at once: one pass rather than a splice each
      for (const e of old) byKey.delete(e.key);
      all = all.filter((e) => e.seen >= g);
      shown = shown.filter((e) => e.seen >= g);
    } else {
      old.forEach(drop);
    }
    gone.clear();
    loaded = true;
    const notice = $('loading');
    if (notice) notice.remove();
    drawSoon();
  }

  // refresh loads the pages again, one load at a time: the stream calls it
  // when it opens (to catch up) and while it is down (to poll).
  async function refresh() {
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    try {
      do {
        again = false;
        gen++;
        await loadAll(gen);
      } while (again);
    } catch (e) {
      if (e.status === 401) window.location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
      // 503 while the read model loads: the stream's next try refreshes again
    } finally {
      loading = false;
      gone.clear();
    }
  }
  const refreshSoon = debounce(refresh, 300);

  function onFrame(f) {
    const s = f.json;
    if (f.event === 'summary' && s && s.namespace && s.name) {
      gone.delete(`${s.namespace}/${s.name}`);
      put(s, gen);
    } else if (f.event === 'deleted' && s && s.namespace && s.name) {
      const key = `${s.namespace}/${s.name}`;
      if (loading) gone.add(key);
      const e = byKey.get(key);
      if (e) drop(e);
    } else {
      refreshSoon(); // not a change this page knows how to apply: read the list again
    }
  }

  // --- drawing the window ---

  let rowH = 0;
  // rowHeight is the fixed row height, read once from the stylesheet.
  const rowHeight = () => rowH || (rowH = parseFloat(getComputedStyle(table).getPropertyValue('--row-h')) || 36);

  function makeRow() {
    const r = {
      ns: el('span', { class: 'muted' }), name: el('span', {}),
      badge: el('span', { class: 'badge' }), step: el('td', { class: 'num' }),
      canary: svg('rect', { class: 'canary', width: 0, height: 6 }), weight: el('span', { class: 'weight' }),
      created: el('time', {}), updated: el('time', {}),
    };
    r.link = el('a', {}, r.ns, r.name);
    const bar = svg('svg', { class: 'minibar', viewBox: '0 0 100 6', preserveAspectRatio: 'none', 'aria-hidden': 'true' });
    bar.append(svg('rect', { class: 'stable', width: 100, height: 6 }), r.canary);
    const tr = el('tr', { class: 'row' },
      el('td', {}, r.link), el('td', {}, r.badge), r.step,
      el('td', { class: 'weight-cell' }, bar, r.weight),
      el('td', {}, r.created), el('td', {}, r.updated));
    tr.refs = r;
    return tr;
  }

  function setTime(t, iso) {
    if (t.getAttribute('datetime') === iso) return;
    const d = new Date(iso);
    t.setAttribute('datetime', iso);
    t.title = Number.isNaN(d.getTime()) ? '' : d.toUTCString();
    t.textContent = Number.isNaN(d.getTime()) ? '' : ago(d);
  }

  // fill writes summary s into the row: the API's text, as it is.
  function fill(tr, e) {
    const s = e.s;
    const r = tr.refs;
    const w = s.weight || 0;
    tr.dataset.key = e.key;
    r.link.href = `/rollouts/${encodeURIComponent(s.namespace)}/${encodeURIComponent(s.name)}`;
    r.link.title = s.target || '';
    r.ns.textContent = `${s.namespace}/`;
    r.name.textContent = s.name;
    r.badge.className = `badge phase-${lower(s.phase)}`;
    r.badge.textContent = s.phase;
    r.badge.title = s.reason || '';
    r.step.textContent = s.step;
    r.canary.setAttribute('width', String(w));
    r.weight.textContent = `${w}%`;
    setTime(r.created, s.createdAt);
    setTime(r.updated, s.updatedAt);
    tr.summary = s;
  }

  // setPad sizes a spacer row, writing only what changed.
  function setPad(tr, px) {
    if (tr.hidden !== (px <= 0)) tr.hidden = px <= 0;
    const h = `${px}px`;
    if (tr.style.height !== h) tr.style.height = h;
  }

  const fmt = (n) => n.toLocaleString('en-US');
  // setText writes a text only when it changed: #count is a live region,
  // which would announce a rewrite of the same words.
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  // showCounts shows how many rollouts there are and pass the filters (in
  // words, and as data-total, data-shown and data-loaded on #list), or why
  // there is no row to show.
  function showCounts() {
    const total = all.length;
    const n = shown.length;
    Object.assign(root.dataset, { total: String(total), shown: String(n), loaded: String(loaded) });
    let count = '';
    if (loaded || total > 0) count = filtering() ? `${fmt(n)} of ${fmt(total)} rollouts` : `${fmt(total)} rollout${total === 1 ? '' : 's'}`;
    setText($('count'), count);
    const empty = $('empty');
    if (empty.hidden !== n > 0) empty.hidden = n > 0;
    if (!loaded) setText(empty, 'Loading the rollouts…');
    else setText(empty, total === 0 ? 'No rollouts yet.' : 'No rollout matches these filters.');
  }

  const drawn = new Map(); // key -> the <tr> drawn for it, in the window

  function draw() {
    const h = rowHeight();
    const n = shown.length;
    const top = Math.max(0, scroller.scrollTop - table.tHead.offsetHeight);
    const first = Math.min(n, Math.max(0, Math.floor(top / h) - OVERSCAN));
    const last = Math.min(n, Math.ceil((top + scroller.clientHeight) / h) + OVERSCAN);
    const want = shown.slice(first, last);
    const keys = new Set(want.map((e) => e.key));
    for (const [key, tr] of drawn) {
      if (!keys.has(key)) {
        tr.remove();
        drawn.delete(key);
      }
    }
    let at = padTop.nextSibling;
    want.forEach((e, j) => {
      let tr = drawn.get(e.key);
      if (!tr) {
        tr = makeRow();
        drawn.set(e.key, tr);
      }
      if (tr.summary !== e.s) fill(tr, e);
      const index = String(first + j + 2); // the header is row 1
      if (tr.getAttribute('aria-rowindex') !== index) tr.setAttribute('aria-rowindex', index);
      if (at === tr) at = at.nextSibling;
      else tbody.insertBefore(tr, at);
    });
    setPad(padTop, first * h);
    setPad(padBottom, (n - last) * h);
    table.setAttribute('aria-rowcount', String(n + 1));
    showCounts();
  }

  let frame = 0;
  // drawSoon draws once per frame, however many changes arrive in it.
  function drawSoon() {
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; draw(); });
  }
  scroller.addEventListener('scroll', drawSoon, { passive: true });
  // A resize may cross the phone layout's width, whose rows are taller.
  window.addEventListener('resize', () => { rowH = 0; drawSoon(); });

  drawSoon();
  live(`/api/v1/events${ns ? `?namespace=${encodeURIComponent(ns)}` : ''}`, onFrame, refresh);
})();
