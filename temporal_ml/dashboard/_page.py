"""The dashboard's two HTML pages: shells the script (``static/app.js``) fills from the JSON API.

Nothing from a run is written into the HTML except the run id, escaped into an attribute; the
script sets every other text with ``textContent``, so no page executes text from a run."""

from __future__ import annotations

from html import escape

__all__ = ["runs_page", "run_page"]


def _head(title: str, csrf: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="csrf" content="{escape(csrf)}"><link rel="stylesheet" href="/static/style.css">'
            '</head>')


_BAR = ('<header><a href="/" class="home">temporal-ml</a> <span id="conn" role="status"></span>'
        '<span id="message" role="status"></span></header>')


def runs_page(csrf: str) -> str:
    """Every run, newest first, with filters and pages."""
    kinds = "".join(f'<option value="{k}">{k}</option>' for k in ("train", "eval", "coordinator", "sweep", "ladder"))
    states = "".join(f'<option value="{s}">{s}</option>' for s in ("running", "completed", "failed", "cancelled",
                                                                    "terminated", "timed_out"))
    return (_head("temporal-ml: runs", csrf) + '<body data-page="runs">' + _BAR +
            '<h1>runs</h1><form id="filters" onsubmit="return false">'
            f'<label>kind <select name="kind"><option value="">any</option>{kinds}</select></label> '
            f'<label>state <select name="state"><option value="">any</option>{states}</select></label> '
            '<label>id or experiment <input name="text" size="30"></label></form>'
            '<table id="runs"><thead><tr><th>id</th><th>kind</th><th>status</th><th>started</th>'
            '<th>duration</th><th>snapshot</th><th>metric</th></tr></thead><tbody></tbody></table>'
            '<p class="pager"><button id="newer" type="button">newer</button> <span id="page"></span> '
            '<button id="older" type="button">older</button></p>'
            '<script src="/static/app.js"></script></body></html>')


def run_page(workflow_id: str, csrf: str, read_only: bool) -> str:
    """One run: facts, status line, controls, tables and figures (filled by the script)."""
    return (_head(f"temporal-ml: {workflow_id}", csrf) +
            f'<body data-page="run" data-run-id="{escape(workflow_id, quote=True)}" '
            f'data-read-only="{int(read_only)}">' + _BAR +
            '<h1 id="title"></h1><dl id="facts"></dl><p id="line"></p>'
            '<section id="controls" hidden><h2>controls</h2><div id="buttons"></div>'
            '<form id="enqueue" hidden onsubmit="return false"><h3>enqueue a point</h3><div id="fields"></div>'
            '<button type="submit">enqueue</button></form></section>'
            '<section id="rungs" hidden><h2>rungs</h2><table id="rungtable"><thead><tr><th>bracket</th>'
            '<th>rung</th><th>budget</th><th>results</th><th>promoted</th><th>running</th></tr></thead>'
            '<tbody></tbody></table><ol id="decisions"></ol></section>'
            '<section id="front" hidden><h2>Pareto front</h2><p id="frontline"></p>'
            '<table id="fronttable"><thead></thead><tbody></tbody></table></section>'
            '<section id="checkpoints" hidden><h2>checkpoints</h2><table id="ckpttable"><thead><tr>'
            '<th>step</th><th>model sha256</th><th>size</th><th>metrics</th></tr></thead><tbody></tbody>'
            '</table></section>'
            '<section><h2>rows</h2><label>filter <input id="q" size="30"></label> <span id="count"></span>'
            '<table id="rows"><thead></thead><tbody></tbody></table>'
            '<p class="pager"><button id="prev" type="button">previous</button> '
            '<span id="rowpage"></span> <button id="next" type="button">next</button></p></section>'
            '<section><h2>running trials</h2><img id="live" alt="learning curves of the running trials"></section>'
            '<section><h2>figure</h2><img id="figure" alt="the run\'s figure"></section>'
            '<script src="/static/app.js"></script></body></html>')
