"""The API's surface: every option each constructor documents is accepted (and the type
stubs list exactly those), the exception hierarchy, the package's exports."""

import ast
import os
import pathlib
import re

import pytest

import shmsock

STUBS = pathlib.Path(shmsock.__file__).with_name("_shmsock.pyi")
CONSTRUCTORS = [
    ("Listener", "bind"),
    ("Conn", "connect"),
    ("Publisher", "bind"),
    ("Subscriber", "connect"),
    ("Inbox", "bind"),
]


def stub_options(cls, method):
    """The keyword-only parameters of cls.method in the type stubs."""
    tree = ast.parse(STUBS.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == method:
                    return {a.arg for a in item.args.kwonlyargs}
    raise AssertionError(f"{cls}.{method} is not in {STUBS}")


def accepted_options(cls, method):
    """The options cls.method accepts, as its TypeError for an unknown one lists them."""
    with pytest.raises(TypeError) as e:
        getattr(getattr(shmsock, cls), method)("shm://x", no_such_option=1)
    listed = re.search(r"it accepts (.*)$", str(e.value)).group(1)
    return set(listed.split(", "))


@pytest.mark.parametrize("cls,method", CONSTRUCTORS)
def test_the_stubs_list_exactly_the_accepted_options(cls, method):
    assert stub_options(cls, method) == accepted_options(cls, method)


def test_every_option_is_accepted_with_a_valid_value(ep):
    public, secret = shmsock.curve_keypair()
    values = {
        "ring_capacity": 65536,
        "wait_strategy": shmsock.WaitStrategy.BUSY_POLL,
        "spin_budget": 0.0001,
        "loan_pool": (2, 4096),
        "handshake_timeout": 2.5,
        "allowed_uids": [os.geteuid()],
        "max_message_len": 1 << 20,
        "max_connections": 8,
        "heartbeat": (1, 3.5),
        "overflow": shmsock.Overflow.DROP_OLDEST,
        "curve_secret": (public, secret),
        "curve_allow": [public],
        "curve_server": public,
        "upgrade": False,
    }
    tcp = {"curve_secret", "curve_allow", "curve_server", "max_connections", "heartbeat"}
    for cls, method in CONSTRUCTORS:
        options = {k: values[k] for k in accepted_options(cls, method)}
        if cls == "Inbox":
            obj = shmsock.Inbox.bind(ep(), **options)
        elif method == "bind":
            obj = getattr(shmsock, cls).bind("tcp://127.0.0.1:0", **options)
            shm = {k: v for k, v in options.items() if k not in tcp}
            getattr(shmsock, cls).bind(ep(), **shm).close()
        else:
            continue  # connecting needs a peer: test_conn, test_pyzmq
        obj.close()
    assert [v.value for v in shmsock.WaitStrategy] == ["busy_poll", "adaptive", "blocking"]


def test_the_exception_hierarchy():
    builtin = {
        shmsock.PeerClosed: ConnectionError,
        shmsock.PeerGone: ConnectionError,
        shmsock.TimedOut: TimeoutError,
        shmsock.SlowSubscriber: TimeoutError,
        shmsock.PermissionDenied: PermissionError,
        shmsock.WouldBlock: BlockingIOError,
        shmsock.TooLarge: ValueError,
        shmsock.ConnectionRefused: ConnectionRefusedError,
        shmsock.AddrInUse: OSError,
        shmsock.InUse: RuntimeError,
        shmsock.Forked: RuntimeError,
    }
    for cls, base in builtin.items():
        assert issubclass(cls, shmsock.Error) and issubclass(cls, base), cls
        assert cls.__module__ == "shmsock" and cls.__doc__
    assert issubclass(shmsock.Error, Exception)
    for name in shmsock.__all__:
        assert hasattr(shmsock, name), name
