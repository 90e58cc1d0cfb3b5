// The playground and operator pages. Plain script, no libraries, no build
// step: everything it shows comes from the orchestrator's own APIs —
// POST /v1/moa/chat (the ChatEvent stream), GET /v1/moa/cluster and, with
// the admin key, /admin/v1/keys — so it shows nothing a client could not
// get. Keys live in sessionStorage: asked once per tab, gone with it.
'use strict';

const $ = (id) => document.getElementById(id);
const KEY = 'moa.key';
const ADMIN_KEY = 'moa.admin_key';

const state = {
  cluster: null,    // GET /v1/moa/cluster
  history: [],      // [{role, content}] of this conversation
  controller: null, // AbortController of the run in flight
  lastBody: null,   // The ChatRequest last sent
  seed: null,       // The step seed the last run reported or was given
};

// ---- small helpers ----------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// Protobuf's JSON form writes durations as "1.250s" and 64-bit integers as strings.
function durationMs(d) { return d ? parseFloat(d) * 1000 : 0; }
function num(v) { return v === undefined ? 0 : Number(v); }
function fmtMs(ms) { return ms >= 1000 ? (ms / 1000).toFixed(2) + ' s' : Math.round(ms) + ' ms'; }
function fmtDollars(d) { return '$' + (d < 0.01 ? d.toFixed(6) : d.toFixed(4)); }
function shellQuote(s) { return "'" + String(s).replace(/'/g, "'\\''") + "'"; }

function notice(text) {
  const n = $('notice');
  n.textContent = text || '';
  n.hidden = !text;
}

function setStatus(text) { $('status').textContent = text; }

// ---- keys ---------------------------------------------------------------

function clientKey() { return sessionStorage.getItem(KEY) || ''; }

// Shows the key dialog; resolves true once a key was given, false on cancel.
function askKey(why) {
  const dialog = $('key-dialog');
  if (why) $('key-why').textContent = why;
  $('key-input').value = '';
  return new Promise((resolve) => {
    const done = (ok) => {
      $('key-form').onsubmit = null;
      $('key-cancel').onclick = null;
      dialog.oncancel = null;
      if (dialog.open) dialog.close();
      resolve(ok);
    };
    $('key-form').onsubmit = (ev) => {
      ev.preventDefault();
      const k = $('key-input').value.trim();
      if (!k) return;
      sessionStorage.setItem(KEY, k);
      done(true);
    };
    $('key-cancel').onclick = () => done(false);
    // Escape: the same as Cancel. (Not onclose: a close event is queued,
    // and would reach the next ask when one follows at once.)
    dialog.oncancel = (ev) => { ev.preventDefault(); done(false); };
    dialog.showModal();
    $('key-input').focus();
  });
}

// fetch with the client key; a 401 asks for a key once, then retries.
async function api(path, options = {}, asked = false) {
  const headers = Object.assign({}, options.headers || {});
  if (clientKey()) headers.Authorization = 'Bearer ' + clientKey();
  const r = await fetch(path, Object.assign({}, options, { headers }));
  if (r.status !== 401) return r;
  let message = 'the orchestrator refused the request without a valid key';
  try { message = (await r.json()).error.message; } catch (e) { /* keep ours */ }
  // A refused key is forgotten; the user is asked once per refusal.
  sessionStorage.removeItem(KEY);
  if (!asked && await askKey('The orchestrator answered: ' + message +
      '. Give a client key; it is kept in this tab only (session storage).')) {
    return api(path, options, true);
  }
  throw new Error('refused: ' + message);
}

// ---- the cluster ---------------------------------------------------------

async function loadCluster() {
  const r = await api('/v1/moa/cluster');
  if (!r.ok) throw new Error('GET /v1/moa/cluster: HTTP ' + r.status);
  state.cluster = await r.json();
  notice('');
  const select = $('pipeline');
  const chosen = select.value;
  select.replaceChildren();
  for (const p of state.cluster.pipelines || []) {
    const label = p.route ? p.name + ' (route: ' + p.route.pipelines.join(' | ') + ')' :
      p.name + (p.default ? ' (default)' : '');
    const o = el('option', { value: p.name, text: label });
    if (chosen ? p.name === chosen : p.default) o.selected = true;
    select.append(o);
  }
  const presets = $('preset');
  const preset = presets.value;
  presets.replaceChildren(el('option', { value: '', text: 'none' }));
  for (const p of state.cluster.presets || []) {
    const o = el('option', { value: p.name, text: p.name + ' — ' + (p.description || '') });
    if (p.name === preset) o.selected = true;
    presets.append(o);
  }
  renderPipelines();
  renderModels();
  renderKeys();
}

function priceOf(model) {
  const m = (state.cluster && state.cluster.models || []).find((x) => x.name === model);
  return m && m.price;
}

function costOf(model, usage) {
  const p = priceOf(model);
  if (!p || !usage) return 0;
  return (num(usage.prompt_tokens) * (p.input_per_million || 0) +
          num(usage.completion_tokens) * (p.output_per_million || 0)) / 1e6;
}

// ---- a run ----------------------------------------------------------------

// One model call of the run: its column and its timeline bar.
function newCall(kind, layer, model) {
  return { kind, layer, model, start: null, first: null, end: null, state: 'running', usage: null,
           why: '', column: null };
}

let run = null;

function beginRun(body) {
  run = { calls: new Map(), order: [], answerCalls: [], lastAt: 0, accepted: null, answer: '',
          steps: [], summary: null, finished: false };
  $('run').hidden = false;
  $('layers').replaceChildren();
  $('answer').textContent = '';
  $('summary').textContent = '';
  $('timeline').replaceChildren();
  $('run-meta').textContent = 'asking…';
  renderAgain(body);
}

function callKey(ref) { return (ref.layer || 0) + '/' + ref.model; }

function onAccepted(a) {
  run.accepted = a;
  const meta = ['pipeline ' + a.pipeline];
  if (a.route) meta.push('route ' + a.route.route + ' chose it by ' + a.route.by + ': ' + a.route.reason);
  if (a.preset) meta.push('preset ' + a.preset);
  meta.push(a.terminal === 'vote' ? 'the panel votes' : 'answer by ' + a.aggregator);
  if (a.text_only && a.text_only.length) meta.push('text only: ' + a.text_only.join(', '));
  $('run-meta').textContent = meta.join(' · ');
  (a.layers || []).forEach((layer, i) => {
    const n = i + 1;
    const step = (a.steps || [])[i] || 'propose';
    const section = el('section', { class: 'layer', 'aria-label': 'Layer ' + n + ': ' + step,
                                    id: 'layer-' + n });
    section.append(el('h3', { text: 'Layer ' + n + ' · ' + step }));
    section.append(el('div', { class: 'step-notes' }));
    const columns = el('div', { class: 'columns' });
    for (const model of layer.models || []) {
      const call = newCall('proposal', n, model);
      const badge = el('span', { class: 'badge waiting', text: 'waiting' });
      const text = el('div', { class: 'text' });
      const why = el('div', { class: 'why' });
      const column = el('article', { class: 'column', 'data-state': 'waiting',
                                     'data-model': model, 'aria-label': model + ' in layer ' + n },
                        el('header', {}, el('h4', { text: model }), badge), text, why);
      call.column = { column, badge, text, why };
      columns.append(column);
      run.calls.set(n + '/' + model, call);
    }
    section.append(columns);
    $('layers').append(section);
  });
}

function setCallState(call, s, label, why) {
  call.state = s;
  if (!call.column) return;
  call.column.column.dataset.state = s;
  call.column.badge.className = 'badge ' + s;
  call.column.badge.textContent = label;
  if (why !== undefined) call.column.why.textContent = why;
}

function callFor(ref) {
  const key = callKey(ref);
  let call = run.calls.get(key);
  if (!call) {  // A model the accepted event did not list (never expected).
    call = newCall('proposal', ref.layer, ref.model);
    run.calls.set(key, call);
  }
  return call;
}

function stepNote(step, text) {
  const section = $('layer-' + step);
  const where = section ? section.querySelector('.step-notes') : $('summary');
  where.append(el('p', { class: 'step-note', text }));
}

const handlers = {
  accepted: (e) => onAccepted(e.accepted),
  proposal_started: (e, at) => {
    const call = callFor(e.proposal_started.ref);
    call.start = at;
    run.order.push(call);
    setCallState(call, 'running', 'running');
  },
  proposal_delta: (e, at) => {
    const call = callFor(e.proposal_delta.ref);
    if (call.first === null) call.first = at;
    call.column.text.textContent += e.proposal_delta.text || '';
  },
  proposal_done: (e, at) => {
    const d = e.proposal_done;
    const call = callFor(d.ref);
    call.end = at;
    call.usage = d.completion && d.completion.usage;
    if (call.first === null) call.first = at;
    call.column.text.textContent = d.text || '';
    const reason = d.completion && d.completion.finish_reason;
    setCallState(call, 'done', 'done', reason && reason !== 'stop' ? 'finish: ' + reason : '');
  },
  proposal_failed: (e, at) => {
    const f = e.proposal_failed;
    const call = callFor(f.ref);
    call.end = at;
    setCallState(call, 'failed', 'failed', 'failed: ' + ((f.status && f.status.message) || 'no reason given'));
  },
  proposal_straggler: (e, at) => {
    const s = e.proposal_straggler;
    const call = callFor(s.ref);
    call.end = at;
    setCallState(call, 'straggler', 'cut: too slow',
      'cut after ' + fmtMs(durationMs(s.ran)) + ': still running when its layer went on; left out of the references');
  },
  step_applied: (e) => {
    const s = e.step_applied;
    if (s.seed !== undefined) state.seed = String(s.seed);
    let text = s.kind;
    if (s.kind === 'early_stop') text = 'early stop: the answers agreed; ' + (s.kept || []).join(', ') + ' wrote the answer';
    else {
      if (s.kept && s.kept.length) text += ' · kept ' + s.kept.join(', ');
      if (s.dropped && s.dropped.length) text += ' · dropped ' + s.dropped.join(', ');
      if (s.seed !== undefined) text += ' · seed ' + s.seed;
    }
    if (s.note) text += ' · ' + s.note;
    stepNote(s.step, text);
  },
  answer_step: (e, at) => {
    const s = e.answer_step;
    const prev = run.answerCalls[run.answerCalls.length - 1];
    if (prev && prev.end === null) prev.end = at;
    const call = newCall('answer', 0, (run.accepted && run.accepted.aggregator) || 'answer');
    call.start = at;
    call.step = s.step;
    run.answerCalls.push(call);
  },
  answer_delta: (e, at) => {
    const call = run.answerCalls[run.answerCalls.length - 1];
    if (call && call.first === null) call.first = at;
    run.answer += e.answer_delta;
    $('answer').textContent = run.answer;
  },
  answer_tool_calls: (e) => {
    const calls = e.answer_tool_calls.calls || [];
    $('answer').textContent = run.answer + (run.answer ? '\n' : '') + 'Tool calls:\n' +
      calls.map((c) => c.name + '(' + c.arguments + ')').join('\n');
  },
  summary: (e, at) => {
    const s = e.summary;
    run.summary = s;
    const answer = s.answer;
    if (answer && answer.model) {
      if (run.answerCalls.length === 0) {
        // One answer call: its start is its end less its duration.
        const call = newCall('answer', 0, answer.model);
        call.end = at;
        call.start = Math.max(0, at - durationMs(answer.duration));
        call.first = call.start + durationMs(answer.time_to_first_token);
        run.answerCalls.push(call);
      } else {
        const last = run.answerCalls[run.answerCalls.length - 1];
        if (last.end === null) last.end = at;
      }
      run.answerCalls[run.answerCalls.length - 1].usage = answer.usage;
    }
    let tokens = 0;
    for (const u of s.usage || []) tokens += num(u.usage && u.usage.prompt_tokens) + num(u.usage && u.usage.completion_tokens);
    const parts = ['first token ' + fmtMs(durationMs(s.time_to_first_token)),
                   'total ' + fmtMs(durationMs(s.total)), tokens + ' tokens',
                   fmtDollars(s.cost_dollars || 0)];
    if (s.finish_reason) parts.push('finish: ' + s.finish_reason);
    if (s.skipped_calls) parts.push(s.skipped_calls + ' calls skipped (saved ≥ ' + fmtDollars(s.saved_dollars || 0) + ')');
    $('summary').textContent = parts.join(' · ');
  },
};

function renderTimeline() {
  const calls = run.order.concat(run.answerCalls).filter((c) => c.start !== null);
  let span = run.lastAt;
  for (const c of calls) span = Math.max(span, c.end === null ? run.lastAt : c.end);
  span = Math.max(span, 1);
  const list = $('timeline');
  list.replaceChildren();
  for (const c of calls) {
    const end = c.end === null ? run.lastAt : c.end;
    const who = c.kind === 'answer' ? 'answer' + (c.step ? ' step ' + c.step : '') + ' · ' + c.model :
      'L' + c.layer + ' · ' + c.model;
    const bar = el('div', { class: 'bar ' + (c.kind === 'answer' ? 'answer' : c.state) });
    bar.style.left = (100 * c.start / span) + '%';
    bar.style.width = (100 * Math.max(0, end - c.start) / span) + '%';
    const track = el('div', { class: 'track', 'aria-hidden': 'true' }, bar);
    if (c.first !== null) {
      const mark = el('div', { class: 'mark' });
      mark.style.left = (100 * c.first / span) + '%';
      track.append(mark);
    }
    const facts = ['start ' + fmtMs(c.start)];
    if (c.first !== null) facts.push('first token ' + fmtMs(c.first));
    facts.push((c.end === null ? 'running ' : 'end ') + fmtMs(end));
    if (c.usage) {
      facts.push((num(c.usage.prompt_tokens) + num(c.usage.completion_tokens)) + ' tokens');
      facts.push(fmtDollars(costOf(c.model, c.usage)));
    }
    if (c.kind !== 'answer' && c.state !== 'done') facts.push(c.state === 'straggler' ? 'cut' : c.state);
    list.append(el('li', { class: 'call', 'data-kind': c.kind, 'data-state': c.state },
                   el('span', { text: who }), track, el('span', { class: 'facts', text: facts.join(' · ') })));
  }
}

function renderAgain(body) {
  const origin = location.origin;
  const auth = state.cluster && state.cluster.keys && state.cluster.keys.enabled ?
    ' \\\n  -H "Authorization: Bearer $MOA_API_KEY"' : '';
  $('curl').textContent = 'curl -N ' + origin + '/v1/moa/chat' + auth +
    ' \\\n  -H "Content-Type: application/json" \\\n  -d ' + shellQuote(JSON.stringify(body));
  const last = body.messages[body.messages.length - 1];
  const args = ['moa ask', '--orchestrator', location.hostname + ':' + ((state.cluster && state.cluster.grpc_port) || 50051)];
  if (body.pipeline) args.push('--pipeline', shellQuote(body.pipeline));
  if (body.preset) args.push('--preset', shellQuote(body.preset));
  if (body.step_seed !== undefined) args.push('--step_seed', body.step_seed);
  args.push('--show_proposals', shellQuote(last.content));
  $('moa-ask').textContent = args.join(' ');
}

function parseSse(buffer, onEvent) {
  let cut;
  while ((cut = buffer.indexOf('\n\n')) >= 0) {
    const block = buffer.slice(0, cut);
    buffer = buffer.slice(cut + 2);
    let name = 'message', data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) name = line.slice(7);
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
    if (data) onEvent(name, JSON.parse(data));
  }
  return buffer;
}

async function ask(body) {
  state.lastBody = body;
  state.seed = body.step_seed !== undefined ? String(body.step_seed) : null;
  state.controller = new AbortController();
  $('ask').disabled = true;
  $('replay').disabled = true;
  $('stop').disabled = false;
  notice('');
  setStatus('asking the panel…');
  beginRun(body);
  let failed = null;
  try {
    const r = await api('/v1/moa/chat', {
      method: 'POST', body: JSON.stringify(body), signal: state.controller.signal,
      headers: { 'Content-Type': 'application/json' } });
    if (!r.ok) {
      let message = 'HTTP ' + r.status;
      try { message = (await r.json()).error.message; } catch (e) { /* keep the status */ }
      throw new Error(message);
    }
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer = parseSse(buffer + value, (name, data) => {
        run.lastAt = Math.max(run.lastAt, data.at_ms || 0);
        if (name === 'done') { run.finished = true; return; }
        if (name === 'error') { failed = data.error ? data.error.message : 'the run failed'; return; }
        const handler = handlers[name];
        if (handler) handler(data, data.at_ms || 0);
        if (name !== 'proposal_delta' && name !== 'answer_delta') renderTimeline();
      });
    }
  } catch (e) {
    failed = e.name === 'AbortError' ? 'stopped' : e.message;
  }
  for (const call of run.calls.values()) {
    if (call.state === 'running' || call.state === 'waiting') {
      setCallState(call, 'failed', failed ? 'ended' : 'not called', failed ? 'the run ended: ' + failed : 'not called');
    }
  }
  renderTimeline();
  state.controller = null;
  $('ask').disabled = false;
  $('stop').disabled = true;
  $('replay').disabled = false;
  if (failed) {
    notice('The run failed: ' + failed);
    setStatus('failed');
    return;
  }
  setStatus('done');
  state.history = body.messages.concat([{ role: 'ROLE_ASSISTANT', content: run.answer }]);
  renderConversation();
  if (state.seed !== null) $('replay').textContent = 'Replay (seed ' + state.seed + ')';
}

