// codid's web page: plain DOM over the REST API, no library and no build
// step. Every form and bound comes from GET /v1/capabilities; nothing here
// repeats the daemon's own limits or names.
'use strict';

const API = document.querySelector('meta[name="codid-api"]').content.replace(/\/$/, '');
const KEY = 'codid-api-key';
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
let caps = null;
let adapters = [];

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
}

// ---- the API --------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail, retryAfter) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

function authHeaders() {
  const k = sessionStorage.getItem(KEY);
  return k ? { Authorization: 'Bearer ' + k } : {};
}

// One request; JSON answers parsed, problems thrown as ApiError.
async function api(method, path, { json, body, type, as = 'json' } = {}) {
  const headers = { ...authHeaders() };
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (type) {
    headers['Content-Type'] = type;
  }
  let res;
  try {
    res = await fetch(API + path, { method, headers, body });
  } catch (e) {
    throw new ApiError(0, 'the daemon cannot be reached (' + e.message + ')');
  }
  if (!res.ok) {
    let detail = res.statusText;
    try {
      detail = (await res.json()).detail || detail;
    } catch (e) { /* not a problem+json */ }
    throw new ApiError(res.status, detail, res.headers.get('Retry-After'));
  }
  if (res.status === 204) return null;
  return as === 'blob' ? res.blob() : res.json();
}

// ---- errors beside their fields -----------------------------------------

function notice(text) {
  const n = $('#notice');
  n.textContent = text || '';
  n.hidden = !text;
}

// The sentence for errors that are not about one field.
function plainly(err) {
  if (err.status === 401)
    return 'Not signed in: this daemon wants an API key. Enter one above (' + err.detail + ').';
  if (err.status === 403)
    return 'Not allowed: your key lacks the scope this needs, usually admin (' + err.detail + ').';
  if (err.status === 429)
    return 'Too busy: try again in ' + (err.retryAfter || 'a few') + ' s (Retry-After). ' + err.detail;
  return (err.status ? err.status + ': ' : '') + err.detail;
}

function clearErrors(form) {
  for (const p of $$('.field-error', form)) p.remove();
  for (const f of $$('[aria-invalid]', form)) {
    f.removeAttribute('aria-invalid');
    f.removeAttribute('aria-describedby');
  }
  const box = $('.form-error', form);
  if (box) box.hidden = true;
}

// Shows a problem beside the field its detail names ("steps: ...",
// "field 'task.factor' must ..."), else in the form's own error line.
function showError(form, err) {
  clearErrors(form);
  if (!(err instanceof ApiError)) err = new ApiError(0, String(err.message || err));
  if (err.status === 401 || err.status === 403 || err.status === 429) notice(plainly(err));
  const m = /^field '([\w.]+)'/.exec(err.detail) || /^([\w.]+): /.exec(err.detail);
  const input = m && form.querySelector(`[name="${m[1]}"]`);
  if (input && err.status !== 401 && err.status !== 403) {
    const id = input.id + '-error';
    const p = el('p', { class: 'field-error', id, text: err.detail });
    (input.closest('.field') || input.parentElement).append(p);
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', id);
    input.focus();
    return;
  }
  const box = $('.form-error', form);
  box.textContent = plainly(err);
  box.hidden = false;
}

// Runs fn for a form's submit, its button disabled meanwhile.
function onSubmit(form, fn) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const button = $('button[type=submit]', form);
    button.disabled = true;
    clearErrors(form);
    try {
      await fn();
      notice('');
    } catch (err) {
      showError(form, err);
    } finally {
      button.disabled = false;
    }
  });
}

// ---- views ----------------------------------------------------------------

const loaders = {};

