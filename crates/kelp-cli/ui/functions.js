// The function list: every page of the API's list (limit/continue), kept current by a watch,
// with the calls, errors and latency percentiles of kelp up's /metrics (on a cluster, of the
// pods of the functions on the page); filtered by namespace and label.
import { h, replace, age, duration, announce } from './dom.js';
import { GROUP, path, live, Store, request } from './api.js';
import { scrape, scrapePods } from './metrics.js';

/** Rows shown per page of the table. */
const ROWS = 50;

/** The Ready condition of an object's status: 'True', 'False' or 'Unknown'. */
export function readiness(object) {
  const c = ((object.status || {}).conditions || []).find((x) => x.type === 'Ready');
  return c ? c.status : 'Unknown';
}

export function readyCell(object) {
  const state = readiness(object);
  return h('td', { class: state === 'True' ? 'ok' : state === 'False' ? 'bad' : 'muted' }, state);
}

/** Renders the list into `main`; returns a function that stops its watch and scrapes. */
export function functionsView(main, params, defaultNamespace) {
  const controller = new AbortController();
  const namespace = params.get('namespace') ?? defaultNamespace;
  const selector = params.get('labelSelector') || '';
  let page = Number(params.get('page') || 0) || 0;
  let stats = new Map();
  let shown = [];
  let rendered = false;

  const nsInput = h('input', { id: 'filter-namespace', name: 'namespace', value: namespace, size: 16, placeholder: 'all namespaces' });
  const selInput = h('input', { id: 'filter-labels', name: 'labelSelector', value: selector, size: 24, placeholder: 'app=web,tier!=db' });
  const form = h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Filter functions', onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams({ namespace: nsInput.value.trim(), labelSelector: selInput.value.trim() });
    location.hash = `#/?${q}`;
  } },
  h('div', { class: 'field' }, h('label', { for: 'filter-namespace' }, 'Namespace'), nsInput),
  h('div', { class: 'field' }, h('label', { for: 'filter-labels' }, 'Label selector'), selInput),
  h('div', { class: 'field' }, h('button', { type: 'submit' }, 'Filter')));

  const info = h('p', { class: 'muted', id: 'list-info' }, 'Loading…');
  const tbody = h('tbody');
  const table = h('table', { id: 'functions' },
    h('caption', {}, namespace ? `Functions in namespace ${namespace}` : 'Functions in every namespace'),
    h('thead', {}, h('tr', {}, ['Name', 'Namespace', 'Ready', 'Runtime', 'Age'].map((t) => h('th', { scope: 'col' }, t)),
      ['Calls', 'Errors', 'p50', 'p99'].map((t) => h('th', { scope: 'col', class: 'num' }, t)))),
    tbody);
  const prev = h('button', { type: 'button', class: 'secondary', onclick: () => { page -= 1; render(); refresh(); } }, 'Previous page');
  const next = h('button', { type: 'button', class: 'secondary', onclick: () => { page += 1; render(); refresh(); } }, 'Next page');
  const position = h('span', { 'aria-live': 'polite' });
  replace(main, h('h1', {}, 'Functions'), form, info, table, h('div', { class: 'pager' }, prev, position, next));

  let complete = false;
  const store = new Store((change) => {
    if (change === 'listed') {
      // Every page of the list has arrived (the figure of bench/dashboard.sh).
      if (!complete) { complete = true; performance.mark('kelp-list-complete'); }
      return;
    }
    render();
    if (!rendered) {
      rendered = true;
      performance.mark('kelp-list-rendered');
      startMetrics();
    }
  });
  function render() {
    const all = store.sorted();
    const pages = Math.max(1, Math.ceil(all.length / ROWS));
    page = Math.min(Math.max(0, page), pages - 1);
    shown = all.slice(page * ROWS, (page + 1) * ROWS);
    const rows = shown.map((f) => {
      const ns = f.metadata.namespace;
      const name = f.metadata.name;
      const st = stats.get(`${ns}/${name}`);
      return h('tr', { 'data-name': name },
        h('th', { scope: 'row' }, h('a', { href: `#/function/${encodeURIComponent(ns)}/${encodeURIComponent(name)}` }, name)),
        h('td', {}, ns), readyCell(f), h('td', {}, f.spec.runtime || ''), h('td', {}, age(f.metadata.creationTimestamp)),
        h('td', { class: 'num' }, st && st.hasCalls ? String(st.calls) : '–'),
        h('td', { class: 'num' }, st && st.hasCalls ? String(st.errors) : '–'),
        h('td', { class: 'num' }, duration(st && st.p50)), h('td', { class: 'num' }, duration(st && st.p99)));
    });
    tbody.replaceChildren(...rows);
    info.textContent = `${all.length} function${all.length === 1 ? '' : 's'}${selector ? ` matching ${selector}` : ''}`;
    position.textContent = `Page ${page + 1} of ${pages}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }

  const url = path(GROUP, 'functions', namespace);
  live(url, { labelSelector: selector }, store.callbacks((e) => { info.textContent = `Cannot list functions: ${e.message}`; announce(info.textContent); }), controller.signal);
  // Metrics are scraped, not watched (counters have no watch): once the first rows are shown,
  // then every 10 s while the list is open, and when the page changes. kelp up's /metrics holds
  // every function's series; on a cluster, the pods of the functions on the page are listed (one
  // request per namespace) and each pod's /metrics is read through the pod proxy.
  let scraping = false;
  async function refresh() {
    if (scraping) return;
    scraping = true;
    try {
      const got = (await scrape(controller.signal)) || (await scrapeShown());
      if (got) { stats = got; render(); }
    } finally {
      scraping = false;
    }
  }
  async function scrapeShown() {
    const byNamespace = new Map();
    for (const f of shown) {
      const ns = f.metadata.namespace;
      if (!byNamespace.has(ns)) byNamespace.set(ns, []);
      byNamespace.get(ns).push(f.metadata.name);
    }
    const lists = await Promise.all([...byNamespace].map(([ns, names]) => {
      const q = new URLSearchParams({ labelSelector: `function in (${names.join(',')})`, fieldSelector: 'status.phase=Running' });
      // (A user who may not list pods sees no figures, not an error.)
      return request('GET', `${path('/api/v1', 'pods', ns)}?${q}`, undefined, controller.signal).catch(() => undefined);
    }));
    return scrapePods(lists.flatMap((l) => (l && l.items) || []), controller.signal);
  }
  let timer;
  function startMetrics() {
    refresh();
    timer = setInterval(refresh, 10000);
  }
  return () => { controller.abort(); clearInterval(timer); };
}
