<?php
// Conformance functions for the PHP runtime (module `conf`).
//
// Parallel to ../python/conf.py: same handlers, same behaviour. See conformance/README.md.
// Kubeless's PHP event is an object (`$event->data`); a JSON body is decoded into objects.

function hello($event, $context)
{
    return 'hello world';
}

function echo_($event, $context)
{
    $out = clone $event;
    unset($out->extensions);
    $request = $event->extensions->request;
    $out->data_length = null;
    if (is_string($event->data) && stripos((string) $request->header('Content-Type'), 'application/json') !== 0) {
        $out->data_length = strlen($event->data);
        if (preg_match('//u', $event->data) !== 1) {
            $out->data = base64_encode($event->data);
            $out->data_encoding = 'base64';
        }
    }
    $out->request = $request;
    $out->x_custom_header = $request->header('X-Custom-Header');
    $out->context = $context;
    return $out;
}

function returns($event, $context)
{
    $values = [
        'str' => 'a string',
        'bytes' => "\x00\x01bytes\xff",
        'dict' => ['a' => 1, 'b' => [true, null, 'x']],
        'list' => [1, 'two', null],
        'none' => null,
        'number' => 42,
        'bool' => true,
        'empty' => '',
        'false' => false,
        'zero' => 0,
        'float' => 1.5,
        'unicode' => "h\u{e9}llo \u{2713}",
    ];
    return $values[$event->extensions->request->query->t];
}

function status($event, $context)
{
    return new \Kelp\Response('created', 201, ['x-kelp' => 'yes']);
}

function framing($event, $context)
{
    return new \Kelp\Response('hello world', 200, ['content-length' => '5']);
}

function boom($event, $context)
{
    throw new Exception('kaboom');
}

function slow($event, $context)
{
    usleep((int) (floatval($event->extensions->request->query->s ?? '0') * 1e6));
    return 'slept';
}

function spin($event, $context)
{
    while (true) {
    }
}

function die_($event, $context)
{
    exit(3);
}

function env($event, $context)
{
    $value = getenv($event->extensions->request->query->name);
    return $value === false ? null : $value;
}
