"""Listener and Conn in one process (threads stand in for processes): messages, timeouts,
try_*, recv_into, options, threads, close, and every error a program meets."""

import array
import os
import threading
import time

import pytest

import shmsock


def pair(endpoint, **connect_options):
    """(accepted, connected) Conns over `endpoint`."""
    listener = shmsock.Listener.bind(endpoint)
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("c", shmsock.Conn.connect(endpoint, **connect_options)))
    t.start()
    server = listener.accept(timeout=10)
    t.join()
    listener.close()
    return server, got["c"]


def test_messages_keep_boundaries_and_order_and_any_bytes_like_is_sent(ep):
    a, b = pair(ep())
    with a, b:
        b.send(b"one")
        b.send(bytearray(b"two"))
        b.send(memoryview(b"xthreex")[1:-1])
        b.send(array.array("i", [1, 2]))
        b.send(b"")
        assert a.recv() == b"one"
        assert a.recv() == b"two"
        assert a.recv() == b"three"
        assert a.recv() == array.array("i", [1, 2]).tobytes()
        assert a.recv() == b""
        a.send(b"back")
        assert b.recv(timeout=5) == b"back"
        assert a.peer_pid == os.getpid() and b.peer_pid == os.getpid()
        assert a.endpoint == b.endpoint
        assert a.max_message_len == shmsock.RING_CAPACITY_DEFAULT - 128


def test_a_message_larger_than_the_scratch_buffer_arrives_whole(ep):
    a, b = pair(ep(), ring_capacity=4 << 20)
    with a, b:
        big = os.urandom(3 << 20)
        t = threading.Thread(target=b.send, args=(big,))
        t.start()
        assert a.recv(timeout=10) == big
        t.join()


def test_recv_into_fills_a_buffer_and_too_small_keeps_the_message(ep):
    a, b = pair(ep())
    with a, b:
        b.send(b"0123456789")
        small = bytearray(4)
        with pytest.raises(shmsock.BufferTooSmall) as e:
            a.recv_into(small)
        assert (e.value.len, e.value.buf) == (10, 4)
        assert isinstance(e.value, ValueError)
        buf = bytearray(64)
        assert a.recv_into(buf) == 10
        assert buf[:10] == b"0123456789"
        b.send(b"x")
        assert a.try_recv_into(memoryview(buf)[5:]) == 1
        assert buf[5:6] == b"x"
        with pytest.raises(TypeError):
            a.recv_into(b"read-only bytes")


def test_try_calls_and_timeouts(ep):
    a, b = pair(ep(), ring_capacity=4096)
    with a, b:
        with pytest.raises(shmsock.WouldBlock) as e:
            a.try_recv()
        assert isinstance(e.value, BlockingIOError)
        t = time.monotonic()
        with pytest.raises(shmsock.TimedOut) as e:
            a.recv(timeout=0.12)
        assert time.monotonic() - t >= 0.12
        assert isinstance(e.value, TimeoutError)
        with pytest.raises(shmsock.TimedOut):
            a.recv(timeout=0)
        with pytest.raises(ValueError):
            a.recv(timeout=-1)
        # Fill the peer's ring: try_send says WouldBlock, send(timeout) TimedOut.
        sent = 0
        while True:
            try:
                b.try_send(b"z" * 500)
                sent += 1
            except shmsock.WouldBlock:
                break
        with pytest.raises(shmsock.TimedOut):
            b.send(b"z" * 500, timeout=0.05)
        for _ in range(sent):
            assert a.try_recv() == b"z" * 500
        b.send(b"room again", timeout=1)
        assert a.recv(timeout=1) == b"room again"


def test_iterating_receives_until_the_peer_closed(ep):
    a, b = pair(ep())
    for word in (b"a", b"b", b"c"):
        b.send(word)
    b.close()
    assert b.closed
    assert list(a) == [b"a", b"b", b"c"]
    with pytest.raises(shmsock.PeerClosed) as e:
        a.recv(timeout=1)
    assert isinstance(e.value, ConnectionError)
    assert e.value.pid == os.getpid()
    assert "closed the connection" in str(e.value)
    a.close()
    a.close()  # twice: nothing


def test_a_closed_object_says_so(ep):
    a, b = pair(ep())
    a.close()
    b.close()
    for call in (lambda: a.send(b"x"), a.recv, lambda: a.loan(1), a.recv_sample):
        with pytest.raises(shmsock.Closed) as e:
            call()
        assert "closed" in str(e.value)
    assert "closed" in repr(a)


