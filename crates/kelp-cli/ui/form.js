// Create and edit a function. The API's field errors (a 422 Status's details.causes) are shown
// next to the field they name; the first invalid field takes the focus.
import { h, replace, field, fieldError, announce } from './dom.js';
import { GROUP, path, request, causes } from './api.js';
import { editor, language } from './editor.js';
import { container } from './function.js';

const RUNTIMES = ['python3.12', 'python3.11', 'python3.9', 'python3.8', 'nodejs20', 'nodejs18', 'go1.22', 'java17', 'ruby3.2', 'php8.2', 'rust1.80'];

const STARTER = 'def hello(event, context):\n    print("hello called")\n    return "hello world"\n';

/** Which form field shows a problem at an API field path (the longest prefix wins). */
const FIELDS = [
  ['metadata.namespace', 'fn-namespace'], ['metadata.name', 'fn-name'], ['metadata.labels', 'fn-labels'],
  ['spec.runtime', 'fn-runtime'], ['spec.handler', 'fn-handler'], ['spec.function-content-type', 'fn-code'],
  ['spec.function', 'fn-code'], ['spec.checksum', 'fn-code'], ['spec.deps', 'fn-deps'], ['spec.timeout', 'fn-timeout'],
  ['spec.deployment.spec.template.spec.containers[0].env', 'fn-env'],
];

export function fieldFor(apiPath) {
  let best;
  for (const [prefix, id] of FIELDS) {
    if (apiPath === prefix || apiPath.startsWith(`${prefix}.`) || apiPath.startsWith(`${prefix}[`)) {
      if (!best || prefix.length > best[0].length) best = [prefix, id];
    }
  }
  return best && best[1];
}

/** "NAME=value" lines into env entries; throws naming the line. */
function parseEnv(text) {
  const out = [];
  text.split('\n').forEach((line, n) => {
    if (!line.trim()) return;
    const at = line.indexOf('=');
    if (at <= 0) throw new Error(`line ${n + 1}: write NAME=value`);
    out.push({ name: line.slice(0, at).trim(), value: line.slice(at + 1) });
  });
  return out;
}

/** "k=v, k2=v2" into a label map; throws naming the entry. */
function parseLabels(text) {
  const out = {};
  for (const part of text.split(',').map((x) => x.trim()).filter(Boolean)) {
    const at = part.indexOf('=');
    if (at <= 0) throw new Error(`"${part}": write key=value`);
    out[part.slice(0, at).trim()] = part.slice(at + 1).trim();
  }
  return out;
}

