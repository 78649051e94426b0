"""Never runs: its requirements.txt names a package that does not exist."""


def check(event, context):
    return "unreachable"
