<?php
// Kelp PHP worker (a plugin runtime: runtimes/php/runtime.json).
//
// Started by kelp-runtime as `php kelp_worker.php` with KELP_WORKER_SOCKET set; it connects to
// that Unix socket and speaks the framed protocol of runtimes/PROTOCOL.md:
// hello -> load -> loaded | load_error -> (invoke -> result)* -> exit 0 at end-of-file.
//
// Kubeless's PHP semantics: `function name($event, $context)` in the code file; `$event` is an
// object (`$event->data`, `$event->{'event-id'}`, `$event->extensions->request`), a JSON body is
// `json_decode`d into objects; the function runs with the code directory as its working
// directory and the dependency install on the include path, so Kubeless's
// `require 'vendor/autoload.php'` finds Composer's autoloader. Nothing of the protocol is written
// to stdout/stderr.

namespace Kelp;

const CT_TEXT = 'text/plain; charset=utf-8';
const CT_BINARY = 'application/octet-stream';
const CT_JSON = 'application/json';

/** A result with a status and headers: `new \Kelp\Response('created', 201, ['x-kelp' => 'yes'])`. */
class Response
{
    public $body;
    public $status;
    public $headers;

    public function __construct($body = null, int $status = 200, array $headers = [])
    {
        $this->body = $body;
        $this->status = $status;
        $this->headers = $headers;
    }
}

/**
 * The request (`$event->extensions->request`): the protocol's `request` object, its `query` and
 * `headers` as objects (`$request->query->name`).
 */
class Request
{
    public $method;
    public $path;
    public $url;
    public $query;
    public $headers;

    public function __construct(array $request)
    {
        foreach (['method', 'path', 'url'] as $key) {
            $this->$key = $request[$key] ?? null;
        }
        $this->query = (object) ($request['query'] ?? []);
        $this->headers = (object) ($request['headers'] ?? []);
    }

    /** A request header by its name, case-insensitively, or null. */
    public function header(string $name)
    {
        return $this->headers->{strtolower($name)} ?? null;
    }
}

/** Reads exactly $n bytes, or null at end-of-file. */
function read_exactly($sock, int $n)
{
    $data = '';
    while (strlen($data) < $n) {
        $chunk = fread($sock, $n - strlen($data));
        if ($chunk === false || $chunk === '') {
            return null;
        }
        $data .= $chunk;
    }
    return $data;
}

/** Reads one frame: [header array, body string], or null at end-of-file. */
function read_frame($sock)
{
    $size = read_exactly($sock, 4);
    if ($size === null) {
        return null;
    }
    $header = json_decode(read_exactly($sock, unpack('N', $size)[1]) ?? '', true);
    $body = read_exactly($sock, unpack('N', read_exactly($sock, 4) ?? "\0\0\0\0")[1]);
    return [$header, $body ?? ''];
}

/** Writes one frame. */
function write_frame($sock, array $header, string $body = '')
{
    $head = json_encode($header, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE);
    $frame = pack('N', strlen($head)) . $head . pack('N', strlen($body)) . $body;
    for ($written = 0; $written < strlen($frame); $written += $n) {
        $n = fwrite($sock, substr($frame, $written));
        if ($n === false || $n === 0) {
            exit(0);
        }
    }
}

function result(int $status, array $headers, bool $failed, string $body): array
{
    return [['type' => 'result', 'status' => $status, 'headers' => $headers, 'failed' => $failed], $body];
}

/** The default content type and body of a returned value. */
function body_of($value): array
{
    if ($value === null) {
        return [null, ''];
    }
    if (is_string($value)) {
        return [preg_match('//u', $value) === 1 ? CT_TEXT : CT_BINARY, $value];
    }
    $json = json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR);
    return [CT_JSON, $json];
}

