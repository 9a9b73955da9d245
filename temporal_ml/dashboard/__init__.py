"""``temporal-ml dashboard``: a live web page of every run, sweep and trial, with their controls.

A small Starlette app over the Temporal server (visibility, workflow queries, updates) and the store
(metrics logs, results tables). Every page works offline (its script and style ship in the wheel;
no external URL), updates itself every 2 seconds while its run is live, says "reconnecting" while
the Temporal server is away and recovers when it is back. Pages:

* ``/``: every run (kind, status, started, duration, snapshot, metric), newest first, filtered by
  kind, state and text, paged.
* ``/run/<id>``: a run. A sweep: its status line (counts, best, time left), the trials table (paged,
  sorted and filtered on the server: 10,000 trials stay fast), its figure (objective per trial, best
  so far, parallel coordinates, ASHA rungs), the live learning curves of its running trials and,
  with a scheduler, the rung counts and the latest decisions. A training: its curves, checkpoint,
  lineage (config hash, snapshot, seed, library version), resumes and pauses, error. A
  coordinator: its experiments as a table.

Controls (pause, resume, stop, stop a trial, add trials, enqueue a point from a form built from the
search space with its bounds, set concurrency, retry failed trials) are confirmed in the page, sent
as POSTs with a CSRF token, and validated by the workflow exactly as the CLI's are; ``read_only``
hides and refuses them. It binds 127.0.0.1; any other address needs a ``token`` that every request
then carries (``?token=`` once: a cookie keeps it). Text from runs (ids, params, errors) is escaped.

Example::

    app = create_app(await connect(), metrics_dir="/data/tml/metrics", read_only=True)
    # or: temporal-ml dashboard --port 8266 --store /data/tml
"""

from __future__ import annotations

import hmac
import json
import secrets
from pathlib import Path
from typing import Any

__all__ = ["create_app", "serve", "DEFAULT_PORT", "TOKEN_ENV"]

#: The dashboard's default port.
DEFAULT_PORT = 8266
#: The environment variable a token may come from (``--token`` wins).
TOKEN_ENV = "TEMPORAL_ML_DASHBOARD_TOKEN"
_STATIC = Path(__file__).resolve().parent / "static"


