"""pyzmq side of the PUB/SUB interop tests in pubsub_pyzmq.rs and curve_pyzmq.rs.

Usage: pubsub_peer.py sub|pub|xpub ENDPOINT [OPTIONS]   (tcp://... or unix:///path, i.e. ipc:///path)

Options (CURVE security, RFC 26 CurveZMQ; keys are 40 Z85 characters):
  --curve-server SECRET        (pub, xpub) be the CURVE server with this secret key
  --curve-client SECRET SERVER_PUBLIC
                               (sub) be a CURVE client with this secret key, of the server
                               whose public key is SERVER_PUBLIC

The schedule (must match pubsub_pyzmq.rs): message k has topic TOPICS[k % 4] and is
topic + b"." + payload(k, SIZES[k % 7]), for k in range(COUNT); the subscriber wants the
topics in WANTED (prefixes: b"AB" also matches nothing else here, b"C" matches b"C" only).
After the schedule comes topic + b"end" for each wanted topic.

  sub:  a SUB socket connects, subscribes to WANTED and b"S" (sync). The Rust PUB sends
        b"Swarm" until we print "SYNC" (then every subscription is in effect: they were
        sent in order), then the schedule; we check we got exactly the wanted messages,
        byte for byte, in order, and print "OK".
  pub:  a PUB socket binds, prints "BOUND <endpoint>", sends b"Swarm" every 10 ms until
        "GO" arrives on stdin, then the schedule (odd k as two frames: topic, rest).
  xpub: the same with an XPUB socket, which waits until the subscriptions to every
        wanted topic arrived (as b"\\x01" + topic) instead of for "GO".
Then "pub"/"xpub" wait for "BYE" on stdin and close.
"""
import select
import sys

import zmq

SIZES = [0, 1, 255, 256, 65536, 1 << 20, 3 << 20]
TOPICS = [b"AB", b"B", b"C", b"D"]
WANTED = [b"AB", b"C"]
COUNT = 28
PATTERN = bytes(range(251))


def payload(k, n):
    """Byte j is (k + j) % 251."""
    return (PATTERN[k % 251:] + PATTERN * (n // 251 + 1))[:n]


def schedule():
    for k in range(COUNT):
        topic = TOPICS[k % len(TOPICS)]
        yield topic, b"." + payload(k, SIZES[k % len(SIZES)])


def wanted():
    out = [t + rest for t, rest in schedule() if any(t.startswith(w) for w in WANTED)]
    return out + [t + b"end" for t in WANTED]


def stdin_line(timeout):
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    return sys.stdin.readline().strip() if ready else None


def secure(s, args):
    """Applies the CURVE options in `args` (the arguments after ROLE ENDPOINT) to `s`."""
    args = list(args)
    while args:
        flag = args.pop(0)
        if flag == "--curve-server":
            s.curve_secretkey = args.pop(0).encode()
            s.curve_server = True
        elif flag == "--curve-client":
            secret, server_public = args.pop(0).encode(), args.pop(0).encode()
            s.curve_serverkey = server_public
            s.curve_secretkey = secret
            s.curve_publickey = zmq.curve_public(secret)
        else:
            raise SystemExit(f"unknown option {flag!r}")


def run_sub(ctx, endpoint, options):
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.RCVTIMEO, 20000)
    secure(s, options)
    s.connect(endpoint)
    for t in WANTED + [b"S"]:
        s.setsockopt(zmq.SUBSCRIBE, t)
    while s.recv() != b"Swarm":
        pass
    print("SYNC", flush=True)
    expected = wanted()
    got = []
    while len(got) < len(expected):
        m = s.recv()
        if m != b"Swarm":
            got.append(m)
    for i, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            print(f"MISMATCH message {i}: got {len(g)} bytes {g[:8]!r}, expected {len(e)} bytes {e[:8]!r}", flush=True)
            return 1
    print("OK", flush=True)
    return 0


def run_pub(ctx, endpoint, xpub, options):
    s = ctx.socket(zmq.XPUB if xpub else zmq.PUB)
    s.setsockopt(zmq.SNDHWM, 0)
    secure(s, options)
    s.bind(endpoint)
    print("BOUND", s.getsockopt_string(zmq.LAST_ENDPOINT).replace("ipc://", "unix://", 1), flush=True)
    if xpub:
        missing = {b"\x01" + t for t in WANTED}
        s.setsockopt(zmq.RCVTIMEO, 20000)
        while missing:
            missing.discard(s.recv())
    else:
        while stdin_line(0.01) != "GO":
            s.send(b"Swarm")
    for k, (topic, rest) in enumerate(schedule()):
        if k % 2:
            s.send_multipart([topic, rest])
        else:
            s.send(topic + rest)
    for t in WANTED:
        s.send(t + b"end")
    while stdin_line(20) not in ("BYE", None):
        pass
    return 0


def main():
    role, endpoint = sys.argv[1], sys.argv[2].replace("unix://", "ipc://", 1)
    ctx = zmq.Context()
    try:
        if role == "sub":
            return run_sub(ctx, endpoint, sys.argv[3:])
        return run_pub(ctx, endpoint, role == "xpub", sys.argv[3:])
    except zmq.Again:
        print("TIMEOUT", flush=True)
        return 1
    finally:
        ctx.destroy(linger=2000)  # closes the socket: what was sent is delivered first


if __name__ == "__main__":
    sys.exit(main())
