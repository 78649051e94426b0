// A code editor: a textarea over a highlighted copy of its text (a small tokenizer of comments,
// strings, numbers and keywords per language). The textarea keeps the browser's own editing,
// selection, undo and keyboard behaviour (Tab moves focus, as everywhere on the page).
import { h } from './dom.js';

const KEYWORDS = {
  python: 'and as assert async await break class continue def del elif else except False finally for from global if import in is lambda None nonlocal not or pass raise return True try while with yield',
  js: 'async await break case catch class const continue default delete do else export extends false finally for function if import in instanceof let new null of return super switch this throw true try typeof undefined var void while yield',
  go: 'break case chan const continue default defer else fallthrough for func go goto if import interface map nil package range return select struct switch type var true false',
  ruby: 'begin break case class def defined? do else elsif end ensure false for if in module next nil not or redo rescue retry return self super then true undef unless until when while yield require',
  php: 'abstract array as break case catch class const continue declare default do echo else elseif empty extends false final for foreach function global if implements include isset list namespace new null private protected public require return static switch throw true try use var while',
  java: 'abstract boolean break byte case catch char class continue default do double else enum extends false final finally float for if implements import instanceof int interface long new null package private protected public return short static super switch this throw throws true try void while var String',
  rust: 'as async await break const continue crate else enum extern false fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait true type unsafe use where while',
};

/** The language of a Kubeless runtime name (python3.8 → python). */
export function language(runtime = '') {
  if (runtime.startsWith('python')) return 'python';
  if (runtime.startsWith('nodejs')) return 'js';
  if (runtime.startsWith('go')) return 'go';
  if (runtime.startsWith('ruby')) return 'ruby';
  if (runtime.startsWith('php')) return 'php';
  if (runtime.startsWith('java')) return 'java';
  if (runtime.startsWith('rust')) return 'rust';
  return 'js';
}

/** The tokens of `text`: [[class or '', text]]. */
export function tokens(text, lang) {
  const keywords = new Set((KEYWORDS[lang] || '').split(' '));
  const hash = lang === 'python' || lang === 'ruby' || lang === 'php';
  const slash = lang !== 'python' && lang !== 'ruby';
  const out = [];
  let i = 0;
  const push = (cls, t) => { if (t) out.push([cls, t]); };
  while (i < text.length) {
    const c = text[i];
    const rest = text.slice(i);
    let m;
    if ((hash && c === '#') || (slash && rest.startsWith('//'))) {
      const end = text.indexOf('\n', i);
      const stop = end < 0 ? text.length : end;
      push('tok-c', text.slice(i, stop)); i = stop;
    } else if (slash && rest.startsWith('/*')) {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      push('tok-c', text.slice(i, stop)); i = stop;
    } else if (c === '"' || c === "'" || c === '`') {
      const triple = lang === 'python' && rest.startsWith(c.repeat(3));
      const quote = triple ? c.repeat(3) : c;
      let j = i + quote.length;
      while (j < text.length && !text.startsWith(quote, j)) {
        if (!triple && c !== '`' && text[j] === '\n') break;
        j += text[j] === '\\' ? 2 : 1;
      }
      j = Math.min(text.length, j + (text.startsWith(quote, j) ? quote.length : 0));
      push('tok-s', text.slice(i, j)); i = j;
    } else if ((m = /^[0-9][0-9_.xXa-fA-F]*/.exec(rest))) {
      push('tok-n', m[0]); i += m[0].length;
    } else if ((m = /^[A-Za-z_$][A-Za-z0-9_$?]*/.exec(rest))) {
      push(keywords.has(m[0]) ? 'tok-k' : '', m[0]); i += m[0].length;
    } else {
      m = /^[^A-Za-z_$0-9"'`#/]+|^./s.exec(rest);
      push('', m[0]); i += m[0].length;
    }
  }
  return out;
}

function paint(code, text, lang) {
  code.replaceChildren(...tokens(text, lang).map(([cls, t]) => (cls ? h('span', { class: cls }, t) : document.createTextNode(t))));
  // A final newline needs a character after it to take up its line.
  code.append('\n ');
}

/**
 * An editor for `text` in `lang`, labelled `label`; `readonly` shows the highlighted code only.
 * Returns {element, textarea, value(), setLanguage(lang)}.
 */
export function editor({ id, text = '', lang = 'python', label, readonly = false }) {
  const code = h('code');
  const pre = h('pre', { 'aria-hidden': readonly ? undefined : 'true', tabindex: readonly ? '0' : undefined, 'aria-label': readonly ? label : undefined }, code);
  const textarea = h('textarea', { id, spellcheck: 'false', autocomplete: 'off', autocapitalize: 'off', wrap: 'off', rows: 14 });
  textarea.value = text;
  let current = lang;
  const update = () => { paint(code, textarea.value, current); pre.scrollTop = textarea.scrollTop; pre.scrollLeft = textarea.scrollLeft; };
  textarea.addEventListener('input', update);
  textarea.addEventListener('scroll', () => { pre.scrollTop = textarea.scrollTop; pre.scrollLeft = textarea.scrollLeft; });
  paint(code, text, lang);
  const element = h('div', { class: readonly ? 'editor readonly' : 'editor' }, pre, readonly ? null : textarea);
  return { element, textarea, value: () => textarea.value, setLanguage: (l) => { current = l; update(); } };
}
