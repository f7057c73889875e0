"""pyzmq side of the CURVE interop tests (a ZeroMQ PAIR socket with CURVE security).

The Rust side is src/net/curve/pyzmq_tests.rs: it drives shmsock's CURVE state machines over
a plain TCP socket, so this checks the handshake and the MESSAGE boxes against libzmq.

Usage:
  curve_peer.py server SERVER_SECRET [ALLOW_DIR]
      bind tcp://127.0.0.1:* as the CURVE server; print "BOUND <endpoint>". With ALLOW_DIR,
      admit only the client keys of the certificates in it (zmq.auth, as a ZAP handler).
  curve_peer.py client SERVER_PUBLIC ENDPOINT CLIENT_SECRET
      connect as a CURVE client with the key pair of CLIENT_SECRET.
Keys are Z85 (40 characters).

Once connected (both roles):
  1. send the multipart message [b"from-pyzmq", b"", 300 x b"x"]
  2. echo every message received as [b"echo:" + part for each part], until the message
     [b"done"] arrives: then print "OK" and exit 0.
A client whose handshake is refused prints "AUTH_FAILED <ZAP status>" (from the socket
monitor's EVENT_HANDSHAKE_FAILED_AUTH) and exits 0; any other handshake failure prints
"HANDSHAKE_FAILED <event>" and exits 1.
"""
import sys

import zmq
from zmq.utils.monitor import recv_monitor_message

TIMEOUT_MS = 20000


def exchange(s):
    s.send_multipart([b"from-pyzmq", b"", b"x" * 300])
    while True:
        parts = s.recv_multipart()
        if parts == [b"done"]:
            print("OK", flush=True)
            return 0
        s.send_multipart([b"echo:" + p for p in parts])


HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


def wait_for_handshake(mon):
    """The handshake's outcome from the monitor: None on success, else the exit code."""
    if not mon.poll(TIMEOUT_MS):
        print("HANDSHAKE_FAILED timeout", flush=True)
        return 1
    ev = recv_monitor_message(mon)
    if ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
        return None
    if ev["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        print("AUTH_FAILED", ev["value"], flush=True)
        return 0
    print("HANDSHAKE_FAILED", ev["event"], ev["value"], flush=True)
    return 1


def main():
    role = sys.argv[1]
    ctx = zmq.Context()
    s = ctx.socket(zmq.PAIR)
    for opt in (zmq.RCVTIMEO, zmq.SNDTIMEO, zmq.LINGER):
        s.setsockopt(opt, TIMEOUT_MS)
    auth = None
    if role == "server":
        secret = sys.argv[2].encode()
        if len(sys.argv) > 3:
            from zmq.auth.thread import ThreadAuthenticator

            auth = ThreadAuthenticator(ctx)
            auth.start()
            auth.configure_curve(domain="*", location=sys.argv[3])
        s.curve_secretkey = secret
        s.curve_server = True
        s.bind("tcp://127.0.0.1:*")
        print("BOUND", s.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
        code = exchange(s)
    else:
        server_public, endpoint, secret = sys.argv[2].encode(), sys.argv[3], sys.argv[4].encode()
        s.curve_serverkey = server_public
        s.curve_secretkey = secret
        s.curve_publickey = zmq.curve_public(secret)
        mon = s.get_monitor_socket(HANDSHAKE_EVENTS)
        s.connect(endpoint)
        code = wait_for_handshake(mon)
        s.disable_monitor()
        mon.close()
        if code is None:
            code = exchange(s)
    s.close()
    if auth is not None:
        auth.stop()
    ctx.term()
    return code


if __name__ == "__main__":
    sys.exit(main())
