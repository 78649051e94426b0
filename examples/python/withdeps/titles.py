"""A function with a dependency (requirements.txt): parses the HTML it is sent."""
from bs4 import BeautifulSoup


def title(event, context):
    html = event["data"]
    if isinstance(html, bytes):
        html = html.decode("utf-8", "replace")
    soup = BeautifulSoup(html or "<title>no title</title>", "html.parser")
    return soup.title.string if soup.title else ""
