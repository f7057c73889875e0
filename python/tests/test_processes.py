"""Python and Rust in separate processes over shm:// (the Rust side is the `shmsock`
command line or the `loan_peer` example), both ways: PAIR, PUB/SUB, Inbox and loans; a
peer that dies; Ctrl-C in a blocked call; os.fork()."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import shmsock
from conftest import need_module, python_child

STEP = 20  # seconds any step may take before a test fails instead of hanging


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=STEP * 2, **kw)


def test_rust_sends_to_a_python_listener(ep, shmsock_cli):
    name = ep()
    with shmsock.Listener.bind(name) as listener:
        sender = subprocess.Popen([shmsock_cli, "send", name], stdin=subprocess.PIPE)
        sender.stdin.write(b"hello\nfrom rust\n")
        sender.stdin.close()
        with listener.accept(timeout=STEP) as conn:
            assert conn.peer_pid == sender.pid
            assert list(conn) == [b"hello", b"from rust"]
        assert sender.wait(timeout=STEP) == 0


def test_python_sends_to_a_rust_listener(ep, shmsock_cli):
    name = ep()
    receiver = subprocess.Popen([shmsock_cli, "recv", name, "--count", "3"], stdout=subprocess.PIPE)
    conn = connect_retrying(name)
    with conn:
        for line in (b"one", b"two", b"three"):
            conn.send(line)
    out, _ = receiver.communicate(timeout=STEP)
    assert receiver.returncode == 0
    assert out == b"one\ntwo\nthree\n"


def test_a_rust_publisher_reaches_a_python_subscriber(ep, shmsock_cli):
    name = ep()
    publisher = subprocess.Popen(
        [shmsock_cli, "pub", name, "--wait-subscribers", "1"], stdin=subprocess.PIPE)
    with subscribe_retrying(name) as sub:
        publisher.stdin.write(b"tick 1\nnoise\ntick 2\n")
        publisher.stdin.close()
        assert sub.publisher_pid == publisher.pid
        assert list(sub) == [b"tick 1", b"noise", b"tick 2"]
    assert publisher.wait(timeout=STEP) == 0


def test_a_python_publisher_reaches_a_rust_subscriber(ep, shmsock_cli):
    name = ep()
    with shmsock.Publisher.bind(name) as pub:
        sub = subprocess.Popen(
            [shmsock_cli, "sub", name, "--count", "2", "--connect-timeout", "10"],
            stdout=subprocess.PIPE)
        pub.wait_for_subscribers(1, timeout=STEP)
        pub.send(b"price 1")
        pub.send(b"price 2")
        out, _ = sub.communicate(timeout=STEP)
    assert sub.returncode == 0 and out == b"price 1\nprice 2\n"


def test_rust_writers_and_a_python_writer_reach_a_python_inbox(ep, shmsock_cli):
    name = ep()
    with shmsock.Inbox.bind(name) as inbox:
        writers = [subprocess.Popen([shmsock_cli, "send", name], stdin=subprocess.PIPE) for _ in range(2)]
        for i, w in enumerate(writers):
            w.stdin.write(b"from rust %d\n" % i)
            w.stdin.close()
        with shmsock.Conn.connect(name) as mine:
            mine.send(b"from python")
            got = [inbox.recv_from(timeout=STEP) for _ in range(3)]
        for w in writers:
            assert w.wait(timeout=STEP) == 0
    by_pid = {who.pid: msg for who, msg in got}
    assert by_pid == {writers[0].pid: b"from rust 0", writers[1].pid: b"from rust 1",
                      os.getpid(): b"from python"}


def test_rust_loans_arrive_in_python_samples_without_a_copy(ep, loan_peer):
    np = need_module("numpy")
    name = ep()
    count, size = 20, 1 << 20
    with shmsock.Listener.bind(name) as listener:
        lender = subprocess.Popen([loan_peer, "lend", name, str(count), str(size)])
        with listener.accept(timeout=STEP) as conn:
            for i in range(count):
                with conn.recv_sample(timeout=STEP) as sample:
                    assert sample.zero_copy and len(sample) == size
                    a = np.frombuffer(sample, dtype=np.uint8)
                    assert a.min() == a.max() == i % 251
                    del a
            assert lender.wait(timeout=STEP) == 0


def test_python_loans_arrive_in_rust_samples_without_a_copy(ep, loan_peer):
    name = ep()
    count, size = 20, 1 << 20
    receiver = subprocess.Popen([loan_peer, "samples", name, str(count)], stdout=subprocess.PIPE)
    conn = connect_retrying(name, loan_pool=(4, size))
    with conn:
        for i in range(count):
            with conn.loan(size, timeout=STEP) as loan:
                with memoryview(loan) as m:
                    m[:] = bytes([i % 251]) * size
                loan.send(timeout=STEP)
        out, _ = receiver.communicate(timeout=STEP)
    assert receiver.returncode == 0, out
    assert out.decode().split() == ["received", str(count), "zero-copy", str(count)]


def test_a_rust_publishers_loans_reach_a_python_subscriber(ep, loan_peer):
    name = ep()
    count, size = 10, 4096
    publisher = subprocess.Popen([loan_peer, "publish", name, str(count), str(size)])
    with subscribe_retrying(name) as sub:
        for i in range(count):
            with sub.recv_sample(timeout=STEP) as s:
                assert s.zero_copy and bytes(s) == bytes([i % 251]) * size
    assert publisher.wait(timeout=STEP) == 0


def test_a_peer_that_dies_is_peer_gone_after_its_messages(ep):
    name = ep()
    with shmsock.Listener.bind(name) as listener:
        child = python_child(textwrap.dedent("""
            import os, signal, sys, shmsock
            c = shmsock.Conn.connect(sys.argv[1])
            c.send(b"last words")
            os.kill(os.getpid(), signal.SIGKILL)
        """), name)
        with listener.accept(timeout=STEP) as conn:
            assert conn.recv(timeout=STEP) == b"last words"
            with pytest.raises(shmsock.PeerGone) as e:
                conn.recv(timeout=STEP)
            assert isinstance(e.value, ConnectionError) and e.value.pid == child.pid
        child.wait(timeout=STEP)


BLOCKED = textwrap.dedent("""
    import sys, threading, time, shmsock
    what, name = sys.argv[1], sys.argv[2]
    listener = shmsock.Listener.bind(name)
    peers = []
    if what != "accept":
        t = threading.Thread(target=lambda: peers.append(
            shmsock.Conn.connect(name, ring_capacity=4096, loan_pool=(1, 64))))
        t.start()
        conn = listener.accept(timeout=20)
        t.join()
        if what in ("send", "loan.send"):
            loan = peers[0].loan(8)
            for size in (100, 10, 1):  # fill the ring to the last byte
                while True:
                    try:
                        peers[0].try_send(b"x" * size)
                    except shmsock.WouldBlock:
                        break
    print("ready", flush=True)
    try:
        if what == "accept":
            listener.accept()
        elif what == "recv":
            conn.recv()
        elif what == "send":
            peers[0].send(b"x" * 100)
        else:
            loan.send()
    except KeyboardInterrupt:
        at = time.monotonic()
        if what == "loan.send":
            assert not loan.spent, "an interrupted Loan.send keeps the loan"
        print("interrupted", at, flush=True)
        sys.exit(42)
    print("not interrupted", flush=True)
