"""The ``temporal-ml`` commands on a sweep, running and then finished, with a real worker process:
``runs --kind sweep``, ``status``, ``sweep add-trials``, ``pause``/``resume`` (and a refused resume),
``stop``, ``results`` (one row per trial) and ``temporal_ml.results``."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from temporal_ml._version import __version__
from temporal_ml.client import connect
from temporal_ml.search import Categorical, SearchSpace
from temporal_ml.sweeps import SweepInput, SweepResult
from temporal_ml.types import DatasetSource, TrainConfig
from tests.integration._procs import start_worker_process
from tests.integration.test_cli import cli, one_line

pytestmark = pytest.mark.integration

BASE = TrainConfig(trainable="mlp", max_steps=60, batch_size=16, checkpoint_every_steps=20,
                   log_every_steps=5, async_checkpoints=False, hparams={"step_delay": 0.03})


def _worker(queue: str, root: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return start_worker_process("tests.integration.sweep_worker", [queue, str(root), "all"],
                                root / "worker.log", env)


async def test_cli_on_a_running_then_finished_sweep(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    from tests.integration._sweep_workflows import MLPSweep

    env = subprocess_env
    tag = uuid.uuid4().hex[:6]
    queue, sweep_id = f"cli-sweep-{tag}", f"sweep-{tag}"
    worker = _worker(queue, tmp_path, env)
    try:
        client = await connect()
        inp = SweepInput(base=BASE, space=SearchSpace({"hparams.hidden": Categorical([4, 8, 16, 32])}),
                         n_trials=2, max_concurrency=1, objective="accuracy", run_id=sweep_id,
                         dataset=DatasetSource(generator="blobs", params={"seed": 3}),
                         progress_every_seconds=0.2)
        handle = await client.start_workflow(MLPSweep.run, inp, id=sweep_id, task_queue=queue)

        for _ in range(60):  # the sweep tags itself once its snapshot exists; visibility follows
            code, out, _ = await cli("runs", "--kind", "sweep", "--state", "running", env=env)
            if sweep_id in out:
                break
            await asyncio.sleep(0.5)
        assert code == 0 and sweep_id in out
        code, out, err = await cli("status", sweep_id, env=env)
        assert code == 0 and f"run {sweep_id}  kind sweep  status running" in out, err

        code, out, err = await cli("sweep", "add-trials", sweep_id, "1", env=env)
        assert code == 0 and f"{sweep_id}: added: 3 trials in all" in out, err
        code, out, err = await cli("pause", sweep_id, env=env)
        assert code == 0 and "sweep paused" in out, err
        code, out, err = await cli("resume", sweep_id, env=env)
        assert code == 0 and "sweep running" in out, err
        code, _, err = await cli("resume", sweep_id, env=env)  # not paused: refused, in one line
        assert code == 1 and "cannot resume: the sweep is not paused" in one_line(err)
        code, out, err = await cli("results", sweep_id, "--format", "json", env=env)  # while it runs
        live = json.loads(out)
        assert code == 0 and live and {r["status"] for r in live} <= {"training", "evaluating", "done"}, err
        assert all(r["name"].startswith("t") and "params.hidden" in r for r in live)
        code, _, err = await cli("sweep", "add-trials", sweep_id, "0", env=env)
        assert code == 1 and one_line(err)
        code, _, err = await cli("sweep", "enqueue", sweep_id, "not json", env=env)
        assert code == 2 and "not JSON" in one_line(err)

        result: SweepResult = await handle.result()
        code, out, err = await cli("results", sweep_id, "--format", "json", env=env)
        assert code == 0, err
        rows = json.loads(out)
        assert [r["index"] for r in rows] == [t.row.index for t in result.trials] == [0, 1, 2]
        for row, trial in zip(rows, result.trials, strict=True):
            assert row["status"] == trial.row.state == "done" and row["value"] == trial.row.value
            assert row["params.hidden"] == trial.row.params["hparams.hidden"]
            assert row["checkpoint_sha256"] == trial.row.model_sha256 and row["rank"] in (1, 2, 3)
        code, table, _ = await cli("results", sweep_id, env=env)
        assert table.splitlines()[0].split()[:4] == ["NAME", "STATUS", "RANK", "VALUE"]
        assert "PARAMS.HIDDEN" in table.splitlines()[0] and len(table.splitlines()) == 4

        # plots (learning curves, objective per trial, history, parallel coordinates) and the report
        png = tmp_path / "sweep.png"
        code, _, err = await cli("plot", sweep_id, "-o", str(png), "--metrics-dir", str(tmp_path / "metrics"),
                                 env=env)
        assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", err
        report = tmp_path / "sweep.html"
        # no --metrics-dir: the logs are found beside the trials' checkpoints
        code, _, err = await cli("report", sweep_id, "-o", str(report), env=env)
        assert code == 0 and "no learning curves" not in err, err
        check_report(report.read_text(), rows=3)
        code, _, err = await cli("plot", sweep_id, "-o", str(png), "--objective", "nope", env=env)
        assert code == 2 and "--objective nope: no numeric column" in one_line(err)

        import temporal_ml

        frame = await temporal_ml.results(client, sweep_id)
        assert len(frame) == 3 and set(frame["status"]) == {"done"}
        code, _, err = await cli("stop", sweep_id, env=env)  # finished: refused, in one line
        assert code == 1 and "finished" in one_line(err)

        # on a terminal, --follow draws live progress bars (here on a pseudo-terminal from `script`)
        if shutil.which("script"):
            command = f"{sys.executable} -m temporal_ml.cli status {sweep_id} --follow"
            proc = subprocess.run(["script", "-qec", command, "/dev/null"], env=env, capture_output=True,
                                  text=True, timeout=120)
            assert proc.returncode == 0, proc.stdout
            assert "\x1b[" in proc.stdout and "(Ctrl-C to stop following)" in proc.stdout
            assert all(f"t000{i}" in proc.stdout for i in range(3))
    finally:
        worker.kill()
        worker.wait()


def check_report(text: str, rows: int) -> None:
    """The report is one self-contained page: every image inline (a real PNG), no external resource,
    the results table and the lineage with one row per trial."""
    import base64
    from html.parser import HTMLParser

    class Parser(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.sources: list[str] = []
            self.rows = 0
            self.tables = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found = dict(attrs)
            for key in ("src", "href"):
                if found.get(key):
                    self.sources.append(found[key] or "")
            self.rows += tag == "tr"
            self.tables += tag == "table"

    parser = Parser()
    parser.feed(text)
    assert parser.sources and all(s.startswith("data:image/png;base64,") for s in parser.sources)
    for source in parser.sources:
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # the facts; the results and the lineage: a header and one row per trial each
    assert parser.tables == 3 and parser.rows == 8 + 2 * (1 + rows)
    lineage = text.split("<h2>Lineage</h2>", 1)[1]
    table = lineage.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    # every done trial: its config hash, snapshot id and weights digest; its seed and our version
    assert len(re.findall(r"<code>[0-9a-f]{64}</code>", table)) == 3 * rows, lineage
    assert "<code>-</code>" not in table and table.count(f"<code>{__version__}</code>") == rows, lineage
