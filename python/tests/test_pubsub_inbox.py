"""Publisher/Subscriber and Inbox in one process: topics, overflow policies (Lagged,
SlowSubscriber), many writers."""

import os
import threading
import time

import pytest

import shmsock


def test_subscribers_get_what_matches_their_topics(ep):
    name = ep()
    with shmsock.Publisher.bind(name) as pub:
        everything = shmsock.Subscriber.connect(name)
        paris = shmsock.Subscriber.connect(name)
        paris.unsubscribe(b"")
        paris.subscribe(b"paris.")
        assert pub.wait_for_subscribers(2, timeout=10) == 2
        assert pub.subscriber_count() == 2
        pub.send(b"oslo.temp -3")
        pub.send(bytearray(b"paris.temp 21"))
        assert everything.recv(timeout=5) == b"oslo.temp -3"
        assert everything.recv(timeout=5) == b"paris.temp 21"
        assert paris.recv(timeout=5) == b"paris.temp 21"
        buf = bytearray(4)
        pub.send(b"paris.wind 12 km/h")
        with pytest.raises(shmsock.BufferTooSmall):
            paris.recv_into(buf)
        assert paris.recv(timeout=5) == b"paris.wind 12 km/h"
        assert everything.publisher_pid == os.getpid()
        everything.close()
        paris.close()


def test_a_subscriber_iterates_until_the_publisher_closed(ep):
    name = ep()
    pub = shmsock.Publisher.bind(name)
    sub = shmsock.Subscriber.connect(name)
    pub.wait_for_subscribers(1, timeout=10)
    for i in range(3):
        pub.send(b"tick %d" % i)
    pub.close()
    assert list(sub) == [b"tick 0", b"tick 1", b"tick 2"]
    with pytest.raises(shmsock.PeerClosed):
        sub.recv(timeout=1)
    sub.close()


def test_drop_oldest_tells_a_lagging_subscriber_how_many_it_lost(ep):
    name = ep()
    with shmsock.Publisher.bind(name, overflow=shmsock.Overflow.DROP_OLDEST, ring_capacity=4096) as pub:
        with shmsock.Subscriber.connect(name) as sub:
            pub.wait_for_subscribers(1, timeout=10)
            for i in range(1000):
                pub.send(b"%04d" % i + b"." * 60)  # never waits
            with pytest.raises(shmsock.Lagged) as e:
                sub.recv(timeout=5)
            assert e.value.missed > 0 and isinstance(e.value, shmsock.Error)
            assert "lost" in str(e.value)
            first = int(sub.recv(timeout=5)[:4])
            assert first == e.value.missed, "goes on with the oldest message still there"


def test_a_blocking_publisher_names_its_slow_subscriber(ep):
    name = ep()
    with shmsock.Publisher.bind(name, overflow="block", ring_capacity=4096) as pub:
        with shmsock.Subscriber.connect(name) as sub:
            pub.wait_for_subscribers(1, timeout=10)
            while True:
                try:
                    pub.try_send(b"x" * 100)
                except shmsock.WouldBlock:
                    break
            t = time.monotonic()
            with pytest.raises(shmsock.SlowSubscriber) as e:
                pub.send(b"x" * 100, timeout=0.15)
            assert isinstance(e.value, TimeoutError)
            assert e.value.pid == os.getpid()
            assert e.value.waited >= 0.15 and time.monotonic() - t >= 0.15
            assert sub.recv(timeout=1) == b"x" * 100
            pub.send(b"y", timeout=5)


def test_wait_for_subscribers_times_out(ep):
    with shmsock.Publisher.bind(ep()) as pub:
        with pytest.raises(shmsock.TimedOut):
            pub.wait_for_subscribers(1, timeout=0.05)