""")


@pytest.mark.parametrize("call", ["recv", "accept", "send", "loan.send"])
def test_ctrl_c_interrupts_a_blocked_call_within_100_ms(ep, call):
    child = python_child(BLOCKED, call, ep(), stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.2)  # let it block (and spin down to its futex sleep)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        line = child.stdout.readline().split()
        assert child.wait(timeout=STEP) == 42, line
    finally:
        child.kill()
    assert line[0] == "interrupted"
    # Monotonic clocks are shared by the processes of one machine.
    late = float(line[1]) - sent
    assert late < 0.1 + 0.1, f"KeyboardInterrupt came {late * 1000:.0f} ms after SIGINT"


def test_a_forked_child_cannot_use_and_does_not_close_the_parents_connections(ep):
    import gc
    from test_conn import pair

    a, b = pair(ep())
    with a, b:
        pid = os.fork()
        if pid == 0:  # the child: every use raises Forked, closing touches nothing
            code = 0
            try:
                a.send(b"from the child")
                code = 1
            except shmsock.Forked as e:
                if "os.fork()" not in str(e) or not isinstance(e, RuntimeError):
                    code = 2
            except BaseException:
                code = 3
            try:
                a.close()
                del a
                gc.collect()
            except BaseException:
                code = 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's connection is intact: the child's close did not reach the peer.
        with pytest.raises(shmsock.TimedOut):
            b.recv(timeout=0.1)
        a.send(b"still here")
        assert b.recv(timeout=STEP) == b"still here"


def connect_retrying(endpoint, **options):
    """Conn.connect, retried while the (just started) listener is not bound yet."""
    deadline = time.monotonic() + STEP
    while True:
        try:
            return shmsock.Conn.connect(endpoint, **options)
        except shmsock.ConnectionRefused:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def subscribe_retrying(endpoint):
    """Subscriber.connect, retried while the (just started) publisher is not bound yet."""
    deadline = time.monotonic() + STEP
    while True:
        try:
            return shmsock.Subscriber.connect(endpoint)
        except shmsock.ConnectionRefused:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
