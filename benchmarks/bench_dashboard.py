"""The dashboard's sweep page with a 10,000-row results table: what one page load costs.

On an embedded dev server: a finished sweep (a workflow of kind ``sweep`` whose result points at its
results table, as a real sweep's does) with N rows written as the sweep writes them (parts of 100),
then the requests a browser makes to open its page, through the real app (``create_app``): the page,
its summary, the first page of rows, the rows sorted by value, the rows filtered; cold (the first
request reads the table) and warm. The figure loads after the page (it is drawn in a thread) and is
timed apart. Prints, as its last line::

    dashboard: N rows, page load X ms (goal < 1000), sorted page Y ms, figure Z ms

    python benchmarks/bench_dashboard.py [--rows 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from _sweep_bench_workflows import FinishedSweep
from bench_sweep import _free_port
from pydantic_core import to_json

from temporal_ml.client import connect
from temporal_ml.devserver import DevServer
from temporal_ml.sweeps import PART_ROWS, SuggestionAudit, SweepResult, TrialRow
from temporal_ml.types import SnapshotRef
from temporal_ml.worker import create_worker

QUEUE = "bench-dashboard"


def write_table(root: Path, run_id: str, n: int) -> str:
    rng = random.Random(0)
    now = datetime(2026, 12, 6, tzinfo=timezone.utc)
    uri = str(root / run_id)
    (root / run_id).mkdir(parents=True)
    rows = [TrialRow(index=k, params={"hparams.lr": rng.random() * 0.01, "hparams.warmup": rng.randint(0, 500)},
                     state="done" if k % 10 else "failed", value=rng.random() if k % 10 else None,
                     metrics={"accuracy": rng.random(), "loss": rng.random()} if k % 10 else {},
                     step=300, max_steps=300, loss=rng.random(), result_seq=k, started=now, trained=now,
                     finished=now, checkpoint_uri=f"file:///store/checkpoints/{run_id}--t{k:04d}--train/step-300",
                     model_sha256="ab" * 32, error=None if k % 10 else "diverged: loss nan at step 12",
                     audit=SuggestionAudit(searcher="tpe", results_seen=k, complete=k, failed=0, pending=0))
            for k in range(n)]
    for part in range(0, n, PART_ROWS):
        data = to_json([r.model_dump(mode="json") for r in rows[part:part + PART_ROWS]], inf_nan_mode="strings")
        (root / run_id / f"part-{part // PART_ROWS:05d}.json").write_bytes(data)
    return uri


async def main(args: argparse.Namespace) -> None:
    import httpx

    from temporal_ml.dashboard import create_app

    with tempfile.TemporaryDirectory(prefix="tml-bench-dashboard-") as tmp:
        server = DevServer(port=_free_port(), headless=True, data_dir=f"{tmp}/server")
        await asyncio.to_thread(server.start)
        try:
            client = await connect(server.address)
            run_id = f"dash-{uuid.uuid4().hex[:6]}"
            uri = write_table(Path(tmp) / "tables", run_id, args.rows)
            result = SweepResult(run_id=run_id, snapshot=SnapshotRef(id="c" * 64, root=f"{tmp}/snapshots", splits={}),
                                 objective="accuracy", direction="maximize", best=None, leaderboard=[], trials=[],
                                 n_trials=args.rows, n_done=args.rows - args.rows // 10, n_failed=args.rows // 10,
                                 n_stopped=0, rows_omitted=args.rows, table_uri=uri)
            async with create_worker(client, task_queue=QUEUE, workflows=[FinishedSweep]):
                await client.execute_workflow(FinishedSweep.run, result, id=run_id, task_queue=QUEUE)
            app = create_app(client)
            timings: dict[str, float] = {}
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash") as http:
                async def timed(name: str, path: str) -> httpx.Response:
                    start = time.perf_counter()
                    response = await http.get(path)
                    timings[name] = (time.perf_counter() - start) * 1000
                    if response.status_code not in (200, 204):
                        raise SystemExit(f"{path}: {response.status_code} {response.text[:200]}")
                    return response

                await timed("page (HTML)", f"/run/{run_id}")
                summary = (await timed("summary (cold: reads the table)", f"/api/run/{run_id}")).json()
                rows = (await timed("first 50 rows", f"/api/run/{run_id}/rows?limit=50")).json()
                await timed("sorted by value", f"/api/run/{run_id}/rows?limit=50&sort=value&desc=1")
                await timed("filtered", f"/api/run/{run_id}/rows?limit=50&q=diverged")
                await asyncio.sleep(1.6)  # past the row cache's 1.5 s
                await timed("summary (warm)", f"/api/run/{run_id}")
                await timed("figure (after the page)", f"/api/run/{run_id}/figure/all.png")
        finally:
            server.stop()
    assert summary["rows"] == args.rows and rows["total"] == args.rows, (summary["rows"], rows["total"])
    for name, ms in timings.items():
        print(f"  {name}: {ms:.0f} ms")
    load = timings["page (HTML)"] + timings["summary (cold: reads the table)"] + timings["first 50 rows"]
    print(f"dashboard: {args.rows} rows, page load {load:.0f} ms (goal < 1000), sorted page "
          f"{timings['sorted by value']:.0f} ms, figure {timings['figure (after the page)']:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    asyncio.run(main(parser.parse_args()))
