"""The example function `scripts/up` serves: it greets, and echoes what it is sent."""


def hello(event, context):
    data = event["data"]
    if not data:
        return "hello world"
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return {"you-sent": data, "event-id": event["event-id"], "function": context["function-name"]}
