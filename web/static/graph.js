// graph.js: the service graph of the canary's neighbourhood, drawn as
// inline SVG from the API's graph field (api/graph.go): the callers, the
// service's stable and canary versions side by side, and each downstream
// service, with a card on each edge giving both versions' rate, error
// rate and p99, coloured by the edge's state. Every number and word comes
// from the API as it is; nothing is ranked or formatted here. A failing
// edge is a link to its check's chart (figure[data-check=KEY] in
// #charts), or, while it has none, to its row in the per-hop table.
// Adds serin.graph.
(() => {
  'use strict';
  const S = window.serin;
  const { svg } = S;
  const box = document.getElementById('graph');
  if (!box) return;

  const NODE_W = 110, NODE_H = 34, CARD_W = 300, CARD_H = 92, ROW = 15, GAP = 14, MARGIN = 28;
  let graph = null; // the graph drawn, as the API sent it
  let drawnWidth = 0;

  function text(x, y, s, cls, anchor) {
    const n = svg('text', { x, y, class: cls || '', 'text-anchor': anchor || 'start' });
    n.textContent = s;
    return n;
  }

  // fit shortens s to about the characters that fit in w pixels of 12 px
  // text; the whole label stays in the node's title.
  const fit = (s, w) => {
    const n = Math.max(4, Math.floor(w / 7));
    return s.length > n ? s.slice(0, n - 1) + '…' : s;
  };

  // layoutWide places the columns side by side, the edges' cards in the
  // gaps between them, each gap's cards stacked and centred.
  function layoutWide(g, W, cols) {
    const margin = MARGIN + Math.max(0, W - need(cols)) / (2 * (cols - 1));
    const colX = (c) => c * (NODE_W + CARD_W + 2 * margin);
    const gapOf = (e) => Math.min(col(g, e.from), cols - 2);
    const gaps = new Map();
    for (const e of g.edges) {
      const k = gapOf(e);
      if (!gaps.has(k)) gaps.set(k, []);
      gaps.get(k).push(e);
    }
    const rows = Math.max(2, ...[...gaps.values()].map((es) => es.length));
    const H = Math.max(rows * (CARD_H + GAP) - GAP, 2 * NODE_H + 3 * GAP);
    const nodes = new Map(), cards = new Map();
    for (const [k, es] of gaps) {
      const top = (H - (es.length * (CARD_H + GAP) - GAP)) / 2;
      es.forEach((e, i) => {
        const y = top + i * (CARD_H + GAP);
        cards.set(e, { x: colX(k) + NODE_W + margin, y, w: CARD_W, h: CARD_H });
        // A node stands level with the first card that reaches it (or,
        // for a caller, leaves it).
        for (const id of [e.from, e.to]) {
          if (id === 'service' || nodes.has(id)) continue;
          const c = col(g, id);
          nodes.set(id, { x: colX(c), y: y + (CARD_H - NODE_H) / 2, w: NODE_W, h: NODE_H });
        }
      });
    }
    nodes.set('stable', { x: colX(1), y: H / 2 - NODE_H - GAP / 2, w: NODE_W, h: NODE_H });
    nodes.set('canary', { x: colX(1), y: H / 2 + GAP / 2, w: NODE_W, h: NODE_H });
    for (const n of g.nodes) if (!nodes.has(n.id)) nodes.set(n.id, { x: colX(n.column), y: 0, w: NODE_W, h: NODE_H });
    const lines = [];
    for (const e of g.edges) {
      const c = cards.get(e);
      const into = (id, y) => ends(id).map((n) => [n.x + n.w, n.y + n.h / 2, c.x, y ?? c.y + c.h / 2]);
      const out = (id) => ends(id).map((n) => [c.x + c.w, c.y + c.h / 2, n.x, n.y + n.h / 2]);
      const ends = (id) => (id === 'service' ? [nodes.get('stable'), nodes.get('canary')] : [nodes.get(id)]);
      lines.push(...into(e.from).map((p) => [e, p]), ...out(e.to).map((p) => [e, p]));
    }
    return { mode: 'wide', W, H, nodes, cards, lines, paths: [] };
  }

  // layoutNarrow stacks the graph: the callers and their cards, the two
  // versions side by side, then each downstream card with its service
  // under it, reached from the versions along the two sides.
  function layoutNarrow(g, W) {
    const nodes = new Map(), cards = new Map(), lines = [], paths = [];
    const half = (W - GAP) / 2;
    let y = 0;
    const inbound = g.edges.filter((e) => e.to === 'service');
    const rest = g.edges.filter((e) => e.to !== 'service');
    const service = inbound.length * (NODE_H + CARD_H + 2 * GAP);
    nodes.set('stable', { x: 0, y: service, w: half, h: NODE_H });
    nodes.set('canary', { x: half + GAP, y: service, w: half, h: NODE_H });
    for (const e of inbound) {
      const n = { x: (W - Math.min(200, W)) / 2, y, w: Math.min(200, W), h: NODE_H };
      nodes.set(e.from, n);
      const c = { x: 0, y: y + NODE_H + GAP, w: W, h: CARD_H };
      cards.set(e, c);
      lines.push([e, [W / 2, n.y + NODE_H, W / 2, c.y]]);
      for (const v of ['stable', 'canary']) {
        const t = nodes.get(v);
        lines.push([e, [t.x + t.w / 2, c.y + c.h, t.x + t.w / 2, t.y]]);
      }
      y = c.y + CARD_H + GAP;
    }
    y = service + NODE_H + GAP;
    for (const e of rest) {
      const c = { x: 16, y, w: W - 32, h: CARD_H };
      cards.set(e, c);
      const mid = c.y + c.h / 2;
      if (e.from === 'service') {
        const s = nodes.get('stable'), k = nodes.get('canary');
        paths.push([e, `M6,${s.y + s.h} V${mid} H${c.x}`], [e, `M${W - 6},${k.y + k.h} V${mid} H${c.x + c.w}`]);
      } else if (nodes.has(e.from)) {
        const f = nodes.get(e.from);
        paths.push([e, `M${f.x + 12},${f.y + f.h} V${c.y}`]);
      }
      y = c.y + CARD_H + 8;
      if (!nodes.has(e.to)) {
        nodes.set(e.to, { x: 32, y, w: Math.min(220, W - 48), h: NODE_H });
        lines.push([e, [44, c.y + c.h, 44, y]]);
        y += NODE_H;
      }
      y += GAP;
    }
    return { mode: 'narrow', W, H: Math.max(y - GAP, service + NODE_H), nodes, cards, lines, paths };
  }

  const need = (cols) => cols * NODE_W + (cols - 1) * (CARD_W + 2 * MARGIN);
  const col = (g, id) => (id === 'service' ? 1 : (g.nodes.find((n) => n.id === id) || { column: 2 }).column);

  // target is what a failing edge leads to: the chart of its first
  // failing check that has one, else that check's row in the table.
  function target(e) {
    const charts = document.getElementById('charts');
    for (const key of e.checks) {
      const fig = charts && charts.querySelector(`figure[data-check="${CSS.escape(key)}"]`);
      if (fig) return fig;
    }
    const [, hop, source] = (e.checks[0] || '').split('|');
    const rows = [...document.querySelectorAll('#hops tr')];
    return rows.find((tr) => tr.dataset.hop === (hop || '') && tr.dataset.source === source) ||
      document.getElementById('hops');
  }

  function follow(ev, e) {
    ev.preventDefault();
    const t = target(e);
    if (!t) return;
    if (!t.hasAttribute('tabindex')) t.setAttribute('tabindex', '-1');
    t.scrollIntoView({ block: 'center' });
    t.focus({ preventScroll: true });
    t.classList.add('graph-target');
    setTimeout(() => t.classList.remove('graph-target'), 2000);
  }

  function drawNode(n, at) {
    const cls = `node node-${n.kind}`;
    const g = svg('g', { class: cls, 'data-node': n.id });
    const t = svg('title', {});
    t.textContent = n.label;
    g.append(t, svg('rect', { x: at.x, y: at.y, width: at.w, height: at.h, rx: 6 }),
      text(at.x + at.w / 2, at.y + at.h / 2 + 4, fit(n.label, at.w - 12), 'node-label', 'middle'));
    return g;
  }

  function drawCard(e, c) {
    const g = svg('g', { class: 'card-box' });
    const lx = c.x + 10, sx = c.x + 62, kx = c.x + 62 + (c.w - 72) / 2;
    const valueW = (c.w - 72) / 2 - 4;
    let y = c.y + 17;
    g.append(svg('rect', { x: c.x, y: c.y, width: c.w, height: c.h, rx: 6 }),
      text(lx, y, fit(`${e.hop} · ${e.source}`, c.w - 30 - 7 * e.stateLabel.length), 'card-title'),
      text(c.x + c.w - 10, y, e.stateLabel, 'card-state', 'end'));
    y += ROW + 2;
    g.append(text(sx, y, 'stable', 'card-head stable'), text(kx, y, 'canary', 'card-head canary'));
    for (const [label, k] of [['rate', 'rpsText'], ['errors', 'errorRateText'], ['p99', 'p99Text']]) {
      y += ROW;
      g.append(text(lx, y, label, 'card-label'), text(sx, y, fit(e.stable[k], valueW), 'card-value'),
        text(kx, y, fit(e.canary[k], valueW), 'card-value'));
    }
    return g;
  }

  function draw(g) {
    if (g) graph = g;
    if (!graph) return;
    g = graph;
    const W = Math.max(240, Math.floor(box.clientWidth || 600));
    drawnWidth = W;
    const cols = Math.max(2, ...g.nodes.map((n) => n.column + 1));
    const L = W >= need(cols) ? layoutWide(g, W, cols) : layoutNarrow(g, W);
    const s = svg('svg', { viewBox: `0 0 ${L.W} ${L.H + 2}`, width: L.W, height: L.H + 2, class: `graph-svg ${L.mode}`,
      role: 'group', 'aria-label': `Service graph of ${g.service || 'the service'}: callers, stable and canary, and the services it calls` });
    // Failing edges are drawn last, over the others.
    const order = [...g.edges].sort((a, b) => Number(a.failing) - Number(b.failing));
    for (const e of order) {
      const cls = `edge state-${e.state}${e.failing ? ' failing' : ''}`;
      const label = e.failing ? `Failing edge ${e.summary} Open its chart.` : e.summary;
      const group = e.failing ? svg('a', { href: '#charts', class: cls, 'aria-label': label, 'data-hop': e.hop })
        : svg('g', { class: cls, role: 'img', 'aria-label': label, 'data-hop': e.hop });
      const t = svg('title', {});
      t.textContent = label;
      group.append(t);
      for (const [x, p] of L.lines) if (x === e) group.append(svg('line', { x1: p[0], y1: p[1], x2: p[2], y2: p[3], class: 'edge-line' }));
      for (const [x, d] of L.paths) if (x === e) group.append(svg('path', { d, class: 'edge-line' }));
      group.append(drawCard(e, L.cards.get(e)));
      if (e.failing) group.addEventListener('click', (ev) => follow(ev, e));
      s.append(group);
    }
    for (const n of g.nodes) if (L.nodes.has(n.id)) s.append(drawNode(n, L.nodes.get(n.id)));
    const old = box.querySelector(':scope > svg');
    if (old) old.replaceWith(s); else box.append(s);
  }

  // The graph is drawn at its width in pixels, like the charts: when the
  // width changes it is drawn again, wide or stacked.
  const redraw = S.debounce(() => {
    if (Math.floor(box.clientWidth) !== drawnWidth) draw();
  }, 150);
  new ResizeObserver(redraw).observe(box);

  S.graph = { draw };
})();