function renderConversation() {
  const box = $('conversation');
  box.replaceChildren();
  for (const m of state.history) {
    const who = m.role === 'ROLE_USER' ? 'You' : 'Panel';
    box.append(el('div', { class: 'turn' }, el('b', { text: who }), m.content));
  }
}

function requestFrom(question) {
  const body = {
    pipeline: $('pipeline').value,
    messages: state.history.concat([{ role: 'ROLE_USER', content: question }]),
    stream_proposals: true,
  };
  if ($('preset').value) body.preset = $('preset').value;
  const seed = $('seed').value.trim();
  if (/^[0-9]+$/.test(seed)) body.step_seed = seed;
  return body;
}

// ---- operator pages -----------------------------------------------------

function renderPipelines() {
  const list = $('pipelines-list');
  list.replaceChildren();
  for (const p of state.cluster.pipelines || []) {
    const section = el('section', { 'aria-label': 'Pipeline ' + p.name });
    let title = p.name + (p.default ? ' (default)' : '');
    if (p.route) {
      title += ' — route to ' + p.route.pipelines.join(' | ') + ' (' + p.route.rules + ' rules' +
        (p.route.classifier ? ', classifier ' + p.route.classifier : '') + '; default ' + p.route.pipelines[0] + ')';
    }
    section.append(el('h3', { text: title }));
    const diagram = el('div', { class: 'diagram', role: 'list' });
    diagram.append(el('div', { class: 'box', role: 'listitem' }, el('b', { text: 'request' }), 'your messages'));
    (p.layers || []).forEach((layer, i) => {
      diagram.append(el('span', { class: 'arrow', 'aria-hidden': 'true', text: '→' }));
      const models = (layer.models || []);
      diagram.append(el('div', { class: 'box', role: 'listitem' },
        el('b', { text: 'step ' + (i + 1) + ' · ' + ((p.steps || [])[i] || 'propose') }),
        models.length ? models.join(', ') : 'no model call'));
    });
    diagram.append(el('span', { class: 'arrow', 'aria-hidden': 'true', text: '→' }));
    diagram.append(el('div', { class: 'box', role: 'listitem' }, el('b', { text: p.terminal || 'aggregate' }),
      p.terminal === 'vote' ? 'the panel votes' : (p.aggregator || '')));
    section.append(diagram);
    list.append(section);
  }
  const presets = $('presets-list');
  presets.replaceChildren();
  for (const p of state.cluster.presets || []) {
    presets.append(el('li', {}, el('b', { text: p.name }), ': ' + (p.description || '')));
  }
  if (!(state.cluster.presets || []).length) presets.append(el('li', { text: 'No presets in the config.' }));
}

