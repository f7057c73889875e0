"""pyzmq side of upgrade.rs: a SUB socket on the same endpoint as our upgraded subscriber.

Usage: upgrade_peer.py ENDPOINT COUNT   (tcp://... or unix:///path, i.e. ipc:///path)

Connects, subscribes to everything, prints "READY", then receives COUNT messages; each starts
with its sequence number (8 bytes, little-endian). Prints "OK COUNT" if they are 0..COUNT-1 in
order, else "BAD <why>", and exits.
"""
import struct
import sys

import zmq

endpoint = sys.argv[1].replace("unix://", "ipc://")
count = int(sys.argv[2])
ctx = zmq.Context()
sub = ctx.socket(zmq.SUB)
sub.setsockopt(zmq.RCVHWM, 0)
sub.connect(endpoint)
sub.setsockopt(zmq.SUBSCRIBE, b"")
print("READY", flush=True)
for k in range(count):
    msg = sub.recv()
    seq = struct.unpack_from("<Q", msg)[0]
    if seq != k:
        print(f"BAD message {k} has sequence number {seq}", flush=True)
        sys.exit(1)
print(f"OK {count}", flush=True)
sub.close(linger=0)
ctx.term()
