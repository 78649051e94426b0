'use strict';
// Kelp Node.js worker.
//
// Started by kelp-runtime as `node kelp_worker.js` with KELP_WORKER_SOCKET set; it connects to
// that Unix socket and speaks the framed protocol of runtimes/PROTOCOL.md:
// hello -> load -> loaded | load_error -> (invoke -> result)* -> exit 0 at end-of-file.
//
// Node.js 14+ built-ins only. Nothing of the protocol is written to stdout/stderr; the user's
// console output goes there unchanged, and so do stacks of failed invocations.

const net = require('net');
const path = require('path');
const http = require('http');

const CT_TEXT = 'text/plain; charset=utf-8';
const CT_BINARY = 'application/octet-stream';
const CT_JSON = 'application/json';

const sockPath = process.env.KELP_WORKER_SOCKET;
if (!sockPath) {
  process.stderr.write('kelp_worker: KELP_WORKER_SOCKET is not set\n');
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Frames

let sock = null;

// Write one frame as a single Buffer: u32 H, header (JSON text), u32 B, body.
// `body` is null, a string (written as UTF-8) or a Buffer.
function sendFrame(headerText, body, cb) {
  const hl = Buffer.byteLength(headerText, 'utf8');
  let bl = 0;
  if (body !== null) bl = typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.length;
  const buf = Buffer.allocUnsafe(8 + hl + bl);
  buf.writeUInt32BE(hl, 0);
  buf.write(headerText, 4, hl, 'utf8');
  buf.writeUInt32BE(bl, 4 + hl);
  if (bl !== 0) {
    if (typeof body === 'string') buf.write(body, 8 + hl, bl, 'utf8');
    else body.copy(buf, 8 + hl);
  }
  return sock.write(buf, cb);
}

function resultHeader(status, headers, failed) {
  return JSON.stringify({ type: 'result', status, headers, failed });
}

const H_TEXT = resultHeader(200, [['content-type', CT_TEXT]], false);
const H_BINARY = resultHeader(200, [['content-type', CT_BINARY]], false);
const H_JSON = resultHeader(200, [['content-type', CT_JSON]], false);
const H_EMPTY = resultHeader(200, [], false);
const H_ERROR = resultHeader(500, [['content-type', CT_TEXT]], true);
const H_BAD_JSON = resultHeader(400, [['content-type', CT_TEXT]], false);

// ---------------------------------------------------------------------------------------------
// Helpers

function isErrorLike(e) {
  return e instanceof Error ||
    (e !== null && typeof e === 'object' && typeof e.message === 'string' &&
     typeof e.stack === 'string');
}

// The response body for a thrown / rejected value.
function errorText(e) {
  if (isErrorLike(e)) return e.message || e.name || 'Error';
  if (typeof e === 'string') return e;
  if (e !== null && typeof e === 'object') {
    try {
      const s = JSON.stringify(e);
      if (s !== undefined) return s;
    } catch (_) { /* fall through */ }
  }
  try { return String(e); } catch (_) { return Object.prototype.toString.call(e); }
}

function logFailure(e, what) {
  try {
    if (isErrorLike(e)) process.stderr.write((e.stack || String(e)) + '\n');
    else process.stderr.write('kelp_worker: ' + what + ' a non-Error value: ' + errorText(e) + '\n');
  } catch (_) { /* never let logging kill the worker */ }
}

class ResultError extends Error {}

function toBuffer(v) {
  if (Buffer.isBuffer(v)) return v;
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  return null;
}

function toJSON(v) {
  let s;
  try {
    s = JSON.stringify(v);
  } catch (e) {
    throw new ResultError('cannot encode the function result as JSON: ' + errorText(e));
  }
  if (s === undefined) {
    throw new ResultError('cannot encode the function result as JSON: a ' + typeof v +
                          ' has no JSON representation');
  }
  return s;
}

// Case-insensitive request header lookup (Express `req.get` / `req.header`).
function requestGet(name) {
  const headers = this.headers;
  if (headers === null || typeof headers !== 'object') return undefined;
  const lc = String(name).toLowerCase();
  if (lc === 'referer' || lc === 'referrer') return headers.referer || headers.referrer;
  return headers[lc];
}

// ---------------------------------------------------------------------------------------------
// event.extensions.response: a small Express-compatible response

const KIND_TEXT = 1;
const KIND_BINARY = 2;
const KIND_JSON = 3;

class KelpResponse {
  constructor() {
    this.statusCode = 200;
    this._headers = null;   // Map: lower-case name -> [name, value]
    this._chunks = null;    // Array of string | Buffer
    this._kind = 0;         // KIND_* of the output, 0 = none yet
    this._used = false;     // write/send/json/end called: output is the body
    this._ended = false;    // send/json/end called
    this._sent = false;     // the result for this invocation has been sent to the front
  }

  _late(what) {
    if (!this._sent) return false;
    process.stderr.write('kelp_worker: response.' + what + '() called after the function ' +
                         'returned and its result was sent; ignored\n');
    return true;
  }

  _setHeader(name, value) {
    if (this._headers === null) this._headers = new Map();
    this._headers.set(String(name).toLowerCase(), [String(name), value]);
  }

  _push(chunk, kind) {
    this._used = true;
    if (chunk === undefined || chunk === null) return;
    let c = chunk;
    let k = kind;
    if (typeof c === 'string') {
      if (k === 0) k = KIND_TEXT;
    } else {
      const b = toBuffer(c);
      if (b !== null) {
        c = b;
        if (k === 0) k = KIND_BINARY;
      } else {
        c = String(c);
        if (k === 0) k = KIND_TEXT;
      }
    }
    if (this._chunks === null) this._chunks = [];
    this._chunks.push(c);
    if (this._kind === 0) this._kind = k;
  }

  status(code) {
    if (!this._late('status')) this.statusCode = code;
    return this;
  }

  set(name, value) {
    if (this._late('set')) return this;
    if (name !== null && typeof name === 'object' && value === undefined) {
      for (const k of Object.keys(name)) this._setHeader(k, name[k]);
    } else {
      this._setHeader(name, value);
    }
    return this;
  }

  header(name, value) { return this.set(name, value); }

  setHeader(name, value) {
    if (!this._late('setHeader')) this._setHeader(name, value);
    return this;
  }

  get(name) {
    if (this._headers === null) return undefined;
    const e = this._headers.get(String(name).toLowerCase());
    return e === undefined ? undefined : e[1];
  }

  getHeader(name) { return this.get(name); }

  removeHeader(name) {
    if (this._headers !== null) this._headers.delete(String(name).toLowerCase());
  }

  get headersSent() { return this._sent; }

  get finished() { return this._ended; }

  get writableEnded() { return this._ended; }

  write(chunk) {
    if (this._late('write') || this._ended) return false;
    this._push(chunk, 0);
    return true;
  }

  send(body) {
    if (this._late('send') || this._ended) return this;
    if (body === undefined || body === null || typeof body === 'string' ||
        toBuffer(body) !== null) {
      this._push(body, 0);
    } else {
      this._kind = KIND_JSON;
      this._push(toJSON(body), KIND_JSON);
    }
    this._ended = true;
    return this;
  }

  json(obj) {
    if (this._late('json') || this._ended) return this;
    const s = JSON.stringify(obj);
    this._kind = KIND_JSON;
    this._push(s === undefined ? '' : s, KIND_JSON);
    this._ended = true;
    return this;
  }

  end(chunk) {
    if (this._late('end') || this._ended) return this;
    if (typeof chunk === 'function') chunk = undefined;
    this._push(chunk, 0);
    this._ended = true;
    return this;
  }

  sendStatus(code) {
    if (this._late('sendStatus') || this._ended) return this;
    this.statusCode = code;
    return this.send(http.STATUS_CODES[code] || String(code));
  }
}

// ---------------------------------------------------------------------------------------------
// Results

function defaultType(kind) {
  return kind === KIND_TEXT ? CT_TEXT : kind === KIND_BINARY ? CT_BINARY :
    kind === KIND_JSON ? CT_JSON : null;
}

function checkHeaderPart(name, value) {
  if (name === '' || /[\r\n\0:\t ]/.test(name)) {
    throw new ResultError('invalid response header name ' + JSON.stringify(name));
  }
  if (/[\r\n\0]/.test(value)) {
    throw new ResultError('invalid value for response header ' + JSON.stringify(name) + ': ' +
                          JSON.stringify(value));
  }
}

// Build and send the result when the function touched event.extensions.response.
function sendCustom(res, value) {
  const status = res.statusCode;
  if (!Number.isInteger(status) || status < 100 || status > 999) {
    throw new ResultError('invalid response status ' + String(status) +
                          ': expected an integer from 100 to 999');
  }
  let body = null;
  let kind = 0;
  if (res._used) {
    kind = res._kind;
    const chunks = res._chunks;
    if (chunks !== null) {
      if (chunks.length === 1) body = chunks[0];
      else body = Buffer.concat(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c)));
    }
  } else if (value !== undefined && value !== null) {
    if (typeof value === 'string') {
      body = value;
      kind = KIND_TEXT;
    } else {
      const b = toBuffer(value);
      if (b !== null) {
        body = b;
        kind = KIND_BINARY;
      } else {
        body = toJSON(value);
        kind = KIND_JSON;
      }
    }
  }
  const pairs = [];
  let hasType = false;
  if (res._headers !== null) {
    for (const [lc, entry] of res._headers) {
      const name = entry[0];
      const value = entry[1];
      if (value === undefined) continue;
      if (lc === 'content-type') hasType = true;
      const values = Array.isArray(value) ? value : [value];
      for (const v of values) {
        const s = String(v);
        checkHeaderPart(name, s);
        pairs.push([name, s]);
      }
    }
  }
  const ct = defaultType(kind);
  if (!hasType && ct !== null) pairs.push(['content-type', ct]);
  sendFrame(resultHeader(status, pairs, false), body);
}

