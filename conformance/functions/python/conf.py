"""Conformance functions for the Python runtime (module `conf`).

Parallel to ../nodejs/conf.js: same handlers, same behaviour. See conformance/README.md.
"""

import asyncio
import base64
import os
import time

import kelp


def hello(event, context):
    return "hello world"


def echo(event, context):
    """The event without `extensions`, made JSON-able, plus the request and the context."""
    out = {k: v for k, v in event.items() if k != "extensions"}
    data = event["data"]
    out["data_length"] = None
    if isinstance(data, bytes):
        out["data_length"] = len(data)
        try:
            out["data"] = data.decode("utf-8")
        except UnicodeDecodeError:
            out["data"] = base64.b64encode(data).decode("ascii")
            out["data_encoding"] = "base64"
    request = event["extensions"]["request"]
    out["request"] = dict(request)
    out["x_custom_header"] = request.get_header("X-Custom-Header")
    out["context"] = context
    return out


RETURNS = {
    "str": lambda: "a string",
    "bytes": lambda: b"\x00\x01bytes\xff",
    "dict": lambda: {"a": 1, "b": [True, None, "x"]},
    "list": lambda: [1, "two", None],
    "none": lambda: None,
    "number": lambda: 42,
    "bool": lambda: True,
    "empty": lambda: "",
    "false": lambda: False,
    "zero": lambda: 0,
    "float": lambda: 1.5,
    "unicode": lambda: "h\u00e9llo \u2713",
}


def returns(event, context):
    return RETURNS[event["extensions"]["request"]["query"]["t"]]()


def status(event, context):
    return kelp.Response("created", status=201, headers={"x-kelp": "yes"})


def framing(event, context):
    """Sets a Content-Length that disagrees with the body: the runtime must frame the body itself."""
    return kelp.Response("hello world", status=200, headers={"content-length": "5"})


def boom(event, context):
    raise Exception("kaboom")


def _query_seconds(event):
    return float(event["extensions"]["request"]["query"].get("s", "0"))


def slow(event, context):
    time.sleep(_query_seconds(event))
    return "slept"


def spin(event, context):
    while True:
        pass


def die(event, context):
    os._exit(3)


def sleepdie(event, context):
    """Sleeps ?s= seconds, then ends the worker process if ?die is given; else answers "alive"."""
    time.sleep(_query_seconds(event))
    if "die" in event["extensions"]["request"]["query"]:
        os._exit(3)
    return "alive"


def env(event, context):
    return os.environ.get(event["extensions"]["request"]["query"]["name"])


async def asyncfn(event, context):
    await asyncio.sleep(0.01)
    return "async ok"
