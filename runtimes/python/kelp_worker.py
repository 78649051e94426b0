"""Kelp Python worker.

Started by kelp-runtime as ``python3 -u kelp_worker.py`` with ``KELP_WORKER_SOCKET`` set; it
connects to that Unix socket and speaks the framed protocol of runtimes/PROTOCOL.md:
hello -> load -> loaded | load_error -> (invoke -> result)* -> exit 0 at end-of-file.

Standard library only (Python 3.8+). Nothing of the protocol is written to stdout/stderr; the
user's prints go there unchanged, and so do tracebacks of failed invocations.
"""

import importlib
import json
import os
import socket
import struct
import sys
import types

_U32 = struct.Struct('>I')

CT_TEXT = 'text/plain; charset=utf-8'
CT_BINARY = 'application/octet-stream'
CT_JSON = 'application/json'

RESERVED_MODULES = ('kelp_worker', 'kelp')


# --------------------------------------------------------------------------------------------
# The `kelp` module offered to user code (`import kelp`).

class Response(object):
    """What a handler returns to choose the status code and headers.

    ``body`` follows the same rules as a plain return value (str, bytes, None, JSON-able).
    ``headers`` is a dict or a list of (name, value) pairs; a list value gives several headers
    with the same name.
    """

    __slots__ = ('body', 'status', 'headers')
    __module__ = 'kelp'

    def __init__(self, body=None, status=200, headers=None):
        self.body = body
        self.status = status
        self.headers = headers

    @property
    def status_code(self):
        return self.status

    def __repr__(self):
        return 'kelp.Response(body=%r, status=%r, headers=%r)' % (
            self.body, self.status, self.headers)


class Request(dict):
    """``event['extensions']['request']``: a dict that also allows attribute access."""

    __slots__ = ()
    __module__ = 'kelp'

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def get_header(self, name, default=None):
        """Case-insensitive header lookup (as bottle's ``request.get_header``)."""
        headers = dict.get(self, 'headers') or {}
        return headers.get(str(name).lower(), default)


def _make_kelp_module():
    mod = types.ModuleType('kelp', 'Helpers for Kelp Python functions.')
    mod.Response = Response
    mod.Request = Request
    mod.__all__ = ['Response', 'Request']
    sys.modules['kelp'] = mod
    return mod


# --------------------------------------------------------------------------------------------
# Frames

def _frame(header_bytes, body):
    pack = _U32.pack
    return b''.join((pack(len(header_bytes)), header_bytes, pack(len(body)), body))


def _header(obj):
    return json.dumps(obj, separators=(',', ':')).encode('utf-8')


def _result_prefix(status, headers, failed):
    """Precomputed `u32 H + header` for a common result shape."""
    h = _header({'type': 'result', 'status': status, 'headers': headers, 'failed': failed})
    return _U32.pack(len(h)) + h


P_TEXT = _result_prefix(200, [['content-type', CT_TEXT]], False)
P_BINARY = _result_prefix(200, [['content-type', CT_BINARY]], False)
P_JSON = _result_prefix(200, [['content-type', CT_JSON]], False)
EMPTY_200 = _result_prefix(200, [], False) + _U32.pack(0)
P_ERROR = _result_prefix(500, [['content-type', CT_TEXT]], True)
P_BAD_JSON = _result_prefix(400, [['content-type', CT_TEXT]], False)

_json_encode = json.JSONEncoder(ensure_ascii=False, separators=(',', ':')).encode


class _ResultError(Exception):
    """The function's outcome cannot be turned into a response (reported as a failure)."""


def _error_message(e):
    msg = str(e)
    return msg if msg else type(e).__name__


def _error_result(e):
    body = _error_message(e).encode('utf-8', 'replace')
    return P_ERROR + _U32.pack(len(body)) + body


def _to_json(value):
    try:
        return _json_encode(value).encode('utf-8')
    except (TypeError, ValueError, RecursionError) as e:
        raise _ResultError('cannot encode the function result as JSON: %s' % _error_message(e))


def _body_of(value):
    """(body bytes, default content-type or None) for a returned value, per the table."""
    if value is None:
        return b'', None
    if isinstance(value, str):
        return value.encode('utf-8'), CT_TEXT
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), CT_BINARY
    return _to_json(value), CT_JSON


def _header_pairs(headers):
    if headers is None:
        return []
    if hasattr(headers, 'allitems'):        # bottle's HeaderDict / MultiDict keeps repeats
        items = headers.allitems()
    elif hasattr(headers, 'items'):
        items = headers.items()
    else:
        items = headers
    out = []
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise _ResultError('invalid response header %r: expected a (name, value) pair'
                               % (item,))
        name = str(name)
        if not name or any(c in name for c in '\r\n\0:\t '):
            raise _ResultError('invalid response header name %r' % name)
        values = value if isinstance(value, (list, tuple)) else (value,)
        for v in values:
            v = v if isinstance(v, str) else str(v)
            if '\r' in v or '\n' in v or '\0' in v:
                raise _ResultError('invalid value for response header %r: %r' % (name, v))
            out.append([name, v])
    return out