function sendValue(value) {
  if (typeof value === 'string') return sendFrame(H_TEXT, value);
  if (value === undefined || value === null) return sendFrame(H_EMPTY, null);
  const b = toBuffer(value);
  if (b !== null) return sendFrame(H_BINARY, b);
  return sendFrame(H_JSON, toJSON(value));
}

function sendError(e) {
  sendFrame(H_ERROR, errorText(e));
}

// ---------------------------------------------------------------------------------------------
// Invocations

let handlerFn = null;
let handlerThis = null;
let context = null;
let busy = false;         // an invocation (or the load) is in progress
let current = null;       // the invocation in progress: { res, done }
let loading = false;
let loadedOk = false;
const queue = [];

function finish(inv, ok, value) {
  if (inv.done) return;
  inv.done = true;
  const res = inv.res;
  try {
    if (!ok) {
      logFailure(value, 'the function threw');
      sendError(value);
    } else if (res.statusCode !== 200 || res._used || res._headers !== null) {
      sendCustom(res, value);
    } else {
      sendValue(value);
    }
  } catch (e) {
    if (e instanceof ResultError) process.stderr.write('kelp_worker: ' + e.message + '\n');
    else logFailure(e, 'building the response threw');
    sendError(e);
  }
  res._sent = true;
  current = null;
  busy = false;
  drain();
}

