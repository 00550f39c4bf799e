// trace.js: a hop's example trace, drawn as a span waterfall on the
// rollout page. Clicking a hop's trace (button.trace-open, drawn by
// analysis.js) reads the trace through the API
// (GET /api/v1/rollouts/{ns}/{name}/traces/{traceID}, from Jaeger), never
// from a Jaeger UI the browser may not reach. Each span is a row: service
// · operation and its duration above a bar placed to scale on the
// trace's time; the canary's spans are highlighted, and the span the API
// marks (the canary's failed or slowest call on the hop) carries a label.
// Rows stack label over bar, so the waterfall fits a phone's width.
(() => {
  'use strict';
  const S = window.serin;
  const { api, el, formatValue } = S;
  const root = document.getElementById('rollout');
  const box = document.getElementById('trace');
  if (!root || !box) return;
  const base = `/api/v1/rollouts/${encodeURIComponent(root.dataset.ns)}/${encodeURIComponent(root.dataset.name)}/traces/`;
  const MAX_INDENT = 6; // deeper spans indent no further, so names keep room

  // duration writes microseconds with three significant figures and the
  // unit that suits them, as formatValue writes every value.
  function duration(us) {
    if (us < 1000) return formatValue(us, 'µs');
    if (us < 1e6) return formatValue(us / 1000, 'ms');
    return formatValue(us / 1e6, 's');
  }

  const markText = (t, sp) => {
    const who = sp.version === 'canary' ? 'canary ' : '';
    const what = t.mark === 'failed' ? `failed ${who}call` : `slowest ${who}call`;
    return t.hop && t.hop !== 'inbound' ? `${what} on ${t.hop}` : what;
  };

  // row draws one span: its name and duration, then its bar on the
  // trace's time.
  function row(t, sp) {
    const total = Math.max(t.durationUs, 1);
    const marked = sp.spanID === t.marked;
    const cls = ['span', sp.version ? `span-${sp.version}` : '', sp.error ? 'span-error' : '', marked ? 'span-marked' : ''].filter(Boolean).join(' ');
    const name = el('span', { class: 'span-name', title: `${sp.service} · ${sp.operation}` },
      el('strong', {}, sp.service), ' · ', sp.operation || '(unnamed)');
    name.style.paddingLeft = `${Math.min(sp.depth, MAX_INDENT) * 0.6}rem`;
    const meta = el('span', { class: 'span-dur' },
      sp.error ? el('span', { class: 'span-flag' }, 'error') : '', duration(sp.durationUs));
    const bar = el('span', { class: 'span-bar' });
    bar.style.left = `${Math.min(sp.startOffsetUs / total, 1) * 100}%`;
    bar.style.width = `${Math.min(sp.durationUs / total, 1 - Math.min(sp.startOffsetUs / total, 1)) * 100}%`;
    const track = el('span', { class: 'span-track', 'aria-hidden': 'true' }, bar);
    const li = el('li', { class: cls, 'data-span': sp.spanID }, name, meta, track);
    if (marked) li.append(el('span', { class: 'span-mark' }, markText(t, sp)));
    return li;
  }

  function legend() {
    const key = (cls, label) => el('span', { class: `trace-key ${cls}` }, el('span', { class: 'swatch' }), label);
    return el('p', { class: 'trace-legend' }, key('key-canary', 'canary'), key('key-stable', 'stable'),
      key('key-other', 'other services'), key('key-error', 'error'));
  }

  // draw draws trace t in the box.
  function draw(t) {
    const spans = t.spans || [];
    const head = el('div', { class: 'trace-head' },
      el('h3', {}, 'Trace ', el('code', {}, t.traceID.slice(0, 16)), '…'),
      el('span', { class: 'muted' }, `${t.check} · ${t.hop} · ${spans.length} spans · ${duration(t.durationUs)}`),
      el('button', { type: 'button', class: 'trace-close' }, 'Close'));
    const axis = el('div', { class: 'trace-axis', 'aria-hidden': 'true' },
      el('span', { class: 'axis-scale' }, el('span', {}, '0'), el('span', {}, duration(t.durationUs))));
    const list = el('ol', { class: 'waterfall', 'aria-label': `spans of trace ${t.traceID}` }, ...spans.map((sp) => row(t, sp)));
    const omitted = t.omitted ? el('p', { class: 'muted' }, `${t.omitted} more spans not shown.`) : '';
    box.replaceChildren(head, legend(), axis, list, omitted);
    box.dataset.trace = t.traceID;
  }

  let asked = ''; // the trace last asked for: a later click wins
  async function open(id) {
    asked = id;
    box.hidden = false;
    box.dataset.trace = '';
    box.replaceChildren(el('p', { class: 'muted' }, 'Loading trace ', el('code', {}, id), '…'));
    box.scrollIntoView({ block: 'nearest' });
    try {
      const t = await api('GET', base + encodeURIComponent(id));
      if (asked === id) draw(t);
    } catch (err) {
      if (asked !== id) return;
      box.replaceChildren(el('p', { class: 'trace-error' }, `Trace ${id}: ${err.message}`),
        el('button', { type: 'button', class: 'trace-close' }, 'Close'));
    }
  }

  document.addEventListener('click', (ev) => {
    const btn = ev.target.closest('button.trace-open, button.trace-close');
    if (!btn) return;
    if (btn.classList.contains('trace-close')) {
      asked = '';
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    open(btn.dataset.trace);
  });

  S.trace = { open, duration };
})();
