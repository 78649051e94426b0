// A function's page: status and conditions, Events, triggers, code, dependencies, environment
// (a Secret's values are never read), pods, a call form, followed logs and charts. Live: the
// function, its pods and Events follow watches.
import { h, replace, age, duration, announce, field } from './dom.js';
import { GROUP, path, live, Store, request, follow, ApiError } from './api.js';
import { editor, language } from './editor.js';
import { scrape, scrapePods, History, chart } from './metrics.js';
import { readyCell } from './functions.js';
import { TRIGGER_KINDS, targets } from './triggers.js';

/** Log lines kept on the page while following (older ones are dropped). */
const LOG_LINES = 2000;

/** How one environment variable is shown: its value, or where it comes from (never a Secret's value). */
export function envValue(variable) {
  if (variable.value !== undefined) return variable.value;
  const from = variable.valueFrom || {};
  if (from.secretKeyRef) return `from Secret ${from.secretKeyRef.name}, key ${from.secretKeyRef.key} (value not shown)`;
  if (from.configMapKeyRef) return `from ConfigMap ${from.configMapKeyRef.name}, key ${from.configMapKeyRef.key}`;
  if (from.fieldRef) return `from field ${from.fieldRef.fieldPath}`;
  if (from.resourceFieldRef) return `from resource ${from.resourceFieldRef.resource}`;
  return '';
}

export function container(fn) {
  return ((((((fn.spec || {}).deployment || {}).spec || {}).template || {}).spec || {}).containers || [])[0] || {};
}

/** The port of the function's Service (the proxy's `name:port`). */
export function servicePort(fn) {
  const port = (((fn.spec || {}).service || {}).ports || [])[0] || {};
  return port.name || port.port || 'http-function-port';
}

function podReady(pod) {
  return ((pod.status || {}).conditions || []).some((c) => c.type === 'Ready' && c.status === 'True');
}

function section(title, id, ...content) {
  return h('section', { 'aria-labelledby': id }, h('h2', { id }, title), ...content);
}

function table(caption, headers, rows, empty) {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h('table', {}, h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, rows));
}