function show(view) {
  for (const b of $$('nav button')) {
    if (b.dataset.view === view) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  for (const s of $$('main > section')) s.hidden = s.id !== 'view-' + view;
  history.replaceState(null, '', '#' + view);
  if (loaders[view]) loaders[view]();
}

function options(select, items, selected) {
  select.replaceChildren(...items.map(([value, label]) => el('option', { value, selected: value === selected }, label)));
}

function bounds(input, min, max, value) {
  input.min = min;
  if (max !== undefined && max !== null) input.max = max;
  if (value !== undefined) input.value = value;
}

function pngUrl(b64) {
  return 'data:image/png;base64,' + b64;
}

// ---- generate -------------------------------------------------------------

let source = null; // the condition image, a data: URL

function adapterById(id) {
  return adapters.find((a) => String(a.id) === String(id));
}

// The sampler an adapter (or the base model, a = undefined) uses, and its step range.
function stepRange(a) {
  if (a) {
    const s = a.sampling;
    return { sampler: caps.samplers.find((x) => x.name === s.sampler), min: s.min_steps, max: s.max_steps, def: s.default_steps };
  }
  const s = caps.samplers.find((x) => x.name === 'ddim');
  return { sampler: s, min: s.min_steps, max: s.max_steps, def: s.default_steps };
}

function genAdapterChanged() {
  const a = adapterById($('#gen-adapter').value);
  const r = stepRange(a);
  bounds($('#gen-steps'), r.min, r.max, r.def);
  $('#gen-eta-field').hidden = !r.sampler.eta;
  $('#gen-stochastic-field').hidden = !r.sampler.stochastic;
  $('#gen-cond').hidden = !a;
  $('#gen-adapter-info').textContent = a
    ? `task ${a.task}, ${a.kind}, ${r.sampler.name} sampler, ${r.min} to ${r.max} steps`
    : `unconditional ${r.sampler.name} sampling, ${r.min} to ${r.max} steps`;
}

function fillGenerate() {
  const sel = $('#gen-adapter');
  const keep = sel.value;
  options(sel, [['', 'base model: ' + caps.model.name + ' (unconditional)'],
    ...adapters.map((a) => [String(a.id), `${a.name} (${a.task}, ${a.kind})`])], keep);
  options($('#gen-preprocess'), caps.preprocesses.map((p) => [p, p]));
  bounds($('#gen-n'), 1, caps.limits.max_n);
  bounds($('#gen-seed'), 0, caps.limits.seed_max);
  genAdapterChanged();
}

function setSource(url) {
  source = url;
  const img = $('#gen-source');
  img.src = url;
  img.hidden = false;
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

function genRequest() {
  const f = $('#gen-form');
  const body = {};
  const a = adapterById(f.adapter.value);
  for (const name of ['steps', 'n', 'seed']) if (f[name].value !== '') body[name] = Number(f[name].value);
  if (!$('#gen-eta-field').hidden && f.eta.value !== '') body.eta = Number(f.eta.value);
  if (!$('#gen-stochastic-field').hidden && f.stochastic.checked) body.stochastic = true;
  if (a) {
    body.adapter = a.name;
    body.preprocess = f.preprocess.value;
    if (source) body.image = source;
    body.return_condition = true;
  }
  return body;
}

function curlFor(body) {
  const parts = ['curl -s'];
  if (sessionStorage.getItem(KEY)) parts.push('-H "Authorization: Bearer $CODID_KEY"');
  for (const [k, v] of Object.entries(body)) {
    if (k === 'image') parts.push('-F image=@image.png');
    else parts.push(`-F ${k}=${v}`);
  }
  parts.push((API || location.origin) + '/v1/generate');
  return parts.join(' ');
}

function figure(url, caption, download) {
  return el('figure', {}, el('img', { class: 'px', src: url, alt: caption }),
    el('figcaption', {}, caption, download ? ' ' : null,
      download ? el('a', { href: url, download, text: 'download' }) : null));
}

async function generate() {
  const body = genRequest();
  const started = performance.now();
  const d = await api('POST', '/v1/generate', { json: body });
  const wall = performance.now() - started;
  const out = $('#gen-results');
  out.replaceChildren();
  if (d.condition) out.append(figure(pngUrl(d.condition), 'condition'));
  d.images.forEach((b64, i) => {
    const seed = BigInt(d.seed) + BigInt(i);
    out.append(figure(pngUrl(b64), 'seed ' + seed, `codid-${seed}.png`));
  });
  const t = d.timings;
  $('#gen-timings').textContent = `${d.images.length} image(s), ${d.steps} steps, seed ${d.seed}: queue ${t.queue_ms} ms, ` +
    `inference ${t.inference_ms} ms, encode ${t.encode_ms} ms, total ${t.total_ms} ms (${Math.round(wall)} ms in the browser)`;
  $('#gen-curl').value = curlFor({ ...body, seed: d.seed });
  $('#gen-out').hidden = false;
}

async function takeFromBase() {
  const d = await api('POST', '/v1/generate', { json: { n: 1 } });
  setSource(pngUrl(d.images[0]));
}

// ---- adapters -------------------------------------------------------------

async function loadAdapters() {
  adapters = (await api('GET', '/v1/adapters')).adapters;
}

function recipeList(recipe) {
  return el('dl', { class: 'recipe' }, ...Object.entries(recipe).flatMap(([k, v]) =>
    [el('dt', { text: k }), el('dd', { text: typeof v === 'object' ? JSON.stringify(v) : String(v) })]));
}

function qualityTable(ev) {
  const rows = Object.entries(ev.results || {});
  if (!rows.length) return null;
  const cols = [...new Set(rows.flatMap(([, r]) => Object.keys(r)))];
  return el('div', { class: 'table' }, el('table', {},
    el('caption', { text: `quality on ${ev.n} images of ${ev.data}` }),
    el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'run' }), ...cols.map((c) => el('th', { scope: 'col', text: c })))),
    el('tbody', {}, ...rows.map(([name, r]) => el('tr', {}, el('th', { scope: 'row', text: name }), ...cols.map((c) => el('td', { text: r[c] ?? '' })))))));
}

