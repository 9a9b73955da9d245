"""What shows a multi-objective sweep's front: the plot's Pareto panel and the dashboard's front
table, from result rows as ``temporal_ml.results`` gives them."""

from __future__ import annotations

from typing import Any

import pytest

from temporal_ml.dashboard._data import pareto_front_rows
from temporal_ml.plots import _pareto_panel, objective_of
from temporal_ml.runs import RunInfo


def _rows() -> list[dict[str, Any]]:
    values = [(0.9, 0.5), (0.8, 0.2), (0.7, 0.6), (0.95, 0.9), (None, None)]
    fronts = [1, 1, 2, 1, None]
    return [{"name": f"t{k:04d}", "index": k, "status": "done" if a is not None else "failed", "rank": k + 1
             if a is not None else None, "pareto": f, "value": None, "value.accuracy": a, "value.loss": b,
             "eval.accuracy": a} for k, ((a, b), f) in enumerate(zip(values, fronts, strict=True))]


def test_the_dashboard_lists_the_front_with_each_objective() -> None:
    front = pareto_front_rows(_rows())
    assert front is not None and front["objectives"] == ["accuracy", "loss"] and front["size"] == 3
    assert [t["name"] for t in front["trials"]] == ["t0000", "t0001", "t0003"]
    assert front["trials"][1]["values"] == [0.8, 0.2]
    single = [{"name": "t0000", "value": 0.5, "rank": 1}]
    assert pareto_front_rows(single) is None and pareto_front_rows([]) is None


def test_the_plot_draws_the_front_of_the_first_two_objectives() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from temporal_ml.plots import figure

    rows = _rows()
    done, x, y = _pareto_panel(rows)  # type: ignore[misc]
    assert (x, y) == ("value.accuracy", "value.loss") and len(done) == 4
    assert objective_of(rows) == "value.accuracy"  # the history and bars use the first objective
    info = RunInfo(id="mo", type="MLPSweep", kind="sweep", status="completed")  # type: ignore[call-arg]
    fig = figure(info, rows, None)
    titles = [ax.get_title() for ax in fig.axes]
    assert "Pareto front" in titles
    ax = fig.axes[titles.index("Pareto front")]
    assert ax.get_xlabel() == "accuracy" and ax.get_ylabel() == "loss"
    plt.close(fig)


def test_the_report_lists_the_front_by_rank() -> None:
    from temporal_ml.plots import html_report

    info = RunInfo(id="mo", type="MLPSweep", kind="sweep", status="completed")  # type: ignore[call-arg]
    page = html_report(info, _rows(), None)
    section = page.split("<h2>Pareto front (3 trials)</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<th>accuracy</th><th>loss</th>" in section
    assert section.index("t0000") < section.index("t0001") < section.index("t0003") and "t0002" not in section
    single = [{"name": "t0000", "value": 0.5, "rank": 1}]
    assert "Pareto front" not in html_report(info, single, None)