function renderModels() {
  const body = $('models-table').querySelector('tbody');
  body.replaceChildren();
  for (const m of state.cluster.models || []) {
    const fb = m.first_byte || { samples: 0 };
    const sampled = fb.samples > 0;
    const price = m.price ? '$' + m.price.input_per_million + ' / $' + m.price.output_per_million : 'no price';
    body.append(el('tr', { 'data-model': m.name },
      el('th', { scope: 'row', text: m.name }), el('td', { text: m.upstream || '' }),
      el('td', {}, el('span', { class: 'badge ' + m.breaker, text: m.breaker })),
      el('td', { text: sampled ? fmtMs(fb.p50_ms) : '—' }), el('td', { text: sampled ? fmtMs(fb.p95_ms) : '—' }),
      el('td', { text: String(fb.samples || 0) }), el('td', { text: price })));
  }
}

function limitsText(l) {
  const parts = [];
  for (const [k, v] of Object.entries(l || {})) parts.push(k + ' ' + (Array.isArray(v) ? v.join(', ') : v));
  return parts.length ? parts.join('; ') : 'no limits';
}

function renderKeys() {
  const keys = state.cluster.keys || {};
  const box = $('keys-caller');
  box.replaceChildren();
  if (!keys.enabled) {
    box.append(el('p', { text: 'Keys are off on this orchestrator: any client may call it (start it with --api_keys_file or a key directory to require keys).' }));
  } else if (keys.caller) {
    const c = keys.caller;
    box.append(el('h3', { text: 'Your key: ' + c.name }));
    box.append(el('p', { text: 'Limits: ' + limitsText(c.limits) }));
    const u = c.this_replica;
    if (u) {
      box.append(el('p', { text: 'This replica counted: ' + u.in_flight + ' running, ' + u.requests_last_minute +
        ' requests and ' + u.tokens_last_minute + ' tokens in the last minute, ' + fmtDollars(u.today_dollars) +
        ' today, ' + fmtDollars(u.this_month_dollars) + ' this month.' }));
    }
  }
  $('keys-admin').hidden = !keys.admin_api;
}

