"""hello: greets what it is sent, with its HTML stripped by a dependency (requirements.txt)."""
from bs4 import BeautifulSoup


def hello(event, context):
    data = event["data"]
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    name = BeautifulSoup(data or "", "html.parser").get_text().strip() or "World"
    print(f"{context['function-name']} greets {name!r}", flush=True)
    return f"Hello, {name}!"