/** The result frame of a returned value (a Response, or its body alone). */
function answer($value): array
{
    $response = $value instanceof Response ? $value : new Response($value);
    [$type, $body] = body_of($response->body);
    $headers = [];
    $typed = false;
    foreach ($response->headers as $name => $v) {
        $headers[] = [(string) $name, (string) $v];
        $typed = $typed || strcasecmp((string) $name, 'content-type') === 0;
    }
    if ($type !== null && !$typed) {
        $headers[] = ['content-type', $type];
    }
    if ($response->status < 100 || $response->status > 999) {
        throw new \InvalidArgumentException("invalid response status {$response->status}: expected an integer from 100 to 999");
    }
    return result($response->status, $headers, false, $body);
}

function failure(\Throwable $e): array
{
    fwrite(STDERR, (string) $e . "\n");
    return result(500, [['content-type', CT_TEXT]], true, $e->getMessage());
}

/** Loads the code file and returns its handler's name, or throws saying why not. */
function load_function(array $msg): string
{
    $file = rtrim((string) ($msg['code_dir'] ?? ''), '/') . '/' . ($msg['module'] ?? '') . '.php';
    $handler = (string) ($msg['handler'] ?? '');
    $prefix = "cannot load handler \"$handler\" from module \"" . ($msg['module'] ?? '') . "\" ($file): ";
    foreach ($msg['env'] ?? [] as $name => $value) {
        putenv("$name=$value");
        $_ENV[$name] = (string) $value;
    }
    $paths = array_merge([(string) ($msg['code_dir'] ?? '.')], $msg['paths'] ?? []);
    set_include_path(implode(PATH_SEPARATOR, array_merge($paths, [get_include_path()])));
    if (!is_file($file)) {
        throw new \RuntimeException($prefix . 'no such file');
    }
    chdir((string) $msg['code_dir']);
    try {
        require_once $file;
    } catch (\Throwable $e) {
        throw new \RuntimeException($prefix . get_class($e) . ': ' . $e->getMessage() . ' on line ' . $e->getLine());
    }
    if (!function_exists($handler)) {
        throw new \RuntimeException($prefix . "the file does not define the function $handler");
    }
    return $handler;
}

function invoke(string $handler, $context, array $msg, string $body): array
{
    $data = $body;
    if (($msg['data'] ?? '') === 'json') {
        $text = strncmp($body, "\xEF\xBB\xBF", 3) === 0 ? substr($body, 3) : $body;
        if ($text === '') {
            $data = null;
        } else {
            $data = json_decode($text);
            if (json_last_error() !== JSON_ERROR_NONE) {
                return result(400, [['content-type', CT_TEXT]], false, 'invalid JSON body: ' . json_last_error_msg());
            }
        }
    }
    $event = (object) ($msg['event'] ?? []);
    $event->data = $data;
    $event->extensions = (object) ['request' => new Request($msg['request'] ?? [])];
    try {
        return answer(call_user_func($handler, $event, $context));
    } catch (\Throwable $e) {
        return failure($e);
    }
}

$path = getenv('KELP_WORKER_SOCKET');
if ($path === false || $path === '') {
    fwrite(STDERR, "kelp_worker: KELP_WORKER_SOCKET is not set\n");
    exit(2);
}
$sock = stream_socket_client("unix://$path", $errno, $errstr);
if ($sock === false) {
    fwrite(STDERR, "kelp_worker: cannot connect to $path: $errstr\n");
    exit(1);
}
write_frame($sock, ['type' => 'hello', 'pid' => getmypid(), 'version' => PHP_VERSION]);
$frame = read_frame($sock);
if ($frame === null) {
    exit(0);
}
[$load] = $frame;
try {
    $handler = load_function($load);
} catch (\Throwable $e) {
    fwrite(STDERR, 'kelp_worker: ' . $e->getMessage() . "\n");
    write_frame($sock, ['type' => 'load_error', 'message' => $e->getMessage()]);
    exit(1);
}
$context = (object) ($load['context'] ?? []);
write_frame($sock, ['type' => 'loaded']);
while (($frame = read_frame($sock)) !== null) {
    [$header, $body] = $frame;
    [$reply, $replyBody] = invoke($handler, $context, $header, $body);
    write_frame($sock, $reply, $replyBody);
}