export function functionView(main, namespace, name) {
  const controller = new AbortController();
  const signal = controller.signal;
  const fnPath = path(GROUP, 'functions', namespace, name);
  let fn;
  const title = h('h1', {}, `Function ${name}`);
  const summary = h('div');
  const conditions = h('div');
  const events = h('div');
  const triggers = h('div');
  const code = h('div');
  const deps = h('div');
  const env = h('div');
  const pods = h('div');
  const charts = h('div', { class: 'grid2' });
  const deleteArea = h('div');
  const callArea = callForm(namespace, name, () => fn);
  const logArea = h('div');

  replace(main, title, summary,
    section('Conditions', 's-conditions', conditions),
    section('Events', 's-events', events),
    section('Pods', 's-pods', pods),
    section('Call', 's-call', callArea),
    section('Logs', 's-logs', logArea),
    section('Metrics', 's-metrics', charts),
    section('Triggers', 's-triggers', triggers),
    section('Code', 's-code', code),
    section('Dependencies', 's-deps', deps),
    section('Environment', 's-env', env),
    section('Delete', 's-delete', deleteArea));

  deleteArea.append(deleteControl(fnPath, name));

  function renderFunction() {
    if (!fn) return;
    const c = container(fn);
    const generation = fn.metadata.generation;
    const observed = (fn.status || {}).observedGeneration;
    replace(summary, h('dl', { class: 'kv' },
      h('dt', {}, 'Namespace'), h('dd', {}, namespace),
      h('dt', {}, 'Ready'), h('dd', { id: 'fn-ready' }, readyCell(fn).textContent),
      h('dt', {}, 'Runtime'), h('dd', {}, fn.spec.runtime || ''),
      h('dt', {}, 'Handler'), h('dd', {}, fn.spec.handler || ''),
      h('dt', {}, 'Generation'), h('dd', { id: 'fn-generation' }, `${generation}${observed !== undefined ? ` (observed ${observed})` : ''}`),
      h('dt', {}, 'Labels'), h('dd', {}, Object.entries(fn.metadata.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ')),
      h('dt', {}, 'Age'), h('dd', {}, age(fn.metadata.creationTimestamp))),
    h('p', {}, h('a', { href: `#/edit/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}` }, 'Edit this function')));
    const conds = ((fn.status || {}).conditions || []);
    replace(conditions, table('Conditions', ['Type', 'Status', 'Reason', 'Message', 'Since'],
      conds.map((x) => h('tr', {}, h('td', {}, x.type), h('td', {}, x.status), h('td', {}, x.reason || ''), h('td', {}, x.message || ''), h('td', {}, age(x.lastTransitionTime)))),
      'No conditions yet.'));
    const text = fn.spec['function-content-type'] && fn.spec['function-content-type'].includes('base64')
      ? '(an archive or base64 content, not shown)' : (fn.spec.function || '');
    replace(code, editor({ id: 'code-view', text, lang: language(fn.spec.runtime), label: `Code of ${name}`, readonly: true }).element);
    replace(deps, fn.spec.deps ? h('pre', {}, fn.spec.deps) : h('p', { class: 'muted' }, 'No dependencies.'));
    replace(env, table('Environment', ['Name', 'Value'],
      (c.env || []).map((v) => h('tr', {}, h('th', { scope: 'row' }, v.name), h('td', {}, envValue(v)))), 'No environment variables.'));
  }

  // The function itself, live.
  live(path(GROUP, 'functions', namespace), { fieldSelector: `metadata.name=${name}` }, {
    onReset: () => {},
    onPage: (items) => { if (items[0]) { fn = items[0]; renderFunction(); loadTriggers(); } },
    onEvent: (type, o) => {
      if (type === 'DELETED') { replace(summary, h('p', { class: 'bad', role: 'alert' }, `Function ${name} was deleted.`)); fn = undefined; return; }
      fn = o; renderFunction(); announce(`Function ${name} updated: generation ${o.metadata.generation}`);
    },
    onError: (e) => replace(summary, h('p', { class: 'bad', role: 'alert' }, `Cannot read function: ${e.message}`)),
  }, signal);

  // Its Events, live.
  const eventStore = new Store(() => {
    const mine = eventStore.sorted().filter((e) => e.involvedObject && e.involvedObject.name === name && (!e.involvedObject.kind || e.involvedObject.kind === 'Function'))
      .sort((a, b) => String(b.lastTimestamp || b.eventTime || '').localeCompare(String(a.lastTimestamp || a.eventTime || '')));
    replace(events, table('Events', ['Type', 'Reason', 'Message', 'Count', 'Last seen'],
      mine.map((e) => h('tr', {}, h('td', { class: e.type === 'Warning' ? 'bad' : '' }, e.type || ''), h('td', {}, e.reason || ''), h('td', {}, e.message || ''), h('td', {}, String(e.count || 1)), h('td', {}, age(e.lastTimestamp || e.eventTime)))),
      'No events.'));
  });
  live(path('/api/v1', 'events', namespace), {}, eventStore.callbacks(), signal);

  // Its pods, live; the log viewer follows one of them.
  const podStore = new Store(() => {
    const list = podStore.sorted();
    replace(pods, table('Pods', ['Name', 'Phase', 'Ready', 'Restarts', 'Age'],
      list.map((p) => h('tr', {}, h('td', {}, p.metadata.name), h('td', {}, (p.status || {}).phase || ''), h('td', {}, podReady(p) ? 'True' : 'False'),
        h('td', { class: 'num' }, String((((p.status || {}).containerStatuses || [])[0] || {}).restartCount || 0)), h('td', {}, age(p.metadata.creationTimestamp)))),
      'No pods: the function has no instance running.'));
    logs.update(list);
  });
  const logs = logViewer(logArea, namespace, signal);
  live(path('/api/v1', 'pods', namespace), { labelSelector: `function=${name}` }, podStore.callbacks(), signal);

  // Triggers pointing at it (by name or by a selector of its labels), once it is known.
  let triggersLoaded = false;
  function loadTriggers() {
    if (triggersLoaded || !fn) return;
    triggersLoaded = true;
    const target = fn;
    Promise.all(TRIGGER_KINDS.map(async (kind) => {
      try {
        const list = await request('GET', path(GROUP, kind.plural, namespace), undefined, signal);
        return (list.items || []).filter((t) => targets(t, target)).map((t) => h('tr', {}, h('td', {}, kind.label), h('td', {}, t.metadata.name), h('td', {}, kind.describe(t))));
      } catch { return []; }
    })).then((rows) => replace(triggers, table('Triggers', ['Kind', 'Name', 'Details'], rows.flat(), 'No triggers call this function.'), h('p', {}, h('a', { href: '#/triggers' }, 'Manage triggers'))));
  }

  // Charts from periodic scrapes: kelp up's /metrics, else (a cluster) each pod's through the pod proxy.
  const history = new History();
  const drawCharts = () => {
    const series = history.series();
    replace(charts,
      chart('Calls and errors per minute', series, ['calls', 'errors']),
      chart('Latency p50 and p99 (seconds)', series, ['p50', 'p99'], (v) => (v === undefined ? '–' : duration(v))),
      chart('Cold starts per interval', series, ['coldStarts'], (v) => (v === undefined ? '–' : String(v))),
      chart('Instances', series, ['instances'], (v) => (v === undefined ? '–' : String(v))),
      chart('Trigger lag and dead letters', series, ['lag', 'deadLetters'], (v) => (v === undefined ? '–' : String(v))));
  };
  const sample = async () => {
    let got = await scrape(signal);
    const key = `${namespace}/${name}`;
    if (!got || !got.has(key)) {
      // (Before its pods are listed, a function is not known to have none: no point yet.)
      if (!podStore.listed) return;
      got = await scrapePods(podStore.sorted(), signal);
    }
    history.add(Date.now(), got.get(key) || { calls: 0, errors: 0, buckets: new Map(), coldStarts: 0, instances: 0, lag: 0, deadLetters: 0 });
    drawCharts();
  };
  drawCharts();
  sample();
  const timer = setInterval(sample, 5000);
  return () => { controller.abort(); clearInterval(timer); logs.stop(); };
}

function deleteControl(fnPath, name) {
  const area = h('div');
  const ask = h('button', { type: 'button', class: 'danger', onclick: () => {
    replace(area, h('p', {}, `Delete function ${name}? Its pods stop and its triggers no longer call it.`),
      h('button', { type: 'button', class: 'danger', id: 'confirm-delete', onclick: async () => {
        try {
          await request('DELETE', fnPath);
          announce(`Function ${name} deleted`);
          location.hash = '#/';
        } catch (e) { area.append(h('p', { class: 'bad', role: 'alert' }, `Cannot delete: ${e.message}`)); }
      } }, `Yes, delete ${name}`), ' ',
      h('button', { type: 'button', class: 'secondary', onclick: () => replace(area, ask) }, 'Cancel'));
    document.getElementById('confirm-delete').focus();
  } }, `Delete ${name}`);
  area.append(ask);
  return area;
}

function callForm(namespace, name, current) {
  const method = h('select', {}, ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].map((m) => h('option', { value: m }, m)));
  const sub = h('input', { value: '/', size: 30 });
  const headers = h('textarea', { rows: 3 });
  const body = h('textarea', { rows: 4 });
  const result = h('div', { 'aria-live': 'polite' });
  const form = h('form', { onsubmit: async (e) => {
    e.preventDefault();
    const fn = current();
    const port = fn ? servicePort(fn) : 'http-function-port';
    const init = { method: method.value, headers: {}, credentials: 'same-origin' };
    for (const line of headers.value.split('\n')) {
      const at = line.indexOf(':');
      if (at > 0) init.headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    if (!['GET', 'HEAD'].includes(method.value)) init.body = body.value;
    const rest = sub.value.startsWith('/') ? sub.value.slice(1) : sub.value;
    const url = `/api/v1/namespaces/${encodeURIComponent(namespace)}/services/${encodeURIComponent(name)}:${port}/proxy/${rest}`;
    replace(result, h('p', { class: 'muted' }, 'Calling…'));
    const started = performance.now();
    try {
      const response = await fetch(url, init);
      const text = await response.text();
      const took = performance.now() - started;
      const lines = [...response.headers.entries()].map(([k, v]) => `${k}: ${v}`).join('\n');
      replace(result,
        h('p', { id: 'call-status' }, h('strong', { class: response.ok ? 'ok' : 'bad' }, `${response.status} ${response.statusText}`), ` in ${took.toFixed(0)} ms`),
        h('h3', {}, 'Response headers'), h('pre', {}, lines),
        h('h3', {}, 'Response body'), h('pre', { id: 'call-body' }, text));
    } catch (error) {
      replace(result, h('p', { class: 'bad', role: 'alert' }, `The call failed: ${error.message}`));
    }
  } },
  h('div', { class: 'toolbar' }, field('Method', 'call-method', method), field('Path', 'call-path', sub)),
  field('Headers', 'call-headers', headers, 'One "Name: value" per line'),
  field('Body', 'call-body-input', body),
  h('button', { type: 'submit' }, 'Send'));
  return h('div', {}, form, result);
}

/** Ended pods kept selectable in the log viewer (kelp up keeps the last ended instances' logs). */
const ENDED_KEPT = 5;

function logViewer(area, namespace, signal) {
  const select = h('select', {});
  const out = h('pre', { class: 'log', id: 'log', role: 'log', tabindex: '0', 'aria-label': 'Log lines' });
  const state = h('p', { class: 'muted', 'aria-live': 'polite' }, 'Choose a pod to follow its log.');
  let stream;
  let live = [];
  let ended = [];
  // Lines arrive faster than they are worth drawing: they are appended once per frame, as one
  // text node per batch, and the oldest batches go once more than LOG_LINES are shown.
  let batches = [];
  let shown = 0;
  let pending = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (!pending.length) return;
    const node = document.createTextNode(pending.join(''));
    out.append(node);
    batches.push({ node, count: pending.length });
    shown += pending.length;
    pending = [];
    while (batches.length > 1 && shown - batches[0].count >= LOG_LINES) {
      const first = batches.shift();
      first.node.remove();
      shown -= first.count;
    }
    out.scrollTop = out.scrollHeight;
  };
  const addLine = (line) => {
    pending.push(`${line}\n`);
    if (pending.length > LOG_LINES) pending.splice(0, pending.length - LOG_LINES);
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(flush);
    }
  };
  const start = () => {
    if (stream) stream.abort();
    out.replaceChildren();
    batches = [];
    shown = 0;
    pending = [];
    const pod = select.value;
    if (!pod) return;
    stream = new AbortController();
    signal.addEventListener('abort', () => stream.abort(), { once: true });
    const over = ended.includes(pod);
    state.textContent = over ? `The log of ${pod}, which ended` : `Following ${pod}`;
    const q = over ? '' : '?follow=true&tailLines=200';
    follow(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log${q}`, addLine, stream.signal)
      .then(() => { if (!over) state.textContent = `The log of ${pod} ended.`; }, (e) => {
        if (!(e instanceof DOMException)) state.textContent = e instanceof ApiError ? `No log: ${e.message}` : `The log stopped: ${e.message}`;
      });
  };
  select.addEventListener('change', start);
  area.append(h('div', { class: 'toolbar' }, field('Pod', 'log-pod', select, 'Running pods, then the ones that ended while this page was open')), state, out);
  return {
    update(pods) {
      const now = pods.map((p) => p.metadata.name);
      if (now.join() === live.join()) return;
      // Pods that went away stay readable (their last lines), newest first.
      ended = [...live.filter((n) => !now.includes(n)), ...ended.filter((n) => !now.includes(n))].slice(0, ENDED_KEPT);
      live = now;
      const chosen = select.value;
      select.replaceChildren(h('option', { value: '' }, '(none)'),
        ...live.map((n) => h('option', { value: n }, n)),
        ...ended.map((n) => h('option', { value: n }, `${n} (ended)`)));
      if (live.includes(chosen) || ended.includes(chosen)) select.value = chosen;
      // Nothing followed yet, or the followed pod ended: follow a running one.
      if ((!chosen || !live.includes(chosen)) && live.length) { select.value = live[0]; start(); }
    },
    stop() { if (stream) stream.abort(); },
  };
}
