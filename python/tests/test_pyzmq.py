"""shmsock and pyzmq over tcp:// and unix://: PAIR and PUB/SUB both ways, same errors."""

import threading
import time

import pytest

import shmsock
from conftest import need_module

STEP = 20


@pytest.fixture
def zmq():
    return need_module("zmq")


@pytest.fixture
def ctx(zmq):
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def test_a_pyzmq_pair_talks_to_a_listener(zmq, ctx):
    with shmsock.Listener.bind("tcp://127.0.0.1:0") as listener:
        sock = ctx.socket(zmq.PAIR)
        sock.connect(listener.endpoint)
        with listener.accept(timeout=STEP) as conn:
            assert conn.peer_pid == 0
            sock.send(b"ping from pyzmq")
            assert conn.recv(timeout=STEP) == b"ping from pyzmq"
            conn.send(b"pong")
            sock.RCVTIMEO = STEP * 1000
            assert sock.recv() == b"pong"
            sock.send_multipart([b"part1,", b"part2"])
            assert conn.recv(timeout=STEP) == b"part1,part2"
        sock.close(linger=0)


def test_a_conn_talks_to_a_pyzmq_pair_over_unix(zmq, ctx, runtime_dir):
    path = runtime_dir / "zmq-pair.ipc"
    sock = ctx.socket(zmq.PAIR)
    sock.bind(f"ipc://{path}")
    with shmsock.Conn.connect(f"unix://{path}") as conn:
        conn.send(b"hello pyzmq")
        sock.RCVTIMEO = STEP * 1000
        assert sock.recv() == b"hello pyzmq"
        sock.send(b"hello shmsock")
        assert conn.recv(timeout=STEP) == b"hello shmsock"
    sock.close(linger=0)


def test_a_pyzmq_sub_receives_from_a_publisher(zmq, ctx):
    with shmsock.Publisher.bind("tcp://127.0.0.1:0") as pub:
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"tick")
        sub.connect(pub.endpoint)
        pub.wait_for_subscribers(1, timeout=STEP)
        pub.send(b"noise")
        pub.send(b"tick 1")
        sub.RCVTIMEO = STEP * 1000
        assert sub.recv() == b"tick 1"
        sub.close(linger=0)


def test_a_subscriber_receives_from_a_pyzmq_pub(zmq, ctx):
    pub = ctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    with shmsock.Subscriber.connect(f"tcp://127.0.0.1:{port}") as sub:
        sub.subscribe(b"temp.")
        sub.unsubscribe(b"")
        # A ZeroMQ PUB drops what it sends before a subscription arrives: resend until one
        # gets through.
        deadline = time.monotonic() + STEP
        while True:
            pub.send(b"wind.north 12")
            pub.send(b"temp.paris 21")
            try:
                assert sub.recv(timeout=0.05) == b"temp.paris 21"
                break
            except shmsock.TimedOut:
                assert time.monotonic() < deadline
    pub.close(linger=0)


def test_network_errors_are_the_same_exceptions(zmq):
    with shmsock.Listener.bind("tcp://127.0.0.1:0") as listener:
        port = listener.endpoint.rsplit(":", 1)[1]
        with pytest.raises(shmsock.AddrInUse):
            shmsock.Listener.bind(f"tcp://127.0.0.1:{port}")
    with pytest.raises(shmsock.ConnectionRefused):
        shmsock.Conn.connect(f"tcp://127.0.0.1:{port}")
    with shmsock.Listener.bind("tcp://127.0.0.1:0", max_message_len=16) as listener:
        got = []
        t = threading.Thread(
            target=lambda: got.append(shmsock.Conn.connect(listener.endpoint, max_message_len=16)))
        t.start()
        with listener.accept(timeout=STEP) as server:
            t.join()
            with got[0] as conn:
                with pytest.raises(shmsock.TooLarge) as e:
                    conn.send(b"x" * 17)
                assert (e.value.len, e.value.max) == (17, 16)
                with pytest.raises(shmsock.TimedOut):
                    conn.recv(timeout=0.05)
                with pytest.raises(shmsock.TimedOut):
                    server.recv(timeout=0.05)
