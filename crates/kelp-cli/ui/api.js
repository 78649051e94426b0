// The Kubernetes API, through the dashboard's same-origin proxy: requests, paged lists, watches
// and followed streams (fetch with a streamed body; no polling for lists).

/** An answer that is not 2xx: `status` is the API's Status object when it sent one. */
export class ApiError extends Error {
  constructor(code, status, text) {
    super((status && status.message) || text || `HTTP ${code}`);
    this.code = code;
    this.status = status;
  }
}

export const GROUP = '/apis/kubeless.io/v1beta1';

/** The path of a kind's objects (`namespace` '' is every namespace), or of one object. */
export function path(base, plural, namespace, name) {
  let p = namespace ? `${base}/namespaces/${encodeURIComponent(namespace)}/${plural}` : `${base}/${plural}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  return p;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const text = q.toString();
  return text ? `?${text}` : '';
}

/** A JSON request; resolves to the parsed answer, rejects with an ApiError. */
export async function request(method, url, body, signal) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin', signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let json;
  try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
  if (!response.ok) throw new ApiError(response.status, json && json.kind === 'Status' ? json : undefined, text);
  return json;
}

/** Reads a streamed body line by line, calling `onLine` for each; resolves at its end. */
async function lines(response, onLine) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let at;
    while ((at = buffer.indexOf('\n')) >= 0) {
      onLine(buffer.slice(0, at));
      buffer = buffer.slice(at + 1);
    }
    // A line longer than 1 MiB is cut rather than kept growing.
    if (buffer.length > 1 << 20) { onLine(buffer); buffer = ''; }
  }
  if (buffer) onLine(buffer);
}

/** GET `url` and stream its lines (a pod's log with follow=true). */
export async function follow(url, onLine, signal) {
  const response = await fetch(url, { credentials: 'same-origin', signal });
  if (!response.ok) {
    const text = await response.text();
    let json; try { json = JSON.parse(text); } catch { json = undefined; }
    throw new ApiError(response.status, json, text);
  }
  await lines(response, onLine);
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  if (signal) signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
});

/** The size of a list's first page: one screen of the function list, shown before the rest arrives. */
export const FIRST_PAGE = 50;
/** The size of the next pages (`limit` with `continue`). */
export const PAGE = 500;

/**
 * A list that stays current: every page of the list (`limit`/`continue`, `onPage(items)` as each
 * arrives, after `onReset()`, and `onListed()` after the last), then a watch from its
 * resourceVersion, `onEvent(type, object)` per change. A watch that ends is resumed; a `410 Gone` relists. Stops when `signal` aborts.
 */
export async function live(url, params, { onReset, onPage, onListed, onEvent, onError }, signal) {
  let resourceVersion;
  while (!signal.aborted) {
    try {
      if (!resourceVersion) {
        onReset();
        let next;
        do {
          const list = await request('GET', url + query({ ...params, limit: next ? PAGE : FIRST_PAGE, continue: next }), undefined, signal);
          onPage(list.items || []);
          next = list.metadata && list.metadata.continue;
          resourceVersion = list.metadata && list.metadata.resourceVersion;
        } while (next && !signal.aborted);
        if (onListed) onListed();
      }
      const response = await fetch(url + query({ ...params, watch: 1, resourceVersion, allowWatchBookmarks: true }),
        { credentials: 'same-origin', signal });
      if (!response.ok) throw new ApiError(response.status, undefined, await response.text());
      await lines(response, (line) => {
        if (!line.trim()) return;
        const event = JSON.parse(line);
        if (event.type === 'ERROR') {
          if (event.object && event.object.code === 410) resourceVersion = undefined;
          return;
        }
        if (event.object && event.object.metadata) resourceVersion = event.object.metadata.resourceVersion;
        if (event.type !== 'BOOKMARK') onEvent(event.type, event.object);
      });
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.code === 410) resourceVersion = undefined;
      if (onError) onError(error);
      await sleep(2000, signal);
    }
  }
}

/** A map of objects by namespace/name, kept by `live`'s callbacks. */
export class Store {
  constructor(onChange) { this.objects = new Map(); this.onChange = onChange; this.listed = false; }
  key(o) { return `${o.metadata.namespace || ''}/${o.metadata.name}`; }
  callbacks(onError) {
    return {
      onReset: () => { this.objects.clear(); },
      onPage: (items) => { for (const o of items) this.objects.set(this.key(o), o); this.onChange('page'); },
      onListed: () => { this.listed = true; this.onChange('listed'); },
      onEvent: (type, o) => {
        if (type === 'DELETED') this.objects.delete(this.key(o)); else this.objects.set(this.key(o), o);
        this.onChange(type, o);
      },
      onError,
    };
  }
  sorted() { return [...this.objects.values()].sort((a, b) => this.key(a).localeCompare(this.key(b))); }
}

/** A Status's problems per field path (`details.causes`), and the ones without a field. */
export function causes(error) {
  const fields = new Map();
  const general = [];
  const list = (error.status && error.status.details && error.status.details.causes) || [];
  for (const cause of list) {
    if (cause.field) fields.set(cause.field, [...(fields.get(cause.field) || []), cause.message]);
    else general.push(cause.message);
  }
  if (!list.length) general.push(error.message);
  return { fields, general };
}

export { query };
