"""pyzmq writer of the inbox interop test (inbox_pyzmq.rs).

Usage: inbox_writer.py PAIR|PUSH ENDPOINT SEED COUNT   (tcp://... or unix:///path, i.e. ipc:///path)

Connects a ZeroMQ socket of that type and sends COUNT messages of 16 bytes: SEED and the
message's sequence number, both u64 little-endian. PAIR: prints "SENT" once all are
delivered (linger). PUSH (which an inbox refuses: PUSH pairs with PULL only) only queues on
a connection whose handshake completed (ZMQ_IMMEDIATE): prints "NOT SENT" if the first
message finds none within 2 s, else "SENT".
"""
import struct
import sys

import zmq


def main():
    kind, endpoint, seed, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if endpoint.startswith("unix://"):
        endpoint = "ipc://" + endpoint[len("unix://"):]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PAIR if kind == "PAIR" else zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 10000)
    if kind == "PUSH":
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.SNDTIMEO, 2000)
    sock.connect(endpoint)
    try:
        for seq in range(count):
            sock.send(struct.pack("<QQ", seed, seq))
    except zmq.Again:
        print("NOT SENT", flush=True)
        sock.close(linger=0)
        ctx.term()
        return
    sock.close()
    ctx.term()
    print("SENT", flush=True)


if __name__ == "__main__":
    main()
