"""Zero-copy: Loan and Sample through the buffer protocol (memoryview, numpy, ctypes), and
the guards that keep an export from outliving the memory it views."""

import ctypes
import gc
import threading
import time

import pytest

import shmsock
from conftest import need_module
from test_conn import pair

SLOT = 1 << 16


def lending_pair(endpoint, slots=4):
    """(receiver, lender): the lender has a pool of `slots` slots of 64 KiB."""
    return pair(endpoint, loan_pool=(slots, SLOT))


def test_a_loan_filled_through_memoryview_arrives_in_place(ep):
    rx, tx = lending_pair(ep())
    with rx, tx:
        loan = tx.loan(5)
        assert len(loan) == 5 and loan.zero_copy and not loan.spent
        with memoryview(loan) as m:
            assert not m.readonly and m.format == "B" and m.nbytes == 5
            m[:] = b"hello"
        loan.send()
        assert loan.spent
        with rx.recv_sample(timeout=5) as sample:
            assert sample.zero_copy and len(sample) == 5
            assert bytes(sample) == b"hello" and sample.tobytes() == b"hello"
            with memoryview(sample) as m:
                assert m.readonly and m.tobytes() == b"hello"
                with pytest.raises(TypeError):
                    m[0] = 1
        assert sample.closed


def test_numpy_writes_a_loan_and_reads_a_sample_without_a_copy(ep):
    np = need_module("numpy")
    rx, tx = lending_pair(ep())
    with rx, tx:
        with tx.loan(SLOT) as loan:
            frame = np.frombuffer(loan, dtype=np.float64)
            frame[:] = np.arange(SLOT // 8)
            del frame
            loan.send()
        sample = rx.recv_sample(timeout=5)
        view = np.frombuffer(sample, dtype=np.float64)
        assert not view.flags.writeable
        assert view[0] == 0 and view[-1] == SLOT // 8 - 1 and view.sum() == sum(range(SLOT // 8))
        # The array views the sample's memory: the slot stays out while it lives.
        with pytest.raises(BufferError, match="del the array"):
            sample.close()
        del view
        sample.close()
        assert tx.loans_outstanding() == 0


def test_ctypes_from_buffer_fills_a_loan(ep):
    rx, tx = lending_pair(ep())
    with rx, tx:
        loan = tx.loan(8)
        number = ctypes.c_uint64.from_buffer(loan)
        number.value = 0x0102030405060708
        del number
        loan.send()
        assert rx.recv() == (0x0102030405060708).to_bytes(8, "little")


def test_a_loan_refuses_to_be_sent_or_released_while_exported(ep):
    rx, tx = lending_pair(ep())
    with rx, tx:
        loan = tx.loan(3)
        m = memoryview(loan)
        with pytest.raises(BufferError, match="alive"):
            loan.send()
        with pytest.raises(BufferError):
            loan.release()
        with pytest.raises(BufferError, match="loans are alive"):
            tx.close()
        m[:] = b"abc"
        m.release()
        loan.send()
        assert rx.recv(timeout=5) == b"abc"
        # A spent loan exports nothing and cannot be sent again.
        with pytest.raises(BufferError, match="already sent"):
            memoryview(loan)
        with pytest.raises(shmsock.Closed):
            loan.send()
        loan.release()  # nothing to do


def test_a_loan_of_a_closed_conn_exports_nothing(ep):
    rx, tx = lending_pair(ep())
    loan = tx.loan(10)
    tx.close()
    with pytest.raises(BufferError, match="closed"):
        memoryview(loan)
    with pytest.raises(shmsock.Closed):
        loan.send()
    del loan
    rx.close()


def test_unsent_loans_give_their_slots_back(ep):
    rx, tx = lending_pair(ep(), slots=2)
    with rx, tx:
        a, b = tx.loan(1), tx.loan(1)
        assert tx.loans_outstanding() == 2
        with pytest.raises(shmsock.WouldBlock):
            tx.try_loan(1)
        with pytest.raises(shmsock.TimedOut):
            tx.loan(1, timeout=0.05)
        a.release()
        del b
        gc.collect()
        assert tx.loans_outstanding() == 0
        with tx.loan(1):  # a with block releases an unsent loan
            pass
        assert tx.loans_outstanding() == 0
        with pytest.raises(shmsock.TooLarge):
            tx.loan(SLOT + 1)


def test_a_loan_dropped_while_its_conn_is_busy_comes_back_later(ep):
    rx, tx = lending_pair(ep(), slots=1)
    with rx, tx:
        loan = tx.loan(1)
        done = threading.Event()

        def hold():
            try:
                tx.recv(timeout=1)  # holds tx while the loan is dropped
            except shmsock.TimedOut:
                done.set()

        t = threading.Thread(target=hold)
        t.start()
        while True:  # until the other thread holds tx
            try:
                tx.loans_outstanding()
            except shmsock.InUse:
                break
            assert t.is_alive(), "the other thread never got hold of tx"
            time.sleep(0.001)
        del loan
        gc.collect()
        t.join()
        assert done.is_set()
        assert tx.loans_outstanding() == 0, "returned at the next loan or count"
        tx.loan(1).release()


def test_several_loans_out_at_once_and_the_conn_works_meanwhile(ep):
    rx, tx = lending_pair(ep())
    with rx, tx:
        loans = [tx.loan(4) for _ in range(3)]
        for i, loan in enumerate(loans):
            memoryview(loan)[:] = bytes([i]) * 4
        tx.send(b"plain")
        rx.send(b"reply")
        assert tx.recv(timeout=5) == b"reply"
        for loan in reversed(loans):
            loan.send()
        assert rx.recv(timeout=5) == b"plain"
        assert [rx.recv(timeout=5) for _ in range(3)] == [b"\2" * 4, b"\1" * 4, b"\0" * 4]


def test_a_loan_send_that_times_out_keeps_the_loan(ep):
    rx, tx = pair(ep(), loan_pool=(2, 4096), ring_capacity=4096)
    with rx, tx:
        queued = []
        for size in (1000, 100, 10, 1):
            while True:
                try:
                    tx.try_send(b"f" * size)
                    queued.append(size)
                except shmsock.WouldBlock:
                    break
        loan = tx.loan(4)
        memoryview(loan)[:] = b"kept"
        with pytest.raises(shmsock.TimedOut):
            loan.send(timeout=0.05)
        assert not loan.spent
        for size in queued:
            assert rx.recv(timeout=5) == b"f" * size
        loan.send(timeout=5)
        assert rx.recv(timeout=5) == b"kept"


def test_a_sample_refuses_access_once_closed(ep):
    rx, tx = lending_pair(ep())
    with rx, tx:
        with tx.loan(4) as loan:
            memoryview(loan)[:] = b"data"
            loan.send()
        sample = rx.recv_sample(timeout=5)
        m = memoryview(sample)
        with pytest.raises(BufferError, match="alive"):
            sample.close()
        assert m.tobytes() == b"data"
        m.release()
        sample.close()
        sample.close()  # twice: nothing
        with pytest.raises(BufferError, match="closed"):
            memoryview(sample)
        with pytest.raises(shmsock.Closed):
            sample.tobytes()
        with pytest.raises(shmsock.Closed):
            bytes(sample)
        assert "closed" in repr(sample)


def test_plain_messages_arrive_as_copied_samples(ep):
    rx, tx = pair(ep())
    with rx, tx:
        tx.send(b"copied")
        with rx.recv_sample(timeout=5) as sample:
            assert not sample.zero_copy and bytes(sample) == b"copied"
        with pytest.raises(shmsock.WouldBlock):
            rx.try_recv_sample()


def test_publisher_loans_reach_every_subscriber_in_place(ep):
    np = need_module("numpy")
    name = ep()
    with shmsock.Publisher.bind(name, loan_pool=(4, SLOT)) as pub:
        subs = [shmsock.Subscriber.connect(name) for _ in range(2)]
        assert pub.wait_for_subscribers(2, timeout=10) == 2
        for i in range(3):
            with pub.loan(SLOT) as loan:
                np.frombuffer(loan, dtype=np.uint8)[:] = i
                loan.send()
        for sub in subs:
            for i in range(3):
                with sub.recv_sample(timeout=5) as s:
                    assert s.zero_copy and len(s) == SLOT
                    a = np.frombuffer(s, dtype=np.uint8)
                    assert a.min() == a.max() == i
                    del a
            sub.close()
        assert pub.loans_outstanding() == 0


def test_loans_over_tcp_are_plain_buffers(ep):
    with shmsock.Listener.bind("tcp://127.0.0.1:0") as listener:
        got = {}
        t = threading.Thread(target=lambda: got.setdefault("c", shmsock.Conn.connect(listener.endpoint)))
        t.start()
        rx = listener.accept(timeout=10)
        t.join()
        tx = got["c"]
        with rx, tx:
            with tx.loan(3) as loan:
                assert not loan.zero_copy
                memoryview(loan)[:] = b"net"
                loan.send()
            with rx.recv_sample(timeout=5) as s:
                assert not s.zero_copy and bytes(s) == b"net"
