"""``temporal-ml plot ID -o FILE.png`` and ``temporal-ml report ID -o FILE.html`` (drawn by
:mod:`temporal_ml.plots`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from temporal_ml.cli._common import add_client_options, client_for
from temporal_ml.errors import ConfigError, require
from temporal_ml.plots import (
    _no_curves_note,
    _png,
    _rung_table,
    _search_space,
    figure,
    find_metrics_dir,
    html_report,
    objective_of,
)
from temporal_ml.runs import describe_run

__all__ = ["add_plot_parsers"]


def add_plot_parsers(sub: Any) -> None:
    """Add ``plot`` and ``report`` to the subcommands."""
    for name, suffix, help_ in (("plot", ".png", "plot a run: learning curves, objective per trial, "
                                 "sweep history and parallel coordinates"),
                                ("report", ".html", "write a self-contained HTML report of a run "
                                 "(plots, results table, lineage)")):
        parser = sub.add_parser(name, help=help_, description=help_ + ".")
        parser.add_argument("id", metavar="ID", help="workflow id of the run")
        parser.add_argument("-o", "--output", required=True, metavar=f"FILE{suffix}")
        parser.add_argument("--metrics-dir", default=None, metavar="PATH",
                            help="the per-run metrics.jsonl logs (default: found in <store>/metrics "
                                 "of the run's checkpoints, of $TEMPORAL_ML_STORE or "
                                 "$TEMPORAL_ML_HOME/store, or of the examples' "
                                 "$TEMPORAL_ML_HOME/examples/<example>)")
        parser.add_argument("--objective", default=None, metavar="COLUMN",
                            help="the column to rank by (default: value, else eval.accuracy, else "
                                 "metrics.loss)")
        add_client_options(parser)
        parser.set_defaults(handler=lambda args, n=name: asyncio.run(_command(args, n)))


async def _command(args: argparse.Namespace, name: str) -> int:
    from temporal_ml.results import result_rows

    require("matplotlib", "ui")  # before any query: the plots need it (as the results' pandas does)
    require("pandas", "ui")
    client = await client_for(args)
    info, _ = await describe_run(client, args.id)
    rows = await result_rows(client, args.id)
    metrics_dir = Path(args.metrics_dir) if args.metrics_dir else find_metrics_dir(info, rows)
    rungs = await _rung_table(client, info) if info.kind in ("ladder", "sweep") else None
    space = await _search_space(client, info)
    if name == "plot":
        objective_of(rows, args.objective)  # a bad --objective fails in one line, before any note
    note = _no_curves_note(info, rows, metrics_dir)
    if note:
        print(f"note: {note}", file=sys.stderr)
    output = Path(args.output)
    if name == "plot":
        plt = require("matplotlib.pyplot", "ui")
        fig = figure(info, rows, metrics_dir, args.objective, rungs, space)
        output.write_bytes(_png(fig))
        plt.close(fig)
    else:
        try:
            fig = figure(info, rows, metrics_dir, args.objective, rungs, space)
            png: bytes | None = _png(fig)
        except ConfigError:
            png = None
        output.write_text(html_report(info, rows, png, note), encoding="utf-8")
    print(f"wrote {output} ({os.path.getsize(output)} bytes)", file=sys.stderr)
    return 0

