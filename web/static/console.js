// console.js: helpers shared by the console's pages. Plain ES2020, no
// build step. Exposes window.serin.
(() => {
  'use strict';

  const csrf = () => {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : '';
  };

  // api calls the REST API with the session cookie; mutations carry the
  // session's CSRF token. It resolves to the parsed JSON, or throws an
  // Error whose message is the API's error text.
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (method !== 'GET') headers['X-CSRF-Token'] = csrf();
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const resp = await fetch(path, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await resp.json(); } catch (_) { /* not JSON */ }
    if (!resp.ok) {
      const err = new Error((data && data.error) || `${resp.status} ${resp.statusText}`);
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  // el builds an element: el('td', {class: 'num'}, 'text', child, ...).
  function el(tag, attrs, ...children) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      n.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null || c === '') continue;
      n.append(c instanceof Node ? c : String(c));
    }
    return n;
  }

  const svgNS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs) {
    const n = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
    return n;
  }

  function ago(d) {
    const s = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
    if (s < 5) return 'just now';
    if (s < 60) return `${s}s ago`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${s % 60}s ago`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h}h ${m % 60}m ago`;
    return `${Math.floor(h / 24)}d ago`;
  }

  // timeEl is a <time> element that refreshTimes keeps relative.
  function timeEl(iso) {
    const t = el('time', { datetime: iso, title: new Date(iso).toUTCString() });
    t.textContent = iso ? ago(new Date(iso)) : '';
    return t;
  }

  function refreshTimes() {
    for (const t of document.querySelectorAll('time[datetime]')) {
      const d = new Date(t.getAttribute('datetime'));
      if (!Number.isNaN(d.getTime()) && d.getFullYear() > 1) t.textContent = ago(d);
    }
  }

  function setLive(state) {
    const n = document.getElementById('live');
    if (!n) return;
    n.className = 'live ' + state;
    n.textContent = { on: '● live', polling: '○ polling', connecting: '○ connecting' }[state] || state;
  }

  // parseFrames splits Server-Sent Events text into complete frames and
  // returns [frames, rest]. A frame is {event, data}; comments are dropped.
  function parseFrames(buf) {
    buf = buf.replace(/\r\n?/g, '\n');
    const parts = buf.split('\n\n');
    const rest = parts.pop();
    const frames = [];
    for (const p of parts) {
      let event = 'message';
      const data = [];
      for (const line of p.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length) frames.push({ event, data: data.join('\n') });
    }
    return [frames, rest];
  }

  // leaving is set once the page is going away (signing out, or any
  // navigation): its streams are then cut, and end quietly rather than
  // reconnect and poll with a session that may already be over. Cutting
  // them matters: over HTTP/1.1 the browser otherwise keeps a left page's
  // stream open until the server's next heartbeat, and six of them (the
  // browser's limit per host) stall every request of the next page.
  let leaving = false;
  const streams = new Set(); // the AbortControllers of open streams
  function leave() {
    leaving = true;
    for (const c of streams) c.abort();
  }
  window.addEventListener('beforeunload', leave);
  window.addEventListener('pagehide', leave);
  document.addEventListener('submit', (ev) => { if (ev.target.matches('form.signout')) leave(); });

  // live follows an SSE stream with fetch (same origin, session cookie).
  // While it is down it polls: refresh() is called when the stream opens
  // (to catch up), after every failure, and then every few seconds until
  // the stream is back. onFrame gets each {event, data, json}.
  function live(url, onFrame, refresh) {
    let delay = 1000;
    const run = async () => {
      setLive('connecting');
      const ctl = new AbortController();
      streams.add(ctl);
      try {
        const resp = await fetch(url, { headers: { Accept: 'text/event-stream' }, credentials: 'same-origin', cache: 'no-store', signal: ctl.signal });
        const type = resp.headers.get('Content-Type') || '';
        if (!resp.ok || !resp.body || !type.startsWith('text/event-stream')) throw new Error(`stream: ${resp.status}`);
        setLive('on');
        delay = 1000;
        if (!leaving) refresh();
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          let frames;
          [frames, buf] = parseFrames(buf + value);
          for (const f of frames) {
            try { f.json = JSON.parse(f.data); } catch (_) { f.json = null; }
            onFrame(f);
          }
        }
      } catch (_) {
        // fall through to polling and a later retry
      } finally {
        streams.delete(ctl);
      }
      if (leaving) return;
      setLive('polling');
      refresh();
      setTimeout(run, delay);
      delay = Math.min(delay * 2, 5000);
    };
    run();
  }

  // debounce runs fn at most once per wait ms, trailing.
  function debounce(fn, wait) {
    let timer = null;
    return () => {
      if (timer) return;
      timer = setTimeout(() => { timer = null; fn(); }, wait);
    };
  }

  // rolloutOf finds a whole rollout (the API's JSON shape) in an event.
  function rolloutOf(j) {
    if (!j || typeof j !== 'object') return null;
    if (j.status && j.spec && j.name) return j;
    for (const k of ['rollout', 'object', 'item']) {
      if (j[k] && j[k].status && j[k].spec) return j[k];
    }
    return null;
  }

  // mergePatch applies a JSON merge patch (RFC 7386), the data of a
  // rollout stream's "patch" event, to the previous document, without
  // modifying either: members set to null are removed, objects merge,
  // anything else (arrays too) replaces.
  function mergePatch(doc, patch) {
    if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
    const out = doc && typeof doc === 'object' && !Array.isArray(doc) ? { ...doc } : {};
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete out[k];
      else out[k] = mergePatch(out[k], v);
    }
    return out;
  }

  // stale reports whether the resourceVersion rv is no newer than held, so
  // that a page never draws an answer older than the one it shows. The API
  // server's resource versions are decimal numbers that grow, and may be
  // compared (k8s.io/apimachinery's resourceversion); any other pair
  // counts as new, so that a change is never lost.
  const decimal = /^[1-9][0-9]*$/;
  function stale(rv, held) {
    if (!rv || !held) return false;
    if (rv === held) return true;
    if (!decimal.test(rv) || !decimal.test(held)) return false;
    return rv.length < held.length || (rv.length === held.length && rv < held);
  }

  // staleRollout is stale for two views of a rollout: between two writes
  // of its status the controller shows its latest ticks from memory, at
  // the same resourceVersion, so that a later tick (lastTickAt) at the
  // same version is newer.
  function staleRollout(r, held) {
    if (!held || r.resourceVersion !== held.resourceVersion) return stale(r.resourceVersion, held && held.resourceVersion);
    const tick = (x) => Date.parse(((x.status || {}).analysis || {}).lastTickAt || '') || 0;
    return tick(r) <= tick(held);
  }

  // sig3 is analysis.sig3: three significant figures, never in exponent
  // form, with no trailing zeros (0.00123, 1.5, 23.4, 498, 12300). The API
  // sends numbers, not their text; formatValue is analysis.FormatValue,
  // and a test holds the two to the same answers.
  function sig3(v) {
    if (v === 0 || !Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : v === 0 ? '0' : (v > 0 ? '+Inf' : '-Inf');
    const digits = Math.floor(Math.log10(Math.abs(v))) + 1;
    const dec = Math.max(3 - digits, 0);
    const scale = Math.pow(10, digits - 3);
    const r = Math.sign(v) * Math.round(Math.abs(v) / scale) * scale;
    let s = r.toFixed(dec);
    if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '');
    return s === '-0' ? '0' : s;
  }
  function formatValue(v, unit) {
    if (typeof v !== 'number') return '–';
    const s = sig3(v);
    if (!unit) return s;
    return unit === '%' ? s + '%' : `${s} ${unit}`;
  }
  // formatInterval is analysis.FormatInterval: "[1.4–3%]", or "".
  function formatInterval(low, high, unit) {
    if (!(high > 0) || high < low) return '';
    return `[${sig3(low || 0)}–${formatValue(high, unit)}]`;
  }

  const lower = (s) => String(s || '').toLowerCase();
  // terminal phases are final: a finished rollout offers no controls.
  const terminal = (p) => ['Succeeded', 'RolledBack', 'Aborted', 'Failed'].includes(p);
  // phaseOf is the API summary's rule: no phase yet is Pending.
  const phaseOf = (r) => (r.status && r.status.phase) || 'Pending';
  const stepsOf = (r) => (r.spec.steps && r.spec.steps.length ? r.spec.steps : [10, 25, 50, 100]);
  function changedAt(r) {
    const h = r.status.history || [];
    if (h.length) return h[h.length - 1].time;
    return r.status.stepStartedAt || r.createdAt;
  }

  window.serin = {
    api, el, svg, ago, timeEl, refreshTimes, setLive, live, debounce, parseFrames,
    rolloutOf, mergePatch, lower, phaseOf, stepsOf, changedAt, stale, staleRollout, sig3, formatValue, formatInterval, terminal,
  };
  refreshTimes();
  setInterval(refreshTimes, 5000);
})();