// A sample grid drawn now: photos from the base model, the adapter's own
// degradation of each (preprocess "task") and what the adapter makes of it.
async function sampleGrid(a, box) {
  box.replaceChildren(el('p', { class: 'muted', text: 'drawing samples...' }));
  const photos = await api('POST', '/v1/generate', { json: { n: 4, seed: 0 } });
  const r = stepRange(a);
  const figs = [];
  for (const [i, b64] of photos.images.entries()) {
    const d = await api('POST', '/v1/generate', {
      json: { adapter: a.name, image: b64, preprocess: 'task', seed: i, steps: r.def, return_condition: true },
    });
    figs.push(figure(pngUrl(b64), 'photo'), figure(pngUrl(d.condition), 'condition'), figure(pngUrl(d.images[0]), `${r.def} steps`));
  }
  box.replaceChildren(el('div', { class: 'grid3' }, ...figs));
}

function adapterCard(a) {
  const m = a.metadata;
  const r = stepRange(a);
  // a shipped file's metadata has its recipe and evaluation; a job's
  // adapter has the job's parameters, which are its recipe
  const recipe = m.recipe || (m.kind && m.steps !== undefined ? m : null);
  const ev = m.eval;
  const grid = el('div', { class: 'samples' });
  const err = el('p', { class: 'form-error', role: 'alert', hidden: true });
  const fail = (e) => {
    err.textContent = plainly(e instanceof ApiError ? e : new ApiError(0, e.message));
    err.hidden = false;
    if (e.status === 401 || e.status === 403 || e.status === 429) notice(plainly(e));
  };
  return el('article', { class: 'card', 'data-adapter': a.name },
    el('h3', { text: a.name }),
    el('p', { class: 'muted', text: `task ${a.task}, ${a.kind}, ${r.sampler.name} sampler, ${r.min} to ${r.max} steps, base ${a.base_hash}` }),
    recipe ? el('details', {}, el('summary', { text: 'recipe' }), recipeList(recipe)) : el('p', { class: 'muted', text: 'no recipe recorded' }),
    ev ? qualityTable(ev) : el('p', { class: 'muted', text: 'not evaluated yet' }),
    grid,
    err,
    el('div', { class: 'actions' },
      el('button', { type: 'button', onclick: () => { useAdapter(a.id); } }, 'Use in Generate'),
      el('button', { type: 'button', onclick: () => sampleGrid(a, grid).catch(fail) }, 'Draw samples'),
      el('button', {
        type: 'button', class: 'danger', onclick: async () => {
          if (!confirm(`Delete the adapter ${a.name}?`)) return;
          try {
            await api('DELETE', '/v1/adapters/' + a.id);
            await loaders.adapters();
          } catch (e) { fail(e); }
        },
      }, 'Delete (admin)')));
}

