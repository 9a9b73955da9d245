"""The ``temporal-ml`` command line.

Subcommands:
    server   run the embedded Temporal dev server (persistent, Web UI, our search attributes)
    version  print the library version
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from temporal_ml._version import __version__
from temporal_ml.errors import TemporalMLError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``temporal-ml`` (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="temporal-ml", description="Durable ML training, evaluation and sweeps on Temporal."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    server = sub.add_parser("server", help="run the embedded Temporal dev server until Ctrl-C")
    server.add_argument("--port", type=int, default=7233, help="gRPC frontend port (default 7233)")
    server.add_argument("--ui-port", type=int, default=None, help="Web UI port (default: port + 1000)")
    server.add_argument(
        "--data-dir", default=None,
        help="directory of the server database (default $TEMPORAL_ML_HOME/server or ~/.temporal-ml/server)",
    )
    server.add_argument("--ip", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    server.add_argument("--headless", action="store_true", help="do not serve the Web UI")
    server.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for start-up")
    server.set_defaults(handler=_run_server)

    version = sub.add_parser("version", help="print the temporal-ml version")
    version.set_defaults(handler=lambda _args: print(__version__) or 0)
    return parser


def _run_server(args: argparse.Namespace) -> int:
    from temporal_ml.devserver import DevServer

    server = DevServer(
        port=args.port, ui_port=args.ui_port, data_dir=args.data_dir, ip=args.ip, headless=args.headless
    )

    def _terminate(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    print(f"starting Temporal dev server (data in {server.data_dir}) ...", flush=True)
    server.start(timeout=args.timeout)
    try:
        print(f"Temporal server ready at {server.address}", flush=True)
        if server.ui_url:
            print(f"Web UI: {server.ui_url}", flush=True)
        print("press Ctrl-C to stop", flush=True)
        code = server.wait()
        print(f"server exited with code {code}; log: {server.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping Temporal server ...", flush=True)
        server.stop()
        print("stopped", flush=True)
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``temporal-ml``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except TemporalMLError as exc:
        print(f"temporal-ml: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