def test_endpoint_and_option_errors(ep):
    with pytest.raises(shmsock.InvalidEndpoint) as e:
        shmsock.Conn.connect("shm://../etc")
    assert isinstance(e.value, ValueError) and e.value.input == "shm://../etc"
    with pytest.raises(shmsock.ConnectionRefused) as e:
        shmsock.Conn.connect(ep())
    assert isinstance(e.value, ConnectionRefusedError) and e.value.errno == 111
    assert "no listener is bound" in str(e.value)
    name = ep()
    with shmsock.Listener.bind(name) as listener:
        with pytest.raises(shmsock.AddrInUse) as e:
            shmsock.Listener.bind(name)
        assert isinstance(e.value, OSError) and e.value.endpoint == name
        assert listener.endpoint == name and listener.socket_path.endswith(".sock")
    assert listener.closed
    with shmsock.Inbox.bind("tcp://127.0.0.1:0") as inbox:
        assert inbox.endpoint.startswith("tcp://127.0.0.1:") and inbox.socket_path == ""
    with pytest.raises(TypeError, match="accepts ring_capacity"):
        shmsock.Conn.connect(ep(), overflow="block")
    with pytest.raises(ValueError, match="wait_strategy"):
        shmsock.Conn.connect(ep(), wait_strategy="sometimes")
    with pytest.raises(TypeError, match="loan_pool"):
        shmsock.Conn.connect(ep(), loan_pool=4)


def test_too_large_and_no_loan_pool(ep):
    a, b = pair(ep(), ring_capacity=4096)
    with a, b:
        with pytest.raises(shmsock.TooLarge) as e:
            b.send(b"x" * 5000)
        assert (e.value.len, e.value.max) == (5000, 4096 - 128)
        with pytest.raises(shmsock.NoLoanPool):
            b.loan(10)


def test_a_peer_with_another_uid_is_refused(ep):
    name = ep()
    with shmsock.Listener.bind(name):
        with pytest.raises(shmsock.PermissionDenied) as e:
            shmsock.Conn.connect(name, allowed_uids=[os.geteuid() + 4242])
    assert isinstance(e.value, PermissionError)
    assert e.value.uid == os.geteuid() and e.value.pid == os.getpid()


def test_every_wait_strategy_and_option_works(ep):
    for strategy in ("busy_poll", shmsock.WaitStrategy.BLOCKING, "adaptive"):
        a, b = pair(ep(), wait_strategy=strategy, spin_budget=0.0001, handshake_timeout=2,
                    ring_capacity=None)
        with a, b:
            t = threading.Thread(target=lambda: (time.sleep(0.02), b.send(b"late")))
            t.start()
            assert a.recv(timeout=5) == b"late"
            t.join()


def test_a_second_thread_gets_in_use_and_close_stops_a_blocked_call(ep):
    a, b = pair(ep())
    errors = []

    def blocked():
        try:
            a.recv()
        except shmsock.Error as e:
            errors.append((e, time.monotonic()))

    t = threading.Thread(target=blocked)
    t.start()
    deadline = time.monotonic() + 10
    while True:  # until the other thread is inside recv
        try:
            a.loans_outstanding()
        except shmsock.InUse as e:
            assert isinstance(e, RuntimeError) and "another thread" in str(e)
            break
        assert time.monotonic() < deadline
        time.sleep(0.001)
    with pytest.raises(shmsock.InUse):
        a.send(b"x")
    closed_at = time.monotonic()
    a.close()
    t.join(timeout=5)
    assert not t.is_alive()
    (err, at), = errors
    assert isinstance(err, shmsock.Closed)
    assert at - closed_at < 0.5
    assert a.closed
    b.close()


def test_the_gil_is_released_while_waiting(ep):
    a, b = pair(ep())
    with a, b:
        ticks = []
        stop = threading.Event()

        def count():
            while not stop.is_set():
                ticks.append(1)
                time.sleep(0.001)

        t = threading.Thread(target=count)
        t.start()
        with pytest.raises(shmsock.TimedOut):
            a.recv(timeout=0.3)
        stop.set()
        t.join()
        assert len(ticks) > 50, "another Python thread ran while recv waited"


def test_objects_cannot_be_made_directly_and_show_their_state(ep):
    with pytest.raises(TypeError):
        shmsock.Conn()
    a, b = pair(ep())
    assert repr(a).startswith("<shmsock.Conn shm://")
    a.close()
    b.close()