loaders.adapters = async () => {
  const sec = $('#view-adapters');
  try {
    await loadAdapters();
    $('#adapters-list').replaceChildren(...(adapters.length ? adapters.map(adapterCard) : [el('p', { text: 'No adapters yet: train one under Jobs.' })]));
  } catch (e) {
    showError(sec, e);
  }
};

async function useAdapter(id) {
  show('generate');
  await loaders.generate();
  $('#gen-adapter').value = String(id);
  genAdapterChanged();
}

loaders.generate = async () => {
  try {
    await loadAdapters();
  } catch (e) {
    showError($('#gen-form'), e);
  }
  fillGenerate();
};

// ---- datasets -------------------------------------------------------------

let datasets = [];

loaders.datasets = async () => {
  const c = caps.datasets;
  options($('#ds-builtin'), c.builtins.map((b) => [b, b]), $('#ds-builtin').value || undefined);
  options($('#ds-split'), c.splits.map((s) => [s, s]), $('#ds-split').value || undefined);
  try {
    datasets = (await api('GET', '/v1/datasets')).datasets;
  } catch (e) {
    showError($('#view-datasets'), e);
    return;
  }
  $('#ds-table tbody').replaceChildren(...datasets.map((d) => el('tr', { 'data-dataset': d.name },
    el('th', { scope: 'row', text: d.name }),
    el('td', { text: d.count }),
    el('td', { text: `${d.size}x${d.size}x${d.channels}` }),
    el('td', { text: d.source + (d.split ? ' ' + d.split : '') }),
    el('td', {}, el('button', { type: 'button', onclick: () => preview(d) }, 'Preview'), ' ',
      el('button', { type: 'button', class: 'danger', onclick: () => deleteDataset(d) }, 'Delete (admin)')))));
};

function listError(id, e) {
  const p = $(id);
  p.textContent = plainly(e);
  p.hidden = false;
  if (e.status === 401 || e.status === 403 || e.status === 429) notice(plainly(e));
}

async function preview(d) {
  try {
    const blob = await api('GET', `/v1/datasets/${d.id}/preview?count=32`, { as: 'blob' });
    const fig = $('#ds-preview');
    $('img', fig).src = URL.createObjectURL(blob);
    $('img', fig).alt = 'the first images of ' + d.name;
    $('figcaption', fig).textContent = `${d.name}: the first ${Math.min(32, d.count)} of ${d.count} images`;
    fig.hidden = false;
  } catch (e) {
    listError('#ds-list-error', e);
  }
}

async function deleteDataset(d) {
  if (!confirm(`Delete the dataset ${d.name}?`)) return;
  try {
    await api('DELETE', '/v1/datasets/' + d.id);
    $('#ds-list-error').hidden = true;
    await loaders.datasets();
  } catch (e) {
    listError('#ds-list-error', e);
  }
}

async function uploadDataset() {
  const f = $('#ds-upload');
  const files = [...f.files.files];
  const name = f.name.value.trim();
  if (!files.length) throw new ApiError(400, 'files: choose PNG files or a tar');
  if (files.length === 1 && /\.tar$/i.test(files[0].name)) {
    await api('POST', '/v1/datasets?name=' + encodeURIComponent(name), { body: files[0], type: 'application/x-tar' });
  } else {
    const form = new FormData();
    if (name) form.append('name', name);
    for (const file of files) form.append('files', file, file.name);
    await api('POST', '/v1/datasets', { body: form });
  }
  f.reset();
  $('#ds-picked').replaceChildren();
  await loaders.datasets();
}

async function importDataset() {
  const f = $('#ds-import');
  const body = { builtin: f.builtin.value, split: f.split.value };
  if (f.limit.value !== '') body.limit = Number(f.limit.value);
  if (f.name.value.trim()) body.name = f.name.value.trim();
  await api('POST', '/v1/datasets', { json: body });
  await loaders.datasets();
}

// ---- jobs -----------------------------------------------------------------

function jobField(name) {
  return caps.jobs.fields.find((f) => f.name === name);
}

