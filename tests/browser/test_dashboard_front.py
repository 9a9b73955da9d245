"""A multi-objective sweep's page in a real browser (Playwright driving Debian's chromium, headless)
over a real dev server and worker process: the Pareto front section lists exactly the result's
front trials with both objectives' values, and the rows table has the ``pareto`` column."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from temporal_ml.client import connect
from temporal_ml.search import Float, Int, NSGAIISearcher, SearchSpace
from temporal_ml.sweeps import SweepInput, SweepResult
from temporal_ml.types import DatasetSource, TrainConfig
from tests.browser.test_dashboard import CHROMIUM, dashboard
from tests.integration._sweep_workflows import MLPSweep
from tests.integration.test_sweep import kill, start_worker

pytestmark = pytest.mark.integration


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")
async def test_the_page_of_a_multi_objective_sweep_shows_its_front(tmp_path: Path,
                                                                   subprocess_env: dict[str, str]) -> None:
    from playwright.async_api import async_playwright

    queue = f"dash-mo-{uuid.uuid4().hex[:6]}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    base = TrainConfig(trainable="mlp", max_steps=20, batch_size=16, log_every_steps=5, async_checkpoints=False)
    inp = SweepInput(base=base, space=SearchSpace({"hparams.lr": Float(1e-3, 1e-1, log=True),
                                                   "hparams.hidden": Int(2, 32)}),
                     searcher=NSGAIISearcher(population_size=3), n_trials=6, max_concurrency=2, seed=2,
                     dataset=DatasetSource(generator="blobs"), run_id=queue, evaluate_in_training=True,
                     objectives=["accuracy", "loss"], directions=["maximize", "minimize"])
    try:
        client = await connect()
        await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        result = await client.get_workflow_handle(inp.run_id, result_type=SweepResult).result()
        front = sorted(t.name for t in result.front)
        assert front
        async with dashboard(client, metrics_dir=tmp_path / "metrics") as url, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(f"{url}/run/{inp.run_id}")
            await page.locator("#front").wait_for(state="visible", timeout=30_000)
            await page.locator("#fronttable tbody tr").first.wait_for(timeout=30_000)
            heads = await page.locator("#fronttable thead th").all_text_contents()
            assert heads == ["trial", "rank", "accuracy", "loss"]
            cells: list[Any] = [await row.locator("td").all_text_contents()
                                for row in await page.locator("#fronttable tbody tr").all()]
            assert sorted(c[0] for c in cells) == front
            values = {t.name: t.row.values for t in result.front}
            for name, _rank, accuracy, loss in cells:
                assert abs(float(accuracy) - values[name][0]) < 1e-3  # type: ignore[index]
                assert abs(float(loss) - values[name][1]) < 1e-3 * max(1.0, values[name][1])  # type: ignore[index]
            assert "on the front" in await page.locator("#frontline").text_content()  # type: ignore[operator]
            await page.locator("#rows thead th", has_text="pareto").wait_for(timeout=30_000)
            # the figure (drawn in a thread) has the Pareto panel: fetched as the page does
            await page.wait_for_function("document.querySelector('#figure').naturalWidth > 0", timeout=60_000)
            png = await page.evaluate(f"fetch('/api/run/{inp.run_id}/figure/all.png').then(r => r.arrayBuffer())"
                                      ".then(b => Array.from(new Uint8Array(b)))")
            (tmp_path / "figure.png").write_bytes(bytes(png))
            await page.screenshot(path=str(tmp_path / "front.png"), full_page=True)
            await browser.close()
    finally:
        kill(worker)
