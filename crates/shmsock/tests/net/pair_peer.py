"""pyzmq side of the interop tests in pyzmq.rs and curve_pyzmq.rs (a ZeroMQ PAIR socket).

Usage: pair_peer.py bind|connect ENDPOINT [OPTIONS]   (tcp://... or unix:///path, i.e. ipc:///path)

Options (CURVE security, RFC 26 CurveZMQ; keys are 40 Z85 characters):
  --curve-server SECRET        be the CURVE server with this secret key
  --curve-client SECRET SERVER_PUBLIC
                               be a CURVE client with this secret key, of the server whose
                               public key is SERVER_PUBLIC
  --allow-dir DIR              (with --curve-server) admit only the client keys of the
                               certificates in DIR: zmq.auth's ThreadAuthenticator, a ZAP
                               handler, with configure_curve(domain="*", location=DIR)
  --report-handshake           (connect) print the handshake's outcome from the socket
                               monitor: "HANDSHAKE_OK"; or "AUTH_FAILED <ZAP status>" or
                               "HANDSHAKE_FAILED <event> <value>", then exit 0 at once

Protocol with the Rust side (sizes and payloads must match common.rs):
  1. receive len(SIZES) messages and check each byte for byte (payload(k, SIZES[k]))
  2. send payload(k + 100, SIZES[k]) for each k, then the multipart message [b"multi", b"part"]
  3. receive b"done", print "OK", close (linger: everything sent is delivered)
On bind, first prints "BOUND <endpoint>" with the port the OS chose.
"""
import sys

import zmq
from zmq.utils.monitor import recv_monitor_message

SIZES = [0, 1, 255, 256, 65536, 1 << 20, 3 << 20]
PATTERN = bytes(range(251))


def payload(k, n):
    """Byte j is (k + j) % 251."""
    return (PATTERN[k % 251:] + PATTERN * (n // 251 + 1))[:n]


HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


def parse_options(args):
    """The options after ROLE ENDPOINT, as a dict."""
    opts = {}
    while args:
        flag = args.pop(0)
        if flag == "--curve-server":
            opts["server"] = args.pop(0).encode()
        elif flag == "--curve-client":
            opts["client"] = (args.pop(0).encode(), args.pop(0).encode())
        elif flag == "--allow-dir":
            opts["allow_dir"] = args.pop(0)
        elif flag == "--report-handshake":
            opts["report"] = True
        else:
            raise SystemExit(f"unknown option {flag!r}")
    return opts


def handshake_outcome(mon):
    """Prints the first handshake event; returns whether the handshake succeeded."""
    if not mon.poll(20000):
        print("HANDSHAKE_FAILED timeout", flush=True)
        return False
    ev = recv_monitor_message(mon)
    if ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
        print("HANDSHAKE_OK", flush=True)
        return True
    if ev["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        print("AUTH_FAILED", ev["value"], flush=True)
    else:
        print("HANDSHAKE_FAILED", ev["event"], ev["value"], flush=True)
    return False


def main():
    role, endpoint = sys.argv[1], sys.argv[2]
    opts = parse_options(sys.argv[3:])
    ctx = zmq.Context()
    auth = None
    if "allow_dir" in opts:
        from zmq.auth.thread import ThreadAuthenticator

        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve(domain="*", location=opts["allow_dir"])
    try:
        return run(ctx, role, endpoint, opts)
    finally:
        if auth is not None:
            auth.stop()
        ctx.destroy(linger=20000)


def run(ctx, role, endpoint, opts):
    s = ctx.socket(zmq.PAIR)
    for opt in (zmq.RCVTIMEO, zmq.SNDTIMEO, zmq.LINGER):
        s.setsockopt(opt, 20000)
    if "server" in opts:
        s.curve_secretkey = opts["server"]
        s.curve_server = True
    if "client" in opts:
        secret, server_public = opts["client"]
        s.curve_serverkey = server_public
        s.curve_secretkey = secret
        s.curve_publickey = zmq.curve_public(secret)
    zmq_endpoint = endpoint.replace("unix://", "ipc://", 1)
    if role == "bind":
        s.bind(zmq_endpoint)
        bound = s.getsockopt_string(zmq.LAST_ENDPOINT).replace("ipc://", "unix://", 1)
        print("BOUND", bound, flush=True)
    elif opts.get("report"):
        mon = s.get_monitor_socket(HANDSHAKE_EVENTS)
        s.connect(zmq_endpoint)
        ok = handshake_outcome(mon)
        s.disable_monitor()
        mon.close()
        if not ok:
            s.close(linger=0)
            return 0
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
