// rollout.js: keeps one rollout's page live and runs the operator's
// buttons through the REST API.
//
// The page never draws an answer older than the one it shows: every
// answer (the stream's events, a refetch, the answer to an action's POST)
// carries the rollout's resourceVersion, and one that is not newer than
// the version drawn is dropped. An action shows "aborting…" (and so on)
// from the click until the phase changes.
(() => {
  'use strict';
  const S = window.serin;
  const A = S.analysis;
  const { api, el, timeEl, lower, phaseOf, stepsOf, changedAt, refreshTimes, stale, staleRollout, terminal } = S;
  const root = document.getElementById('rollout');
  const ns = root.dataset.ns, name = root.dataset.name;
  const base = `/api/v1/rollouts/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
  const $ = (id) => document.getElementById(id);

  let current = null; // the rollout drawn, as the API answered it
  // pending is the action asked for and not yet seen done: {op, phase}
  // with the phase at the click.
  let pending = null;
  const PENDING = { abort: 'aborting…', pause: 'pausing…', resume: 'resuming…', promote: 'promoting…', retry: 'retrying…' };

  // Outcome headlines, as the server renders them (web/detail.go).
  const HEADLINES = {
    RolledBack: 'Rolled back: all traffic is on the stable version.',
    Aborted: 'Aborted: all traffic is on the stable version.',
    Failed: 'Failed: the rollout could not go on.',
  };
  const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);

  // drawHeader draws the phase, the controller's message or the outcome,
  // and returns the message shown, which the history then leaves out.
  function drawHeader(r) {
    const phase = phaseOf(r), st = r.status;
    $('phase').className = `badge phase-${lower(phase)}`;
    $('phase').textContent = phase;
    $('changed').setAttribute('datetime', changedAt(r));
    const headline = HEADLINES[st.phase] || '';
    const h = st.history || [];
    const msg = st.message || (headline && h.length ? h[h.length - 1].message : '') || '';
    $('outcome').hidden = !headline;
    $('outcome-headline').textContent = headline;
    const failures = A.drawFailures(r);
    const why = headline && !failures ? capital(msg) : '';
    $('outcome-why').textContent = why;
    $('outcome-why').hidden = !why;
    $('message').textContent = headline ? '' : msg;
    return headline && failures ? '' : msg;
  }

  function drawLadder(r) {
    const cur = r.status.currentStep || 0, phase = r.status.phase;
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
    $('dataplane').textContent = r.dataPlane || '';
  }

  // drawHistory lists the transitions, newest first; the message already
  // shown at the top is not repeated in the newest transition that says
  // it (an older attempt's same words stay).
  function drawHistory(r, shown) {
    const h = [...(r.status.history || [])].reverse();
    const above = shown ? h.findIndex((x) => x.message === shown) : -1;
    $('history').replaceChildren(...h.map((x, i) => el('tr', {},
      el('td', { 'data-label': 'Time' }, timeEl(x.time)),
      el('td', { 'data-label': 'From → to' }, `${x.from} → ${x.to}`),
      el('td', { 'data-label': 'Reason' }, x.reason, x.by ? el('span', { class: 'by muted' }, ` by ${x.by}`) : ''),
      el('td', { 'data-label': 'Message' }, i === above ? el('span', { class: 'muted' }, 'shown above') : x.message || ''))));
  }

  // drawReleases lists the delivered Deployment's releases, newest first,
  // and its state, as the API's view says them (api/view_workload.go).
  function drawReleases(r) {
    const body = $('releases');
    if (!body) return;
    $('workload-state').textContent = r.workload ? capital(r.workload.state) + '.' : '';
    const rs = r.releases || [];
    body.replaceChildren(...rs.map((x) => el('tr', { class: x.running ? 'running' : '' },
      el('td', { 'data-label': 'Revision' }, el('code', {}, x.revision), x.stable ? el('span', { class: 'muted' }, ' stable') : ''),
      el('td', { 'data-label': 'Images' }, x.images),
      el('td', { 'data-label': 'Started' }, timeEl(x.startedAt)),
      el('td', { 'data-label': 'Duration' }, x.duration || '—'),
      el('td', { 'data-label': 'Outcome' }, el('span', { class: `badge phase-${lower(x.outcome.split(',')[0])}` }, x.outcome)),
      el('td', { 'data-label': 'Worst check' }, x.worstCheck || ''),
      el('td', { 'data-label': 'Reason' }, x.reason || ''))));
    $('no-releases').hidden = rs.length > 0;
  }

  // drawControls shows the controls open to the rollout, as the API's
  // view lists them (rollout.Operations): those of a running rollout,
  // Retry alone for a rolled-back or aborted one, none for one that
  // succeeded or failed; of these, only the buttons this user was given.
  // While an action is pending all are disabled.
  function drawControls(r) {
    const box = $('controls');
    if (!box) return;
    const open = new Set(r.operations || []);
    const running = open.has('abort'), retry = open.has('retry') && !!$('op-retry');
    const paused = !!r.spec.paused, busy = !!pending;
    const state = { pause: busy || paused, resume: busy || !paused, promote: busy, abort: busy, retry: busy };
    for (const [op, disabled] of Object.entries(state)) {
      const b = $(`op-${op}`);
      if (!b) continue;
      b.disabled = disabled;
      if (op === 'retry') b.hidden = !retry;
      else if (op !== 'abort') b.hidden = !running;
    }
    const form = $('abort-form');
    if (form) form.hidden = !running;
    const reason = $('abort-reason');
    if (reason) reason.disabled = busy;
    box.hidden = !running && !retry;
    const dialog = $('confirm-dialog');
    if (dialog && dialog.open && !(dialog.dataset.op === 'retry' ? retry : running)) dialog.close('cancel');
  }

  // drawDue draws the countdowns of a progressing rollout from the API's
  // view (rollout.DueOf): the next step, and while the analysis has no
  // data, when the inconclusive limit acts. tickDue keeps them counting.
  function drawDue(r) {
    const box = $('due');
    if (!box) return;
    const d = r.due || {};
    box.replaceChildren(...[
      d.nextStepAt ? el('span', { class: 'due-step', 'data-at': d.nextStepAt, 'data-what': d.nextStep || 'the next step' }) : null,
      d.noDataAt ? el('span', { class: 'due-nodata', 'data-at': d.noDataAt, 'data-action': d.noDataAction || 'rollback' }) : null,
    ].filter(Boolean));
    box.hidden = !box.firstChild;
    tickDue();
  }
  const secondsTo = (iso) => Math.max(0, Math.ceil((Date.parse(iso) - Date.now()) / 1000));
  function tickDue() {
    for (const n of document.querySelectorAll('#due [data-at]')) {
      const s = secondsTo(n.dataset.at);
      if (n.classList.contains('due-step')) {
        n.textContent = s > 0 ? `Next: ${n.dataset.what} in ${s} s, if the analysis passes.` : `Next: ${n.dataset.what} once the analysis passes.`;
      } else {
        const act = n.dataset.action === 'pause' ? 'pauses' : 'rolls back';
        n.textContent = s > 0 ? `No data: ${act} in ${s} s if none arrives.` : `No data: ${act} at the next tick if none arrives.`;
      }
    }
  }
  setInterval(tickDue, 1000);

  function drawPending() {
    const p = $('pending');
    p.textContent = pending ? PENDING[pending.op] || `${pending.op}…` : '';
    p.hidden = !pending;
  }

  // show draws r unless the page already shows this version or a newer
  // one. It returns whether it drew.
  function show(r) {
    if (!r || r.namespace !== ns || r.name !== name) return false;
    if (current && staleRollout(r, current)) return false;
    current = r;
    if (pending && phaseOf(r) !== pending.phase) {
      pending = null;
      $('action-msg').textContent = '';
    }
    drawPending();
    const shown = drawHeader(r);
    drawControls(r);
    drawLadder(r);
    drawDue(r);
    drawWeight(r);
    const a = r.status.analysis || {};
    A.drawSummary(a, terminal(r.status.phase));
    A.drawHops(a, r.checks || []);
    S.graph.draw(r.graph);
    A.setRollout(r);
    A.drawCharts();
    drawHistory(r, shown);
    drawReleases(r);
    refreshTimes();
    return true;
  }

  // The page's own version: an answer older than what the server rendered
  // is dropped too, but that version itself is drawn once, since the
  // analysis parts are the script's alone.
  const pageRV = root.dataset.rv || '';
  function accept(r) {
    if (!current && pageRV && r && r.resourceVersion !== pageRV && stale(r.resourceVersion, pageRV)) return false;
    return show(r);
  }

  async function refresh() {
    try {
      accept(await api('GET', base));
    } catch (e) {
      if (e.status === 401) window.location.assign('/login?next=' + encodeURIComponent(location.pathname));
    }
  }
  const refreshSoon = S.debounce(refresh, 250);

  let seriesAt = 0;
  // loadSeries reads /series: the charts' points so far.
  async function loadSeries() {
    seriesAt = Date.now();
    let d;
    try { d = await api('GET', `${base}/series`); } catch (_) { return; }
    A.setSeries((d && d.points) || []);
    A.drawCharts();
  }

  // streamDoc is the rollout as the stream's events make it: a whole
  // "rollout" event first, then "patch" events that each carry only what
  // changed since the previous event.
  let streamDoc = null;

  function onFrame(f) {
    if (f.event === 'rollout') streamDoc = f.json;
    else if (f.event === 'patch' && streamDoc && f.json) streamDoc = S.mergePatch(streamDoc, f.json);
    const r = f.event === 'rollout' || f.event === 'patch' ? S.rolloutOf(streamDoc) : null;
    if (!r) {
      refreshSoon();
      return;
    }
    if (accept(r) && streamDoc.point) {
      A.addPoint(streamDoc.point);
      A.drawCharts();
    }
    if (Date.now() - seriesAt > 15000) loadSeries();
  }

  // act posts an operation. Its answer is drawn only if it is newer than
  // what the stream has drawn meanwhile; the pending label stays until
  // the phase changes.
  async function act(op, body) {
    if (!current || pending) return; // one action at a time
    const msg = $('action-msg');
    msg.className = 'action-msg';
    msg.textContent = '';
    const mine = { op, phase: phaseOf(current) };
    pending = mine;
    drawPending();
    drawControls(current);
    try {
      show(await api('POST', `${base}/${op}`, body));
      if (op === 'abort') $('abort-reason').value = ''; // a retried rollout's next abort needs its own reason
      setTimeout(() => giveUp(mine), PATIENCE);
    } catch (e) {
      pending = null;
      drawPending();
      drawControls(current);
      msg.className = 'action-msg error';
      msg.textContent = `${op} refused: ${e.message}`;
    }
  }

  // PATIENCE is how long an action may stay pending. The controller acts
  // within a tick, but may decline (a resume while the mesh is broken
  // keeps the rollout paused): then the page says so and offers the
  // controls again, rather than "resuming…" for good.
  const PATIENCE = 30000;
  function giveUp(p) {
    if (pending !== p || !current) return;
    pending = null;
    drawPending();
    drawControls(current);
    $('action-msg').textContent = `${p.op} was asked for, and the rollout is still ${phaseOf(current)}.`;
  }

  for (const b of document.querySelectorAll('button.op')) {
    const op = b.dataset.op;
    b.addEventListener('click', () => (CONFIRM[op] ? ask(op) : act(op)));
  }
  const form = $('abort-form');
  if (form) {
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const reason = $('abort-reason').value.trim();
      if (reason) act('abort', { reason });
    });
  }

  // CONFIRM are the operations that ask first, because they send the
  // canary traffic at once: each names the weight it sets.
  const CONFIRM = {
    // The controller's promote sets 100% and skips the steps left.
    promote: (r) => {
      const left = stepsOf(r).slice((r.status.currentStep || 0) + 1).map((w) => `${w}%`);
      return ['Promote to 100%?', 'Promote to 100%', `${ns}/${name}: ${canaryOf(r)} takes 100% of the traffic now, from ${r.status.canaryWeight || 0}%` +
        (left.length ? `; the steps ${left.join(', ')} and their analysis are skipped.` : '.')];
    },
    // A retry starts again before the first step, after a new preflight.
    retry: (r) => [`Retry from ${stepsOf(r)[0]}%?`, `Retry from ${stepsOf(r)[0]}%`,
      `${ns}/${name} starts again: once the mesh passes its checks, ${canaryOf(r)} gets ${stepsOf(r)[0]}% of the traffic, ` +
      'with a new analysis; the history is kept.'],
  };
  const canaryOf = (r) => r.spec.canarySubset || r.spec.canaryHost || 'the canary';
  const dialog = $('confirm-dialog');
  function ask(op) {
    if (!dialog || !current) return;
    const [title, ok, text] = CONFIRM[op](current);
    $('confirm-title').textContent = title;
    $('confirm-ok').textContent = ok;
    $('confirm-text').textContent = text;
    dialog.dataset.op = op;
    dialog.showModal();
  }
  // The confirming click acts itself, rather than a listener of the
  // dialog's close event: that event is queued, and one from a Cancel
  // just before could run after the next confirmation and act twice.
  if (dialog) {
    $('confirm-ok').addEventListener('click', (ev) => {
      ev.preventDefault();
      const op = dialog.dataset.op;
      dialog.close('ok');
      act(op);
    });
  }

  seriesAt = Date.now();
  loadSeries();
  S.live(`${base}/events`, onFrame, refreshSoon);
})();