function invoke(msg, body) {
  let data;
  if (msg.data === 'json') {
    if (body.length === 0) {
      data = null;
    } else {
      let s = body.toString('utf8');
      if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
      try {
        data = JSON.parse(s);
      } catch (e) {
        sendFrame(H_BAD_JSON, 'invalid JSON body: ' + errorText(e));
        return;
      }
    }
  } else {
    data = body.toString('utf8');
  }
  let event = msg.event;
  if (event === null || typeof event !== 'object') event = {};
  let request = msg.request;
  if (request === null || typeof request !== 'object') request = {};
  Object.defineProperty(request, 'get', { value: requestGet, writable: true, configurable: true });
  Object.defineProperty(request, 'header', { value: requestGet, writable: true, configurable: true });
  const res = new KelpResponse();
  event.data = data;
  event.extensions = { request, response: res };

  const inv = { res, done: false };
  busy = true;
  current = inv;
  let r;
  try {
    r = handlerFn.call(handlerThis, event, context);
  } catch (e) {
    finish(inv, false, e);
    return;
  }
  if (r !== null && (typeof r === 'object' || typeof r === 'function') &&
      typeof r.then === 'function') {
    Promise.resolve(r).then((v) => finish(inv, true, v), (e) => finish(inv, false, e));
    return;
  }
  finish(inv, true, r);
}

// ---------------------------------------------------------------------------------------------
// Loading

function loadError(message) {
  process.stderr.write('kelp_worker: ' + message + '\n');
  sendFrame(JSON.stringify({ type: 'load_error', message }), null, () => process.exit(1));
  // In case the write callback never comes (socket gone).
  setTimeout(() => process.exit(1), 2000).unref();
}

