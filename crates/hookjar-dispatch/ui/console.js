// hookjar dispatcher console: plain JavaScript over the management API.
//
// The API key is kept in this tab's sessionStorage and sent as HTTP Basic auth (the key
// as the username, an empty password: S5), never in a URL. Everything shown comes from
//   GET/POST /v1/webhooks, GET/PATCH/DELETE /v1/webhooks/{id}, POST /v1/webhooks/{id}/ping,
//   GET /v1/webhooks/sample-<type>, POST /v1/events, GET /v1/webhooks/{id}/deliveries,
//   POST /v1/deliveries/{id}/redeliver,
// plus GET /ui/clock (dispatcher time and X3's time scale) for the countdown.
'use strict';

(function () {
  const KEY = 'hookjar.console.key';
  const TYPES = [
    'COURSE_COMPLETION', 'COURSE_ENROLLMENT', 'DASHBOARD_TASK_CREATED', 'DOMAIN_ENROLLMENT',
    'LESSON_COMPLETION', 'PATH_COMPLETION', 'PATH_ENROLLMENT', 'PURCHASE_FULFILLMENT',
    'QUIZ_COMPLETION', 'VILT_EVENT_REGISTRATION',
  ];
  const POLL_MS = 1000;

  const state = {
    webhooks: [],
    last: new Map(),      // webhook id -> newest delivery (or null)
    lastRead: new Map(),  // webhook id -> when its newest delivery was read (performance.now())
    open: null,           // webhook id whose deliveries are shown
    deliveries: [],       // newest first
    selected: null,       // delivery id
    editing: null,        // webhook id being edited, or null for a new one
    clock: null,          // {dispatcher micros, scale, fetched: performance.now()}
    rendered: {},         // section -> last rendered JSON, to skip needless re-renders
    timer: null,
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const SVG = 'http://www.w3.org/2000/svg'; // a namespace name, not fetched
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  // ---- the API -----------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  function authHeader(key) {
    const bytes = new TextEncoder().encode(`${key}:`);
    return 'Basic ' + btoa(String.fromCharCode(...bytes));
  }

  function describeError(status, data) {
    if (data && typeof data === 'object') {
      if (data.detail) return data.detail;
      const parts = [];
      for (const [field, msgs] of Object.entries(data)) {
        parts.push(`${field}: ${Array.isArray(msgs) ? msgs.join(' ') : JSON.stringify(msgs)}`);
      }
      if (parts.length) return parts.join('; ');
    }
    return `HTTP ${status}`;
  }

  // Calls the API with `key` (logging in) or the session's key. Without a key nothing is
  // sent: a refresh still under way when the user logs out must not call on with an
  // empty key, and only a refusal of the key still in use logs the user out.
  async function api(method, path, body, key) {
    const used = key || sessionStorage.getItem(KEY);
    if (!used) throw new ApiError(401, 'Not logged in.');
    const headers = { authorization: authHeader(used) };
    const init = { method, headers, credentials: 'omit', cache: 'no-store' };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
    if (res.status === 401 && !key && sessionStorage.getItem(KEY) === used) {
      logout('Your key was refused; log in again.');
    }
    if (!res.ok) throw new ApiError(res.status, describeError(res.status, data));
    return data;
  }

  // ---- time --------------------------------------------------------------

  // S11 timestamps to microseconds since the epoch (JavaScript dates keep milliseconds).
  function micros(ts) {
    if (!ts) return null;
    const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(.*)$/.exec(ts);
    if (!m) return Date.parse(ts) * 1000;
    const frac = (m[2] || '').padEnd(6, '0');
    return Date.parse(m[1] + m[3]) * 1000 + Number(frac);
  }

  function dispatcherNow() {
    const c = state.clock;
    if (!c) return null;
    return c.now + (performance.now() - c.fetched) * 1000 * c.scale;
  }

  function fmtDur(seconds) {
    const neg = seconds < 0;
    let s = Math.abs(seconds);
    let out;
    if (s < 10) out = `${s.toFixed(1)}s`;
    else if (s < 60) out = `${Math.round(s)}s`;
    else if (s < 3600) out = `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
    else if (s < 86400) out = `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
    else out = `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
    return neg ? `-${out}` : out;
  }

  function fmtTime(ts) {
    const m = /T(\d\d:\d\d:\d\d(?:\.\d{1,3})?)/.exec(ts || '');
    return m ? m[1] : (ts || '');
  }

  function kebab(type) { return type.toLowerCase().replace(/_/g, '-'); }

  // ---- log in / out ------------------------------------------------------

  function showApp(on) {
    $('login').hidden = on;
    $('app').hidden = !on;
    $('logout').hidden = !on;
  }

  function logout(message) {
    sessionStorage.removeItem(KEY);
    clearInterval(state.timer);
    state.timer = null;
    state.rendered = {};
    showApp(false);
    $('login-msg').textContent = message || '';
    $('key').value = '';
    $('key').focus();
  }

  async function login(key) {
    try {
      await api('GET', '/v1/ping', undefined, key);
    } catch (e) {
      $('login-msg').textContent = `Not logged in: ${e.message}`;
      return;
    }
    sessionStorage.setItem(KEY, key);
    $('login-msg').textContent = '';
    $('key').value = '';
    start();
  }

  function start() {
    showApp(true);
    if (!$('emit-body').value) loadSample();
    refresh();
    clearInterval(state.timer);
    state.timer = setInterval(() => { if (!document.hidden) refresh(); }, POLL_MS);
  }

  // ---- polling -----------------------------------------------------------

  let refreshing = false;
  async function refresh() {
    if (refreshing) return;
    refreshing = true;
    try {
      const [clock, webhooks] = await Promise.all([
        fetch('/ui/clock', { cache: 'no-store' }).then((r) => r.json()),
        allWebhooks(),
      ]);
      state.clock = { now: micros(clock.now), scale: clock.time_scale, fetched: performance.now() };
      state.webhooks = webhooks;
      // Each webhook's newest delivery: the open one every time, the others a few
      // per refresh, longest unread first, so that a console with many webhooks does
      // not make hundreds of calls a second.
      const ids = new Set(webhooks.map((w) => w.id));
      for (const id of state.last.keys()) if (!ids.has(id)) { state.last.delete(id); state.lastRead.delete(id); }
      const due = webhooks
        .filter((w) => w.id !== state.open)
        .sort((a, b) => (state.lastRead.get(a.id) || 0) - (state.lastRead.get(b.id) || 0))
        .slice(0, NEWEST_PER_REFRESH);
      if (state.open && ids.has(state.open)) due.push({ id: state.open });
      await Promise.all(due.map(async (w) => {
        state.last.set(w.id, await newestDelivery(w.id));
        state.lastRead.set(w.id, performance.now());
      }));
      if (state.open) {
        if (ids.has(state.open)) state.deliveries = await deliveriesOf(state.open);
        else { state.open = null; state.deliveries = []; state.selected = null; }
      }
      render();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) $('wh-msg').textContent = `Cannot reach the dispatcher: ${e.message}`;
    } finally {
      refreshing = false;
    }
  }

  // How many webhooks' newest deliveries one refresh reads (besides the open one).
  const NEWEST_PER_REFRESH = 10;
  // The most webhooks listed (pages of 100).
  const MAX_WEBHOOKS = 1000;

  // Every webhook, oldest first, page after page (up to MAX_WEBHOOKS).
  async function allWebhooks() {
    const size = 100;
    const first = await api('GET', `/v1/webhooks?page_size=${size}`);
    let all = first.results;
    const pages = Math.min(Math.ceil(first.count / size), MAX_WEBHOOKS / size);
    for (let p = 2; p <= pages; p += 1) {
      all = all.concat((await api('GET', `/v1/webhooks?page_size=${size}&page=${p}`)).results);
    }
    state.webhookCount = first.count;
    return all;
  }

  async function newestDelivery(id) {
    const first = await api('GET', `/v1/webhooks/${id}/deliveries?page_size=1`);
    if (first.count === 0) return null;
    if (first.count === 1) return first.results[0];
    const last = await api('GET', `/v1/webhooks/${id}/deliveries?page_size=1&page=${first.count}`);
    return last.results[0] || null;
  }

  async function deliveriesOf(id) {
    const size = 100;
    const first = await api('GET', `/v1/webhooks/${id}/deliveries?page_size=${size}`);
    let results = first.results;
    const pages = Math.ceil(first.count / size);
    if (pages > 1) {
      // The newest `size`: the last page, topped up from the one before it.
      const last = (await api('GET', `/v1/webhooks/${id}/deliveries?page_size=${size}&page=${pages}`)).results;
      const before = pages - 1 === 1 ? first.results
        : (await api('GET', `/v1/webhooks/${id}/deliveries?page_size=${size}&page=${pages - 1}`)).results;
      results = before.slice(before.length - (size - last.length)).concat(last);
    }
    return results.slice().reverse();
  }

  // Redraws `container` with `draw()` without taking the keyboard focus away from the
  // button it is on (buttons are found again by their accessible name).
  function keepingFocus(container, draw) {
    const active = document.activeElement;
    const label = active && container.contains(active) ? active.getAttribute('aria-label') : null;
    draw();
    if (label) {
      const again = [...container.querySelectorAll('button')].find((b) => b.getAttribute('aria-label') === label);
      if (again) again.focus();
    }
  }

  function changed(section, value) {
    const text = JSON.stringify(value);
    if (state.rendered[section] === text) return false;
    state.rendered[section] = text;
    return true;
  }

  function render() {
    $('wh-msg').textContent = $('wh-msg').dataset.keep ? $('wh-msg').textContent : '';
    renderClock();
    renderWebhooks();
    renderDeliveries();
    renderTimeline();
  }

  function renderClock() {
    const now = dispatcherNow();
    if (now === null) return;
    const scale = state.clock.scale;
    const date = new Date(now / 1000).toISOString().replace('T', ' ').slice(0, 19);
    $('clock').textContent = `dispatcher time ${date} UTC` + (scale !== 1 ? ` · time scale ×${scale}` : '');
  }

  // ---- webhooks ----------------------------------------------------------

  function lastAttemptCell(d) {
    if (!d || d.attempts.length === 0) return el('td', { class: 'muted' }, d ? `${d.state}, no attempt yet` : '—');
    const a = d.attempts[d.attempts.length - 1];
    return el('td', {},
      el('span', { class: `verdict v-${a.verdict}` }, a.status !== null ? `HTTP ${a.status}` : (a.error || 'error')),
      ` ${a.verdict} · ${fmtTime(a.at)}`);
  }

  function renderWebhooks() {
    const model = state.webhooks.map((w) => [w, state.last.get(w.id), state.open === w.id]);
    if (!changed('webhooks', model)) return;
    $('wh-count').textContent = (state.webhookCount || 0) > state.webhooks.length
      ? `(the first ${state.webhooks.length} of ${state.webhookCount})`
      : `(${state.webhooks.length})`;
    $('wh-empty').hidden = state.webhooks.length > 0;
    keepingFocus($('wh-rows'), () => $('wh-rows').replaceChildren(...state.webhooks.map((w) => {
      const st = w.active
        ? el('td', { class: 'ok' }, 'active')
        : el('td', { class: 'bad' }, 'inactive', w.deactivate_reason ? `: ${w.deactivate_reason}` : '');
      const name = w.target_url;
      return el('tr', { 'data-id': w.id, class: state.open === w.id ? 'selected' : null },
        el('td', { class: 'path' }, el('span', { class: 'mono' }, w.target_url), el('br'), el('small', { class: 'muted' }, w.id)),
        el('td', {}, w.event_type || 'all types'),
        st,
        lastAttemptCell(state.last.get(w.id)),
        el('td', { class: 'actions' },
          el('button', { type: 'button', onclick: () => openDeliveries(w.id), 'aria-label': `Deliveries of ${name}` }, 'Deliveries'),
          el('button', { type: 'button', onclick: () => ping(w), 'aria-label': `Ping ${name}` }, 'Ping'),
          el('button', { type: 'button', onclick: () => edit(w), 'aria-label': `Edit ${name}` }, 'Edit'),
          w.active ? null : el('button', { type: 'button', onclick: () => reactivate(w), 'aria-label': `Re-activate ${name}` }, 'Re-activate'),
          el('button', { type: 'button', class: 'danger', onclick: (e) => remove(w, e.currentTarget), 'aria-label': `Delete ${name}` }, 'Delete')));
    })));
  }

  function say(id, text, kind) {
    const msg = $(id);
    msg.className = `msg ${kind || ''}`;
    msg.textContent = text;
  }

  function keep(text, kind) {
    say('wh-msg', text, kind);
    $('wh-msg').dataset.keep = '1';
    setTimeout(() => { delete $('wh-msg').dataset.keep; }, 8000);
  }

  async function ping(w) {
    keep(`Pinging ${w.target_url}…`);
    try {
      const r = await api('POST', `/v1/webhooks/${w.id}/ping`, {});
      keep(`${w.target_url}: ${r.message}`, r.succeeded ? 'ok' : 'bad');
    } catch (e) { keep(`Ping not sent: ${e.message}`, 'bad'); }
  }

  async function reactivate(w) {
    try {
      await api('PATCH', `/v1/webhooks/${w.id}`, { active: true });
      keep(`Re-activated ${w.target_url}.`, 'ok');
      refresh();
    } catch (e) { keep(`Not re-activated: ${e.message}`, 'bad'); }
  }

  async function remove(w, button) {
    if (button.dataset.confirm !== '1') {
      button.dataset.confirm = '1';
      button.textContent = 'Really delete?';
      setTimeout(() => { button.dataset.confirm = ''; button.textContent = 'Delete'; }, 4000);
      return;
    }
    try {
      await api('DELETE', `/v1/webhooks/${w.id}`);
      keep(`Deleted ${w.target_url} and its delivery log.`, 'ok');
      state.rendered = {};
      refresh();
    } catch (e) { keep(`Not deleted: ${e.message}`, 'bad'); }
  }

  function openForm(w) {
    state.editing = w ? w.id : null;
    $('wh-form-h').textContent = w ? `Edit webhook ${w.id}` : 'New webhook';
    $('wh-save').textContent = w ? 'Save' : 'Create';
    $('wh-target').value = w ? w.target_url : '';
    $('wh-type').value = w && w.event_type ? w.event_type : '';
    $('wh-active').checked = w ? w.active : true;
    $('wh-user').value = w ? w.basic_auth_username : '';
    $('wh-pass').value = w ? w.basic_auth_password : '';
    const headers = w ? w.additional_headers : {};
    $('wh-headers').value = Object.keys(headers).length ? JSON.stringify(headers) : '';
    $('wh-form-msg').textContent = '';
    $('wh-form').hidden = false;
    $('wh-target').focus();
  }

  function edit(w) { openForm(w); }

  async function save(e) {
    e.preventDefault();
    let headers = {};
    const text = $('wh-headers').value.trim();
    if (text) {
      try { headers = JSON.parse(text); } catch (err) {
        $('wh-form-msg').textContent = `Additional headers: not a JSON object (${err.message}).`;
        return;
      }
    }
    const body = {
      target_url: $('wh-target').value.trim(),
      event_type: $('wh-type').value || null,
      active: $('wh-active').checked,
      basic_auth_username: $('wh-user').value,
      basic_auth_password: $('wh-pass').value,
      additional_headers: headers,
    };
    try {
      const w = state.editing
        ? await api('PATCH', `/v1/webhooks/${state.editing}`, body)
        : await api('POST', '/v1/webhooks', body);
      $('wh-form').hidden = true;
      keep(`${state.editing ? 'Saved' : 'Created'} webhook ${w.id} → ${w.target_url}.`, 'ok');
      state.editing = null;
      await refresh();
      $('new-webhook').focus();
    } catch (err) {
      $('wh-form-msg').textContent = `Not saved: ${err.message}`;
    }
  }

  // ---- emit --------------------------------------------------------------

  async function loadSample() {
    const type = $('emit-type').value;
    try {
      const sample = await api('GET', `/v1/webhooks/sample-${kebab(type)}`);
      const event = Object.assign({}, sample.results[0]);
      delete event.timestamp;
      $('emit-body').value = JSON.stringify(event, null, 2);
      $('emit-body').dataset.type = type;
      say('emit-msg', '');
    } catch (e) { say('emit-msg', `Cannot load the fixture: ${e.message}`, 'bad'); }
  }

  async function emit(e) {
    e.preventDefault();
    let event;
    try { event = JSON.parse($('emit-body').value || '{}'); } catch (err) {
      say('emit-msg', `The payload is not JSON: ${err.message}`, 'bad');
      return;
    }
    if (typeof event !== 'object' || event === null || Array.isArray(event)) {
      say('emit-msg', 'The payload must be one JSON object.', 'bad');
      return;
    }
    event.event_type = $('emit-type').value;
    try {
      const r = await api('POST', '/v1/events', event);
      say('emit-msg', `Emitted ${event.event_type} (event ${r.event}): ${r.deliveries} delivery${r.deliveries === 1 ? '' : 'ies'} queued.`, 'ok');
      refresh();
    } catch (err) { say('emit-msg', `Not emitted: ${err.message}`, 'bad'); }
  }

  // ---- deliveries and the timeline ---------------------------------------

  async function openDeliveries(id) {
    state.open = id;
    state.selected = null;
    state.deliveries = await deliveriesOf(id).catch(() => []);
    render();
    $('deliveries').focus();
  }

  function renderDeliveries() {
    const w = state.webhooks.find((x) => x.id === state.open);
    $('dl-none').hidden = !!w;
    $('dl-body').hidden = !w;
    if (!w) { $('deliveries-h').textContent = 'Deliveries'; return; }
    if (!changed('deliveries', [w.id, state.deliveries, state.selected])) return;
    $('deliveries-h').textContent = `Deliveries to ${w.target_url}`;
    $('dl-empty').hidden = state.deliveries.length > 0;
    keepingFocus($('dl-rows'), () => $('dl-rows').replaceChildren(...state.deliveries.map((d) => el('tr', {
      'data-id': d.id, class: state.selected === d.id ? 'selected' : null,
    },
    el('td', {}, el('button', {
      type: 'button', class: 'open', onclick: () => selectDelivery(d.id),
      'aria-label': `Show delivery ${d.id} of ${d.event_type}, ${d.state}`,
      title: `digest ${d.digest}`,
    }, fmtTime(d.created_at))),
    el('td', {}, d.event_type),
    el('td', { class: `state s-${d.state}` }, d.state),
    el('td', {}, String(d.attempts.length))))));
  }

  function selectDelivery(id) {
    state.selected = id;
    say('tl-msg', '');
    render();
    $('timeline').focus();
  }

  // The back-off after attempt `a`: from the end of its POST to the next attempt's due
  // time, in dispatcher time. The POST's latency is real time: scaled by X3's factor.
  function backoff(a) {
    if (!a.next_attempt_at) return null;
    const scale = state.clock ? state.clock.scale : 1;
    const finished = micros(a.at) + a.latency_ms * 1000 * scale;
    return Math.max(0, (micros(a.next_attempt_at) - finished) / 1e6);
  }

  function renderTimeline() {
    const d = state.deliveries.find((x) => x.id === state.selected);
    $('timeline').hidden = !d;
    if (!d) return;
    renderCountdown(d);
    if (!changed('timeline', [d, state.clock && state.clock.scale])) return;
    const w = state.webhooks.find((x) => x.id === state.open);
    $('tl-h').textContent = `Delivery ${d.id}`;
    $('tl-meta').replaceChildren(
      el('span', { class: `state s-${d.state}` }, d.state), ` · ${d.event_type} · `,
      el('span', { class: 'mono' }, `digest ${d.digest}`), ` · created ${d.created_at}`,
      d.note ? ` · ${d.note}` : '');
    const scale = state.clock ? state.clock.scale : 1;
    $('tl-scale').hidden = scale === 1;
    $('tl-scale').textContent = `At time scale ×${scale} every real millisecond counts as ${fmtDur(scale / 1000)} of dispatcher time, so the POSTs themselves and the scheduling between them push attempts further apart than their back-off (X3).`;
    $('redeliver').disabled = !(w && w.active);
    $('redeliver').title = w && w.active ? '' : 'The webhook is inactive: re-activate it first.';
    $('tl-rows').replaceChildren(...d.attempts.map((a, i) => {
      const gap = backoff(a);
      const last = i === d.attempts.length - 1;
      return el('tr', { class: a.verdict === 'deactivate' ? 'deactivated' : null },
        el('td', {}, a.attempt === 0 ? 'first' : `retry ${a.attempt}`),
        el('td', { class: 'mono', title: a.at }, fmtTime(a.at)),
        el('td', { title: a.detail }, a.status !== null ? `HTTP ${a.status}` : (a.error || 'error')),
        el('td', {}, `${a.latency_ms.toFixed(1)} ms`),
        el('td', { class: `verdict v-${a.verdict}`, title: a.detail }, a.verdict === 'deactivate' ? `deactivate — ${a.detail}` : a.verdict),
        el('td', { class: 'gap' }, gap === null ? '—' : fmtDur(gap) + (last && d.state === 'pending' ? ' (waiting)' : '')));
    }));
    $('tl-svg').replaceChildren(axis(d));
  }

  function renderCountdown(d) {
    const next = $('tl-next');
    if (!d.next_attempt_at || !state.clock) { next.textContent = ''; return; }
    const left = (micros(d.next_attempt_at) - dispatcherNow()) / 1e6;
    const n = d.attempts.length;
    const real = left / state.clock.scale;
    next.textContent = left > 0
      ? `Next attempt (retry ${n}) in ${fmtDur(left)} of dispatcher time` + (state.clock.scale !== 1 ? ` (${fmtDur(real)} real)` : '') + '.'
      : `Next attempt (retry ${n}) is due now.`;
  }

  // An SVG time axis: log10(1 + seconds since the first attempt).
  function axis(d) {
    const W = 640, H = 112, L = 16, R = 24, Y = 62;
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'axis-svg',
      'aria-label': `Timeline of ${d.attempts.length} attempt(s)` });
    if (d.attempts.length === 0) return root;
    const t0 = micros(d.attempts[0].at);
    const ends = d.attempts.map((a) => micros(a.next_attempt_at || a.at));
    const span = Math.max(10, (Math.max(...ends) - t0) / 1e6);
    const x = (us) => L + (W - L - R) * Math.log10(1 + Math.max(0, (us - t0) / 1e6)) / Math.log10(1 + span);
    root.append(svg('line', { x1: L, x2: W - R, y1: Y, y2: Y, class: 'axis-line' }));
    for (const [s, label] of [[0, '0'], [1, '1s'], [10, '10s'], [60, '1m'], [600, '10m'], [3600, '1h'], [36000, '10h'], [86400, '1d'], [172800, '2d']]) {
      if (s > span) break;
      const px = x(t0 + s * 1e6);
      root.append(svg('line', { x1: px, x2: px, y1: Y - 4, y2: Y + 4, class: 'tick' }));
      root.append(svg('text', { x: px, y: H - 8, class: 'tick-label', 'text-anchor': 'middle' }, label));
    }
    const scale = state.clock ? state.clock.scale : 1;
    d.attempts.forEach((a, i) => {
      const at = micros(a.at);
      if (a.next_attempt_at) {
        const from = x(at + a.latency_ms * 1000 * scale);
        const to = x(micros(a.next_attempt_at));
        root.append(svg('line', { x1: from, x2: to, y1: Y, y2: Y, class: 'wait' }));
        const gap = backoff(a);
        if (to - from > 28) root.append(svg('text', { x: (from + to) / 2, y: Y + 20, class: 'wait-label', 'text-anchor': 'middle' }, fmtDur(gap)));
      }
      const px = x(at);
      const answer = a.status !== null ? String(a.status) : (a.error || 'error').split(':')[0];
      const c = svg('circle', { cx: px, cy: Y, r: 7, class: `dot v-${a.verdict}` });
      c.append(svg('title', {}, `${a.attempt === 0 ? 'first attempt' : 'retry ' + a.attempt}: ${a.detail} (${a.latency_ms.toFixed(1)} ms)`));
      root.append(c);
      root.append(svg('text', { x: px, y: Y - (i % 2 ? 28 : 14), class: 'dot-label', 'text-anchor': 'middle' }, answer));
      if (a.verdict === 'deactivate') {
        root.append(svg('line', { x1: px, x2: px, y1: 4, y2: Y + 10, class: 'deactivated' }));
        root.append(svg('text', { x: Math.min(px + 6, W - 80), y: 14, class: 'deactivated-label' }, 'deactivated'));
      }
    });
    if (d.next_attempt_at) {
      const px = x(micros(d.next_attempt_at));
      root.append(svg('circle', { cx: px, cy: Y, r: 6, class: 'dot next' }));
      root.append(svg('text', { x: px, y: Y - 16, class: 'dot-label', 'text-anchor': 'middle' }, 'next'));
    }
    return root;
  }

  async function redeliver() {
    const id = state.selected;
    if (!id) return;
    try {
      const r = await api('POST', `/v1/deliveries/${id}/redeliver`, {});
      say('tl-msg', `Queued again as delivery ${r.delivery}.`, 'ok');
      state.deliveries = await deliveriesOf(state.open);
      state.selected = r.delivery;
      render();
    } catch (e) { say('tl-msg', `Not redelivered: ${e.message}`, 'bad'); }
  }

  // ---- wiring ------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', () => {
    const typeOptions = () => TYPES.map((t) => el('option', { value: t }, t));
    $('wh-type').replaceChildren(el('option', { value: '' }, 'all types'), ...typeOptions());
    $('emit-type').replaceChildren(...typeOptions());
    $('login-form').addEventListener('submit', (e) => { e.preventDefault(); login($('key').value); });
    $('logout').addEventListener('click', () => logout('Logged out.'));
    $('new-webhook').addEventListener('click', () => openForm(null));
    $('wh-cancel').addEventListener('click', () => { $('wh-form').hidden = true; state.editing = null; $('new-webhook').focus(); });
    $('wh-form').addEventListener('submit', save);
    $('emit-type').addEventListener('change', loadSample);
    $('emit-form').addEventListener('submit', emit);
    $('redeliver').addEventListener('click', redeliver);
    setInterval(() => {
      const d = state.deliveries.find((x) => x.id === state.selected);
      if (d && !$('app').hidden) renderCountdown(d);
      if (!$('app').hidden) renderClock();
    }, 250);
    if (sessionStorage.getItem(KEY)) start();
    else { showApp(false); $('key').focus(); }
  });
})();