async function sha256(text) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** The create form (`existing` undefined) or the edit form of `existing`. */
export function formView(main, defaultNamespace, target) {
  const editing = Boolean(target);
  const heading = h('h1', {}, editing ? `Edit function ${target.name}` : 'New function');
  replace(main, heading, h('p', { class: 'muted' }, 'Loading…'));
  const load = editing ? request('GET', path(GROUP, 'functions', target.namespace, target.name)) : Promise.resolve(undefined);
  load.then((existing) => render(existing), (e) => replace(main, heading, h('p', { class: 'bad', role: 'alert' }, `Cannot read the function: ${e.message}`)));

  function render(existing) {
    const spec = existing ? existing.spec : {};
    const c = existing ? container(existing) : {};
    const plainEnv = (c.env || []).filter((v) => v.value !== undefined);
    const fromEnv = (c.env || []).filter((v) => v.value === undefined);
    const labels = existing ? Object.entries(existing.metadata.labels || {}).filter(([k]) => k !== 'created-by' && k !== 'function').map(([k, v]) => `${k}=${v}`).join(', ') : '';
    const ns = h('input', { value: existing ? existing.metadata.namespace : defaultNamespace, disabled: editing, autocomplete: 'off' });
    const name = h('input', { value: existing ? existing.metadata.name : '', disabled: editing, autocomplete: 'off' });
    const runtime = h('input', { value: spec.runtime || 'python3.11', list: 'runtimes', autocomplete: 'off' });
    const handler = h('input', { value: spec.handler || (editing ? '' : 'hello.hello'), autocomplete: 'off' });
    const code = editor({ id: 'fn-code', text: existing ? spec.function || '' : STARTER, lang: language(runtime.value), label: 'Code' });
    runtime.addEventListener('input', () => code.setLanguage(language(runtime.value)));
    const deps = h('textarea', { rows: 3 });
    deps.value = spec.deps || '';
    const env = h('textarea', { rows: 3 });
    env.value = plainEnv.map((v) => `${v.name}=${v.value}`).join('\n');
    const labelInput = h('input', { value: labels, size: 40, autocomplete: 'off' });
    const timeout = h('input', { value: spec.timeout || '180', size: 6, inputmode: 'numeric', autocomplete: 'off' });
    const summary = h('div', { id: 'form-errors' });
    const submit = h('button', { type: 'submit' }, editing ? 'Save' : 'Create');

    const form = h('form', { novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      for (const [, id] of FIELDS) fieldError(id, null);
      replace(summary);
      let envList; let labelMap;
      try { envList = parseEnv(env.value); } catch (err) { fieldError('fn-env', err.message); env.focus(); return; }
      try { labelMap = parseLabels(labelInput.value); } catch (err) { fieldError('fn-labels', err.message); labelInput.focus(); return; }
      const fnName = name.value.trim();
      const namespace = ns.value.trim() || defaultNamespace;
      const text = code.value();
      const object = existing ? JSON.parse(JSON.stringify(existing)) : {
        apiVersion: 'kubeless.io/v1beta1', kind: 'Function', metadata: { name: fnName, namespace },
        spec: { deployment: { spec: { template: { spec: { containers: [{ name: '', resources: {} }] } } } },
          service: { ports: [{ name: 'http-function-port', port: 8080, protocol: 'TCP', targetPort: 8080 }], selector: {}, type: 'ClusterIP' } },
      };
      object.metadata.labels = { ...(existing ? Object.fromEntries(Object.entries(existing.metadata.labels || {}).filter(([k]) => k === 'created-by' || k === 'function')) : { 'created-by': 'kubeless', function: fnName }), ...labelMap };
      if (!existing) object.spec.service.selector = { 'created-by': 'kubeless', function: fnName };
      Object.assign(object.spec, {
        runtime: runtime.value.trim(), handler: handler.value.trim(), function: text,
        'function-content-type': 'text', checksum: `sha256:${await sha256(text)}`, deps: deps.value, timeout: timeout.value.trim(),
      });
      const pod = object.spec.deployment.spec.template.spec;
      if (!pod.containers || !pod.containers.length) pod.containers = [{ name: '' }];
      const all = [...envList, ...fromEnv];
      if (all.length) pod.containers[0].env = all; else delete pod.containers[0].env;
      submit.disabled = true;
      try {
        const saved = existing
          ? await request('PUT', path(GROUP, 'functions', namespace, existing.metadata.name), object)
          : await request('POST', path(GROUP, 'functions', namespace), object);
        announce(existing ? `Saved: generation ${saved.metadata.generation}` : `Function ${fnName} created`);
        location.hash = `#/function/${encodeURIComponent(namespace)}/${encodeURIComponent(saved.metadata.name)}`;
      } catch (error) {
        submit.disabled = false;
        const { fields, general } = causes(error);
        let first;
        for (const [apiPath, messages] of fields) {
          const id = fieldFor(apiPath);
          if (id && fieldError(id, messages.join('; '))) { first = first || id; } else general.push(`${apiPath}: ${messages.join('; ')}`);
        }
        if (general.length) replace(summary, h('div', { class: 'error-summary', role: 'alert' }, h('p', {}, error.code === 409 ? 'The function changed meanwhile: reload and edit again.' : 'The API server refused the function:'), h('ul', {}, general.map((m) => h('li', {}, m)))));
        else announce('The API server refused the function: see the fields marked');
        if (first) document.getElementById(first).focus();
      }
    } },
    summary,
    h('div', { class: 'toolbar' }, field('Namespace', 'fn-namespace', ns), field('Name', 'fn-name', name)),
    h('div', { class: 'toolbar' }, field('Runtime', 'fn-runtime', runtime), field('Handler', 'fn-handler', handler, 'module.function, e.g. hello.hello'), field('Timeout (seconds)', 'fn-timeout', timeout)),
    h('datalist', { id: 'runtimes' }, RUNTIMES.map((r) => h('option', { value: r }))),
    field('Code', 'fn-code', code.textarea, null, code.element),
    field('Dependencies', 'fn-deps', deps, 'requirements.txt, package.json, go.mod… as the runtime expects'),
    field('Environment', 'fn-env', env, 'One NAME=value per line' + (fromEnv.length ? `; ${fromEnv.length} more from Secrets or ConfigMaps are kept` : '')),
    field('Labels', 'fn-labels', labelInput, 'key=value, comma-separated'),
    submit);
    replace(main, heading, form);
  }
}
