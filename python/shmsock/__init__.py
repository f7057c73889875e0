"""shmsock: socket-like IPC at shared-memory speed.

One API over three transports: ``shm://name`` (lock-free rings in sealed shared memory,
on this machine), ``unix:///path`` and ``tcp://host:port`` (ZeroMQ's wire protocol, so
pyzmq sockets are peers). The classes mirror the Rust crate of the same name:

- ``Listener.bind(endpoint)`` / ``listener.accept()`` and ``Conn.connect(endpoint)``: one
  peer, both ways (``send``, ``recv``, ``recv_into``, ``try_*``, ``timeout=`` in seconds);
- ``Publisher.bind`` / ``Subscriber.connect``: one to many, by topic prefix;
- ``Inbox.bind``: many writers (plain ``Conn`` objects), one reader (``recv_from``);
- ``conn.loan(n)`` / ``loan.send()`` and ``conn.recv_sample()``: zero-copy through the
  buffer protocol (``memoryview``, ``numpy.frombuffer``);
- ``curve_secret=``, ``curve_server=``, ``curve_allow=``: ZeroMQ's CURVE security over
  ``tcp://`` and ``unix://``, with keys in pyzmq's form (``curve_keypair()``,
  ``load_certificate(path)``).

Every error is a ``shmsock.Error``; each subclass also derives from the built-in exception
that fits (``PeerGone`` and ``PeerClosed`` are ``ConnectionError``, ``TimedOut`` is
``TimeoutError``, ...). Blocking calls release the GIL and raise ``KeyboardInterrupt``
within 50 ms of Ctrl-C. See README.md for examples.
"""

import enum as _enum

from . import _shmsock
from ._shmsock import (
    AddrInUse,
    BufferTooSmall,
    Certificate,
    Closed,
    Conn,
    ConnectionRefused,
    Corrupt,
    Error,
    Forked,
    Handshake,
    Inbox,
    InUse,
    InvalidEndpoint,
    InvalidKey,
    InvalidOptions,
    IoError,
    Lagged,
    Listener,
    Loan,
    NoLoanPool,
    PeerClosed,
    PeerGone,
    PermissionDenied,
    Protocol,
    Publisher,
    Refused,
    Sample,
    SlowSubscriber,
    Subscriber,
    TimedOut,
    TooLarge,
    Unsupported,
    VersionMismatch,
    WouldBlock,
    WriterId,
    curve_keypair,
    load_certificate,
    load_certificates,
)

RING_CAPACITY_DEFAULT: int = _shmsock.RING_CAPACITY_DEFAULT
"""Default ring capacity of each direction, in bytes."""
LOAN_SLOTS_MAX: int = _shmsock.LOAN_SLOTS_MAX
"""Most slots a loan pool may have."""
PROTOCOL_VERSION: int = _shmsock.PROTOCOL_VERSION
"""The shm:// protocol version this build speaks."""


class WaitStrategy(str, _enum.Enum):
    """How a blocking call waits (``wait_strategy=``); plain strings work too."""

    BUSY_POLL = "busy_poll"
    """Spin without sleeping: lowest latency, burns a core while waiting."""
    ADAPTIVE = "adaptive"
    """Spin for the spin budget (50 us by default), then sleep on a futex (default)."""
    BLOCKING = "blocking"
    """Sleep on a futex almost at once (after spinning 2 µs, or after a message of 64 KiB or more as long as its copy took): least CPU, a kernel round trip per wake-up."""

    def __str__(self) -> str:
        return self.value


class Overflow(str, _enum.Enum):
    """What a publisher does with a subscriber a whole ring behind (``overflow=``)."""

    BLOCK = "block"
    """Wait for it (default); ``send(timeout=...)`` raises ``SlowSubscriber``."""
    DROP_OLDEST = "drop_oldest"
    """Never wait: overwrite, and the subscriber gets ``Lagged`` with the number lost."""

    def __str__(self) -> str:
        return self.value


__all__ = [
    "AddrInUse",
    "BufferTooSmall",
    "Certificate",
    "Closed",
    "Conn",
    "ConnectionRefused",
    "Corrupt",
    "Error",
    "Forked",
    "Handshake",
    "Inbox",
    "InUse",
    "InvalidEndpoint",
    "InvalidKey",
    "InvalidOptions",
    "IoError",
    "LOAN_SLOTS_MAX",
    "Lagged",
    "Listener",
    "Loan",
    "NoLoanPool",
    "Overflow",
    "PROTOCOL_VERSION",
    "PeerClosed",
    "PeerGone",
    "PermissionDenied",
    "Protocol",
    "Publisher",
    "RING_CAPACITY_DEFAULT",
    "Refused",
    "Sample",
    "SlowSubscriber",
    "Subscriber",
    "TimedOut",
    "TooLarge",
    "Unsupported",
    "VersionMismatch",
    "WaitStrategy",
    "WouldBlock",
    "WriterId",
    "curve_keypair",
    "load_certificate",
    "load_certificates",
]
