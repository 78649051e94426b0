// Triggers: every kind's list in a namespace, live, with each trigger's health from its status
// (Ready, lag, last error: kept current by the same watches); create (HTTP, cron, Kafka, NATS); delete.
import { h, replace, field, fieldError, announce, duration } from './dom.js';
import { GROUP, path, live, Store, request, causes } from './api.js';
import { readyCell } from './functions.js';

function selector(t) {
  const labels = ((t.spec || {}).functionSelector || {}).matchLabels || {};
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
}

/** The trigger kinds: plural, label, what a row says, and (for those created here) their fields. */
export const TRIGGER_KINDS = [
  { kind: 'HTTPTrigger', plural: 'httptriggers', label: 'HTTP', describe: (t) => `function ${t.spec['function-name'] || ''}, ${t.spec['host-name'] || ''}${t.spec.path ? `/${t.spec.path}` : ''}` },
  { kind: 'CronJobTrigger', plural: 'cronjobtriggers', label: 'Cron', describe: (t) => `function ${t.spec['function-name'] || ''}, schedule ${t.spec.schedule || ''}` },
  { kind: 'KafkaTrigger', plural: 'kafkatriggers', label: 'Kafka', describe: (t) => `topic ${t.spec.topic || ''}, functions ${selector(t)}` },
  { kind: 'NATSTrigger', plural: 'natstriggers', label: 'NATS', describe: (t) => `topic ${t.spec.topic || ''}, functions ${selector(t)}` },
  { kind: 'KinesisTrigger', plural: 'kinesistriggers', label: 'Kinesis', describe: (t) => `function ${t.spec['function-name'] || ''}, stream ${t.spec.stream || ''}` },
];

/** Whether trigger `t` calls function `fn` (by name, or by its label selector). */
export function targets(t, fn) {
  const spec = t.spec || {};
  if (spec['function-name'] !== undefined) return spec['function-name'] === fn.metadata.name;
  const wanted = (spec.functionSelector || {}).matchLabels;
  if (!wanted) return false;
  const labels = fn.metadata.labels || {};
  return Object.entries(wanted).every(([k, v]) => labels[k] === v);
}

/** The Ready cell of the lists, with the condition's reason and message after it as text. */
function readyWithReason(t) {
  const cell = readyCell(t);
  const c = ((t.status || {}).conditions || []).find((x) => x.type === 'Ready');
  const why = c ? [c.reason, c.message].filter(Boolean).join(': ') : '';
  if (why) cell.append(h('span', { class: 'muted reason' }, ` (${why})`));
  return cell;
}

/** How far behind the consumers are: Kafka's lag in messages, Kinesis's time behind the shard's
 * latest record; '–' for the kinds without one, or before a consumer reported it. */
function lag(kind, t) {
  const status = t.status || {};
  if (kind === 'KafkaTrigger' && typeof status.lag === 'number') return `${status.lag} messages`;
  if (kind === 'KinesisTrigger' && typeof status.millisBehindLatest === 'number') return duration(status.millisBehindLatest / 1000);
  return '–';
}

const FIELDS = [['metadata.name', 'tr-name'], ['spec.function-name', 'tr-function'], ['spec.functionSelector', 'tr-function'],
  ['spec.schedule', 'tr-schedule'], ['spec.host-name', 'tr-host'], ['spec.path', 'tr-path'], ['spec.topic', 'tr-topic'], ['spec.payload', 'tr-payload']];

