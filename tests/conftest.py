"""Shared test configuration: the real Temporal dev server, where the real data lives, free ports."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from temporal_ml.devserver import DevServer

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def random_seed() -> int:
    """The seed of a randomised test: ``TML_TEST_SEED`` when set, else a fresh one; printed either
    way (``seed N``, shown with ``-s`` or on failure) so a failure reproduces with
    ``TML_TEST_SEED=N python -m pytest ...``."""
    value = os.environ.get("TML_TEST_SEED")
    chosen = int(value) if value else random.randrange(10**6)
    print(f"seed {chosen}")
    return chosen


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A real dev server with our search attributes, on free ports, for the whole test session."""
    server = DevServer(
        port=free_port(), headless=True, data_dir=tmp_path_factory.mktemp("temporal-server")
    )
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def temporal_address(temporal_server: DevServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The server address, also exported as ``TEMPORAL_ADDRESS`` (what workers and starters read)."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", temporal_server.address)
    return temporal_server.address


@pytest.fixture
def subprocess_env(temporal_address: str) -> dict[str, str]:
    """Environment for worker/starter subprocesses: the server address and this repo importable."""
    env = dict(os.environ)
    env["TEMPORAL_ADDRESS"] = temporal_address
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env