def _custom_result(status, body, headers):
    """Result frame for a kelp.Response or a duck-typed object with `status_code`."""
    if type(status) is not int or not 100 <= status <= 999:
        raise _ResultError('invalid response status %r: expected an integer from 100 to 999'
                           % (status,))
    pairs = _header_pairs(headers)
    data, ctype = _body_of(body)
    if ctype is not None:
        for name, _ in pairs:
            if name.lower() == 'content-type':
                break
        else:
            pairs.append(['content-type', ctype])
    h = _header({'type': 'result', 'status': status, 'headers': pairs, 'failed': False})
    return _frame(h, data)


def _encode_result(r):
    """Result frame for the handler's (already awaited) return value."""
    pack = _U32.pack
    t = type(r)
    if t is str:
        b = r.encode('utf-8')
        return P_TEXT + pack(len(b)) + b
    if r is None:
        return EMPTY_200
    if t is bytes:
        return P_BINARY + pack(len(r)) + r
    if t is dict or t is list:
        b = _to_json(r)
        return P_JSON + pack(len(b)) + b
    if t is Response:
        return _custom_result(r.status, r.body, r.headers)
    status = getattr(r, 'status_code', None)
    if type(status) is int:
        return _custom_result(status, getattr(r, 'body', None), getattr(r, 'headers', None))
    if isinstance(r, str):
        b = str(r).encode('utf-8')
        return P_TEXT + pack(len(b)) + b
    if isinstance(r, (bytes, bytearray, memoryview)):
        b = bytes(r)
        return P_BINARY + pack(len(b)) + b
    b = _to_json(r)
    return P_JSON + pack(len(b)) + b


# --------------------------------------------------------------------------------------------
# Loading

class _LoadError(Exception):
    pass


def _load(msg):
    """Import the user's module; return (handler, context)."""
    code_dir = msg.get('code_dir') or ''
    module = msg.get('module') or ''
    handler = msg.get('handler') or ''
    paths = msg.get('paths') or []
    where = os.path.join(code_dir, module.replace('.', os.sep) + '.py') if module else code_dir

    def fail(text):
        raise _LoadError('cannot load handler "%s" from module "%s" (%s): %s'
                         % (handler, module, where, text))

    if not module:
        fail('no module name given')
    if not handler:
        fail('no handler name given')
    if module in RESERVED_MODULES or module.split('.')[0] in RESERVED_MODULES:
        fail('the module name "%s" is reserved by the Kelp Python worker; rename the function file'
             % module.split('.')[0])

    for name, value in (msg.get('env') or {}).items():
        os.environ[str(name)] = str(value)

    new_entries = [p for p in [code_dir] + [str(p) for p in paths] if p]
    sys.path[:0] = new_entries
    importlib.invalidate_caches()

    top = module.split('.')[0]
    existing = sys.modules.get(top)
    if existing is not None and code_dir:
        # A user file named like a module the worker has already imported (json.py, types.py...)
        # would silently resolve to that module; say so instead.
        in_code_dir = (os.path.exists(os.path.join(code_dir, top + '.py'))
                       or os.path.isdir(os.path.join(code_dir, top)))
        existing_file = getattr(existing, '__file__', None) or ''
        if in_code_dir and not os.path.abspath(existing_file).startswith(
                os.path.abspath(code_dir) + os.sep):
            fail('the module name "%s" clashes with the Python module of that name, which the '
                 'worker has already imported; rename the function file' % top)

    try:
        mod = importlib.import_module(module)
    except Exception as e:
        _print_exc()
        fail('%s: %s' % (type(e).__name__, e))
    where = getattr(mod, '__file__', None) or where
    try:
        func = getattr(mod, handler)
    except AttributeError:
        fail('the module has no attribute "%s"' % handler)
    if not callable(func):
        fail('"%s" is not callable (it is a %s)' % (handler, type(func).__name__))

    context = dict(msg.get('context') or {})
    timeout = context.get('timeout')
    if timeout is not None:
        try:
            context['timeout'] = float(timeout)
        except (TypeError, ValueError):
            pass
    return func, context


# --------------------------------------------------------------------------------------------
# Main loop

def _exit(code):
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    sys.exit(code)


# asyncio and traceback cost tens of milliseconds and megabytes to import: a worker pays for them
# only when a function first returns an awaitable, or first fails.
_async = {}


class _Cancelled(Exception):
    """An awaited function was cancelled (``asyncio.CancelledError`` is not an Exception)."""


