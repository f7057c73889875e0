"""Publish/subscribe between shmsock and pyzmq (ZeroMQ PUB/SUB sockets).

    pip install pyzmq

    # a pyzmq SUB receives from `shmsock pub` (topic "tick": messages starting with it)
    python3 examples/python/pubsub.py sub tcp://127.0.0.1:5557 tick &
    printf 'tick 1\\nnoise\\ntick 2\\n' | shmsock pub tcp://127.0.0.1:5557 --wait-subscribers 1

    # `shmsock sub` receives from a pyzmq PUB (one message per stdin line)
    shmsock sub tcp://127.0.0.1:5558 --connect-timeout 10 --count 2 &
    printf 'tick 1\\ntick 2\\n' | python3 examples/python/pubsub.py pub tcp://127.0.0.1:5558

sub ENDPOINT [TOPIC...]   connect a SUB, subscribe to each TOPIC (none given: everything),
                          print each message; stop after 60 s of silence or with -n COUNT.
pub ENDPOINT              bind a PUB, wait a second for subscribers (a ZeroMQ PUB drops
                          what it sends before their subscriptions arrive), publish stdin.

shmsock's unix:///path is ZeroMQ's ipc:///path; this script accepts either spelling.
"""
import sys
import time

import zmq


def main():
    args = sys.argv[1:]
    count = None
    if "-n" in args:
        i = args.index("-n")
        count = int(args[i + 1])
        del args[i:i + 2]
    if len(args) < 2 or args[0] not in ("sub", "pub"):
        print(__doc__)
        return 2
    mode, endpoint, topics = args[0], args[1].replace("unix://", "ipc://", 1), args[2:]
    ctx = zmq.Context()
    if mode == "sub":
        sock = ctx.socket(zmq.SUB)
        sock.connect(endpoint)  # `shmsock pub` (a Publisher) binds
        for topic in topics or [""]:
            sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        sock.RCVTIMEO = 60000
        received = 0
        try:
            while count is None or received < count:
                # A multipart message is shown with its parts joined, as shmsock delivers it.
                print(b"".join(sock.recv_multipart()).decode(errors="replace"), flush=True)
                received += 1
        except zmq.Again:
            pass  # a SUB never hears that the publisher left: stop after a minute of silence
    else:
        sock = ctx.socket(zmq.PUB)
        sock.bind(endpoint)  # `shmsock sub` (a Subscriber) connects
        time.sleep(1.0)
        for line in sys.stdin.buffer:
            sock.send(line.rstrip(b"\n"))
    sock.close(linger=5000)  # deliver what is queued
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
