"""A run's figures and its self-contained HTML report (drawn for ``temporal-ml plot`` and ``report``,
the dashboard, and your own scripts).

Plots (matplotlib, the ``ui`` extra), from the rows of :func:`temporal_ml.results.result_rows` and the
per-run ``metrics.jsonl`` logs:

* learning curves (training loss against step) of the run, or of every experiment/trial;
* for coordinators and sweeps, the objective of every experiment/trial (bars);
* for sweeps, the optimization history (objective per trial in order, with the best so far) and a
  parallel-coordinates view of the numeric parameters against the objective;
* for a multi-objective sweep, its Pareto front: every done trial by its first two objectives, the
  front (``pareto`` 1, over all its objectives) marked and joined.

:func:`html_report` writes one self-contained HTML file (plots inlined as PNG data, the results table,
the run's lineage) that opens offline.

Example::

    info, _ = await describe_run(client, "sweep-1")
    rows = await result_rows(client, "sweep-1")
    fig = figure(info, rows, find_metrics_dir(info, rows))
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporal_ml.errors import ConfigError, require
from temporal_ml.runs import RunInfo, format_duration

__all__ = ["figure", "html_report", "objective_of", "metrics_dir_default",
           "metrics_dir_candidates", "find_metrics_dir"]


def metrics_dir_default() -> Path | None:
    """``<store>/metrics`` of the default store when it is a local path (as workers write it)."""
    from temporal_ml.roles import default_store, local_path

    root = local_path(default_store())
    return root / "metrics" if root is not None else None


def metrics_dir_candidates(rows: Sequence[dict[str, Any]]) -> list[Path]:
    """Where a run's metrics logs may be, in order: ``<store>/metrics`` of the stores its checkpoints
    are in (a local ``<store>/checkpoints/...`` URI), the default store's, and the bundled examples'
    stores (``$TEMPORAL_ML_HOME/examples/<example>/metrics``)."""
    from temporal_ml.roles import local_path

    found: dict[Path, None] = {}
    for row in rows:
        uri = row.get("checkpoint")
        path = local_path(str(uri)) if isinstance(uri, str) and uri else None
        while path is not None and path.parent != path:
            if path.name == "checkpoints":
                found.setdefault(path.parent / "metrics", None)
                break
            path = path.parent
    default = metrics_dir_default()
    if default is not None:
        found.setdefault(default, None)
    home = Path(os.environ.get("TEMPORAL_ML_HOME") or Path.home() / ".temporal-ml").expanduser()
    for example in sorted((home / "examples").glob("*/metrics")):
        found.setdefault(example.resolve(), None)
    return list(found)


def find_metrics_dir(info: RunInfo, rows: Sequence[dict[str, Any]]) -> Path | None:
    """The first of :func:`metrics_dir_candidates` holding a metrics log of the run (``None``: none)."""
    ids = [c for candidates in _train_ids(info, rows).values() for c in candidates]
    return next((d for d in metrics_dir_candidates(rows)
                 if any((d / c / "metrics.jsonl").is_file() for c in ids)), None)


def objective_of(rows: Sequence[dict[str, Any]], wanted: str | None = None) -> str | None:
    """The column to rank by: ``wanted``, else ``value`` (a multi-objective sweep: its first
    objective's ``value.<name>``), ``eval.accuracy``, ``metrics.loss``."""
    present = {k for row in rows for k, v in row.items() if isinstance(v, (int, float)) and v is not None}
    if wanted is not None:
        if wanted not in present:
            raise ConfigError(f"--objective {wanted}: no numeric column of that name "
                              f"(numeric columns: {', '.join(sorted(present))})")
        return wanted
    first = _objective_columns(rows)[:1]
    return next((c for c in ("value", *first, "eval.accuracy", "metrics.loss", "train.loss") if c in present), None)


def _objective_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """A multi-objective sweep's ``value.<objective>`` columns, in the objectives' order."""
    return [c for c in _columns(rows) if c.startswith("value.")]


def _pareto_panel(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], str, str] | None:
    """The done trials of a multi-objective sweep with its first two objectives as the axes (``None``:
    not such a sweep, or nothing done yet)."""
    axes = _objective_columns(rows)
    if len(axes) < 2 or not any("pareto" in r for r in rows):
        return None
    x, y = axes[0], axes[1]
    done = [r for r in rows if isinstance(r.get(x), (int, float)) and isinstance(r.get(y), (int, float))
            and math.isfinite(float(r[x])) and math.isfinite(float(r[y])) and r.get("pareto") is not None]
    return (done, x, y) if done else None


