'use strict';
// Conformance functions for the Node.js runtime (module `conf`).
//
// Parallel to ../python/conf.py: same handlers, same behaviour. See conformance/README.md.

function hello(event, context) {
  return 'hello world';
}

// The event without `extensions`, made JSON-able, plus the request and the context.
function echo(event, context) {
  const { extensions, ...out } = event;
  out.data_length = typeof event.data === 'string' ? Buffer.byteLength(event.data, 'utf8') : null;
  out.request = extensions.request;
  out.x_custom_header = extensions.request.get('X-Custom-Header') ?? null;
  out.context = context;
  return out;
}

const RETURNS = {
  str: () => 'a string',
  bytes: () => Buffer.from([0x00, 0x01, ...Buffer.from('bytes'), 0xff]),
  dict: () => ({ a: 1, b: [true, null, 'x'] }),
  list: () => [1, 'two', null],
  none: () => null,
  number: () => 42,
  bool: () => true,
  empty: () => '',
  false: () => false,
  zero: () => 0,
  float: () => 1.5,
  unicode: () => 'h\u00e9llo \u2713',
};

function returns(event, context) {
  return RETURNS[event.extensions.request.query.t]();
}

function status(event, context) {
  event.extensions.response.status(201).set('x-kelp', 'yes');
  return 'created';
}

// Sets a Content-Length that disagrees with the body: the runtime must frame the body itself.
function framing(event, context) {
  event.extensions.response.set('content-length', '5');
  return 'hello world';
}

function boom(event, context) {
  throw new Error('kaboom');
}

function querySeconds(event) {
  return parseFloat(event.extensions.request.query.s || '0');
}

function slow(event, context) {
  return new Promise((resolve) => setTimeout(() => resolve('slept'), querySeconds(event) * 1000));
}

function spin(event, context) {
  for (;;) { /* hang synchronously */ }
}

function die(event, context) {
  process.exit(3);
}

function env(event, context) {
  return process.env[event.extensions.request.query.name];
}

async function asyncfn(event, context) {
  await new Promise((resolve) => setTimeout(resolve, 10));
  return 'async ok';
}

module.exports = { hello, echo, returns, status, framing, boom, slow, spin, die, env, asyncfn };
