"""Talk to a shmsock Conn from Python with pyzmq (a ZeroMQ PAIR socket).

    pip install pyzmq
    shmsock recv tcp://127.0.0.1:5555 &          # our side: bind, print messages
    python3 examples/python/pair.py send tcp://127.0.0.1:5555 hello world

    python3 examples/python/pair.py recv tcp://127.0.0.1:5556 &   # pyzmq binds
    printf 'hi\nthere\n' | shmsock send tcp://127.0.0.1:5556 --connect-timeout 5

shmsock's unix:///path is ZeroMQ's ipc:///path; this script accepts either spelling.
"""
import sys

import zmq


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("send", "recv"):
        print(__doc__)
        return 2
    mode, endpoint, words = sys.argv[1], sys.argv[2].replace("unix://", "ipc://", 1), sys.argv[3:]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PAIR)
    if mode == "send":
        sock.connect(endpoint)  # shmsock recv (a Listener) binds
        for word in words or ["hello from pyzmq"]:
            sock.send(word.encode())
        sock.close(linger=5000)  # wait until everything is delivered
    else:
        sock.bind(endpoint)  # shmsock send (Conn::connect) connects
        sock.RCVTIMEO = 60000
        try:
            while True:
                print(sock.recv().decode(errors="replace"), flush=True)
        except zmq.Again:
            pass  # PAIR never reports the peer's close; stop after a minute of silence
        sock.close()
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