def _train_ids(info: RunInfo, rows: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """Row name -> candidate training run ids (metrics log directories): the training child's id,
    ``<run>--<trial>`` (with a scheduler a trial trains under one run id across its rungs), or
    ``<run>--<trial>--train`` (a running sweep's trial, before its row names its child)."""
    ids = {}
    for row in rows:
        name = str(row.get("name"))
        candidates = [str(c) for c in (row.get("train_workflow_id"), f"{info.id}--{name}",
                                       f"{info.id}--{name}--train") if c]
        ids[name] = [name] if info.kind == "train" else candidates
    return ids


def figure(info: RunInfo, rows: Sequence[dict[str, Any]], metrics_dir: Path | None,
           objective: str | None = None, rungs: Any = None, space: Any = None) -> Any:
    """A matplotlib figure of the run (see the module docstring); panels without data are left out.
    ``rungs`` is an ASHA ladder's ``RungTable`` (its rung chart); ``space`` a sweep's ``SearchSpace``
    (its numeric parameters are the parallel-coordinates axes, log-scaled ones on a log axis)."""
    require("matplotlib", "ui")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[Any] = []
    curves = _curves(info, rows, metrics_dir)
    if curves:
        panels.append(("curves", curves))
    front = _pareto_panel(rows) if info.kind == "sweep" else None
    if front is not None:
        panels.append(("pareto", front))
    goal = objective_of(rows, objective)
    scored = [r for r in rows if isinstance(r.get(goal), (int, float))] if goal else []
    if info.kind in ("coordinator", "sweep", "ladder") and scored and len(scored) <= MAX_BARS:
        panels.append(("bars", scored))
    if info.kind in ("sweep", "ladder") and scored:
        panels.append(("history", scored))
        params = _parallel_axes(rows, scored, space)
        if params:
            panels.append(("parallel", (_best(scored, goal, MAX_LINES), params)))
    if rungs is not None and any(r.results for b in rungs.brackets for r in b.rungs):
        panels.append(("rungs", rungs))
    if info.kind in ("sweep", "ladder") and len(scored) >= 3:
        params = _parallel_axes(rows, scored, space)
        if params:
            panels.append(("importance", (scored, list(params))))
    if not panels:
        raise ConfigError(f"nothing to plot for run {info.id!r} yet: no metrics logs under "
                          f"{metrics_dir or '(no --metrics-dir)'} and no results")
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.4 * len(panels)), squeeze=False)
    for ax, (kind, data) in zip(axes[:, 0], panels, strict=True):
        _draw(ax, kind, data, goal)
    fig.suptitle(f"{info.id} ({info.kind or info.type}, {info.status})")
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    return fig


#: A bar per trial up to this many trials (beyond, the history panel shows every value).
MAX_BARS = 100
#: Lines of the parallel-coordinates panel at most: the best trials (a sweep of 10,000 stays legible
#: and quick to draw).
MAX_LINES = 300


def _best(rows: Sequence[dict[str, Any]], goal: str | None, n: int) -> list[dict[str, Any]]:
    """The ``n`` best rows by ``goal`` (lower is better for a loss, else higher), all when fewer."""
    if len(rows) <= n or goal is None:
        return list(rows)
    lower = "loss" in goal or "rmse" in goal
    return sorted(rows, key=lambda r: float(r[goal]) if lower else -float(r[goal]))[:n]


def _parallel_axes(rows: Sequence[dict[str, Any]], scored: Sequence[dict[str, Any]],
                   space: Any) -> dict[str, bool]:
    """Parameter column -> log axis: the space's parameters (log as declared), else every numeric
    ``params.*`` column (linear); only columns numeric in every scored row."""
    from temporal_ml.results import param_column

    if space is not None:
        axes = {param_column(k): bool(getattr(p, "log", False)) for k, p in space.params.items()}
    else:
        axes = {c: False for c in _columns(rows) if c.startswith("params.")}
    numeric = {c: log for c, log in axes.items()
               if all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) for r in scored)}
    return {c: log and all(float(r[c]) > 0 for r in scored) for c, log in numeric.items()}


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def _curves(info: RunInfo, rows: Sequence[dict[str, Any]], metrics_dir: Path | None) -> dict[str, Any]:
    if metrics_dir is None or not Path(metrics_dir).is_dir():
        return {}
    from temporal_ml.results import learning_curves

    curves = {}
    for name, candidates in _train_ids(info, rows).items():
        run_id = next((c for c in candidates if (Path(metrics_dir) / c / "metrics.jsonl").is_file()), None)
        if run_id is None:
            continue
        frame = learning_curves(metrics_dir, [run_id])
        if not frame.empty and "loss" in frame:
            frame = frame[frame["loss"].notna()]
            if not frame.empty:
                curves[name] = frame
    return curves


