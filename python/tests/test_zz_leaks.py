"""Nothing leaks: file descriptors and shared-memory segments come back once objects are
closed (runs last in the file order, after everything else of this process)."""

import gc
import os
import threading

import pytest

import shmsock
from test_conn import pair


def open_fds():
    return set(os.listdir("/proc/self/fd"))


def shmsock_segments():
    """shmsock's memfds mapped into this process (rings, pools: /memfd:shmsock-...)."""
    with open("/proc/self/maps") as maps:
        return {line.split()[-2] for line in maps if "memfd:shmsock" in line}


def exercise(make_ep):
    names = []

    def ep():
        names.append(make_ep())
        return names[-1]

    a, b = pair(ep(), loan_pool=(2, 4096))
    b.send(b"x")
    a.recv(timeout=5)
    with b.loan(4) as loan:
        memoryview(loan)[:] = b"loan"
        loan.send()
    with a.recv_sample(timeout=5) as s:
        assert bytes(s) == b"loan"
    a.close()
    b.close()
    name = ep()
    with shmsock.Publisher.bind(name) as pub:
        with shmsock.Subscriber.connect(name) as sub:
            pub.wait_for_subscribers(1, timeout=5)
            pub.send(b"t")
            assert sub.recv(timeout=5) == b"t"
    name = ep()
    with shmsock.Inbox.bind(name) as inbox:
        with shmsock.Conn.connect(name) as w:
            w.send(b"w")
            assert inbox.recv(timeout=5) == b"w"
    with shmsock.Listener.bind("tcp://127.0.0.1:0") as listener:
        got = []
        t = threading.Thread(target=lambda: got.append(shmsock.Conn.connect(listener.endpoint)))
        t.start()
        with listener.accept(timeout=5) as c:
            t.join()
            got[0].send(b"n")
            assert c.recv(timeout=5) == b"n"
            got[0].close()
    # An object only dropped (never closed) cleans up as well.
    a, b = pair(ep())
    del a, b
    gc.collect()
    return names


def test_closing_everything_leaks_no_fd_and_no_segment(ep, runtime_dir):
    exercise(ep)  # warm up: threads, lazily opened files
    gc.collect()
    fds, segments = open_fds(), shmsock_segments()
    names = []
    for _ in range(3):
        names += exercise(ep)
    gc.collect()
    for _ in range(100):  # background threads of publishers and inboxes end shortly after
        if open_fds() == fds:
            break
        threading.Event().wait(0.01)
    assert open_fds() == fds
    assert shmsock_segments() == segments == set()
    # Closed listeners removed their rendezvous sockets.
    sockets = [n for n in names if (runtime_dir / (n.removeprefix("shm://") + ".sock")).exists()]
    assert sockets == []