async function listAdminKeys() {
  const adminKey = $('admin-key').value.trim() || sessionStorage.getItem(ADMIN_KEY) || '';
  if (!adminKey) return;
  sessionStorage.setItem(ADMIN_KEY, adminKey);
  $('admin-key').value = '';
  const auth = { Authorization: 'Bearer ' + adminKey };
  const r = await fetch('/admin/v1/keys', { headers: auth });
  if (!r.ok) {
    sessionStorage.removeItem(ADMIN_KEY);
    let message = 'HTTP ' + r.status;
    try { message = (await r.json()).error.message; } catch (e) { /* keep the status */ }
    notice('The admin API refused: ' + message);
    return;
  }
  const list = await r.json();
  const body = $('keys-table').querySelector('tbody');
  body.replaceChildren();
  for (const k of list.data || []) {
    let spend = null;
    const one = await fetch('/admin/v1/keys/' + encodeURIComponent(k.name), { headers: auth });
    if (one.ok) spend = (await one.json()).spend;
    body.append(el('tr', {}, el('th', { scope: 'row', text: k.name }), el('td', { text: limitsText(k.limits) }),
      el('td', { text: spend ? fmtDollars(spend.today_dollars) : '—' }),
      el('td', { text: spend ? fmtDollars(spend.this_month_dollars) : '—' }),
      el('td', { text: k.revoked ? 'revoked' : 'active' })));
  }
  $('keys-table').hidden = false;
}

