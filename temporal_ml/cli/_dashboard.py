"""``temporal-ml dashboard``: serve the live web page of runs, sweeps and trials (:mod:`temporal_ml.dashboard`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from temporal_ml.cli._common import add_client_options, client_for
from temporal_ml.errors import require

__all__ = ["add_dashboard_parser"]


def add_dashboard_parser(sub: Any) -> None:
    """Add ``dashboard`` to the ``temporal-ml`` subcommands."""
    from temporal_ml.dashboard import DEFAULT_PORT, TOKEN_ENV

    parser = sub.add_parser("dashboard", help="serve a live web page of every run, sweep and trial",
                            description="A live web page of every run, sweep and trial, with their "
                                        "controls (offline: nothing is loaded from the internet).")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; any other needs --token)")
    parser.add_argument("--read-only", action="store_true", help="no controls: show runs only")
    parser.add_argument("--token", default=None,
                        help=f"every request must carry it (?token= once; default ${TOKEN_ENV})")
    parser.add_argument("--store", default=None,
                        help="the store whose metrics/ logs give the learning curves (default "
                             "$TEMPORAL_ML_STORE or ~/.temporal-ml/store)")
    parser.add_argument("--web-ui", default=None, metavar="URL",
                        help="the Temporal Web UI (e.g. http://localhost:8233): run pages link to it")
    add_client_options(parser)
    parser.set_defaults(handler=lambda args: asyncio.run(_dashboard(args)))


async def _dashboard(args: argparse.Namespace) -> int:
    from temporal_ml.dashboard import TOKEN_ENV, serve
    from temporal_ml.roles import default_store, local_path

    require("starlette", "dashboard")
    require("uvicorn", "dashboard")
    require("matplotlib", "dashboard")
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if args.host not in ("127.0.0.1", "localhost", "::1") and not token:  # before any connection
        from temporal_ml.errors import ConfigError

        raise ConfigError(f"--host {args.host}: serving beyond this machine needs a token "
                          f"(--token or {TOKEN_ENV}); every request then carries it")
    client = await client_for(args)
    store = local_path(args.store or default_store())
    metrics = store / "metrics" if store is not None and (store / "metrics").is_dir() else None
    await serve(client, host=args.host, port=args.port, read_only=args.read_only,
                token=token, metrics_dir=metrics, web_ui=args.web_ui,
                say=lambda line: print(line, file=sys.stderr, flush=True))
    return 0
