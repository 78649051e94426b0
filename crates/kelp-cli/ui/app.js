// The dashboard's entry: a hash router over the views. Each view returns a function that stops
// what it started (watches, log streams, scrapes) when the page moves on.
import { functionsView } from './functions.js';
import { functionView } from './function.js';
import { formView } from './form.js';
import { triggersView } from './triggers.js';

const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || '';
const defaultNamespace = meta('kelp-namespace') || 'default';
let stop = () => {};

function route() {
  stop();
  stop = () => {};
  const main = document.getElementById('main');
  const hash = location.hash.replace(/^#/, '') || '/';
  const [pathPart, queryPart] = hash.split('?');
  const params = new URLSearchParams(queryPart || '');
  const parts = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'function' && parts.length === 3) {
    document.title = `${parts[2]} · Kelp`;
    stop = functionView(main, parts[1], parts[2]);
  } else if (parts[0] === 'edit' && parts.length === 3) {
    document.title = `Edit ${parts[2]} · Kelp`;
    formView(main, defaultNamespace, { namespace: parts[1], name: parts[2] });
  } else if (parts[0] === 'new') {
    document.title = 'New function · Kelp';
    formView(main, defaultNamespace);
  } else if (parts[0] === 'triggers') {
    document.title = 'Triggers · Kelp';
    stop = triggersView(main, params, defaultNamespace);
  } else {
    document.title = 'Functions · Kelp';
    stop = functionsView(main, params, defaultNamespace);
  }
  for (const link of document.querySelectorAll('header nav a')) {
    const here = link.getAttribute('href') === `#/${parts[0] || ''}` || (link.getAttribute('href') === '#/' && !parts[0]);
    if (here) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
}

document.getElementById('context').textContent = `context ${meta('kelp-context')}`;
window.addEventListener('hashchange', route);
route();
