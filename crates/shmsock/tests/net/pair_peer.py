"""pyzmq side of the interop tests in pyzmq.rs (a ZeroMQ PAIR socket).

Usage: pair_peer.py bind|connect ENDPOINT   (tcp://... or unix:///path, i.e. ipc:///path)

Protocol with the Rust side (sizes and payloads must match common.rs):
  1. receive len(SIZES) messages and check each byte for byte (payload(k, SIZES[k]))
  2. send payload(k + 100, SIZES[k]) for each k, then the multipart message [b"multi", b"part"]
  3. receive b"done", print "OK", close (linger: everything sent is delivered)
On bind, first prints "BOUND <endpoint>" with the port the OS chose.
"""
import sys

import zmq

SIZES = [0, 1, 255, 256, 65536, 1 << 20, 3 << 20]
PATTERN = bytes(range(251))


def payload(k, n):
    """Byte j is (k + j) % 251."""
    return (PATTERN[k % 251:] + PATTERN * (n // 251 + 1))[:n]


def main():
    role, endpoint = sys.argv[1], sys.argv[2]
    ctx = zmq.Context()
    s = ctx.socket(zmq.PAIR)
    for opt in (zmq.RCVTIMEO, zmq.SNDTIMEO, zmq.LINGER):
        s.setsockopt(opt, 20000)
    zmq_endpoint = endpoint.replace("unix://", "ipc://", 1)
    if role == "bind":
        s.bind(zmq_endpoint)
        bound = s.getsockopt_string(zmq.LAST_ENDPOINT).replace("ipc://", "unix://", 1)
        print("BOUND", bound, flush=True)
    else:
        s.connect(zmq_endpoint)
    for k, n in enumerate(SIZES):
        got = s.recv()
        if got != payload(k, n):
            print(f"MISMATCH message {k}: got {len(got)} bytes, expected {n}", flush=True)
            return 1
    for k, n in enumerate(SIZES):
        s.send(payload(k + 100, n))
    s.send_multipart([b"multi", b"part"])
    if s.recv() != b"done":
        print("MISMATCH final message", flush=True)
        return 1
    print("OK", flush=True)
    s.close()
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
