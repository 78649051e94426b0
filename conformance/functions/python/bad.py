"""A module that fails to import (a syntax error), for the load-failure case."""


def hello(event, context)
    return "never loaded"