// The kinds the form offers: those that train an adapter (take a task).
function adapterJobKinds() {
  return jobField('task').kinds;
}

const NUMBER_FIELDS = ['steps', 'batch_size', 'lr', 'seed'];

function numberInput(f, value) {
  const id = 'job-' + f.name;
  const input = el('input', { id, name: f.name, type: 'number', value, required: true,
    step: f.type === 'integer' ? '1' : 'any', min: f.exclusive_minimum ? undefined : f.minimum, max: f.exclusive_maximum ? undefined : f.maximum });
  return el('div', { class: 'field' }, el('label', { for: id, text: f.name.replace('_', ' ') }), input);
}

function jobFormChanged() {
  const kind = $('#job-kind').value;
  const defaults = caps.jobs.defaults[kind];
  const box = $('#job-numbers');
  const old = Object.fromEntries($$('input', box).map((i) => [i.name, i.value]));
  box.replaceChildren(...NUMBER_FIELDS.map(jobField).filter((f) => f.kinds.includes(kind))
    .map((f) => numberInput(f, old[f.name] ?? defaults[f.name])));
  const kindField = jobField('adapter_kind');
  if (kindField.kinds.includes(kind)) {
    const id = 'job-adapter_kind';
    const prev = $('#' + id)?.value;
    const sel = el('select', { id, name: 'adapter_kind' });
    options(sel, kindField.options.map((o) => [o, o]), prev || defaults.adapter_kind);
    box.prepend(el('div', { class: 'field' }, el('label', { for: id, text: 'adapter kind' }), sel));
  }
  $('#job-teacher-field').hidden = !jobField('teacher').kinds.includes(kind);
  const task = $('#job-task').value;
  $('#job-task-params').replaceChildren(...caps.jobs.task_params.filter((p) => p.task === task).map((p) => {
    const id = 'job-task-' + p.name;
    const name = 'task.' + p.name;
    let input;
    if (p.options) {
      input = el('select', { id, name });
      options(input, p.options.map((o) => [String(o), String(o)]), String(p.default));
    } else if (p.type === 'boolean') {
      input = el('select', { id, name });
      options(input, [['true', 'yes'], ['false', 'no']], String(p.default));
    } else {
      input = el('input', { id, name, type: 'number', step: 'any', min: p.minimum, max: p.maximum, value: p.default });
    }
    return el('div', { class: 'field' }, el('label', { for: id, text: p.name.replace('_', ' ') }), input);
  }));
}

loaders.jobs = async () => {
  const kindSel = $('#job-kind');
  if (!kindSel.options.length) {
    options(kindSel, adapterJobKinds().map((k) => [k, k]));
    options($('#job-task'), caps.tasks.map((t) => [t.name, t.name]));
  }
  try {
    const [ds, ad] = await Promise.all([api('GET', '/v1/datasets'), api('GET', '/v1/adapters')]);
    datasets = ds.datasets;
    adapters = ad.adapters;
    options($('#job-dataset'), datasets.map((d) => [d.name, `${d.name} (${d.count} images)`]), $('#job-dataset').value || undefined);
    options($('#job-teacher'), adapters.map((a) => [a.name, a.name]), $('#job-teacher').value || undefined);
  } catch (e) {
    showError($('#job-form'), e);
  }
  jobFormChanged();
  await refreshQueue();
};

async function refreshQueue() {
  let jobs;
  try {
    jobs = (await api('GET', '/v1/jobs?limit=50')).jobs;
    $('#job-list-error').hidden = true;
  } catch (e) {
    listError('#job-list-error', e);
    return;
  }
  const queued = jobs.filter((j) => j.status === 'queued').map((j) => j.id).sort((a, b) => a - b);
  $('#job-table tbody').replaceChildren(...jobs.map((j) => {
    const pos = j.status === 'queued' ? String(queued.indexOf(j.id) + 1) : j.status === 'running' ? 'running' : '';
    const p = j.progress;
    const live = j.status === 'queued' || j.status === 'running';
    return el('tr', { 'data-job': j.id },
      el('th', { scope: 'row', text: '#' + j.id }),
      el('td', { text: j.kind }),
      el('td', { class: 'status', text: j.status + (j.error ? ': ' + j.error : '') }),
      el('td', { text: pos }),
      el('td', { text: `${p.step} / ${p.total}` }),
      el('td', {}, el('button', { type: 'button', onclick: () => watch(j.id) }, 'Watch'), ' ',
        live ? el('button', { type: 'button', class: 'danger', onclick: () => cancelJob(j.id) }, 'Cancel') : null));
  }));
}

