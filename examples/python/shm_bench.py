"""Quick timing of the shmsock Python package over shm:// (two processes).

    pip install ./python
    python3 examples/python/shm_bench.py                 # 64 B streaming and round trip
    python3 examples/python/shm_bench.py --size 4096 --count 200000 --wait busy_poll

Streaming: the child sends COUNT messages of SIZE bytes with send(); the parent receives
them with recv_into() into one bytearray and reports messages per second. Round trip: the
parent sends a message, the child echoes it, ROUNDS times; the report gives percentiles
of one round trip. Both sides are separate processes (the child is this script again).
Numbers on a shared or busy machine are noisy: compare runs, not single figures.
"""
import argparse
import os
import subprocess
import sys
import time

import shmsock


def child(args):
    conn = shmsock.Conn.connect(args.endpoint, wait_strategy=args.wait)
    if args.role == "stream":
        msg = b"x" * args.size
        for _ in range(args.count):
            conn.send(msg)
    else:
        buf = bytearray(args.size)
        for _ in range(args.rounds):
            n = conn.recv_into(buf)
            conn.send(memoryview(buf)[:n])
    conn.close()


def run(args, role):
    endpoint = f"shm://pybench-{os.getpid()}-{role}"
    listener = shmsock.Listener.bind(endpoint, wait_strategy=args.wait)
    peer = subprocess.Popen(
        [sys.executable, __file__, "--child", role, "--endpoint", endpoint,
         "--size", str(args.size), "--count", str(args.count),
         "--rounds", str(args.rounds), "--wait", args.wait])
    conn = listener.accept(timeout=10)
    buf = bytearray(max(args.size, 1))
    try:
        if role == "stream":
            conn.recv_into(buf)  # the first message starts the clock
            start = time.perf_counter()
            for _ in range(args.count - 1):
                conn.recv_into(buf)
            elapsed = time.perf_counter() - start
            rate = (args.count - 1) / elapsed
            print(f"stream     {args.size:>7} B  {rate / 1e6:8.3f} M msgs/s  "
                  f"({rate * args.size / 1e6:8.1f} MB/s, {args.count} messages, wait={args.wait})")
        else:
            msg = b"p" * args.size
            rtts = []
            for _ in range(args.rounds):
                t = time.perf_counter_ns()
                conn.send(msg)
                conn.recv_into(buf)
                rtts.append(time.perf_counter_ns() - t)
            rtts.sort()
            pct = lambda p: rtts[min(len(rtts) - 1, int(len(rtts) * p))] / 1000
            print(f"round trip {args.size:>7} B  p50 {pct(0.50):7.2f} us  p90 {pct(0.90):7.2f} us  "
                  f"p99 {pct(0.99):7.2f} us  ({args.rounds} rounds, wait={args.wait})")
    finally:
        conn.close()
        listener.close()
        peer.wait(timeout=30)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--count", type=int, default=500_000, help="streamed messages")
    p.add_argument("--rounds", type=int, default=50_000, help="round trips")
    p.add_argument("--wait", default="adaptive", choices=["adaptive", "busy_poll", "blocking"])
    p.add_argument("--child", choices=["stream", "rtt"], help=argparse.SUPPRESS)
    p.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.role = args.child
        child(args)
        return
    run(args, "stream")
    run(args, "rtt")


if __name__ == "__main__":
    main()
