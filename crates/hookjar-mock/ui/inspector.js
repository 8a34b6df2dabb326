// hookjar mock inspector: plain JavaScript over the receiver's JSON endpoints.
//
//   GET    /_mock/requests      the journal: all of it once, then ?after=SEQ (what is new)
//                               whenever /_mock/stream says it changed
//   GET    /_mock/stream        server-sent events: "change" when a request is recorded or cleared
//   POST   /_mock/ui/verdicts   what Skilljar would conclude from each answer
//   GET/PUT /_mock/script      the scripts in force
//   DELETE /_mock/requests      clear
//   POST   /_mock/ui/resend     send a recorded request again, to another URL
'use strict';

(function () {
  const MAX_ROWS = 500;
  const state = {
    all: [],             // the receiver's requests in memory, oldest first
    lastSeq: 0,          // the newest seq read so far
    reload: 1,           // bumped when the whole journal must be read (first, or the stream reconnected)
    loaded: 0,           // the last `reload` a whole read answered
    records: [],         // newest first
    verdicts: new Map(), // seq -> {verdict, detail}
    deliveries: new Map(), // "digest path" -> records, oldest first
    selected: null,      // seq
    busy: false,
    again: false,
    streamOpen: false,   // the event stream is connected
    edited: new Set(),   // script fields with an edit not applied yet
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // The answer's JSON (or text) and headers; an error status throws its detail.
  async function request(method, path, body, type) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.body = body;
      init.headers['content-type'] = type || 'application/json';
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
    if (!res.ok) {
      const why = data && data.detail ? data.detail : `HTTP ${res.status}`;
      throw new Error(why);
    }
    return { data, headers: res.headers };
  }

  async function call(method, path, body, type) {
    return (await request(method, path, body, type)).data;
  }

  // ---- the journal -------------------------------------------------------

  // One read at a time, however many changes come in: a change during a read asks
  // for one more read after it. Each read also reads the scripts (another client
  // may have changed them), so a burst of requests costs a few reads, not one each.
  function schedule() {
    if (state.busy) { state.again = true; return; }
    state.busy = true;
    refresh()
      .then(() => {
        if (state.streamOpen) setLive('live', 'ok');
        return loadScripts();
      })
      .catch((e) => setLive(`cannot read the journal: ${e.message}`, 'bad'))
      .finally(() => {
        state.busy = false;
        if (state.again) { state.again = false; setTimeout(schedule, 150); }
      });
  }

  // The requests after `after` (null: all of them), and the receiver's counts read
  // with them: it holds the seqs latest - kept + 1 ..= latest in memory.
  async function readJournal(after) {
    const { data, headers } = await request('GET', after === null ? '/_mock/requests' : `/_mock/requests?after=${after}`);
    return {
      list: data,
      latest: Number(headers.get('x-hookjar-latest-seq') || 0),
      kept: Number(headers.get('x-hookjar-kept') || 0),
    };
  }

  // Reads only what is new, then drops what the receiver no longer holds (evicted
  // by --keep, or cleared), so a long run costs each change its new requests only.
  async function refresh() {
    const wanted = state.reload;
    let full = state.loaded !== wanted;
    let read = await readJournal(full ? null : state.lastSeq);
    if (!full && read.latest < state.lastSeq) {
      // The receiver started again (its seqs count from 1): read all of it.
      full = true;
      read = await readJournal(null);
    }
    // Only now: a full read that failed is tried again next time, and a reconnect
    // during this one asks for another.
    state.loaded = wanted;
    if (full) {
      // Maybe another receiver (restarted): its seqs name other requests.
      state.verdicts.clear();
      state.selected = null;
    }
    const oldest = read.latest - read.kept + 1;
    const kept = full ? [] : state.all.filter((r) => r.seq >= oldest);
    for (const r of read.list) if (r.seq >= oldest) kept.push(r);
    state.all = kept;
    state.lastSeq = read.latest;
    const list = state.all.slice();
    // Every record still without a verdict, new or not (a verdict call that failed
    // is made again for its records).
    const need = list.filter((r) => !state.verdicts.has(r.seq));
    if (need.length) {
      const answers = need.map((r) => ({ step: r.step, status: r.status, attempt: r.attempt }));
      const verdicts = await call('POST', '/_mock/ui/verdicts', JSON.stringify(answers));
      need.forEach((r, i) => state.verdicts.set(r.seq, verdicts[i]));
    }
    const seen = new Set(list.map((r) => r.seq));
    for (const seq of state.verdicts.keys()) if (!seen.has(seq)) state.verdicts.delete(seq);
    // The attempts of each delivery (same digest at the same path, X5), oldest first.
    state.deliveries = new Map();
    for (const r of list) {
      const key = `${r.digest} ${pathOnly(r)}`;
      if (!state.deliveries.has(key)) state.deliveries.set(key, []);
      state.deliveries.get(key).push(r);
    }
    list.reverse();
    state.records = list;
    if (state.selected !== null && !seen.has(state.selected)) state.selected = null;
    render();
  }

  function attemptsOf(r) {
    return state.deliveries.get(`${r.digest} ${pathOnly(r)}`) || [r];
  }

  // Seconds since the delivery's previous attempt arrived (monotonic clock), or null.
  function gapBefore(r) {
    const all = attemptsOf(r);
    const i = all.findIndex((x) => x.seq === r.seq);
    return i > 0 ? (r.since_start_ms - all[i - 1].since_start_ms) / 1000 : null;
  }

  function fmtGap(s) {
    if (s < 10) return `+${s.toFixed(1)}s`;
    if (s < 120) return `+${Math.round(s)}s`;
    if (s < 7200) return `+${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
    return `+${(s / 3600).toFixed(1)}h`;
  }

  function attemptLabel(r) {
    const gap = gapBefore(r);
    const name = r.attempt === 0 ? 'first attempt' : `retry ${r.attempt}`;
    return gap === null ? name : `${name} · ${fmtGap(gap)}`;
  }

  function verdictOf(r) {
    return state.verdicts.get(r.seq) || { verdict: '?', detail: '' };
  }

  function time(r) {
    const m = /T(\d\d:\d\d:\d\d(?:\.\d{1,3})?)/.exec(r.received_at || '');
    return m ? m[1] : r.received_at;
  }

  function pathOnly(r) { return (r.path || '').split('?')[0]; }

  function fillSelect(select, values) {
    const current = select.value;
    const first = select.options[0];
    select.replaceChildren(first, ...[...values].sort().map((v) => el('option', { value: v, text: v })));
    select.value = values.has(current) ? current : '';
  }

  function filtered() {
    const path = $('f-path').value;
    const type = $('f-type').value;
    const verdict = $('f-verdict').value;
    const onlyBad = $('f-violations').checked;
    return state.records.filter((r) =>
      (!path || pathOnly(r) === path) &&
      (!type || r.event_type === type) &&
      (!verdict || verdictOf(r).verdict === verdict) &&
      (!onlyBad || r.violations.length > 0));
  }

  function render() {
    fillSelect($('f-path'), new Set(state.records.map(pathOnly)));
    fillSelect($('f-type'), new Set(state.records.map((r) => r.event_type).filter(Boolean)));
    const shown = filtered();
    const total = state.records.length;
    $('count').textContent = shown.length === total ? `(${total})` : `(${shown.length} of ${total})`;
    $('empty').hidden = shown.length > 0;
    if (total > 0 && shown.length === 0) $('empty').textContent = 'No request matches the filters.';
    else $('empty').textContent = 'No requests yet. POST a webhook to this receiver and it appears here.';
    // Redrawing the rows must not take the keyboard focus away from the row it is on.
    const focused = document.activeElement && document.activeElement.closest('#rows tr');
    const focusSeq = focused ? focused.dataset.seq : null;
    $('rows').replaceChildren(...shown.slice(0, MAX_ROWS).map(row));
    if (focusSeq !== null) {
      const again = document.querySelector(`#rows tr[data-seq="${focusSeq}"] button.open`);
      if (again) again.focus();
    }
    renderDetail();
  }

  function row(r) {
    const v = verdictOf(r);
    const bad = r.violations.length > 0;
    const open = el('button', {
      type: 'button', class: 'open', 'aria-label': `Show request ${r.seq}, ${r.method} ${r.path} at ${time(r)}`,
      'aria-current': state.selected === r.seq ? 'true' : null,
      onclick: () => select(r.seq),
    }, time(r));
    const checks = bad
      ? el('td', { class: 'checks bad' }, ...r.violations.map((t) => el('span', { class: 'violation', title: t }, '⚠ ' + t.split(':')[0])))
      : el('td', { class: 'checks ok' }, 'ok');
    return el('tr', {
      class: ['row', bad ? 'has-violations' : '', state.selected === r.seq ? 'selected' : ''].join(' ').trim(),
      'data-seq': r.seq,
    },
    el('td', {}, open),
    el('td', { class: 'path' }, r.method === 'POST' ? r.path : `${r.method} ${r.path}`),
    el('td', {}, r.event_type || '—'),
    el('td', { class: 'mono digest' }, r.digest, el('br'), el('small', { title: 'attempt, and the time since the delivery\'s previous attempt' }, attemptLabel(r))),
    el('td', { class: 'mono answer' }, r.script === 'default' ? r.step : `${r.step} (${r.script})`),
    el('td', { class: `verdict v-${v.verdict}`, title: v.detail }, v.verdict),
    checks);
  }

  function select(seq) {
    state.selected = seq;
    for (const tr of $('rows').children) {
      const on = Number(tr.dataset.seq) === seq;
      tr.classList.toggle('selected', on);
      const button = tr.querySelector('button.open');
      if (on) button.setAttribute('aria-current', 'true');
      else button.removeAttribute('aria-current');
    }
    $('resend-msg').textContent = '';
    $('copy-msg').textContent = '';
    renderDetail();
    $('detail').focus();
  }

  // ---- one request -------------------------------------------------------

  function basicUser(r) {
    const auth = r.headers.find(([k]) => k.toLowerCase() === 'authorization');
    if (!auth) return null;
    const m = /^\s*basic\s+(\S+)/i.exec(auth[1]);
    if (!m) return { scheme: auth[1].split(/\s+/)[0] };
    try {
      const bytes = Uint8Array.from(atob(m[1]), (c) => c.charCodeAt(0));
      const text = new TextDecoder().decode(bytes);
      const i = text.indexOf(':');
      return { user: i < 0 ? text : text.slice(0, i) };
    } catch (_) {
      return { invalid: true };
    }
  }

  function quote(s) { return "'" + String(s).replace(/'/g, "'\\''") + "'"; }

  const SKIP = new Set(['host', 'content-length', 'connection', 'transfer-encoding', 'keep-alive']);

  function curl(r) {
    // curl POSTs by itself only when it has data to send.
    const implied = r.method === 'POST' && r.body;
    const lines = [`curl${implied ? '' : ' -X ' + r.method} ${quote(location.origin + r.path)}`];
    for (const [k, v] of r.headers) if (!SKIP.has(k.toLowerCase())) lines.push(`-H ${quote(`${k}: ${v}`)}`);
    if (r.body) lines.push(`--data-raw ${quote(r.body)}`);
    return lines.join(' \\\n  ');
  }

  function renderDetail() {
    const r = state.records.find((x) => x.seq === state.selected);
    $('detail-none').hidden = !!r;
    $('detail-body').hidden = !r;
    if (!r) {
      $('detail-h').textContent = 'Request';
      return;
    }
    const v = verdictOf(r);
    $('detail-h').textContent = `Request #${r.seq}`;
    $('d-meta').replaceChildren(
      el('strong', {}, `${r.method} ${r.path}`), ` · ${r.received_at} · ${r.event_type || 'no event type'} · `,
      el('span', { class: 'mono' }, `digest ${r.digest}`), ` · attempt ${r.attempt} · answered `,
      el('span', { class: 'mono' }, r.step), r.script === 'default' ? '' : ` (${r.script})`);
    $('d-violations').replaceChildren(...r.violations.map((t) => el('li', { class: 'violation' }, '⚠ ' + t)));
    $('d-verdict').replaceChildren(el('span', { class: `verdict v-${v.verdict}` }, v.verdict), ' ', v.detail);
    $('d-attempts').replaceChildren(...attemptsOf(r).map((a) => el('li', {},
      a.seq === r.seq
        ? el('strong', { 'aria-current': 'true' }, `#${a.seq}`)
        : el('button', { type: 'button', class: 'link', onclick: () => select(a.seq), 'aria-label': `Show request ${a.seq}` }, `#${a.seq}`),
      ` ${attemptLabel(a)} → ${a.step}`)));
    const auth = basicUser(r);
    $('d-auth').textContent = !auth ? 'No Authorization header.'
      : auth.user !== undefined ? `Basic auth user: ${auth.user}`
        : auth.invalid ? 'Authorization: Basic, but not valid base64.'
          : `Authorization scheme: ${auth.scheme}`;
    $('d-headers').replaceChildren(...r.headers.map(([k, val]) =>
      el('tr', {}, el('th', { scope: 'row' }, k), el('td', {}, val))));
    $('d-body').textContent = r.json !== null && r.json !== undefined
      ? JSON.stringify(r.json, null, 2)
      : (r.body || '(empty body)');
    $('d-curl').textContent = curl(r);
  }

  // ---- scripts -----------------------------------------------------------

  function showScripts(s) {
    const dl = $('script-now');
    const items = [['default', s.script], ['advances', `per ${s.per}`]];
    for (const [p, sc] of Object.entries(s.routes || {})) items.push([`route ${p}`, sc]);
    for (const [t, sc] of Object.entries(s.for_type || {})) items.push([`type ${t}`, sc]);
    dl.replaceChildren(...items.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { class: 'mono' }, v)]));
    // An edit not applied yet is left alone until it is applied.
    if (!state.edited.has('script-input') && document.activeElement !== $('script-input')) $('script-input').value = s.script;
    if (!state.edited.has('script-json') && document.activeElement !== $('script-json')) $('script-json').value = JSON.stringify(s, null, 2);
  }

  async function loadScripts() {
    try { showScripts(await call('GET', '/_mock/script')); } catch (e) { $('script-msg').textContent = e.message; }
  }

  async function putScripts(body, type) {
    const msg = $('script-msg');
    try {
      const s = await call('PUT', '/_mock/script', body, type);
      state.edited.clear();
      document.activeElement.blur();
      showScripts(s);
      msg.className = 'msg ok';
      msg.textContent = `Applied: default script is now ${s.script}.`;
    } catch (e) {
      msg.className = 'msg bad';
      msg.textContent = `Not applied: ${e.message}`;
    }
  }

  // ---- wiring ------------------------------------------------------------

  function setLive(text, kind) {
    const live = $('live');
    live.textContent = text;
    live.className = `live ${kind || ''}`;
  }

  // The live updates. A browser keeps at most six HTTP/1.1 connections to one host,
  // and an event stream holds one for as long as it is open: with a stream per tab,
  // the seventh tab could not even load. So the tabs of one browser share one
  // stream: the tab holding a Web Lock opens it and passes what it hears to the
  // others over a BroadcastChannel; when that tab closes, its lock passes to another
  // tab, which opens the stream again. (Without those APIs — a page not served from
  // loopback or https — each tab opens its own, as before.)
  const LIVE = 'hookjar-inspector-live';

  // What this tab does with the stream's news, whoever holds the stream.
  function onLive(msg) {
    if (msg.kind === 'open') {
      state.streamOpen = true;
      setLive('live', 'ok');
      if (msg.reload) { state.reload += 1; schedule(); }
    } else if (msg.kind === 'change') {
      schedule();
    } else if (msg.kind === 'error') {
      state.streamOpen = false;
      setLive('reconnecting…', 'bad');
    }
  }

  // Opens the stream; `tell` gets each piece of news. A tab taking the stream over
  // from one that closed may have missed changes meanwhile: it reads what is new once
  // the stream is open.
  function openStream(tell, takingOver) {
    const source = new EventSource('/_mock/stream');
    let opened = false;
    source.addEventListener('open', () => {
      // Reconnected: the receiver may be a new one; read the whole journal again.
      tell({ kind: 'open', reload: opened });
      if (!opened && takingOver) tell({ kind: 'change' });
      opened = true;
    });
    // A journal change also re-reads the scripts, in case another client changed them.
    source.addEventListener('change', () => tell({ kind: 'change' }));
    source.addEventListener('error', () => tell({ kind: 'error' }));
    return source;
  }

  function connect() {
    if (!(navigator.locks && window.BroadcastChannel)) {
      openStream(onLive, false);
      return;
    }
    const channel = new BroadcastChannel(LIVE);
    let holding = false;
    let last = null; // the holder's last 'open' or 'error', for tabs that ask
    channel.addEventListener('message', (e) => {
      const msg = e.data || {};
      if (msg.kind === 'ask') {
        if (holding && last) channel.postMessage({ kind: last.kind });
        return;
      }
      onLive(msg);
    });
    // Not holding the stream (yet): ask the holder how it is.
    channel.postMessage({ kind: 'ask' });
    // First try without waiting: a tab that gets the lock only after waiting takes
    // the stream over from one that closed.
    navigator.locks.request(LIVE, { ifAvailable: true }, (lock) => {
      if (lock) return hold(false);
      return navigator.locks.request(LIVE, () => hold(true));
    });
    function hold(takingOver) {
      holding = true;
      openStream((msg) => {
        if (msg.kind !== 'change') last = msg;
        onLive(msg);
        channel.postMessage(msg);
      }, takingOver);
      // Held until the tab closes (the lock is then released by the browser).
      return new Promise(() => {});
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    for (const id of ['f-path', 'f-type', 'f-verdict', 'f-violations']) $(id).addEventListener('change', render);
    for (const id of ['script-input', 'script-json']) $(id).addEventListener('input', () => state.edited.add(id));
    $('filters').addEventListener('submit', (e) => e.preventDefault());
    $('clear').addEventListener('click', async () => {
      try {
        await call('DELETE', '/_mock/requests');
        state.selected = null;
        schedule();
      } catch (e) { setLive(`cannot clear: ${e.message}`, 'bad'); }
    });
    $('script-form').addEventListener('submit', (e) => {
      e.preventDefault();
      putScripts($('script-input').value.trim(), 'text/plain');
    });
    $('script-json-form').addEventListener('submit', (e) => {
      e.preventDefault();
      putScripts($('script-json').value, 'application/json');
    });
    $('copy-curl').addEventListener('click', async () => {
      const text = $('d-curl').textContent;
      try {
        await navigator.clipboard.writeText(text);
        $('copy-msg').textContent = 'Copied.';
      } catch (_) {
        const range = document.createRange();
        range.selectNodeContents($('d-curl'));
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        $('copy-msg').textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
      }
    });
    $('resend-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const r = state.records.find((x) => x.seq === state.selected);
      if (!r) return;
      const msg = $('resend-msg');
      msg.className = 'msg';
      msg.textContent = 'Sending…';
      const body = { url: $('resend-url').value, method: r.method, headers: r.headers, body: r.body, digest: r.digest };
      try {
        const res = await call('POST', '/_mock/ui/resend', JSON.stringify(body));
        msg.className = 'msg ok';
        msg.textContent = `Resent: the answer was HTTP ${res.status}${res.body ? ' — ' + res.body : ''}`;
      } catch (err) {
        msg.className = 'msg bad';
        msg.textContent = `Not resent: ${err.message}`;
      }
    });
    loadScripts();
    schedule();
    connect();
  });
})();
