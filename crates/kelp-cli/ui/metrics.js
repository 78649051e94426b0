// Kelp's Prometheus text (`/metrics` of kelp up, a function pod's `/metrics` on a cluster): parsed,
// summed per function, and charted over time from periodic scrapes (SVG, no library).
import { h, s } from './dom.js';
import { request } from './api.js';

/** Samples of a Prometheus text: [{name, labels, value}]. */
export function parse(text) {
  const samples = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    if (match[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let m;
      while ((m = re.exec(match[3]))) labels[m[1]] = m[2].replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
    }
    samples.push({ name: match[1], labels, value: Number(match[4]) });
  }
  return samples;
}

/** The quantile `q` of cumulative buckets [[le, count]] (Prometheus's histogram_quantile). */
export function quantile(q, buckets) {
  const sorted = buckets.filter(([, c]) => c >= 0).sort((a, b) => a[0] - b[0]);
  if (!sorted.length) return undefined;
  const total = sorted[sorted.length - 1][1];
  if (!(total > 0)) return undefined;
  const rank = q * total;
  let previousLe = 0;
  let previousCount = 0;
  for (const [le, count] of sorted) {
    if (count >= rank) {
      if (le === Infinity) return previousLe;
      const inBucket = count - previousCount;
      return inBucket > 0 ? previousLe + (le - previousLe) * ((rank - previousCount) / inBucket) : le;
    }
    previousLe = le;
    previousCount = count;
  }
  return previousLe;
}

/** Per function (`namespace/function`): calls, errors, duration buckets, cold starts, instances, trigger lag and dead letters. */
export function perFunction(samples) {
  const out = new Map();
  const get = (labels) => {
    const key = `${labels.namespace}/${labels.function}`;
    if (!out.has(key)) out.set(key, { calls: 0, errors: 0, buckets: new Map(), coldStarts: 0, instances: 0, lag: 0, deadLetters: 0, hasCalls: false });
    return out.get(key);
  };
  for (const { name, labels, value } of samples) {
    if (labels.function === undefined) continue;
    const f = get(labels);
    if (name === 'function_calls_total') { f.calls += value; f.hasCalls = true; }
    else if (name === 'function_failures_total') f.errors += value;
    else if (name === 'function_duration_seconds_bucket') {
      const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
      f.buckets.set(le, (f.buckets.get(le) || 0) + value);
    } else if (name === 'kelp_cold_start_seconds_count') f.coldStarts += value;
    else if (name === 'kelp_function_ready_instances') f.instances += value;
    else if (name === 'kelp_trigger_consumer_lag') f.lag += value;
    else if (name === 'kelp_trigger_messages_dead_lettered_total') f.deadLetters += value;
  }
  for (const f of out.values()) {
    const buckets = [...f.buckets.entries()];
    f.p50 = quantile(0.5, buckets);
    f.p99 = quantile(0.99, buckets);
  }
  return out;
}

let backend;
/** Whether the API server is kelp up's (its /version names kelp-apiserver): only then does its
 * `/metrics` hold the functions' series (a cluster's is the API server's own, and large). */
function kelpUp() {
  if (!backend) backend = request('GET', '/version').then((v) => String(v.goVersion || '').startsWith('kelp-apiserver'), () => false);
  return backend;
}

/** Scrapes kelp up's `/metrics` now; resolves to perFunction's map, or undefined when unreadable or on a cluster. */
export async function scrape(signal) {
  if (!(await kelpUp())) return undefined;
  try {
    const response = await fetch('/metrics', { credentials: 'same-origin', signal });
    if (!response.ok) return undefined;
    return perFunction(parse(await response.text()));
  } catch {
    return undefined;
  }
}

/** Pod proxy requests in flight at once while scraping. */
const PARALLEL = 6;

/** Scrapes the `/metrics` of each pod through the API's pod proxy (a cluster), at most PARALLEL at
 * a time; each pod's series labelled with its namespace and its `function` label, as kelp up labels
 * them, plus its readiness as an instance. The pods of Jobs (a cron trigger's runs, which carry
 * the function's labels too) are left out. Resolves to perFunction's map. */
