"""The dashboard's server side without a browser: rows paged, sorted and filtered on the server; the
pages escape what comes from a run; controls refuse malformed requests before anything is sent; a
token guards every request; binding beyond this machine needs one."""

from __future__ import annotations

import math

import httpx
import pytest

from temporal_ml.dashboard import _data, _page, create_app, serve
from temporal_ml.errors import ConfigError


def rows() -> list[dict[str, object]]:
    return [{"name": f"t{k:04d}", "index": k, "status": "done" if k % 3 else "failed",
             "value": None if k % 3 == 0 else float(k % 7), "error": "diverged" if k % 3 == 0 else None}
            for k in range(10)]


def test_rows_are_sorted_with_missing_values_last_filtered_and_paged() -> None:
    page = _data.page_rows(rows(), sort="value", desc=True, limit=4)
    assert page["total"] == 10 and [r["value"] for r in page["rows"]] == [5.0, 4.0, 2.0, 1.0]
    every = _data.page_rows(rows(), sort="value", limit=500)["rows"]
    assert [r["value"] for r in every][-4:] == [None] * 4  # missing last, either way
    assert _data.page_rows(rows(), sort="value", desc=True, limit=500)["rows"][-1]["value"] is None
    found = _data.page_rows(rows(), query="DIVERGED")
    assert found["total"] == 4 and {r["status"] for r in found["rows"]} == {"failed"}
    assert [r["index"] for r in _data.page_rows(rows(), offset=8, limit=5)["rows"]] == [8, 9]
    assert len(_data.page_rows(rows() * 100, limit=10_000)["rows"]) == 500  # at most 500 a page
    assert _data.page_rows([{"x": math.nan}])["rows"] == [{"x": "nan"}]  # JSON has no NaN


def test_pages_escape_the_run_id() -> None:
    html = _page.run_page('<script>alert(1)</script>"', "tok", read_only=False)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in html
    assert "http" not in html.replace('href="/static', "")  # nothing from outside this server
    assert 'data-read-only="1"' in _page.run_page("x", "tok", read_only=True)


async def test_controls_refuse_malformed_requests_before_sending() -> None:
    with pytest.raises(_data.ControlError, match="not a control of a sweep"):
        await _data.control(None, "s", "sweep", "delete_everything", None)  # type: ignore[arg-type]
    with pytest.raises(_data.ControlError, match="whole number"):
        await _data.control(None, "s", "sweep", "add_trials", True)  # type: ignore[arg-type]
    with pytest.raises(_data.ControlError, match="whole number"):
        await _data.control(None, "s", "sweep", "stop_trial", "3")  # type: ignore[arg-type]
    with pytest.raises(_data.ControlError, match="point of the search space"):
        await _data.control(None, "s", "sweep", "enqueue", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(_data.ControlError, match="not a control of a eval"):
        await _data.control(None, "e", "eval", "pause", None)  # type: ignore[arg-type]


async def test_a_token_guards_every_request_and_is_kept_in_a_cookie() -> None:
    app = create_app(None, token="s3cret")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash") as http:
        assert (await http.get("/")).status_code == 401
        assert (await http.get("/api/runs")).status_code == 401
        assert (await http.post("/api/run/x/control", json={"action": "pause"})).status_code == 401
        assert (await http.get("/", params={"token": "wrong"})).status_code == 401
        first = await http.get("/", params={"token": "s3cret"})
        assert first.status_code == 200 and "tml_token" in first.headers.get("set-cookie", "")
        assert (await http.get("/")).status_code == 200  # the cookie carries it now
        assert (await http.get("/static/app.js")).status_code == 200


async def test_controls_need_the_pages_csrf_token_and_a_read_only_dashboard_refuses_them() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(None)), base_url="http://d") as http:
        refused = await http.post("/api/run/x/control", json={"action": "pause"})
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    read_only = create_app(None, read_only=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=read_only), base_url="http://d") as http:
        page = (await http.get("/")).text
        csrf = page.split('name="csrf" content="')[1].split('"')[0]
        refused = await http.post("/api/run/x/control", json={"action": "pause"}, headers={"X-CSRF-Token": csrf})
        assert refused.status_code == 403 and "read-only" in refused.json()["error"]


async def test_serving_beyond_this_machine_needs_a_token() -> None:
    with pytest.raises(ConfigError, match="needs a token"):
        await serve(None, host="0.0.0.0", port=1)


def test_a_trainings_checkpoints_are_listed_newest_first_with_digest_and_size(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The training page's checkpoint list comes from the manifests: step, the model's digest and
    the bytes of every file, as written; a step directory without a manifest (torn) is left out."""
    import torch

    from temporal_ml.storage.checkpoints import CheckpointManager

    manager = CheckpointManager(tmp_path, "run-1", keep_last=None)
    refs = [manager.save(step, {"model": {"w": torch.full((64,), float(step))}}, metrics={"loss": 1.0 / step})
            for step in (10, 20, 30)]
    (tmp_path / "run-1" / "step-000000000040").mkdir()  # being written: no manifest yet
    listed = _data.checkpoint_list(refs[0].uri)
    assert [c["step"] for c in listed] == [30, 20, 10]
    assert [c["sha256"] for c in listed] == [r.model_sha256 for r in reversed(refs)]
    on_disk = sum(f.stat().st_size for f in (tmp_path / "run-1" / "step-000000000030").iterdir()
                  if f.name != "manifest.json")
    assert listed[0]["bytes"] == on_disk > 64 * 4
    assert listed[0]["metrics"] == {"loss": 1.0 / 30}
    assert _data.checkpoint_list(str(tmp_path / "gone" / "step-000000000001")) == []