def create_app(client: Any, *, metrics_dir: str | Path | None = None, read_only: bool = False,
               token: str | None = None, web_ui: str | None = None) -> Any:
    """The dashboard as an ASGI app over a connected Temporal ``client``.

    Args:
        client: a connected ``temporalio.client.Client`` (``temporal_ml.client.connect()``).
        metrics_dir: the store's ``metrics`` directory (learning curves); default: the one the
            results name, or ``$TEMPORAL_ML_STORE/metrics``.
        read_only: no controls: they are not shown and every POST is refused.
        token: every request must carry it (``?token=``, a cookie, or ``Authorization: Bearer``).
        web_ui: the Temporal Web UI's address (e.g. ``http://localhost:8233``): each run's page
            links to its workflow there.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from temporal_ml.dashboard import _data, _page

    csrf = secrets.token_urlsafe(24)
    cache = _data.RowCache()
    figures: dict[tuple[str, bool], tuple[float, bytes | None]] = {}
    drawing: dict[tuple[str, bool], Any] = {}

    def allowed(request: Request) -> bool:
        if token is None:
            return True
        given = (request.query_params.get("token") or request.cookies.get("tml_token")
                 or request.headers.get("authorization", "").removeprefix("Bearer "))
        return hmac.compare_digest(given.encode(), token.encode())

    def guarded(handler: Any) -> Any:
        async def wrapped(request: Request) -> Response:
            if not allowed(request):
                return Response("a token is required (?token=...)", status_code=401, media_type="text/plain")
            try:
                response: Response = await handler(request)
            except _data.ControlError as exc:
                return JSONResponse({"ok": False, "error": str(exc)}, status_code=409)
            except Exception as exc:  # noqa: BLE001 - the page shows one line and tries again
                from temporal_ml.failures import one_line

                return JSONResponse({"ok": False, "error": one_line(exc)}, status_code=503)
            if token is not None and request.query_params.get("token"):
                response.set_cookie("tml_token", token, httponly=True, samesite="strict")
            return response
        return wrapped

    async def runs_page(request: Request) -> Response:
        return HTMLResponse(_page.runs_page(csrf))

    async def run_page(request: Request) -> Response:
        return HTMLResponse(_page.run_page(request.path_params["id"], csrf, read_only))

    async def api_runs(request: Request) -> Response:
        q = request.query_params
        return JSONResponse(await _data.list_runs(
            client, kind=q.get("kind", ""), state=q.get("state", ""), text=q.get("text", "").strip(),
            page=max(0, int(q.get("page", "0") or 0))))

    async def api_run(request: Request) -> Response:
        summary = await _data.run_summary(client, cache, request.path_params["id"])
        if read_only:
            summary["controls"] = []
        if web_ui:
            from urllib.parse import quote

            summary["web_ui"] = (f"{web_ui.rstrip('/')}/namespaces/{quote(client.namespace, safe='')}"
                                 f"/workflows/{quote(summary['id'], safe='')}")
        return JSONResponse(summary)

    async def api_rows(request: Request) -> Response:
        q = request.query_params
        _, rows = await cache.get(client, request.path_params["id"])
        return JSONResponse(_data.page_rows(
            rows, offset=int(q.get("offset", "0") or 0), limit=int(q.get("limit", "50") or 50),
            sort=q.get("sort", ""), desc=q.get("desc") == "1", query=q.get("q", "")))

    async def png(request: Request) -> Response:
        import asyncio
        import time

        from temporal_ml.plots import find_metrics_dir

        workflow_id, live = request.path_params["id"], request.path_params["which"] == "live"
        key = (workflow_id, live)
        async with drawing.setdefault(key, asyncio.Lock()):  # one drawing at a time per figure
            cached = figures.get(key)
            if cached is None or time.monotonic() - cached[0] > 2.0:
                info, rows = await cache.get(client, workflow_id)
                where = Path(metrics_dir) if metrics_dir is not None else find_metrics_dir(info, rows)
                rungs = space = None
                if not live and info.kind in ("sweep", "ladder"):
                    from temporal_ml.plots import _rung_table, _search_space

                    rungs, space = await _rung_table(client, info), await _search_space(client, info)
                data = await asyncio.to_thread(_data.figure_png, info, rows, where, rungs, space, live)
                figures[key] = cached = (time.monotonic(), data)
        if cached[1] is None:
            return Response(status_code=204)
        return Response(cached[1], media_type="image/png", headers={"Cache-Control": "no-store"})

    async def api_control(request: Request) -> Response:
        if read_only:
            return JSONResponse({"ok": False, "error": "this dashboard is read-only"}, status_code=403)
        if not hmac.compare_digest(request.headers.get("x-csrf-token", ""), csrf):
            return JSONResponse({"ok": False, "error": "missing or wrong CSRF token (reload the page)"},
                                status_code=403)
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return JSONResponse({"ok": False, "error": "the request is not JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"ok": False, "error": "the request is not a JSON object"}, status_code=400)
        workflow_id = request.path_params["id"]
        info, _ = await cache.get(client, workflow_id)
        if not info.running:
            raise _data.ControlError(f"{workflow_id} has finished ({info.status})")
        message = await _data.control(client, workflow_id, info.kind, str(body.get("action")), body.get("arg"))
        cache._rows.pop(workflow_id, None)  # noqa: SLF001 - the next refresh reads the change
        return JSONResponse({"ok": True, "message": message})

    routes = [
        Route("/", guarded(runs_page)),
        Route("/run/{id:path}", guarded(run_page)),
        Route("/api/runs", guarded(api_runs)),
        Route("/api/run/{id:path}/rows", guarded(api_rows)),
        Route("/api/run/{id:path}/control", guarded(api_control), methods=["POST"]),
        Route("/api/run/{id:path}/figure/{which}.png", guarded(png)),
        Route("/api/run/{id:path}", guarded(api_run)),
        Mount("/static", app=StaticFiles(directory=_STATIC), name="static"),
    ]
    return Starlette(routes=routes)


async def serve(client: Any, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                say: Any = print, **options: Any) -> None:
    """Serve :func:`create_app` with uvicorn until interrupted (a host other than 127.0.0.1 or
    localhost needs a ``token``); ``say`` gets the address line once it listens."""
    import uvicorn

    from temporal_ml.errors import ConfigError

    if host not in ("127.0.0.1", "localhost", "::1") and not options.get("token"):
        raise ConfigError(f"--host {host}: serving beyond this machine needs a token "
                          f"(--token or {TOKEN_ENV}); every request then carries it")
    server = uvicorn.Server(uvicorn.Config(create_app(client, **options), host=host, port=port,
                                           log_level="warning"))
    say(f"dashboard on http://{host}:{port}/" + ("?token=..." if options.get("token") else "")
        + (" (read-only)" if options.get("read_only") else ""))
    await server.serve()
