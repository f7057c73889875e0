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


def test_curve_keys_are_pyzmqs(zmq, tmp_path):
    need_module("zmq.auth")
    public, secret = shmsock.curve_keypair()
    assert len(public) == len(secret) == 40
    assert zmq.curve_public(secret) == public
    zmq.auth.create_certificates(str(tmp_path), "server")
    assert shmsock.load_certificate(tmp_path / "server.key_secret") == \
        zmq.auth.load_certificate(str(tmp_path / "server.key_secret"))
    assert shmsock.load_certificate(tmp_path / "server.key") == \
        (zmq.auth.load_certificate(str(tmp_path / "server.key"))[0], None)
    assert shmsock.load_certificates(tmp_path) == [shmsock.load_certificate(tmp_path / "server.key")[0]]
    with pytest.raises(shmsock.InvalidKey) as e:
        shmsock.Conn.connect("tcp://127.0.0.1:1", curve_server="not a key")
    assert isinstance(e.value, ValueError)
    with pytest.raises(shmsock.Certificate):
        (tmp_path / "broken.key").write_text("not a certificate")
        shmsock.load_certificate(tmp_path / "broken.key")
    with pytest.raises(ValueError, match="not the secret key's"):
        shmsock.Listener.bind("tcp://127.0.0.1:0", curve_secret=(shmsock.curve_keypair()[0], secret))


def test_curve_between_shmsock_and_pyzmq_both_ways(zmq, ctx):
    server_public, server_secret = shmsock.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    with shmsock.Listener.bind("tcp://127.0.0.1:0", curve_secret=(server_public, server_secret),
                               curve_allow=[client_public]) as listener:
        sock = ctx.socket(zmq.PAIR)
        sock.curve_serverkey = server_public
        sock.curve_publickey, sock.curve_secretkey = client_public, client_secret
        sock.connect(listener.endpoint)
        with listener.accept(timeout=STEP) as conn:
            sock.send(b"encrypted hello")
            assert conn.recv(timeout=STEP) == b"encrypted hello"
            conn.send(b"encrypted reply")
            sock.RCVTIMEO = STEP * 1000
            assert sock.recv() == b"encrypted reply"
        sock.close(linger=0)

    # pyzmq is the server; a shmsock Conn its client.
    server = ctx.socket(zmq.PAIR)
    server.curve_server = True
    public, server.curve_secretkey = zmq.curve_keypair()
    server.curve_publickey = public
    port = server.bind_to_random_port("tcp://127.0.0.1")
    with shmsock.Conn.connect(f"tcp://127.0.0.1:{port}", curve_server=public) as conn:
        conn.send(b"to a pyzmq CURVE server")
        server.RCVTIMEO = STEP * 1000
        assert server.recv() == b"to a pyzmq CURVE server"
    server.close(linger=0)


def test_a_curve_server_refuses_a_client_off_its_allow_list():
    server_public, server_secret = shmsock.curve_keypair()
    allowed_public, _ = shmsock.curve_keypair()
    with shmsock.Listener.bind("tcp://127.0.0.1:0", curve_secret=server_secret,
                               curve_allow=[allowed_public]) as listener:
        stranger = {}

        def connect():
            try:
                shmsock.Conn.connect(listener.endpoint, curve_server=server_public,
                                     curve_secret=shmsock.curve_keypair(), handshake_timeout=5)
            except shmsock.Error as e:
                stranger["error"] = e

        t = threading.Thread(target=connect)
        t.start()
        with pytest.raises(shmsock.TimedOut):
            listener.accept(timeout=0.5)  # drives the handshake; the stranger is dropped
        t.join()
    assert isinstance(stranger["error"], (shmsock.Refused, shmsock.Handshake)), stranger


def test_a_local_tcp_subscriber_moves_to_shared_memory_while_pyzmq_stays(zmq, ctx):
    with shmsock.Publisher.bind("tcp://127.0.0.1:0") as pub:
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(pub.endpoint)
        sub.RCVTIMEO = STEP * 1000
        with shmsock.Subscriber.connect(pub.endpoint) as ours, shmsock.Subscriber.connect(
            pub.endpoint, upgrade=False
        ) as stays:
            pub.wait_for_subscribers(3, timeout=STEP)
            k = 0
            while k < 100 or not ours.is_shared_memory:
                assert k < 10_000, "never moved to shared memory"
                msg = b"m%d" % k
                pub.send(msg)
                assert ours.recv(timeout=STEP) == msg
                assert stays.recv(timeout=STEP) == msg
                assert sub.recv() == msg
                k += 1
            assert not stays.is_shared_memory
        sub.close(linger=0)


def test_one_publisher_binds_several_endpoints(ep):
    shm = ep("several")
    with shmsock.Publisher.bind_all(["tcp://127.0.0.1:0", shm]) as pub:
        assert pub.endpoints[0] == shm and pub.endpoint == shm
        tcp = pub.endpoints[1]
        assert tcp.startswith("tcp://127.0.0.1:") and not tcp.endswith(":0")
        with shmsock.Subscriber.connect(shm) as a, shmsock.Subscriber.connect(
            tcp, upgrade=False
        ) as b:
            pub.wait_for_subscribers(2, timeout=STEP)
            pub.send(b"both")
            assert a.recv(timeout=STEP) == b"both"
            assert b.recv(timeout=STEP) == b"both"
            assert a.is_shared_memory and not b.is_shared_memory
    with pytest.raises(shmsock.Error):
        shmsock.Publisher.bind_all([])
