"""Type stubs of the native module shmsock._shmsock (re-exported by the shmsock package)."""

from collections.abc import Iterable, Iterator
from os import PathLike
from types import TracebackType
from typing import Literal, final

from typing_extensions import Buffer, Self

_WaitStrategy = Literal["busy_poll", "adaptive", "blocking"] | str
_Overflow = Literal["block", "drop_oldest"] | str
_Key = str | bytes
"""A CURVE key: 40 Z85 characters (str or bytes) or 32 raw bytes."""

def curve_keypair() -> tuple[bytes, bytes]: ...
def load_certificate(path: str | PathLike[str]) -> tuple[bytes, bytes | None]: ...
def load_certificates(dir: str | PathLike[str]) -> list[bytes]: ...

SLICE_SECONDS: float
RING_CAPACITY_DEFAULT: int
LOAN_SLOTS_MAX: int
PROTOCOL_VERSION: int

class Error(Exception):
    """Base class of every shmsock error."""

class InvalidEndpoint(Error, ValueError):
    input: str
    reason: str

class Unsupported(Error, ValueError):
    endpoint: str
    scheme: str

class AddrInUse(Error, OSError):
    endpoint: str
    lock: str

class ConnectionRefused(Error, ConnectionRefusedError):
    endpoint: str
    path: str

class PermissionDenied(Error, PermissionError):
    endpoint: str
    pid: int
    uid: int
    allowed: str

class Refused(Error, ConnectionError):
    endpoint: str
    reason: str

class Handshake(Error, ConnectionError):
    endpoint: str
    reason: str

class VersionMismatch(Error, ConnectionError):
    endpoint: str
    ours: int
    peer: int

class TooLarge(Error, ValueError):
    len: int
    max: int

class BufferTooSmall(Error, ValueError):
    len: int
    buf: int

class WouldBlock(Error, BlockingIOError): ...
class TimedOut(Error, TimeoutError): ...

class PeerClosed(Error, ConnectionError):
    endpoint: str
    pid: int

class PeerGone(Error, ConnectionError):
    endpoint: str
    pid: int

class Corrupt(Error):
    endpoint: str
    pid: int
    what: str

class Protocol(Error, ConnectionError):
    endpoint: str
    what: str

class Lagged(Error):
    endpoint: str
    missed: int

class SlowSubscriber(Error, TimeoutError):
    endpoint: str
    pid: int
    waited: float

class Closed(Error, ValueError): ...

class NoLoanPool(Error, ValueError):
    endpoint: str

class InvalidOptions(Error, ValueError):
    endpoint: str
    reason: str

class InvalidKey(Error, ValueError):
    what: str
    reason: str

class Certificate(Error, ValueError):
    path: str
    reason: str

class IoError(Error, OSError):
    context: str

class InUse(Error, RuntimeError): ...
class Forked(Error, RuntimeError): ...

@final
class Loan:
    """A writable slot of the sender's loan pool (buffer protocol); send() it."""

    def send(self, *, timeout: float | None = None) -> None: ...
    def release(self) -> None: ...
    @property
    def zero_copy(self) -> bool: ...
    @property
    def spent(self) -> bool: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

@final
class Sample:
    """A received message, read-only (buffer protocol); close() hands the slot back."""

    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def zero_copy(self) -> bool: ...
    def tobytes(self) -> bytes: ...
    def __bytes__(self) -> bytes: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

@final
class Listener:
    """A bound endpoint that accepts connections."""

    @staticmethod
    def bind(
        endpoint: str,
        *,
        ring_capacity: int | None = None,
        wait_strategy: _WaitStrategy | None = None,
        spin_budget: float | None = None,
        loan_pool: tuple[int, int] | None = None,
        handshake_timeout: float | None = None,
        allowed_uids: Iterable[int] | None = None,
        max_message_len: int | None = None,
        max_connections: int | None = None,
        heartbeat: tuple[float, float] | None = None,
        curve_secret: _Key | tuple[_Key, _Key] | None = None,
        curve_allow: Iterable[_Key] | None = None,
    ) -> Listener: ...
    @staticmethod
    def bind_all(
        endpoints: list[str],
        *,
        ring_capacity: int | None = None,
        wait_strategy: _WaitStrategy | None = None,
        spin_budget: float | None = None,
        loan_pool: tuple[int, int] | None = None,
        handshake_timeout: float | None = None,
        allowed_uids: Iterable[int] | None = None,
        max_message_len: int | None = None,
        max_connections: int | None = None,
        heartbeat: tuple[float, float] | None = None,
        curve_secret: _Key | tuple[_Key, _Key] | None = None,
        curve_allow: Iterable[_Key] | None = None,
    ) -> Listener: ...
    def accept(self, *, timeout: float | None = None) -> Conn: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def endpoints(self) -> list[str]: ...
    @property
    def socket_path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