// A running job stops at its next step: the live view follows it there.
async function cancelJob(id) {
  try {
    await api('POST', `/v1/jobs/${id}/cancel`);
  } catch (e) {
    listError('#job-list-error', e);
  }
  await refreshQueue();
  if (!watching || watching.id !== id) watch(id);
}

async function submitJob() {
  const f = $('#job-form');
  const kind = f.kind.value;
  const body = { kind, dataset: f.dataset.value, task: { name: f['task.name'].value } };
  for (const input of $$('#job-task-params [name]')) {
    const k = input.name.slice(5);
    body.task[k] = input.value === 'true' ? true : input.value === 'false' ? false : Number(input.value);
  }
  for (const input of $$('#job-numbers [name]')) {
    if (input.value === '') continue;
    body[input.name] = input.tagName === 'SELECT' ? input.value : Number(input.value);
  }
  if (!$('#job-teacher-field').hidden) body.teacher = f.teacher.value;
  if (f.name.value.trim()) body.name = f.name.value.trim();
  const job = await api('POST', '/v1/jobs', { json: body });
  await refreshQueue();
  watch(job.id);
}

// ---- a job's live progress: the SSE stream, read with fetch so that the
// key travels in a header (EventSource cannot send one) ---------------------

let watching = null; // {id, abort}
let points = [];

function drawLoss() {
  const c = $('#loss-chart');
  const w = c.clientWidth || c.width;
  c.width = w;
  const h = c.height;
  const g = c.getContext('2d');
  const css = getComputedStyle(document.body);
  g.clearRect(0, 0, w, h);
  g.strokeStyle = css.color;
  g.strokeRect(0.5, 0.5, w - 1, h - 1);
  if (!points.length) return;
  const total = Math.max(...points.map((p) => p.total), 1);
  const losses = points.map((p) => p.loss).filter((x) => Number.isFinite(x));
  const lo = Math.min(...losses), hi = Math.max(...losses);
  const x = (s) => 8 + (s / total) * (w - 16);
  const y = (l) => h - 8 - (hi > lo ? (l - lo) / (hi - lo) : 0.5) * (h - 16);
  const accent = css.getPropertyValue('--accent').trim() || '#36c';
  const drawn = points.filter((p) => Number.isFinite(p.loss));
  g.strokeStyle = g.fillStyle = accent;
  g.beginPath();
  drawn.forEach((p, i) => (i ? g.lineTo(x(p.step), y(p.loss)) : g.moveTo(x(p.step), y(p.loss))));
  g.stroke();
  for (const p of drawn) g.fillRect(x(p.step) - 2, y(p.loss) - 2, 4, 4);
  g.fillStyle = css.color;
  g.fillText(`loss ${lo.toPrecision(3)}..${hi.toPrecision(3)}`, 12, 18);
}