export async function scrapePods(all, signal) {
  const pods = all.filter((p) => !(p.metadata.ownerReferences || []).some((o) => o.kind === 'Job'));
  const texts = new Array(pods.length).fill('');
  let next = 0;
  const worker = async () => {
    while (next < pods.length && !(signal && signal.aborted)) {
      const i = next;
      next += 1;
      const pod = pods[i];
      const port = (((pod.spec.containers || [])[0] || {}).ports || [{}])[0].containerPort || 8080;
      try {
        const r = await fetch(`/api/v1/namespaces/${encodeURIComponent(pod.metadata.namespace)}/pods/${encodeURIComponent(pod.metadata.name)}:${port}/proxy/metrics`, { credentials: 'same-origin', signal });
        texts[i] = r.ok ? await r.text() : '';
      } catch { texts[i] = ''; }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, pods.length) }, worker));
  const samples = [];
  pods.forEach((pod, i) => {
    const fn = (pod.metadata.labels || {}).function;
    if (fn === undefined) return;
    const own = { namespace: pod.metadata.namespace, function: fn };
    for (const x of parse(texts[i])) samples.push({ ...x, labels: { ...x.labels, ...own } });
    samples.push({ name: 'kelp_function_ready_instances', labels: own, value: ready(pod) ? 1 : 0 });
  });
  return perFunction(samples);
}

function ready(pod) {
  return ((pod.status || {}).conditions || []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** The series of one function over time, from successive scrapes (at most `keep` points). */
export class History {
  constructor(keep = 120) { this.keep = keep; this.points = []; }
  add(time, f) {
    if (!f) return;
    this.points.push({ time, ...f, buckets: new Map(f.buckets) });
    if (this.points.length > this.keep) this.points.shift();
  }
  /** Per-interval values: calls and errors per minute, p50/p99 of the interval, cold starts, instances, lag, dead letters. */
  series() {
    const out = [];
    for (let i = 1; i < this.points.length; i += 1) {
      const [a, b] = [this.points[i - 1], this.points[i]];
      const minutes = (b.time - a.time) / 60000;
      if (!(minutes > 0)) continue;
      const delta = [...b.buckets.entries()].map(([le, c]) => [le, Math.max(0, c - (a.buckets.get(le) || 0))]);
      out.push({
        time: b.time,
        calls: Math.max(0, b.calls - a.calls) / minutes,
        errors: Math.max(0, b.errors - a.errors) / minutes,
        p50: quantile(0.5, delta), p99: quantile(0.99, delta),
        coldStarts: Math.max(0, b.coldStarts - a.coldStarts),
        instances: b.instances, lag: b.lag, deadLetters: b.deadLetters,
      });
    }
    return out;
  }
}

/** A line chart of `keys` of `series` (one or two lines), labelled for screen readers with the last values. */
export function chart(title, series, keys, format = (v) => (v === undefined ? '–' : v.toFixed(1))) {
  const width = 300; const height = 100;
  const values = series.flatMap((p) => keys.map((k) => p[k])).filter((v) => typeof v === 'number' && Number.isFinite(v));
  const max = Math.max(0, ...values);
  const top = max > 0 ? max : 1;
  const last = series[series.length - 1] || {};
  const summary = keys.map((k) => `${k} ${format(last[k])}`).join(', ');
  const svg = s('svg', { viewBox: `0 0 ${width} ${height + 12}`, role: 'img', 'aria-label': `${title}: ${series.length ? summary : 'no data yet'}` },
    s('line', { class: 'axis', x1: 0, y1: height, x2: width, y2: height }),
    s('text', { x: 2, y: 10 }, values.length ? format(max) : ''),
    s('text', { x: 2, y: height + 11 }, series.length ? `${series.length} points` : 'no data yet'));
  keys.forEach((k, n) => {
    // An interval without a value (no call: no latency) is left out of the line, not drawn as 0.
    const points = series.map((p, i) => [series.length > 1 ? (i * width) / (series.length - 1) : 0, p[k]])
      .filter(([, v]) => typeof v === 'number' && Number.isFinite(v))
      .map(([x, v]) => [x, height - (v / top) * (height - 14)]);
    if (points.length) svg.append(s('polyline', { class: n === 0 ? 'line' : 'line2', points: points.map((p) => p.join(',')).join(' ') }));
  });
  return h('figure', { class: 'chart' }, h('h3', {}, title), svg, h('figcaption', { class: 'muted' }, series.length ? summary : 'waiting for two scrapes'));
}