def test_an_inbox_takes_messages_from_every_writer_and_names_them(ep):
    name = ep()
    with shmsock.Inbox.bind(name) as inbox:
        writers = [shmsock.Conn.connect(name) for _ in range(3)]
        for i, w in enumerate(writers):
            w.send(b"order %d" % i)
        got = [inbox.recv_from(timeout=5) for _ in range(3)]
        assert sorted(msg for _, msg in got) == [b"order 0", b"order 1", b"order 2"]
        ids = {who for who, _ in got}
        assert len(ids) == 3 and all(w.pid == os.getpid() for w in ids)
        assert sorted(w.serial for w in ids) == [0, 1, 2]
        assert repr(next(iter(ids))).startswith("WriterId(pid=")
        assert inbox.writer_count() == 3
        writers[0].send(b"0123456789")
        buf = bytearray(4)
        with pytest.raises(shmsock.BufferTooSmall):
            inbox.recv_from_into(buf)
        buf = bytearray(64)
        who, n = inbox.recv_from_into(buf, timeout=5)
        assert buf[:n] == b"0123456789" and who.serial == 0
        with pytest.raises(shmsock.WouldBlock):
            inbox.try_recv_from()
        with pytest.raises(shmsock.TimedOut):
            inbox.recv(timeout=0.05)
        for w in writers:
            w.close()


def test_an_inbox_waits_for_a_first_writer(ep):
    name = ep()
    with shmsock.Inbox.bind(name) as inbox:
        def late():
            time.sleep(0.05)
            with shmsock.Conn.connect(name) as c:
                c.send(b"late")
                time.sleep(0.2)

        t = threading.Thread(target=late)
        t.start()
        assert inbox.recv(timeout=10) == b"late"
        t.join()


def test_an_inbox_and_a_listener_bind_several_endpoints(ep, tmp_path):
    name = ep()
    unix = f"unix://{tmp_path}/inbox.sock"
    with shmsock.Inbox.bind_all([name, unix, "tcp://127.0.0.1:0"]) as inbox:
        assert inbox.endpoint == name and inbox.endpoints[:2] == [name, unix]
        tcp = inbox.endpoints[2]
        assert tcp.startswith("tcp://127.0.0.1:") and not tcp.endswith(":0")
        writers = [shmsock.Conn.connect(e) for e in inbox.endpoints]
        for i, w in enumerate(writers):
            w.send(b"via %d" % i)
        got = [inbox.recv_from(timeout=5) for _ in range(3)]
        assert sorted(msg for _, msg in got) == [b"via 0", b"via 1", b"via 2"]
        pids = sorted(who.pid for who, _ in got)
        assert pids == [0, os.getpid(), os.getpid()]  # tcp:// writers have no pid
        assert len({who.serial for who, _ in got}) == 3
        for w in writers:
            w.close()
    with pytest.raises(shmsock.Error):
        shmsock.Inbox.bind_all([])
    with shmsock.Listener.bind_all([ep("l"), "tcp://127.0.0.1:0"]) as listener:
        assert len(listener.endpoints) == 2
        with shmsock.Conn.connect(listener.endpoints[1]) as c:
            c.send(b"over tcp")
            with listener.accept(timeout=5) as conn:
                assert conn.recv(timeout=5) == b"over tcp"


def test_every_endpoint_object_shows_its_class_endpoint_peer_and_state(ep):
    name = ep()
    listener = shmsock.Listener.bind(name)
    assert repr(listener) == f"<shmsock.Listener {name}>"
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("c", shmsock.Conn.connect(name)))
    t.start()
    accepted = listener.accept(timeout=10)
    t.join()
    conn = got["c"]
    accepted.close()
    assert repr(conn) == f"<shmsock.Conn {name} peer_pid={os.getpid()}>"
    conn.close()
    assert repr(conn) == f"<shmsock.Conn {name} peer_pid={os.getpid()} closed>"
    listener.close()
    assert repr(listener) == f"<shmsock.Listener {name} closed>"

    name = ep()
    publisher = shmsock.Publisher.bind(name)
    subscriber = shmsock.Subscriber.connect(name)
    assert repr(publisher) == f"<shmsock.Publisher {name}>"
    assert repr(subscriber) == f"<shmsock.Subscriber {name} publisher_pid={os.getpid()}>"
    subscriber.close()
    publisher.close()
    assert repr(subscriber) == f"<shmsock.Subscriber {name} publisher_pid={os.getpid()} closed>"
    assert repr(publisher) == f"<shmsock.Publisher {name} closed>"

    name = ep()
    inbox = shmsock.Inbox.bind(name)
    assert repr(inbox) == f"<shmsock.Inbox {name}>"
    inbox.close()
    assert repr(inbox) == f"<shmsock.Inbox {name} closed>"