def _run_awaitable(awaitable):
    """Runs an awaitable to completion on the worker's one event loop, made on first use."""
    if not _async:
        import asyncio
        _async['loop'] = asyncio.new_event_loop()
        _async['set_loop'] = asyncio.set_event_loop
        _async['cancelled'] = asyncio.CancelledError
    loop = _async['loop']
    _async['set_loop'](loop)
    try:
        return loop.run_until_complete(awaitable)
    except _async['cancelled'] as e:
        raise _Cancelled(_error_message(e)) from e


def _print_exception(e, tb):
    import traceback
    traceback.print_exception(type(e), e, tb)


def _print_exc():
    import traceback
    traceback.print_exc()


def main():
    path = os.environ.get('KELP_WORKER_SOCKET')
    if not path:
        sys.stderr.write('kelp_worker: KELP_WORKER_SOCKET is not set\n')
        _exit(2)

    # The worker's own directory must not shadow user modules (nor be importable by them).
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and sys.path[0] and os.path.abspath(sys.path[0]) == here:
        del sys.path[0]

    _make_kelp_module()

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sys.stderr.write('kelp_worker: cannot connect to %s: %s\n' % (path, e))
        _exit(2)
    rfile = sock.makefile('rb', buffering=65536)
    read = rfile.read
    send = sock.sendall
    loads = json.loads
    unpack_from = _U32.unpack_from

    def read_frame():
        b = read(4)
        if len(b) != 4:
            return None, None
        hl = unpack_from(b)[0]
        b = read(hl + 4)
        if len(b) != hl + 4:
            return None, None
        msg = loads(b[:hl])
        bl = unpack_from(b, hl)[0]
        if bl:
            body = read(bl)
            if len(body) != bl:
                return None, None
        else:
            body = b''
        return msg, body

    version = '%d.%d.%d' % tuple(sys.version_info[:3])
    try:
        send(_frame(_header({'type': 'hello', 'pid': os.getpid(), 'version': version}), b''))

        msg, _ = read_frame()
        if msg is None:
            _exit(0)
        if msg.get('type') != 'load':
            sys.stderr.write('kelp_worker: expected a "load" message, got %r\n' % msg.get('type'))
            _exit(1)
        try:
            func, context = _load(msg)
        except _LoadError as e:
            message = str(e)
            sys.stderr.write('kelp_worker: %s\n' % message)
            send(_frame(_header({'type': 'load_error', 'message': message}), b''))
            _exit(1)
        send(_frame(b'{"type":"loaded"}', b''))
    except (ConnectionError, BrokenPipeError):
        _exit(0)

    # ---- hot path ----------------------------------------------------------------------
    pack = _U32.pack
    run = _run_awaitable
    print_exc = _print_exc
    encode_result = _encode_result
    error_result = _error_result
    ResultError = _ResultError
    RequestT = Request
    plain = frozenset((str, bytes, dict, list, type(None), int, float, bool, Response))
    write_err = sys.stderr.write

    def invoke(msg, body):
        if msg.get('data') == 'json':
            if body:
                try:
                    data = loads(body)
                except (ValueError, RecursionError) as e:
                    b = ('invalid JSON body: %s' % _error_message(e)).encode('utf-8', 'replace')
                    return P_BAD_JSON + pack(len(b)) + b
            else:
                data = None
        else:
            data = body
        event = msg.get('event')
        if type(event) is not dict:
            event = {}
        event['data'] = data
        event['extensions'] = {'request': RequestT(msg.get('request') or ())}
        try:
            r = func(event, context)
            while type(r) not in plain and hasattr(r, '__await__'):
                r = run(r)
        except Exception as e:
            # The traceback from the user's code on (skip this worker's own frame).
            tb = e.__traceback__
            _print_exception(e, tb.tb_next if tb is not None else None)
            return error_result(e)
        try:
            return encode_result(r)
        except ResultError as e:
            write_err('kelp_worker: %s\n' % e)
            return error_result(e)
        except Exception as e:
            print_exc()
            return error_result(ResultError('cannot build the response: %s' % _error_message(e)))

    try:
        while True:
            b = read(4)
            if len(b) != 4:
                break
            hl = unpack_from(b)[0]
            b = read(hl + 4)
            if len(b) != hl + 4:
                break
            msg = loads(b[:hl])
            bl = unpack_from(b, hl)[0]
            if bl:
                body = read(bl)
                if len(body) != bl:
                    break
            else:
                body = b''
            if msg.get('type') != 'invoke':
                write_err('kelp_worker: ignoring unexpected %r message\n' % msg.get('type'))
                continue
            send(invoke(msg, body))
    except (ConnectionError, BrokenPipeError):
        pass
    _exit(0)


if __name__ == '__main__':
    main()
