"""Echoes the event back as JSON: what a Kelp function sees of a request."""


def handler(event, context):
    data = event["data"]
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    request = event["extensions"]["request"]
    print("event", event["event-id"], event["event-namespace"], request["method"], request["path"])
    return {
        "data": data,
        "event-id": event["event-id"],
        "event-type": event["event-type"],
        "event-namespace": event["event-namespace"],
        "method": request["method"],
        "path": request["path"],
        "query": request["query"],
        "function": context["function-name"],
    }
