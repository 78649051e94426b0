<?php
// Benchmark functions for bench/runtime.sh (Kubeless signature: handler($event, $context)).

function hello($event, $context)
{
    return 'hello world';
}

// For a JSON POST, data is the decoded object, so it is re-serialized as JSON. (`echo` is a PHP
// keyword, hence the underscore.)
function echo_($event, $context)
{
    return $event->data;
}