def _draw(ax: Any, kind: str, data: Any, goal: str | None) -> None:
    if kind == "curves":
        for name, frame in data.items():
            ax.plot(frame["step"], frame["loss"], marker=".", label=name)
        ax.set(title="learning curves", xlabel="step", ylabel="training loss")
        if len(data) <= 12:
            ax.legend(fontsize="small")
    elif kind == "bars":
        names = [str(r["name"]) for r in data]
        ax.bar(names, [float(r[goal]) for r in data], color="tab:blue")
        ax.set(title=f"{goal} per {'trial' if 'index' in data[0] else 'experiment'}", ylabel=goal)
        ax.tick_params(axis="x", labelrotation=45, labelsize="small")
    elif kind == "history":
        ordered = sorted(data, key=lambda r: (r.get("finished") is None, str(r.get("finished")), r.get("index", 0)))
        values = [float(r[goal]) for r in ordered]
        better = min if goal and ("loss" in goal or "rmse" in goal) else max
        best = [better(values[: i + 1]) for i in range(len(values))]
        ax.plot(range(1, len(values) + 1), values, "o", label=goal)
        ax.plot(range(1, len(values) + 1), best, "-", label="best so far")
        ax.set(title="optimization history", xlabel="trial (in order of completion)", ylabel=goal)
        ax.xaxis.set_major_locator(__import__("matplotlib.ticker").ticker.MaxNLocator(integer=True))
        ax.legend(fontsize="small")
    elif kind == "rungs":
        _draw_rungs(ax, data)
    elif kind == "pareto":
        _draw_pareto(ax, *data)
    elif kind == "importance":
        rows, params = data
        strength = {c.removeprefix("params."): abs(_rank_correlation([float(r[c]) for r in rows],
                                                                     [float(r[goal]) for r in rows]))
                    for c in params}
        names = sorted(strength, key=lambda n: strength[n])
        ax.barh(names, [strength[n] for n in names], color="tab:green")
        ax.set(title=f"parameter importance: |rank correlation| with {goal} ({len(rows)} trials)",
               xlim=(0, 1), xlabel="|Spearman correlation|")
    elif kind == "parallel":
        rows, params = data
        logs = {**params, goal: False}
        columns = list(logs)

        def scaled(c: str, v: float) -> float:  # a log axis is linear in log(v)
            return math.log(v) if logs[c] else v

        lows = {c: min(scaled(c, float(r[c])) for r in rows) for c in columns}
        highs = {c: max(scaled(c, float(r[c])) for r in rows) for c in columns}
        cmap = __import__("matplotlib").colormaps["viridis"]
        for r in rows:
            ys = [(scaled(c, float(r[c])) - lows[c]) / ((highs[c] - lows[c]) or 1.0) for c in columns]
            shade = ys[-1] if not math.isnan(ys[-1]) else 0.0
            ax.plot(range(len(columns)), ys, color=cmap(shade), alpha=0.8)
        labels = [c.removeprefix("params.") + (" (log)" if logs[c] else "") for c in columns]
        ax.set_xticks(range(len(columns)), labels, fontsize="small")
        for x, c in enumerate(columns):  # each axis's range at its ends (and a log axis's middle)
            ends = [(lows[c], 0.0, "top"), (highs[c], 1.0, "bottom")]
            if logs[c] and highs[c] > lows[c]:
                ends.append(((lows[c] + highs[c]) / 2, 0.5, "center"))
            for value, y, va in ends:
                shown = math.exp(value) if logs[c] else value
                ax.annotate(f"{shown:.3g}", (x, y), fontsize="x-small", ha="center", va=va)
        ax.set_ylim(-0.12, 1.12)
        ax.set(title=f"parameters against {goal} (colour: {goal}; each axis scaled to its range)",
               yticks=[])


