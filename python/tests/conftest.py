"""Fixtures of the shmsock Python tests.

Every test process uses its own rendezvous directory (SHMSOCK_RUNTIME_DIR) and every test
its own endpoint names. The Rust peers are the `shmsock` command line and the `loan_peer`
example, built by cargo: `.ci/run` builds them and names them in SHMSOCK_BIN and
SHMSOCK_LOAN_PEER; without those, target/{release,debug} is searched. A missing
prerequisite (a Rust peer, numpy, pyzmq) skips its tests on a developer's machine and
FAILS them under CI=true, where a skipped test would test nothing.
"""

import itertools
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CI = os.environ.get("CI") == "true"
_names = itertools.count()


def missing(what):
    """A prerequisite is missing: skip here, fail under CI=true."""
    if CI:
        pytest.fail(f"{what} (CI=true: a missing prerequisite fails the test)")
    pytest.skip(what)


def need_module(name):
    """Imports `name` (numpy, zmq) or deals with its absence as `missing` says."""
    try:
        return __import__(name)
    except ImportError:
        missing(f"the Python package {name!r} is not installed (pip install {name})")


def rust_binary(env, *relative):
    """A binary built by cargo: $env, else the first of target/{release,debug}/relative."""
    named = os.environ.get(env)
    if named:
        if not os.access(named, os.X_OK):
            missing(f"{env}={named} is not an executable")
        return named
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ("release", "debug"):
        path = target / profile / pathlib.Path(*relative)
        if os.access(path, os.X_OK):
            return str(path)
    missing(f"{pathlib.Path(*relative)} is not built (cargo build -p shmsock-cli; cargo build "
            f"-p shmsock --example loan_peer) and {env} is not set")


@pytest.fixture(scope="session", autouse=True)
def runtime_dir():
    """A private rendezvous directory for the whole run (children inherit it), with a
    short path: socket paths must fit in 108 bytes."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="shmsock-py-"))
    os.environ["SHMSOCK_RUNTIME_DIR"] = str(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ep(request):
    """A fresh shm:// endpoint for this test: `ep()`, `ep("suffix")`."""
    base = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[-32:]

    def make(tag=""):
        return f"shm://py-{base}{tag}-{next(_names)}"

    return make


@pytest.fixture(scope="session")
def shmsock_cli():
    """Path of the `shmsock` command line (cargo build -p shmsock-cli)."""
    return rust_binary("SHMSOCK_BIN", "shmsock")


@pytest.fixture(scope="session")
def loan_peer():
    """Path of the `loan_peer` example (cargo build -p shmsock --example loan_peer)."""
    return rust_binary("SHMSOCK_LOAN_PEER", "examples", "loan_peer")


def python_child(code, *args, **popen):
    """Starts `python -c code args...` with this interpreter (the package importable)."""
    return subprocess.Popen([sys.executable, "-c", code, *args], **popen)