function fmtEta(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '-';
  return s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`;
}

function showProgress(p) {
  $('#job-progress').max = p.total || 1;
  $('#job-progress').value = p.step;
  const num = (v, d) => (v === null || v === undefined ? '-' : Number(v).toFixed(d));
  $('#job-live-stats').textContent = `step ${p.step} of ${p.total}, loss ${num(p.loss, 4)}, ${num(p.it_per_s, 2)} it/s, ETA ${fmtEta(p.eta_s)}`;
}

function showState(status, error) {
  const s = $('#job-live-status');
  s.textContent = status + (error ? ': ' + error : '');
  s.dataset.status = status;
  $('#job-cancel').hidden = !(status === 'queued' || status === 'running');
}

function showResult(result) {
  const a = $('#job-adapter-link');
  if (!result || !result.adapter_id) return;
  a.textContent = 'Use the new adapter in Generate';
  a.href = '#generate';
  a.onclick = (ev) => {
    ev.preventDefault();
    useAdapter(result.adapter_id);
  };
  a.hidden = false;
}

function onEvent(kind, data) {
  if (kind === 'job') {
    showState(data.status, data.error);
    showProgress(data.progress);
    if (data.progress.step > 0 && Number.isFinite(data.progress.loss)) points.push(data.progress);
    showResult(data.result);
  } else if (kind === 'progress') {
    points.push(data);
    showProgress(data);
  } else if (kind === 'state') {
    showState(data.status, data.error);
    refreshQueue();
  } else if (kind === 'result') {
    showResult(data);
  }
  drawLoss();
}

async function watch(id) {
  if (watching) watching.abort.abort();
  const abort = new AbortController();
  watching = { id, abort };
  points = [];
  $('#job-live').hidden = false;
  $('#job-live-title').textContent = 'Job #' + id;
  $('#job-adapter-link').hidden = true;
  $('#job-cancel').onclick = () => cancelJob(id);
  $('#job-live-stats').textContent = '';
  showState('connecting');
  drawLoss();
  let res;
  try {
    res = await fetch(`${API}/v1/jobs/${id}/events`, { headers: { ...authHeaders(), Accept: 'text/event-stream' }, signal: abort.signal });
    if (!res.ok) {
      let detail = res.statusText;
      try { detail = (await res.json()).detail; } catch (e) { /* not JSON */ }
      throw new ApiError(res.status, detail, res.headers.get('Retry-After'));
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let kind = 'message', data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) kind = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trim();
        }
        if (data) onEvent(kind, JSON.parse(data));
      }
    }
  } catch (e) {
    if (e.name !== 'AbortError') listError('#job-list-error', e instanceof ApiError ? e : new ApiError(0, e.message));
  }
}

// ---- start ----------------------------------------------------------------

async function start() {
  $('#api-key').value = sessionStorage.getItem(KEY) || '';
  try {
    caps = await api('GET', '/v1/capabilities');
  } catch (e) {
    notice(plainly(e));
    return false;
  }
  const m = caps.model;
  $('#model-line').textContent = `${m.name}: ${m.kind} model, ${m.sample_size}x${m.sample_size}x${m.channels}, ` +
    `${m.trained ? 'trained' : 'untrained (its images are noise)'}, on ${m.device}`;
  notice('');
  return true;
}

async function boot() {
  for (const b of $$('nav button')) b.addEventListener('click', () => caps && show(b.dataset.view));
  $('#key-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const k = $('#api-key').value.trim();
    if (k) sessionStorage.setItem(KEY, k);
    else sessionStorage.removeItem(KEY);
    if (await start()) show(location.hash.slice(1) || 'generate');
  });
  $('#key-forget').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    $('#api-key').value = '';
  });
  $('#gen-adapter').addEventListener('change', genAdapterChanged);
  $('#gen-file').addEventListener('change', async (ev) => {
    if (ev.target.files[0]) setSource(await readFile(ev.target.files[0]));
  });
  const drop = $('#gen-drop');
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', async (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    const file = ev.dataTransfer.files[0];
    if (file) setSource(await readFile(file));
  });
  $('#gen-take').addEventListener('click', () => takeFromBase().catch((e) => showError($('#gen-form'), e)));
  $('#gen-copy').addEventListener('click', () => {
    const t = $('#gen-curl');
    t.select();
    navigator.clipboard?.writeText(t.value).catch(() => document.execCommand('copy'));
  });
  onSubmit($('#gen-form'), generate);
  onSubmit($('#ds-upload'), uploadDataset);
  onSubmit($('#ds-import'), importDataset);
  onSubmit($('#job-form'), submitJob);
  $('#ds-files').addEventListener('change', (ev) => {
    $('#ds-picked').replaceChildren(...[...ev.target.files].filter((f) => /\.png$/i.test(f.name)).slice(0, 32)
      .map((f) => el('img', { class: 'px', src: URL.createObjectURL(f), alt: f.name })));
  });
  $('#job-kind').addEventListener('change', jobFormChanged);
  $('#job-task').addEventListener('change', jobFormChanged);
  if (await start()) show(location.hash.slice(1) || 'generate');
  document.body.dataset.ready = '1';
}

boot();
