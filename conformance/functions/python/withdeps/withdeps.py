"""Uses a dependency from requirements.txt (six 1.16.0)."""

import six


def check(event, context):
    return "deps ok" if six.__version__ == "1.16.0" else "unexpected six " + six.__version__