export function triggersView(main, params, defaultNamespace) {
  const controller = new AbortController();
  const namespace = params.get('namespace') || defaultNamespace;
  const tbody = h('tbody');
  const stores = [];
  const render = () => {
    const rows = [];
    TRIGGER_KINDS.forEach((kind, i) => {
      for (const t of stores[i].sorted()) {
        rows.push(h('tr', { 'data-name': t.metadata.name },
          h('td', {}, kind.label), h('th', { scope: 'row' }, t.metadata.name), h('td', {}, kind.describe(t)),
          readyWithReason(t), h('td', { class: 'num nowrap' }, lag(kind.kind, t)), h('td', {}, (t.status || {}).lastError || '–'),
          h('td', {}, h('button', { type: 'button', class: 'secondary', 'aria-label': `Delete ${kind.label} trigger ${t.metadata.name}`, onclick: async (e) => {
            e.target.disabled = true;
            try { await request('DELETE', path(GROUP, kind.plural, namespace, t.metadata.name)); announce(`Trigger ${t.metadata.name} deleted`); } catch (err) { e.target.disabled = false; announce(`Cannot delete: ${err.message}`); }
          } }, 'Delete'))));
      }
    });
    tbody.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No triggers.'))]));
  };
  TRIGGER_KINDS.forEach((kind, i) => {
    stores[i] = new Store(render);
    // A kind the API does not serve (a cluster without the CRD) only leaves its rows out.
    live(path(GROUP, kind.plural, namespace), {}, stores[i].callbacks(), controller.signal);
  });

  const kindSelect = h('select', {}, TRIGGER_KINDS.slice(0, 4).map((k) => h('option', { value: k.kind }, k.label)));
  const name = h('input', { autocomplete: 'off' });
  const fn = h('input', { autocomplete: 'off' });
  const schedule = h('input', { value: '*/5 * * * *', autocomplete: 'off' });
  const host = h('input', { autocomplete: 'off' });
  const pathInput = h('input', { autocomplete: 'off' });
  const topic = h('input', { autocomplete: 'off' });
  const payload = h('textarea', { rows: 2 });
  // One Topic field for both kinds: an element has one parent, so a second field around the same
  // input would take it out of the first.
  const topicField = field('Topic', 'tr-topic', topic);
  const perKind = {
    HTTPTrigger: [field('Host name', 'tr-host', host), field('Path', 'tr-path', pathInput)],
    CronJobTrigger: [field('Schedule', 'tr-schedule', schedule, 'Cron syntax: minute hour day month weekday'), field('Payload (JSON, optional)', 'tr-payload', payload)],
    KafkaTrigger: [topicField],
    NATSTrigger: [topicField],
  };
  const extra = h('div');
  const showKind = () => replace(extra, perKind[kindSelect.value]);
  kindSelect.addEventListener('change', showKind);
  showKind();
  const summary = h('div');
  const form = h('form', { novalidate: true, 'aria-labelledby': 'new-trigger', onsubmit: async (e) => {
    e.preventDefault();
    for (const [, id] of FIELDS) fieldError(id, null);
    replace(summary);
    const kind = TRIGGER_KINDS.find((k) => k.kind === kindSelect.value);
    const spec = {};
    if (kind.kind === 'HTTPTrigger') Object.assign(spec, { 'function-name': fn.value.trim(), 'host-name': host.value.trim() || undefined, path: pathInput.value.trim() || undefined });
    if (kind.kind === 'CronJobTrigger') {
      Object.assign(spec, { 'function-name': fn.value.trim(), schedule: schedule.value.trim() });
      if (payload.value.trim()) {
        try { spec.payload = JSON.parse(payload.value); } catch (err) { fieldError('tr-payload', `not JSON: ${err.message}`); payload.focus(); return; }
      }
    }
    if (kind.kind === 'KafkaTrigger' || kind.kind === 'NATSTrigger') Object.assign(spec, { topic: topic.value.trim(), functionSelector: { matchLabels: { 'created-by': 'kubeless', function: fn.value.trim() } } });
    const object = { apiVersion: 'kubeless.io/v1beta1', kind: kind.kind, metadata: { name: name.value.trim(), namespace }, spec };
    try {
      await request('POST', path(GROUP, kind.plural, namespace), object);
      announce(`${kind.label} trigger ${object.metadata.name} created`);
      name.value = '';
    } catch (error) {
      const { fields, general } = causes(error);
      let first;
      for (const [apiPath, messages] of fields) {
        const hit = FIELDS.find(([prefix]) => apiPath === prefix || apiPath.startsWith(`${prefix}.`));
        if (hit && fieldError(hit[1], messages.join('; '))) first = first || hit[1]; else general.push(`${apiPath}: ${messages.join('; ')}`);
      }
      if (general.length) replace(summary, h('div', { class: 'error-summary', role: 'alert' }, h('ul', {}, general.map((m) => h('li', {}, m)))));
      if (first) document.getElementById(first).focus();
    }
  } }, summary,
  h('div', { class: 'toolbar' }, field('Kind', 'tr-kind', kindSelect), field('Name', 'tr-name', name), field('Function', 'tr-function', fn)),
  extra, h('button', { type: 'submit' }, 'Create trigger'));

  const nsInput = h('input', { id: 'triggers-namespace', name: 'namespace', value: namespace, size: 16, autocomplete: 'off' });
  const filter = h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Choose the namespace', onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/triggers?${new URLSearchParams({ namespace: nsInput.value.trim() })}`;
  } }, h('div', { class: 'field' }, h('label', { for: 'triggers-namespace' }, 'Namespace'), nsInput),
  h('div', { class: 'field' }, h('button', { type: 'submit' }, 'Show')));
  replace(main, h('h1', {}, `Triggers in namespace ${namespace}`), filter,
    h('table', { id: 'triggers' }, h('caption', { class: 'visually-hidden' }, 'Triggers'),
      h('thead', {}, h('tr', {}, ['Kind', 'Name', 'Details', 'Ready', 'Lag', 'Last error', 'Actions'].map((t) => h('th', { scope: 'col', class: t === 'Lag' ? 'num' : undefined }, t)))), tbody),
    h('h2', { id: 'new-trigger' }, 'New trigger'), form);
  render();
  return () => controller.abort();
}
