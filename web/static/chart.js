// chart.js: a small line chart of one check, canary vs stable over time
// with the limit, drawn as inline SVG. Adds serin.drawChart.
(() => {
  'use strict';
  const { svg, formatValue } = window.serin;
  const L = 52, R = 12, T = 12, B = 26;

  // size is the chart's size in CSS pixels: the SVG is drawn with one unit
  // to one pixel, so that its text is as large as the stylesheet says at
  // any width (a fixed viewBox shrinks 11 px labels to 6 px on a phone).
  function size(fig) {
    const cs = getComputedStyle(fig);
    const inner = fig.clientWidth - parseFloat(cs.paddingLeft || '0') - parseFloat(cs.paddingRight || '0');
    const W = Math.max(240, Math.floor(inner || 560));
    return [W, Math.round(Math.min(190, Math.max(150, W * 0.34)))];
  }
  const fmt = formatValue;
  const hms = (t) => new Date(t).toISOString().slice(11, 19);

  function path(points, key, x, y) {
    let d = '';
    for (const p of points) {
      const v = p[key];
      if (typeof v !== 'number' || !Number.isFinite(v)) continue;
      d += `${d ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(v).toFixed(1)}`;
    }
    return d;
  }

  function text(x, y, s, cls, anchor) {
    const n = svg('text', { x, y, class: cls, 'text-anchor': anchor || 'start' });
    n.textContent = s;
    return n;
  }

  // scale is the y axis of values lo..hi: linear from zero, or, when
  // log is asked for and the positive values span more than 10×, a log
  // scale from the smallest positive value (zeros sit on its floor). It
  // returns [y(v), ticks to label, whether it is a log scale].
  function scale(values, log, T, bottom) {
    const pos = values.filter((v) => v > 0);
    const hi = pos.length ? Math.max(...pos) : 1;
    const lo = pos.length ? Math.min(...pos) : 0;
    if (log && lo > 0 && hi / lo > 10) {
      const l0 = Math.log10(lo), l1 = Math.log10(hi) + 0.06;
      const y = (v) => T + (1 - (Math.log10(Math.max(v, lo)) - l0) / (l1 - l0)) * (bottom - T);
      return [y, [lo, hi], true];
    }
    const max = hi * 1.15;
    return [(v) => T + (1 - v / max) * (bottom - T), [0, hi], false];
  }

  // drawChart replaces the chart's SVG. points are {t (ms), canary,
  // stable, limit, unit, verdict}, oldest first. opts.marks are moments
  // drawn across the chart ({t, label, cls}: a step change, the
  // rollback); opts.log allows a log scale when the values span more
  // than 10×.
  function drawChart(fig, points, opts) {
    const o = opts || {};
    const old = fig.querySelector(':scope > svg.plot');
    if (old) old.remove();
    const [W, H] = size(fig);
    const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'plot', role: 'img' });
    if (points.length === 0) {
      s.append(text(W / 2, H / 2, 'waiting for data', 'axis', 'middle'));
      fig.append(s);
      return;
    }
    const unit = points[points.length - 1].unit || '';
    // A long unit ("calls/req") does not fit the axis's margin: the axis
    // shows numbers, and the caption says the unit.
    const axisUnit = unit.length > 2 ? '' : unit;
    const values = [];
    for (const p of points) for (const k of ['canary', 'stable', 'limit']) {
      if (typeof p[k] === 'number' && Number.isFinite(p[k])) values.push(p[k]);
    }
    const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1000);
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const [y, [lo, top], isLog] = scale(values, !!o.log, T, H - B);
    fig.dataset.scale = isLog ? 'log' : 'linear';
    s.append(
      svg('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis-line' }),
      svg('line', { x1: L, y1: T, x2: L, y2: H - B, class: 'axis-line' }),
      text(L - 6, H - B + 4, fmt(lo, axisUnit), 'axis', 'end'),
      text(L - 6, y(top) + 4, fmt(top, axisUnit), 'axis', 'end'),
      text(L, H - 8, hms(t0), 'axis'),
      text(W - R, H - 8, hms(t1), 'axis', 'end'));
    if (isLog) s.append(text(L + 4, T + 8, 'log scale', 'axis scale-note'));
    for (const m of o.marks || []) {
      if (!(m.t >= t0 && m.t <= t1)) continue;
      const mx = x(m.t);
      // The label sits low, clear of the axis labels, and to the left of
      // a mark near the right edge.
      const right = mx > W - R - 60;
      const g = svg('g', { class: `mark ${m.cls || ''}` });
      g.append(svg('line', { x1: mx.toFixed(1), y1: T, x2: mx.toFixed(1), y2: H - B, class: 'mark-line' }),
        text(right ? mx - 3 : mx + 3, H - B - 5, m.label, 'axis mark-label', right ? 'end' : 'start'));
      s.append(g);
    }
    for (const [key, cls] of [['limit', 'limit'], ['stable', 'stable'], ['canary', 'canary']]) {
      const d = path(points, key, x, y);
      if (d) s.append(svg('path', { d, class: `line ${cls}` }));
    }
    // The latest canary value is a dot, so that a series of one point
    // (the first tick, or a weight held since) still shows.
    const last = points[points.length - 1];
    if (Number.isFinite(last.canary)) s.append(svg('circle', { cx: x(last.t).toFixed(1), cy: y(last.canary).toFixed(1), r: 2.5, class: 'last-dot' }));
    for (const p of points) {
      if (p.verdict === 'Fail' && Number.isFinite(p.canary)) {
        s.append(svg('circle', { cx: x(p.t).toFixed(1), cy: y(p.canary).toFixed(1), r: 3, class: 'fail-dot' }));
      }
    }
    fig.append(s);
  }

  window.serin.drawChart = drawChart;
})();
