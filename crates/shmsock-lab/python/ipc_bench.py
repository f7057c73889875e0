"""The shmsock lab's Python rows: one IPC mechanism between two Python processes.

The lab (crates/shmsock-lab/src/experiments/python.rs) embeds this file, writes it into a
private temporary directory and runs it with the interpreter under test, once per row:

    python3 ipc_bench.py --probe       what this interpreter has (version, modules, rows)
    python3 ipc_bench.py PLAN_JSON     measure one row, print one JSON object on stdout

A row is a Python program's usual way of using a mechanism: multiprocessing.Pipe,
multiprocessing.Queue, multiprocessing.shared_memory with a multiprocessing.Condition, pyzmq
PAIR over ipc://, and the shmsock package over shm:// (copying and loaning). The driver
(the parent) sets the mechanism up, forks the other side with multiprocessing's "fork" context,
and pins each process to its own CPU with os.sched_setaffinity, as the lab's other rows are.

- latency: the parent sends message n (n in the first 8 bytes, little endian), the child sends
  it back, the parent checks n; every round trip is timed with time.perf_counter_ns and the
  times go back to the lab in a file of native unsigned 64-bit integers (millions of them in
  the long modes), which the lab summarises like its latency table.
- stream: the child sends warm-up messages 1..W, measured messages W+1.. and a stop message;
  the parent checks every sequence number and times the first measured message to the stop
  message; each side measures its process's CPU time (getrusage, all its threads) over its
  window.

Output: {"ok": ...} with the measurement, {"skipped": reason} when the row's module is not
installed, or {"error": text} (and a traceback on stderr, exit status 1) when it failed.
"""

import array
import json
import os
import platform
import resource
import signal
import struct
import sys
import time
import traceback

SEQ_STOP = (1 << 64) - 1
# The shared-memory rings hold this many bytes of messages (at least MIN_SLOTS messages), like
# the lab's rings (mechanisms::RING_BYTES); the bounded Queue holds as many messages.
RING_BYTES = 1 << 20
MIN_SLOTS = 8
# Loan rows: slots in the sender's pool (mechanisms::loan::LOAN_SLOTS).
LOAN_SLOTS = 8
# A blocked side gives up after this long without progress.
STALL_S = 10.0
# The stream's sender looks at the clock once per this many messages.
CLOCK_EVERY = 64

SEQ = struct.Struct("<Q")
pack_into = SEQ.pack_into
unpack_from = SEQ.unpack_from


class Failure(Exception):
    """A check failed or a side stalled: the text is the row's error."""


def python_version():
    return platform.python_version()


# ---------------------------------------------------------------------------------------------
# The mechanisms. Each one is created in the parent before the fork (what the child inherits),
# then the parent calls bind(), the child waits until the parent is bound and calls connect(),
# the parent calls accept(). After that both use only send_seq, recv_seq and echo:
#
#   send_seq(n)  send one message of `size` bytes numbered n
#   recv_seq()   receive one message, check its size, return its number
#   echo()       receive one message, send it back, return its number
#
# and, once the pattern is over, finish(parent) on both sides before anything is closed.
# ---------------------------------------------------------------------------------------------


class Copying:
    """A mechanism that moves bytes objects: subclasses define send(msg) and recv()."""

    def __init__(self, plan):
        self.size = plan["size"]
        self.out = bytearray(b"\xa5" * self.size)

    def bind(self):
        pass

    def connect(self):
        pass

    def accept(self):
        pass

    def send_seq(self, seq):
        pack_into(self.out, 0, seq)
        self.send(self.out)

    def check(self, msg):
        if len(msg) != self.size:
            raise Failure(f"a message of {len(msg)} bytes arrived, expected {self.size}")
        return unpack_from(msg)[0]

    def recv_seq(self):
        return self.check(self.recv())

    def echo(self):
        msg = self.recv()
        seq = self.check(msg)
        self.send(msg)
        return seq

    def finish(self, parent):
        """After the pattern, before the child closes: by default nothing (the last message
        stays readable after its sender closed)."""

    def close(self, parent):
        pass

    def cleanup(self):
        """In the parent, whatever happened: remove what outlives the process (names)."""


