"""Shared pieces of the ``temporal-ml`` commands: connection options, ``--kind`` spellings, tables."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from temporalio.client import Client

__all__ = ["KIND_ALIASES", "add_client_options", "client_for", "format_table"]


#: ``--kind`` spellings users try -> the ``TmlKind`` value workflows set.
KIND_ALIASES: Mapping[str, str] = {
    "training": "train", "trainings": "train", "train": "train",
    "evaluation": "eval", "evaluations": "eval", "eval": "eval",
    "experiment": "coordinator", "experiments": "coordinator", "coordinator": "coordinator",
    "sweep": "sweep", "sweeps": "sweep",
}


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """``--address``, ``--namespace`` and ``--verbose`` (every command that talks to a server)."""
    parser.add_argument("--address", default=None, metavar="HOST:PORT",
                        help="Temporal frontend (default $TEMPORAL_ADDRESS, the config profile, else "
                             "localhost:7233)")
    parser.add_argument("--namespace", default=None, help="namespace (default $TEMPORAL_NAMESPACE or 'default')")
    parser.add_argument("--verbose", action="store_true", help="print the traceback of an error too")


async def client_for(args: argparse.Namespace) -> Client:
    """A connected client for the command's ``--address``/``--namespace`` (one-line error if none)."""
    from temporal_ml.failures import connect_or_explain

    client: Client = await connect_or_explain(args.address, namespace=args.namespace)
    return client


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain, aligned text table (what pipes and tests read; rich is used only for live views)."""
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(columns)]
    lines = ["  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)

