"""``temporal-ml results ID --format table|csv|json|parquet [-o FILE]``.

One row per experiment/trial (coordinators, sweeps) or per run (trainings): the rows of
:func:`temporal_ml.results.result_rows`. ``table``, ``csv`` and ``json`` need nothing beyond the core
install; ``parquet`` is written with pyarrow (a core dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from temporal_ml.cli._common import add_client_options, client_for, format_table
from temporal_ml.errors import ConfigError
from temporal_ml.results import TABLE_COLUMNS

__all__ = ["add_results_parser", "write_rows"]



def add_results_parser(sub: Any) -> None:
    """Add ``results`` to the ``temporal-ml`` subcommands."""
    parser = sub.add_parser(
        "results", help="a run's results: one row per experiment/trial (or per training run)",
        description="Print or save a run's results: params, metrics, status, durations and lineage, "
                    "one row per experiment or trial (coordinators, sweeps) or per training run.")
    parser.add_argument("id", metavar="ID", help="workflow id of the run")
    parser.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write to FILE instead of stdout (required for parquet)")
    parser.add_argument("--columns", metavar="A,B,...", help="only these columns, in this order")
    add_client_options(parser)
    parser.set_defaults(handler=lambda args: asyncio.run(_results(args)))


async def _results(args: argparse.Namespace) -> int:
    from temporal_ml.results import result_rows

    if args.format == "parquet" and not args.output:
        raise ConfigError("--format parquet writes a binary file: pass -o FILE.parquet")
    client = await client_for(args)
    rows = await result_rows(client, args.id)
    columns = _columns(rows, args)
    data = write_rows(rows, columns, args.format)
    if args.output:
        path = Path(args.output)
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data, encoding="utf-8")
        print(f"wrote {len(rows)} rows to {path}", file=sys.stderr)
    else:
        assert isinstance(data, str)
        sys.stdout.write(data if data.endswith("\n") else data + "\n")
    return 0


def _columns(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    present: dict[str, None] = {}
    for row in rows:
        for key in row:
            present.setdefault(key, None)
    if args.columns:
        wanted = [c.strip() for c in args.columns.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in present]
        if unknown:
            raise ConfigError(f"--columns: no column {', '.join(unknown)} (columns: {', '.join(present)})")
        return wanted
    if args.format == "table":  # the headline columns, with every parameter after max_steps
        params = [c for c in present if c.startswith("params.") and c != "params.model"]
        wanted = [c for c in TABLE_COLUMNS if c != "params.lr"]
        objectives = [c for c in present if c.startswith("value.")]  # a multi-objective sweep's
        at = wanted.index("value") + 1
        wanted = wanted[:at] + objectives + wanted[at:]
        if objectives and all(row.get("value") is None for row in rows):  # (it has no single value)
            wanted.remove("value")
        at = wanted.index("max_steps") + 1
        return [c for c in wanted[:at] + params + wanted[at:] if c in present]
    return list(present)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def write_rows(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> str | bytes:
    """``rows`` restricted to ``columns`` in format ``fmt`` (table, csv, json: text; parquet: bytes)."""
    if fmt == "table":
        return format_table(rows, columns)
    records = [{c: _plain(row.get(c)) for c in columns} for row in rows]
    if fmt == "json":
        return json.dumps(records, indent=2, default=str)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in records)
        return out.getvalue()
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([{c: _scalar(r[c]) for c in columns} for r in records])
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()
    raise ConfigError(f"unknown format {fmt!r}")


def _scalar(value: Any) -> Any:
    """Parquet columns need one type: nested values are stored as JSON text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value