def _rank_correlation(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's correlation of ``xs`` and ``ys`` (ties share their mean rank; 0 when either is constant)."""

    def ranks(values: Sequence[float]) -> list[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return cov / (sx * sy) if sx and sy else 0.0


#: Front trials named on the Pareto panel at most (a larger front is drawn unnamed).
MAX_FRONT_LABELS = 20


def _draw_pareto(ax: Any, rows: Sequence[dict[str, Any]], x: str, y: str) -> None:
    """Every done trial by two objectives: the dominated in grey, the Pareto front (``pareto`` 1)
    in red, joined in order of the first objective and named when it is small."""
    others = [r for r in rows if r.get("pareto") != 1]
    front = sorted((r for r in rows if r.get("pareto") == 1), key=lambda r: (float(r[x]), float(r[y])))
    if others:
        ax.scatter([float(r[x]) for r in others], [float(r[y]) for r in others], color="tab:gray", alpha=0.6,
                   s=18, label=f"dominated ({len(others)})")
    ax.plot([float(r[x]) for r in front], [float(r[y]) for r in front], "o--", color="tab:red", ms=6, lw=1,
            label=f"Pareto front ({len(front)})", zorder=3)
    if len(front) <= MAX_FRONT_LABELS:
        for r in front:
            ax.annotate(str(r.get("name")), (float(r[x]), float(r[y])), fontsize="x-small",
                        xytext=(4, 4), textcoords="offset points")
    more = len([c for c in rows[0] if c.startswith("value.")]) - 2
    ax.set(title="Pareto front" + (f" (over all {more + 2} objectives; the first two drawn)" if more > 0 else ""),
           xlabel=x.removeprefix("value."), ylabel=y.removeprefix("value."))
    ax.legend(fontsize="small")


def _draw_rungs(ax: Any, table: Any) -> None:
    """ASHA: every trial's objective at each rung budget it reached; promotions drawn as lines."""
    points: dict[str, list[tuple[int, float]]] = {}
    for bracket in table.brackets:
        for rung in bracket.rungs:
            for trial, value in rung.results.items():
                points.setdefault(trial, []).append((rung.budget, value))
    for _trial, pts in sorted(points.items()):
        pts.sort()
        ax.plot([b for b, _ in pts], [v for _, v in pts], "-", color="tab:gray", alpha=0.5, lw=1)
        for k, (budget, value) in enumerate(pts):  # promoted: it has a result at a higher rung
            promoted = k < len(pts) - 1  # drawn above the others: trials often tie at a rung
            ax.plot(budget, value, "o", color="tab:green" if promoted else "tab:red", ms=6 if promoted else 5,
                    zorder=3 if promoted else 2)
    budgets = sorted({r.budget for b in table.brackets for r in b.rungs})
    ax.set_xscale("log")
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.xaxis.set_minor_formatter(__import__("matplotlib.ticker").ticker.NullFormatter())
    ax.set(title="ASHA rungs (green: promoted, red: last rung reached)", xlabel="budget (steps)",
           ylabel="objective")


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


#: The lineage section of the HTML report: (heading, result column) per run/trial.
LINEAGE_COLUMNS = [("config sha256", "config_hash"), ("snapshot", "snapshot_id"), ("seed", "seed"),
                   ("temporal-ml", "library_version"), ("weights sha256", "checkpoint_sha256")]


def html_report(info: RunInfo, rows: Sequence[dict[str, Any]], png: bytes | None,
                note: str | None = None) -> str:
    """One self-contained HTML page: the run, the plots (inlined PNG), the results table and the
    lineage of every row (:data:`LINEAGE_COLUMNS`); ``note`` (e.g. why there are no learning curves)
    is shown above the plots. Every text from the run is HTML-escaped."""
    from temporal_ml.results import TABLE_COLUMNS

    esc = html.escape
    columns = [c for c in _columns(rows) if c in TABLE_COLUMNS or c.startswith(("params.", "value."))] or _columns(rows)
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(_text(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows)
    facts = [("kind", info.kind), ("status", info.status), ("workflow type", info.type),
             ("started", f"{info.start_time:%Y-%m-%d %H:%M:%S} UTC" if info.start_time else "-"),
             ("duration", format_duration(info.duration_seconds)), ("snapshot", info.snapshot_id),
             ("config sha256", info.config_hash), ("task queue", info.task_queue)]
    facts_html = "".join(f"<tr><th>{esc(k)}</th><td><code>{esc(v or '-')}</code></td></tr>" for k, v in facts)
    lineage_head = "".join(f"<th>{esc(title)}</th>" for title, _ in (("name", "name"), *LINEAGE_COLUMNS))
    lineage_body = "".join(
        f"<tr><td>{esc(_text(r.get('name')))}</td>"
        + "".join(f"<td><code>{esc(_text(r.get(c)))}</code></td>" for _, c in LINEAGE_COLUMNS) + "</tr>"
        for r in rows)
    front_html = _front_html(rows)
    image = (f'<img alt="plots of {esc(info.id)}" src="data:image/png;base64,'
             f'{base64.b64encode(png).decode()}">' if png else "<p>(no plots: no metrics or results yet)</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>temporal-ml report: {esc(info.id)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}
th{{background:#f3f3f3}}img{{max-width:100%}}code{{font-size:12px}}
.wide{{overflow-x:auto}}.wide td,.wide th{{white-space:nowrap}}</style></head>
<body><h1>{esc(info.id)}</h1>
<table>{facts_html}</table>
<h2>Plots</h2>{f"<p><em>{esc(note)}</em></p>" if note else ""}{image}
{front_html}<h2>Results ({len(rows)} row{'' if len(rows) == 1 else 's'})</h2>
<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>
<h2>Lineage</h2>
<p>What each result came from: the config's hash, the dataset snapshot, the seed, the temporal-ml
version that ran it and the sha256 of the final weights (<code>-</code>: not recorded, or not known
yet).</p>
<div class="wide"><table><thead><tr>{lineage_head}</tr></thead><tbody>{lineage_body}</tbody></table></div>
<p><small>temporal-ml report; the full table: <code>temporal-ml results {esc(info.id)} --format csv</code></small></p>
</body></html>
"""


def _front_html(rows: Sequence[dict[str, Any]]) -> str:
    """A multi-objective sweep's Pareto front as an HTML section (its trials by rank, each
    objective's value); empty for any other run."""
    objectives = _objective_columns(rows)
    front = sorted((r for r in rows if r.get("pareto") == 1), key=lambda r: (r.get("rank") is None, r.get("rank") or 0))
    if not objectives or not front:
        return ""
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in ("name", "rank", *(c.removeprefix("value.") for c in objectives)))
    body = "".join("<tr>" + "".join(f"<td>{esc(_text(r.get(c)))}</td>" for c in ("name", "rank", *objectives))
                   + "</tr>" for r in front)
    return (f"<h2>Pareto front ({len(front)} trial{'' if len(front) == 1 else 's'})</h2>"
            "<p>The done trials no other done trial matches or beats in every objective (and beats in "
            "one), by rank: the ends of the front and its sparse stretches first.</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _no_curves_note(info: RunInfo, rows: Sequence[dict[str, Any]], metrics_dir: Path | None) -> str | None:
    """Why there will be no learning curves, when no metrics log of the run is found."""
    ids = [c for candidates in _train_ids(info, rows).values() for c in candidates]
    if metrics_dir is not None and any((metrics_dir / c / "metrics.jsonl").is_file() for c in ids):
        return None
    where = str(metrics_dir) if metrics_dir is not None else (
        ", ".join(str(d) for d in metrics_dir_candidates(rows)) or "(no local store)")
    return (f"no learning curves: no metrics.jsonl of this run under {where}; "
            "pass --metrics-dir <the training worker's store>/metrics")


async def _search_space(client: Any, info: RunInfo) -> Any:
    """A sweep's or ladder's ``SearchSpace``, from its input (``None``: another kind, or unreadable)."""
    if info.kind not in ("sweep", "ladder"):
        return None
    from temporal_ml.client import workflow_input
    from temporal_ml.sweeps import LadderInput, SweepInput

    input_type = LadderInput if info.kind == "ladder" else SweepInput
    try:
        inp = await workflow_input(client, client.get_workflow_handle(info.id), input_type)
    except Exception:  # noqa: BLE001 - the plot falls back to linear axes of the params columns
        return None
    return getattr(inp, "space", None)


async def _rung_table(client: Any, info: RunInfo) -> Any:
    """The rung table of a sweep with a scheduler (rebuilt from its rows) or of a ladder of an
    earlier release (its result, or its ``ladder`` query while it runs); ``None`` without one."""
    from datetime import timedelta

    from temporal_ml.sweeps import LadderResult, LadderState

    handle = client.get_workflow_handle(info.id)
    if info.kind == "sweep":
        from temporal_ml.activities.plan import PlanRow, rung_table
        from temporal_ml.client import workflow_input
        from temporal_ml.sweep_results import sweep_trials
        from temporal_ml.sweeps import SweepInput

        try:
            inp = await workflow_input(client, handle, SweepInput)
            if inp is None or inp.scheduler is None:
                return None
            trials, _ = await sweep_trials(client, info)
            return rung_table([PlanRow.of(t) for t in trials], inp.scheduler, inp.direction)
        except Exception:  # noqa: BLE001 - no rung chart: the other panels still draw
            return None
    try:
        if info.status == "completed":
            return (await client.get_workflow_handle(info.id, result_type=LadderResult).result()).table
        state = await handle.query("ladder", result_type=LadderState, rpc_timeout=timedelta(seconds=5))
        return state.table if state is not None else None
    except Exception:  # noqa: BLE001 - no rung chart: the other panels still draw
        return None
