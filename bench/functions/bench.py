"""Benchmark functions for bench/runtime.sh (Kubeless signature: handler(event, context))."""


def hello(event, context):
    return "hello world"


def echo(event, context):
    # For a JSON POST, data is the decoded object, so it is re-serialized as JSON.
    return event["data"]