class MpPipe(Copying):
    name = "py-mp-pipe"
    module = "multiprocessing"
    uses = "multiprocessing.Pipe(): Connection.send_bytes / recv_bytes"

    def __init__(self, plan, ctx):
        super().__init__(plan)
        if plan["pattern"] == "latency":
            self.parent_end, self.child_end = ctx.Pipe(duplex=True)
        else:
            self.parent_end, self.child_end = ctx.Pipe(duplex=False)

    def bind(self):
        self.child_end.close()
        self.conn = self.parent_end

    def connect(self):
        self.parent_end.close()
        self.conn = self.child_end

    def send(self, msg):
        self.conn.send_bytes(msg)

    def recv(self):
        return self.conn.recv_bytes()

    def close(self, parent):
        self.conn.close()


class MpQueue(Copying):
    name = "py-mp-queue"
    module = "multiprocessing"
    uses = (
        "multiprocessing.Queue(maxsize=1 MiB worth of messages, at least 8): put(bytes) / "
        "get(), one queue each way"
    )

    def __init__(self, plan, ctx):
        super().__init__(plan)
        maxsize = max(MIN_SLOTS, RING_BYTES // self.size)
        self.to_child = ctx.Queue(maxsize)
        self.to_parent = ctx.Queue(maxsize)

    def bind(self):
        self.inbox, self.outbox = self.to_parent, self.to_child

    def connect(self):
        self.inbox, self.outbox = self.to_child, self.to_parent

    def send_seq(self, seq):
        # put() pickles the object later, in the queue's feeder thread: it must not change
        # afterwards, so each message is a bytes object of its own.
        pack_into(self.out, 0, seq)
        self.outbox.put(bytes(self.out))

    def send(self, msg):
        self.outbox.put(msg)

    def recv(self):
        return self.inbox.get()

    def close(self, parent):
        # Everything put must reach the pipe before this process exits.
        self.outbox.close()
        self.outbox.join_thread()


class ShmRing:
    """A ring of fixed-size slots in one SharedMemory block, guarded by a Condition.

    Layout: head (messages written) and tail (messages read), two unsigned 64-bit counters,
    then the slots from byte 64. The counters are read and written only with the condition's
    lock held; the payload is copied outside it (one writer, one reader: a slot between tail and
    head belongs to the reader until tail passes it, the others to the writer).
    """

    def __init__(self, ctx, shared_memory, size):
        self.size = size
        slots = max(MIN_SLOTS, RING_BYTES // size)
        self.slots = 1 << (slots - 1).bit_length()
        self.shm = shared_memory.SharedMemory(create=True, size=64 + self.slots * size)
        self.cond = ctx.Condition(ctx.Lock())
        self.counters = None
        self.unlinked = False

    def attach(self):
        self.buf = self.shm.buf
        self.counters = self.buf[:16].cast("Q")

    def wait(self, ready, what):
        deadline = time.monotonic() + STALL_S
        while not ready():
            left = deadline - time.monotonic()
            if left <= 0 or not self.cond.wait(left):
                if ready():
                    break
                raise Failure(f"no progress for {STALL_S:.0f} s while {what}")

    def write(self, msg):
        counters, slots, cond = self.counters, self.slots, self.cond
        with cond:
            if counters[0] - counters[1] >= slots:
                self.wait(lambda: counters[0] - counters[1] < slots, "waiting for a free slot")
            head = counters[0]
        at = 64 + (head & (slots - 1)) * self.size
        self.buf[at : at + self.size] = msg
        with cond:
            counters[0] = head + 1
            cond.notify()

    def read_into(self, out):
        counters, slots, cond = self.counters, self.slots, self.cond
        with cond:
            if counters[0] == counters[1]:
                self.wait(lambda: counters[0] != counters[1], "waiting for a message")
            tail = counters[1]
        at = 64 + (tail & (slots - 1)) * self.size
        out[:] = self.buf[at : at + self.size]
        with cond:
            counters[1] = tail + 1
            cond.notify()

    def detach(self, unlink):
        """Lets go of the block (the parent also removes its name); safe to call again."""
        if self.counters is not None:
            self.counters.release()
            self.counters = None
        self.buf = None
        self.shm.close()
        if unlink and not self.unlinked:
            self.unlinked = True
            self.shm.unlink()


class SharedMemoryRing(Copying):
    name = "py-shared-memory"
    module = "multiprocessing.shared_memory"
    uses = (
        "multiprocessing.shared_memory.SharedMemory: a ring of 1 MiB worth of slots (at least "
        "8) per direction, indices under a multiprocessing.Condition, payload copied in and out "
        "of the block"
    )

    def __init__(self, plan, ctx):
        super().__init__(plan)
        from multiprocessing import shared_memory

        self.inbuf = bytearray(self.size)
        self.to_child = ShmRing(ctx, shared_memory, self.size)
        self.to_parent = ShmRing(ctx, shared_memory, self.size)

    def bind(self):
        self.inbox, self.outbox = self.to_parent, self.to_child
        self.attach()

    def connect(self):
        self.inbox, self.outbox = self.to_child, self.to_parent
        self.attach()

    def attach(self):
        self.to_child.attach()
        self.to_parent.attach()

    def send(self, msg):
        self.outbox.write(msg)

    def recv(self):
        self.inbox.read_into(self.inbuf)
        return self.inbuf

    def close(self, parent):
        for ring in (self.to_child, self.to_parent):
            ring.detach(unlink=parent)

    def cleanup(self):
        self.close(parent=True)


class ZmqIpc(Copying):
    name = "py-zmq-ipc"
    module = "zmq"
    uses = "pyzmq PAIR over ipc://, default options: Socket.send(bytearray) / recv() -> bytes"

    def __init__(self, plan, ctx):
        super().__init__(plan)
        self.endpoint = "ipc://" + os.path.join(plan["dir"], f"zmq-{os.getpid()}.sock")

    def open(self):
        # After the fork: a context starts an I/O thread.
        import zmq

        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.PAIR)

    def bind(self):
        self.open()
        self.socket.bind(self.endpoint)

    def connect(self):
        self.open()
        self.socket.connect(self.endpoint)

    def send(self, msg):
        self.socket.send(msg)

    def recv(self):
        return self.socket.recv()

    def finish(self, parent):
        # A PAIR socket closed right after its last send can lose that send's tail despite an
        # infinite linger: 3 to 6 in 100 small 64 B stream rows waited forever for messages
        # the child had sent before it closed (pyzmq 27.3, libzmq 4.3.5); a pause before the
        # close made it 0 in 100. So the child closes only when the parent says it has
        # everything, and the parent closes only after the child's report, which comes after
        # the child received that word.
        if parent:
            self.socket.send(b"")
        elif self.socket.recv() != b"":
            raise Failure("the parent's end-of-row message carried data")

    def close(self, parent):
        self.socket.close()
        self.context.term()


class Shmsock(Copying):
    name = "py-shmsock"
    module = "shmsock"
    uses = "shmsock Conn over shm://, default options: send(bytearray) / recv_into(bytearray)"

    def __init__(self, plan, ctx):
        super().__init__(plan)
        self.endpoint = f"shm://lab-py-{os.getpid()}"
        self.inbuf = bytearray(self.size)

    def options(self):
        # A message must fit in the ring with its frame: 1 MiB messages get a 4 MiB ring, as in
        # the lab's own shmsock rows.
        capacity = max(RING_BYTES, 1 << (4 * self.size - 1).bit_length())
        return {"ring_capacity": capacity}

    def bind(self):
        import shmsock

        self.listener = shmsock.Listener.bind(self.endpoint, **self.options())

    def accept(self):
        self.conn = self.listener.accept()

    def connect(self):
        import shmsock

        self.conn = shmsock.Conn.connect(self.endpoint, **self.options())

    def send(self, msg):
        self.conn.send(msg)

    def recv(self):
        n = self.conn.recv_into(self.inbuf)
        if n != self.size:
            raise Failure(f"a message of {n} bytes arrived, expected {self.size}")
        return self.inbuf

    def close(self, parent):
        self.conn.close()
        if parent:
            self.listener.close()


class ShmsockLoan(Shmsock):
    name = "py-shmsock-loan"
    module = "shmsock"
    uses = (
        "shmsock Conn over shm:// with a loan pool of 8 slots: loan(n), write the sequence "
        "number into its first and last 8 bytes, send(); recv_sample(), read those 16 bytes, "
        "close() (pointer exchange, like the lab's shmsock-loan row)"
    )

    def options(self):
        options = super().options()
        options["loan_pool"] = (LOAN_SLOTS, self.size)
        return options

    def send_seq(self, seq):
        loan = self.conn.loan(self.size)
        pack_into(loan, 0, seq)
        pack_into(loan, self.size - 8, seq)
        loan.send()

    def take(self, sample):
        n = len(sample)
        if n != self.size:
            raise Failure(f"a sample of {n} bytes arrived, expected {self.size}")
        seq = unpack_from(sample)[0]
        last = unpack_from(sample, n - 8)[0]
        if last != seq:
            raise Failure(f"message {seq} ends with {last}")
        return seq

    def recv_seq(self):
        with self.conn.recv_sample() as sample:
            return self.take(sample)

    def echo(self):
        with self.conn.recv_sample() as sample:
            seq = self.take(sample)
            self.send_seq(seq)
        return seq


MECHANISMS = {
    m.name: m for m in (MpPipe, MpQueue, SharedMemoryRing, ZmqIpc, Shmsock, ShmsockLoan)
}


def module_info(module):
    """{"version": ...} if `module` imports here, else {"missing": why, "install": how}."""
    try:
        if module == "zmq":
            import zmq

            return {"version": f"pyzmq {zmq.pyzmq_version()}, libzmq {zmq.zmq_version()}"}
        if module == "shmsock":
            import shmsock

            version = getattr(shmsock, "__version__", None)
            if version is None:
                from importlib import metadata

                version = metadata.version("shmsock")
            return {"version": f"shmsock {version}"}
        __import__(module)
        return {"version": f"Python {python_version()} standard library"}
    except Exception as err:  # an ImportError, or a module that fails while importing
        install = {
            "zmq": "pip install pyzmq",
            "shmsock": (
                "pip install ./python from the repository (into a venv whose interpreter "
                "SHMSOCK_PYTHON names)"
            ),
        }.get(module, "use a CPython 3 with its full standard library")
        return {"missing": f"{type(err).__name__}: {err}", "install": install}


def probe():
    modules = sorted({m.module for m in MECHANISMS.values()})
    return {
        "python": python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "modules": {name: module_info(name) for name in modules},
        "rows": [
            {"name": m.name, "module": m.module, "uses": m.uses} for m in MECHANISMS.values()
        ],
    }


# ---------------------------------------------------------------------------------------------
# The two patterns.
# ---------------------------------------------------------------------------------------------


def usage():
    """(wall ns, CPU ns of the whole process, system part of it ns)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (
        time.perf_counter_ns(),
        round((r.ru_utime + r.ru_stime) * 1e9),
        round(r.ru_stime * 1e9),
    )


def window(start):
    end = usage()
    return {"wall_ns": end[0] - start[0], "cpu_ns": end[1] - start[1], "sys_ns": end[2] - start[2]}


def ping(m, plan):
    """The parent of a latency row: time every round trip."""
    warmup_end = time.perf_counter() + plan["warmup_time_s"]
    seq = 0
    send_seq, recv_seq, clock = m.send_seq, m.recv_seq, time.perf_counter_ns
    while seq < plan["warmup_iters"] and time.perf_counter() < warmup_end:
        seq += 1
        send_seq(seq)
        got = recv_seq()
        if got != seq:
            raise Failure(f"the echo of message {seq} carries sequence number {got}")
    times = array.array("Q")
    record = times.append
    iters = plan["iters"]
    end = clock() + round(plan["max_time_s"] * 1e9)
    while len(times) < iters:
        seq += 1
        t0 = clock()
        send_seq(seq)
        got = recv_seq()
        t1 = clock()
        record(t1 - t0)
        if got != seq:
            raise Failure(f"the echo of message {seq} carries sequence number {got}")
        if t1 >= end:
            break
    send_seq(SEQ_STOP)
    if recv_seq() != SEQ_STOP:
        raise Failure("the stop message did not come back")
    path = os.path.join(plan["dir"], f"rtt-{os.getpid()}.bin")
    with open(path, "wb") as f:
        times.tofile(f)
    return {"rtt_file": path, "samples": len(times)}


def pong(m, plan):
    """The child of a latency row: send every message back until the stop message."""
    echo = m.echo
    while echo() != SEQ_STOP:
        pass
    return {}


def stream_send(m, plan):
    """The child of a stream row: warm-up, measured messages, stop message."""
    send_seq, clock = m.send_seq, time.perf_counter
    warmup = plan["warmup_iters"]
    end = clock() + plan["warmup_time_s"]
    for seq in range(1, warmup + 1):
        send_seq(seq)
        if seq % CLOCK_EVERY == 0 and clock() >= end:
            break
    start = usage()
    iters = plan["iters"]
    sent, capped = iters, False
    end = clock() + plan["max_time_s"]
    for i in range(1, iters + 1):
        send_seq(warmup + i)
        if i % CLOCK_EVERY == 0 and i < iters and clock() >= end:
            sent, capped = i, True
            break
    send_seq(SEQ_STOP)
    return {"window": window(start), "sent": sent, "capped": capped}


def stream_receive(m, plan):
    """The parent of a stream row: check every number, time first measured message to stop."""
    recv_seq = m.recv_seq
    warmup = plan["warmup_iters"]
    first = warmup + 1
    expected = 1
    while True:
        seq = recv_seq()
        if seq == expected and seq <= warmup:
            expected += 1
        elif seq == first:
            # The first measured message (after a warm-up its time cap may have cut short).
            break
        elif seq == SEQ_STOP:
            raise Failure("the stream ended before any measured message arrived")
        else:
            raise Failure(f"expected message {expected}, got sequence number {seq}")
    start = usage()
    expected = first + 1
    while True:
        seq = recv_seq()
        if seq != expected:
            if seq == SEQ_STOP:
                break
            raise Failure(f"expected message {expected}, got sequence number {seq}")
        expected += 1
    # The stop message closes the last interval; the first measured message opened the window.
    return {"window": window(start), "messages": expected - first}


# ---------------------------------------------------------------------------------------------
# The two processes.
# ---------------------------------------------------------------------------------------------


class ChildFailed(Exception):
    """The child exited with an error while the parent was waiting for it."""


def read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def pin(cpu, who):
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as err:
        raise Failure(f"pinning the {who} to CPU {cpu}: {err}") from None


def child_main(m, plan, ready_r, ready_w, status_w):
    # Only the parent writes "bound": a parent that dies first is then an end of file here.
    os.close(ready_w)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    # The parent stops this process if it overstays; this alarm covers a parent that died.
    signal.alarm(int(plan["watchdog_s"]) + 5)
    try:
        pin(plan["cpus"][1], "child")
        if os.read(ready_r, 1) != b"1":
            raise Failure("the parent failed before it was bound")
        m.connect()
        run = pong if plan["pattern"] == "latency" else stream_send
        result = run(m, plan)
        m.finish(parent=False)
        m.close(parent=False)
        report = {"ok": result}
    except BaseException as err:
        text = str(err) if isinstance(err, Failure) else f"{type(err).__name__}: {err}"
        report = {"error": text}
    data = json.dumps(report).encode()
    while data:
        data = data[os.write(status_w, data) :]
    os.close(status_w)
    if "error" in report:
        sys.exit(1)


def measure(plan):
    import multiprocessing

    name = plan["mechanism"]
    if name not in MECHANISMS:
        raise Failure(f"unknown mechanism {name!r}; known: {', '.join(MECHANISMS)}")
    cls = MECHANISMS[name]
    info = module_info(cls.module)
    if "missing" in info:
        return {"skipped": f"{info['missing']} ({info['install']})"}

    forked = []

    def on_alarm(signum, frame):
        # Where the child was tells a lost message (it had exited) from a stalled peer.
        if not forked:
            state = "the child had not started"
        elif forked[0].exitcode is None:
            state = "the child was still running"
        else:
            state = f"the child had exited with status {forked[0].exitcode}"
        raise Failure(
            f"the row did not finish within its watchdog of {plan['watchdog_s']} s ({state})"
        )

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(plan["watchdog_s"]))
    pin(plan["cpus"][0], "parent")
    ctx = multiprocessing.get_context("fork")
    m = cls(plan, ctx)
    ready_r, ready_w = os.pipe()
    status_r, status_w = os.pipe()
    child = ctx.Process(
        target=child_main, args=(m, plan, ready_r, ready_w, status_w), name=f"{name} child", daemon=True
    )
    forked.append(child)
    watching = [True]

    def on_child(signum, frame):
        # A child that failed would leave the parent waiting for a message: stop waiting.
        if watching[0] and child.exitcode not in (None, 0):
            watching[0] = False
            raise ChildFailed()

    def child_error():
        os.set_blocking(status_r, False)
        try:
            text = read_all(status_r).decode(errors="replace")
        except BlockingIOError:
            text = ""
        try:
            return json.loads(text).get("error") or "no error reported"
        except ValueError:
            code = child.exitcode
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            return f"it {how} without a report"

    signal.signal(signal.SIGCHLD, on_child)
    child.start()
    os.close(status_w)
    os.close(ready_r)
    try:
        try:
            # A child that failed at once may have signalled before `child` knew its pid.
            on_child(signal.SIGCHLD, None)
            m.bind()
            os.write(ready_w, b"1")
            m.accept()
            if plan["pattern"] == "latency":
                result = ping(m, plan)
            else:
                result = stream_receive(m, plan)
            m.finish(parent=True)
            watching[0] = False
            report = json.loads(read_all(status_r).decode(errors="replace") or "{}")
        except ChildFailed:
            raise Failure(f"the child failed: {child_error()}") from None
        except BaseException:
            watching[0] = False
            if child.exitcode not in (None, 0):
                raise Failure(f"the child failed: {child_error()}") from None
            raise
        if "ok" not in report:
            raise Failure(f"the child failed: {report.get('error', 'no report')}")
        child.join(STALL_S)
        signal.alarm(0)
        if child.exitcode != 0:
            raise Failure(f"the child ended with exit status {child.exitcode}")
        if plan["pattern"] == "stream":
            sender = report["ok"]
            if result["messages"] != sender["sent"]:
                raise Failure(
                    f"the receiver counted {result['messages']} measured messages, the sender "
                    f"sent {sender['sent']}"
                )
            result["sender"] = sender["window"]
            result["capped"] = sender["capped"]
        m.close(parent=True)
        return {"ok": result}
    finally:
        watching[0] = False
        if child.exitcode is None:
            child.kill()
            child.join(STALL_S)
        m.cleanup()


def main(argv):
    if argv[1:] == ["--probe"]:
        print(json.dumps(probe()))
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        out = measure(json.loads(argv[1]))
        code = 0
    except BaseException as err:
        traceback.print_exc()
        out = {"error": f"{type(err).__name__}: {err}" if not isinstance(err, Failure) else str(err)}
        code = 1
    print(json.dumps(out))
    return code


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter shutdown: the finalizers of a failed row could wait for a dead peer.
    os._exit(code)
