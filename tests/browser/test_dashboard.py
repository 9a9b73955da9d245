"""The dashboard in a real browser (Playwright driving Debian's chromium, headless) over a real dev
server, a real worker process and a small sweep: the runs list, a sweep's trials table, a learning
curve that gains points while its trial trains, the best-so-far figure, stop trial and add trials
from the page (checked through the workflow's query), a read-only dashboard that refuses a control,
and a run named ``<script>alert(1)</script>`` shown as text. Screenshots go to the test's temporary
directory (``TML_TEST_SCREENSHOTS=<dir>`` copies them there, e.g. ``docs/images``)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from temporal_ml.client import connect
from temporal_ml.search import Float, RandomSearcher, SearchSpace
from temporal_ml.sweeps import SweepInput, SweepStatus
from temporal_ml.types import DatasetSource, TrainConfig
from temporal_ml.workflows.training import TrainingInput
from tests.conftest import free_port
from tests.integration._sweep_workflows import MLPSweep
from tests.integration._training_workflows import MLPTraining
from tests.integration.test_sweep import start_worker

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
XSS = "<script>alert(1)</script>"


@contextlib.asynccontextmanager
async def dashboard(client: Any, **options: Any) -> AsyncIterator[str]:
    """The dashboard app served by uvicorn in this process on a free port; yields its URL."""
    import uvicorn

    from temporal_ml.dashboard import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(client, **options), host="127.0.0.1", port=port,
                                           log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def until(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"never: {what}")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")
async def test_the_dashboard_shows_a_live_sweep_and_takes_its_controls(tmp_path: Path,
                                                                       subprocess_env: dict[str, str]) -> None:
    from playwright.async_api import async_playwright

    tag = uuid.uuid4().hex[:6]
    queue = f"dash-{tag}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    base = TrainConfig(trainable="mlp", max_steps=150, batch_size=16, checkpoint_every_steps=25, log_every_steps=5,
                       async_checkpoints=False, hparams={"step_delay": 0.04})
    inp = SweepInput(base=base, space=SearchSpace({"hparams.lr": Float(1e-3, 3e-2, log=True)}),
                     searcher=RandomSearcher(), n_trials=4, max_concurrency=2, seed=1,
                     dataset=DatasetSource(generator="blobs"), run_id=f"dash-{tag}", progress_every_seconds=1)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        client = await connect()
        sweep = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        xss = await client.start_workflow(  # a run whose id is markup: the pages show it as text
            MLPTraining.run, TrainingInput(config=base.model_copy(update={"max_steps": 5}),
                                           dataset=DatasetSource(generator="blobs"), run_id=f"xss-{tag}"),
            id=XSS + tag, task_queue=queue)
        async with dashboard(client, metrics_dir=tmp_path / "metrics") as url, \
                dashboard(client, metrics_dir=tmp_path / "metrics", read_only=True) as read_only_url, \
                async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            dialogs: list[str] = []

            async def on_dialog(dialog: Any) -> None:
                dialogs.append(f"{dialog.type}: {dialog.message}")
                await dialog.accept()

            page.on("dialog", on_dialog)

            # the runs list shows the sweep, and the markup id as text (no script ran)
            await page.goto(url + "/")
            await page.get_by_role("link", name=inp.run_id, exact=True).wait_for(timeout=30_000)
            await xss.result()
            await page.get_by_role("link", name=XSS + tag, exact=True).wait_for(timeout=30_000)
            await page.screenshot(path=str(shots / "runs.png"), full_page=True)
            assert not dialogs, dialogs

            # the sweep's page: its trials table, a curve that gains points, the figure
            await page.goto(f"{url}/run/{inp.run_id}")
            await page.locator("#rows tbody tr").first.wait_for(timeout=30_000)
            live = f"/api/run/{inp.run_id}/figure/live.png"

            async def live_digest() -> str | None:
                got = await page.evaluate("(u) => fetch(u).then(r => r.status === 200 ? r.arrayBuffer() : null)"
                                          ".then(b => b ? Array.from(new Uint8Array(b)).join(',') : null)", live)
                return hashlib.sha256(got.encode()).hexdigest() if got else None

            first = await until(live_digest, "a learning curve of a running trial")
            await asyncio.sleep(2.5)  # the figure is redrawn at most every 2 s
            await until(lambda: _changed(live_digest, first), "the learning curve gains points")
            status = await sweep.query(MLPSweep.sweep_status)
            training = [t for t in status.trials if t.state == "training"]
            assert training, status

            # stop trial, from the page (confirmed), checked through the workflow's query
            button = page.locator("#rows tbody button[data-action=stop_trial]").first
            await button.wait_for(timeout=30_000)
            await button.click()
            await page.locator("#message", has_text="stop_trial").wait_for(timeout=30_000)

            async def one_stopped() -> bool:
                s = await sweep.query(MLPSweep.sweep_status)
                return s.n_stopped >= 1 or any(t.state == "stopped" for t in s.trials)

            await until(one_stopped, "a trial stopped from the page")
            # add trials, from the page
            await page.fill("input[name=add_trials]", "2")
            await page.click("button[data-action=add_trials]")
            await until(lambda: _n_trials(sweep, 6), "6 trials after add trials")
            assert any("add trials 2" in d for d in dialogs) and any("stop trial" in d for d in dialogs), dialogs
            await until(lambda: page.locator("#figure").evaluate("(img) => img.naturalWidth > 0"),
                        "the sweep's figure (objective per trial, best so far)")
            await page.screenshot(path=str(shots / "sweep.png"), full_page=True)

            # a trial's training: its checkpoints, newest first, with digest and size
            await page.goto(f"{url}/run/{inp.run_id}--t0000--train")
            first_row = page.locator("#ckpttable tbody tr").first
            await first_row.wait_for(timeout=30_000)
            cells = await first_row.locator("td").all_text_contents()
            assert int(cells[0]) > 0 and len(cells[1]) == 16 and cells[2].endswith("B"), cells
            await page.screenshot(path=str(shots / "training.png"), full_page=True)

            # the run named with markup: its page shows the id as text
            await page.goto(f"{url}/run/{XSS}{tag}".replace("<", "%3C").replace(">", "%3E"))
            await page.locator("#facts dd").first.wait_for(timeout=30_000)
            assert await page.locator("#title").text_content() == XSS + tag
            assert not [d for d in dialogs if d.startswith("alert")], dialogs

            # a read-only dashboard shows no control and refuses one
            await page.goto(f"{read_only_url}/run/{inp.run_id}")
            await page.locator("#rows tbody tr").first.wait_for(timeout=30_000)
            assert await page.locator("#controls").is_hidden()
            assert await page.locator("button[data-action]").count() == 0
            refused = await page.evaluate(
                "(u) => fetch(u, {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token':"
                " document.querySelector('meta[name=csrf]').content}, body: JSON.stringify({action: 'pause'})})"
                ".then(r => r.status)", f"/api/run/{inp.run_id}/control")
            assert refused == 403
            # a control without the page's CSRF token is refused too
            forged = await page.evaluate(
                "(u) => fetch(u, {method: 'POST', body: JSON.stringify({action: 'pause'})}).then(r => r.status)"
                ".catch(() => 0)",
                f"{url}/api/run/{inp.run_id}/control")
            assert forged in (0, 403)  # another origin cannot even read the answer
            assert (await sweep.query(MLPSweep.sweep_status)).phase != "paused"
            await browser.close()
        await sweep.execute_update(MLPSweep.stop)
        await sweep.result()
    finally:
        worker.kill()
    copy_to = os.environ.get("TML_TEST_SCREENSHOTS")
    for shot in shots.iterdir():
        print(f"screenshot: {shot}")
        if copy_to:
            shutil.copy(shot, Path(copy_to) / f"dashboard-{shot.name}")


async def _changed(digest: Any, first: str) -> bool:
    now = await digest()
    return now is not None and now != first


async def _n_trials(sweep: Any, n: int) -> bool:
    status: SweepStatus = await sweep.query(MLPSweep.sweep_status)
    return status.n_trials == n


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")
async def test_the_pages_say_reconnecting_while_the_server_is_away_and_recover(tmp_path: Path) -> None:
    """The Temporal server is killed (SIGKILL) under an open runs list and an open run page: both
    say "reconnecting"; restarted on its data directory, both recover without a reload."""
    from playwright.async_api import async_playwright
    from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

    from temporal_ml.devserver import DevServer

    port, data = free_port(), tmp_path / "server"
    server = DevServer(port=port, headless=True, data_dir=data).start(timeout=120)
    try:
        client = await connect(server.address)
        run_id = f"away-{uuid.uuid4().hex[:6]}"
        handle = await client.start_workflow(  # no worker takes it: a run that stays listed
            MLPTraining.run, TrainingInput(config=TrainConfig(trainable="mlp", max_steps=5),
                                           dataset=DatasetSource(generator="blobs"), run_id=run_id),
            id=run_id, task_queue=f"nobody-{run_id}",  # tagged as a training tags itself
            search_attributes=TypedSearchAttributes([SearchAttributePair(SearchAttributeKey.for_keyword("TmlKind"),
                                                                         "train")]))
        await handle.terminate("a run with a result to show")
        async with dashboard(client, metrics_dir=tmp_path / "metrics") as url, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            runs, run = await browser.new_page(), await browser.new_page()
            await runs.goto(url + "/")
            await runs.get_by_role("link", name=run_id, exact=True).wait_for(timeout=30_000)
            await run.goto(f"{url}/run/{run_id}")
            await run.locator("#facts dd", has_text="terminated").wait_for(timeout=30_000)

            assert server._process is not None  # noqa: SLF001 - a crash, not a clean stop
            os.killpg(server._process.pid, signal.SIGKILL)  # noqa: SLF001
            server._process.wait()  # noqa: SLF001
            server._process = None  # noqa: SLF001
            for page in (runs, run):
                await page.locator("#conn", has_text="reconnecting").wait_for(timeout=60_000)
            await runs.screenshot(path=str(tmp_path / "reconnecting.png"), full_page=True)

            server = DevServer(port=port, headless=True, data_dir=data).start(timeout=120)
            for page in (runs, run):
                await until(lambda p=page: _recovered(p), "the page recovers", timeout=90)
            await runs.get_by_role("link", name=run_id, exact=True).wait_for(timeout=30_000)
            assert await run.locator("#facts dd", has_text="terminated").count() == 1
            await browser.close()
    finally:
        server.stop()


async def _recovered(page: Any) -> bool:
    return (await page.locator("#conn").text_content() or "") == ""