function load(msg) {
  loading = true;
  busy = true;
  const codeDir = typeof msg.code_dir === 'string' ? msg.code_dir : '';
  const mod = typeof msg.module === 'string' ? msg.module : '';
  const handler = typeof msg.handler === 'string' ? msg.handler : '';
  const paths = Array.isArray(msg.paths) ? msg.paths.filter((p) => typeof p === 'string' && p) : [];
  const file = path.resolve(codeDir || '.', mod.endsWith('.js') ? mod : mod + '.js');
  const prefix = 'cannot load handler "' + handler + '" from module "' + mod + '" (' + file + '): ';
  context = msg.context !== null && typeof msg.context === 'object' ? msg.context : {};

  if (!mod) return loadError(prefix + 'no module name given');
  if (!handler) return loadError(prefix + 'no handler name given');

  const env = msg.env !== null && typeof msg.env === 'object' ? msg.env : {};
  for (const name of Object.keys(env)) process.env[name] = String(env[name]);

  if (paths.length > 0) {
    const cur = process.env.NODE_PATH;
    process.env.NODE_PATH = (cur ? cur + path.delimiter : '') + paths.join(path.delimiter);
    require('module').Module._initPaths();
  }

  const done = (exportsObj) => {
    let fn = exportsObj != null ? exportsObj[handler] : undefined;
    let self = exportsObj;
    if (fn === undefined && exportsObj != null && exportsObj.default != null &&
        (typeof exportsObj.default === 'object' || typeof exportsObj.default === 'function')) {
      fn = exportsObj.default[handler];
      self = exportsObj.default;
    }
    if (fn === undefined) return loadError(prefix + 'the module does not export "' + handler + '"');
    if (typeof fn !== 'function') {
      return loadError(prefix + '"' + handler + '" is not a function (it is a ' + typeof fn + ')');
    }
    handlerFn = fn;
    handlerThis = self;
    loading = false;
    loadedOk = true;
    sendFrame('{"type":"loaded"}', null);
    busy = false;
    drain();
  };
  const failed = (e) => {
    logFailure(e, 'loading the module threw');
    loadError(prefix + (isErrorLike(e) ? (e.name || 'Error') + ': ' + e.message : errorText(e)));
  };

  let exportsObj;
  try {
    exportsObj = require(file);
  } catch (e) {
    if (e && e.code === 'ERR_REQUIRE_ESM') {
      // An ES module ("type": "module" or .mjs semantics): load it with import().
      const url = require('url').pathToFileURL(file).href;
      import(url).then(done, failed);
      return undefined;
    }
    return failed(e);
  }
  return done(exportsObj);
}

// ---------------------------------------------------------------------------------------------
// Dispatch

function dispatch(msg, body) {
  if (busy) {
    queue.push([msg, body]);
    return;
  }
  const type = msg.type;
  if (type === 'invoke' && loadedOk) invoke(msg, body);
  else if (type === 'load' && !loadedOk && !loading) load(msg);
  else process.stderr.write('kelp_worker: ignoring unexpected "' + String(type) + '" message\n');
}

function drain() {
  while (!busy && queue.length > 0) {
    const m = queue.shift();
    dispatch(m[0], m[1]);
  }
}

// Incoming bytes: chunks are only concatenated once a whole frame (or a whole length prefix) is
// there, so a large body arriving in many chunks is copied once.
let chunks = [];
let total = 0;
let need = 4;

function onData(chunk) {
  chunks.push(chunk);
  total += chunk.length;
  if (total < need) return;
  const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
  chunks = [];
  total = 0;
  const len = buf.length;
  let off = 0;
  for (;;) {
    const avail = len - off;
    if (avail < 4) { need = 4; break; }
    const hl = buf.readUInt32BE(off);
    if (avail < 8 + hl) { need = 8 + hl; break; }
    const bl = buf.readUInt32BE(off + 4 + hl);
    const flen = 8 + hl + bl;
    if (avail < flen) { need = flen; break; }
    let msg;
    try {
      msg = JSON.parse(buf.toString('utf8', off + 4, off + 4 + hl));
    } catch (e) {
      process.stderr.write('kelp_worker: malformed frame header from the front: ' + e.message + '\n');
      process.exit(1);
    }
    const body = buf.subarray(off + 8 + hl, off + flen);
    off += flen;
    dispatch(msg, body);
  }
  if (off < len) {
    const rest = off === 0 ? buf : buf.subarray(off);
    chunks.push(rest);
    total = rest.length;
  }
}

// ---------------------------------------------------------------------------------------------
// Process-level safety nets: user errors must never kill the worker silently.

process.on('uncaughtException', (err) => {
  if (current !== null && !current.done) {
    // Most likely thrown by the running invocation (e.g. in a callback): fail it rather than
    // leave it hanging until the timeout. `finish` prints the stack.
    process.stderr.write('kelp_worker: uncaught exception while the function was running:\n');
    finish(current, false, err);
    return;
  }
  try {
    process.stderr.write('kelp_worker: uncaught exception: ' +
      (isErrorLike(err) ? (err.stack || String(err)) : errorText(err)) + '\n');
  } catch (_) { /* ignore */ }
  if (loading) {
    loading = false;
    loadError('cannot load the function: uncaught exception: ' + errorText(err));
  }
});

process.on('unhandledRejection', (reason) => {
  try {
    process.stderr.write('kelp_worker: unhandled promise rejection: ' +
      (isErrorLike(reason) ? (reason.stack || String(reason)) : errorText(reason)) + '\n');
  } catch (_) { /* ignore */ }
});

// ---------------------------------------------------------------------------------------------
// Start

sock = net.createConnection(sockPath);
sock.on('connect', () => {
  sendFrame(JSON.stringify({ type: 'hello', pid: process.pid, version: process.versions.node }), null);
});
sock.on('data', onData);
sock.on('end', () => process.exit(0));
sock.on('error', (err) => {
  if (err && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) process.exit(0);
  process.stderr.write('kelp_worker: socket error on ' + sockPath + ': ' + err.message + '\n');
  process.exit(1);
});
