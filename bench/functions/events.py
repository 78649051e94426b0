"""The function of bench/events.sh: a hello function that also notes how long each message took
from its publisher (the first 19 bytes of the message: nanoseconds since the epoch) to here, one
line per message in the file $SINK."""

import os
import time

SINK = os.environ['SINK']


def hello(event, context):
    took = time.time_ns() - int(event['data'][:19])
    with open(SINK, 'a') as f:
        f.write('%d\n' % took)
    return 'hello world'