// ---- navigation and wiring ----------------------------------------------

function showPage() {
  const page = (location.hash.match(/^#\/(\w+)/) || [])[1] || 'play';
  for (const s of document.querySelectorAll('main > section')) s.hidden = s.dataset.page !== page;
  for (const a of document.querySelectorAll('.top nav a')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (page !== 'play' && state.cluster) loadCluster().catch((e) => notice(e.message));
}

function init() {
  window.addEventListener('hashchange', showPage);
  showPage();
  $('ask-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = $('question').value.trim();
    if (!q || state.controller) return;
    $('question').value = '';
    ask(requestFrom(q));
  });
  $('question').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) $('ask-form').requestSubmit();
  });
  $('stop').addEventListener('click', () => state.controller && state.controller.abort());
  $('replay').addEventListener('click', () => {
    if (!state.lastBody || state.controller) return;
    const body = Object.assign({}, state.lastBody);
    if (state.seed !== null) body.step_seed = state.seed;
    // The same turn again: the conversation as it was before it.
    state.history = body.messages.slice(0, -1);
    renderConversation();
    ask(body);
  });
  $('new-chat').addEventListener('click', () => {
    state.history = [];
    renderConversation();
    $('run').hidden = true;
    $('replay').disabled = true;
    $('question').focus();
  });
  $('key-button').addEventListener('click', async () => {
    if (await askKey('Give a client key for this orchestrator. It is kept in this tab only (session storage).')) {
      loadCluster().catch((e) => notice(e.message));
    }
  });
  $('key-forget').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(ADMIN_KEY);
    $('key-dialog').close();
  });
  $('models-refresh').addEventListener('click', () => loadCluster().catch((e) => notice(e.message)));
  $('admin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    listAdminKeys().catch((e) => notice(e.message));
  });
  for (const b of document.querySelectorAll('[data-copy]')) {
    b.addEventListener('click', async () => {
      const text = $(b.dataset.copy).textContent;
      try { await navigator.clipboard.writeText(text); b.textContent = 'Copied'; } catch (e) {
        // Not a secure context: select the text for the user to copy.
        const range = document.createRange();
        range.selectNodeContents($(b.dataset.copy));
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        b.textContent = 'Selected';
      }
      setTimeout(() => { b.textContent = 'Copy'; }, 1500);
    });
  }
  loadCluster().catch((e) => notice('The playground cannot read the cluster: ' + e.message));
}

init();