@final
class Conn:
    """A connection: ordered, reliable messages both ways."""

    @staticmethod
    def connect(
        endpoint: str,
        *,
        ring_capacity: int | None = None,
        wait_strategy: _WaitStrategy | None = None,
        spin_budget: float | None = None,
        loan_pool: tuple[int, int] | None = None,
        handshake_timeout: float | None = None,
        allowed_uids: Iterable[int] | None = None,
        max_message_len: int | None = None,
        heartbeat: tuple[float, float] | None = None,
        curve_secret: _Key | tuple[_Key, _Key] | None = None,
        curve_server: _Key | None = None,
    ) -> Conn: ...
    def send(self, data: Buffer, *, timeout: float | None = None) -> None: ...
    def try_send(self, data: Buffer) -> None: ...
    def recv(self, *, timeout: float | None = None) -> bytes: ...
    def try_recv(self) -> bytes: ...
    def recv_into(self, buffer: Buffer, *, timeout: float | None = None) -> int: ...
    def try_recv_into(self, buffer: Buffer) -> int: ...
    def loan(self, size: int, *, timeout: float | None = None) -> Loan: ...
    def try_loan(self, size: int) -> Loan: ...
    def loans_outstanding(self) -> int: ...
    def recv_sample(self, *, timeout: float | None = None) -> Sample: ...
    def try_recv_sample(self) -> Sample: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def peer_pid(self) -> int: ...
    @property
    def max_message_len(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def __next__(self) -> bytes: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

@final
class Publisher:
    """The sending side of publish/subscribe."""

    @staticmethod
    def bind(
        endpoint: str,
        *,
        ring_capacity: int | None = None,
        overflow: _Overflow | None = None,
        wait_strategy: _WaitStrategy | None = None,
        spin_budget: float | None = None,
        loan_pool: tuple[int, int] | None = None,
        handshake_timeout: float | None = None,
        allowed_uids: Iterable[int] | None = None,
        max_message_len: int | None = None,
        max_connections: int | None = None,
        heartbeat: tuple[float, float] | None = None,
        curve_secret: _Key | tuple[_Key, _Key] | None = None,
        curve_allow: Iterable[_Key] | None = None,
        upgrade: bool | None = None,
    ) -> Publisher: ...
    @staticmethod
    def bind_all(
        endpoints: list[str],
        *,
        ring_capacity: int | None = None,
        overflow: _Overflow | None = None,
        wait_strategy: _WaitStrategy | None = None,
        spin_budget: float | None = None,
        loan_pool: tuple[int, int] | None = None,
        handshake_timeout: float | None = None,
        allowed_uids: Iterable[int] | None = None,
        max_message_len: int | None = None,
        max_connections: int | None = None,
        heartbeat: tuple[float, float] | None = None,
        curve_secret: _Key | tuple[_Key, _Key] | None = None,
        curve_allow: Iterable[_Key] | None = None,
        upgrade: bool | None = None,
    ) -> Publisher: ...
    def send(self, data: Buffer, *, timeout: float | None = None) -> None: ...
    def try_send(self, data: Buffer) -> None: ...
    def loan(self, size: int, *, timeout: float | None = None) -> Loan: ...
    def try_loan(self, size: int) -> Loan: ...
    def loans_outstanding(self) -> int: ...
    def subscriber_count(self) -> int: ...
    def wait_for_subscribers(self, count: int, *, timeout: float | None = None) -> int: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def endpoints(self) -> list[str]: ...
    @property
    def socket_path(self) -> str: ...
    @property
    def max_message_len(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

@final
class Subscriber:
    """The receiving side of publish/subscribe."""

    @staticmethod
    def connect(
        endpoint: str,
        *,
        wait_strategy: _WaitStrategy | None = None,
        spin_budget: float | None = None,
        handshake_timeout: float | None = None,
        allowed_uids: Iterable[int] | None = None,
        max_message_len: int | None = None,
        heartbeat: tuple[float, float] | None = None,
        curve_secret: _Key | tuple[_Key, _Key] | None = None,
        curve_server: _Key | None = None,
        upgrade: bool | None = None,
    ) -> Subscriber: ...
    def subscribe(self, prefix: Buffer) -> None: ...
    def unsubscribe(self, prefix: Buffer) -> None: ...
    def recv(self, *, timeout: float | None = None) -> bytes: ...
    def try_recv(self) -> bytes: ...
    def recv_into(self, buffer: Buffer, *, timeout: float | None = None) -> int: ...
    def try_recv_into(self, buffer: Buffer) -> int: ...
    def recv_sample(self, *, timeout: float | None = None) -> Sample: ...
    def try_recv_sample(self) -> Sample: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def publisher_pid(self) -> int: ...
    @property
    def is_shared_memory(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def __next__(self) -> bytes: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

@final
class WriterId:
    """Who sent an inbox message."""

    @property
    def pid(self) -> int: ...
    @property
    def serial(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Inbox:
    """Many writers, one reader, on one or several endpoints of any transport."""

    @staticmethod
    def bind(
        endpoint: str,
        *,
        ring_capacity: int | None = None,
        wait_strategy: _WaitStrategy | None = None,
        spin_budget: float | None = None,
        handshake_timeout: float | None = None,
        allowed_uids: Iterable[int] | None = None,
        max_message_len: int | None = None,
        max_connections: int | None = None,
        heartbeat: tuple[float, float] | None = None,
        curve_secret: _Key | tuple[_Key, _Key] | None = None,
        curve_allow: Iterable[_Key] | None = None,
    ) -> Inbox: ...
    @staticmethod
    def bind_all(
        endpoints: list[str],
        *,
        ring_capacity: int | None = None,
        wait_strategy: _WaitStrategy | None = None,
        spin_budget: float | None = None,
        handshake_timeout: float | None = None,
        allowed_uids: Iterable[int] | None = None,
        max_message_len: int | None = None,
        max_connections: int | None = None,
        heartbeat: tuple[float, float] | None = None,
        curve_secret: _Key | tuple[_Key, _Key] | None = None,
        curve_allow: Iterable[_Key] | None = None,
    ) -> Inbox: ...
    def recv_from(self, *, timeout: float | None = None) -> tuple[WriterId, bytes]: ...
    def try_recv_from(self) -> tuple[WriterId, bytes]: ...
    def recv(self, *, timeout: float | None = None) -> bytes: ...
    def recv_from_into(
        self, buffer: Buffer, *, timeout: float | None = None
    ) -> tuple[WriterId, int]: ...
    def try_recv_from_into(self, buffer: Buffer) -> tuple[WriterId, int]: ...
    def writer_count(self) -> int: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def endpoints(self) -> list[str]: ...
    @property
    def socket_path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...
