// temporal-ml dashboard: fills the pages from the JSON API every 2 s. Every text from a run goes in
// with textContent (never as HTML). Controls are confirmed, then POSTed with the page's CSRF token.
"use strict";
const $ = (sel) => document.querySelector(sel);
const CSRF = document.querySelector('meta[name="csrf"]').content;
const EVERY_MS = 2000;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function fmt(value) {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  return value === null || value === undefined ? "" : String(value);
}

function bytes(n) {
  if (typeof n !== "number") return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let k = 0;
  while (n >= 1024 && k < units.length - 1) { n /= 1024; k += 1; }
  return (k === 0 ? String(n) : n.toFixed(1)) + " " + units[k];
}

function connected(ok, why) {
  const conn = $("#conn");
  conn.textContent = ok ? "" : "reconnecting… " + (why || "");
  conn.className = ok ? "" : "warn";
}

function say(text, error) {
  const msg = $("#message");
  msg.textContent = text;
  msg.className = error ? "error" : "";
}

async function getJSON(url) {
  let response;
  try {
    response = await fetch(url, {credentials: "same-origin"});
  } catch (err) {
    connected(false, "(the dashboard does not answer)");
    throw err;
  }
  const body = await response.json().catch(() => ({}));
  if (response.status === 503) {
    connected(false, body.error || "");
    throw new Error(body.error || "unavailable");
  }
  connected(true);
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

async function send(runId, action, arg, what) {
  if (!window.confirm(what + "?")) return;
  try {
    const response = await fetch("/api/run/" + encodeURIComponent(runId) + "/control", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": CSRF},
      body: JSON.stringify({action: action, arg: arg}),
    });
    const body = await response.json().catch(() => ({}));
    if (body.ok) say(body.message, false); else say(body.error || response.statusText, true);
  } catch (err) {
    say("the dashboard does not answer: " + err, true);
  }
}

// -- the runs page ---------------------------------------------------------------------------------

function runsPage() {
  let page = 0;
  const form = $("#filters");
  async function load() {
    const params = new URLSearchParams(new FormData(form));
    params.set("page", String(page));
    let data;
    try { data = await getJSON("/api/runs?" + params); } catch (err) { return; }
    const body = $("#runs tbody");
    body.replaceChildren();
    for (const run of data.runs) {
      const tr = el("tr");
      const link = el("a", run.id);
      link.href = "/run/" + encodeURIComponent(run.id);
      const first = el("td"); first.appendChild(link); tr.appendChild(first);
      for (const value of [run.kind, run.status, (run.started || "").replace("T", " ").slice(0, 19),
                           run.duration_s === null ? "" : Math.round(run.duration_s) + " s", run.snapshot,
                           run.metric]) {
        tr.appendChild(el("td", fmt(value), typeof value === "number" ? "num" : ""));
      }
      body.appendChild(tr);
    }
    $("#page").textContent = "page " + (page + 1);
    $("#newer").disabled = page === 0;
    $("#older").disabled = !data.more;
  }
  form.addEventListener("input", () => { page = 0; load(); });
  $("#newer").addEventListener("click", () => { page = Math.max(0, page - 1); load(); });
  $("#older").addEventListener("click", () => { page += 1; load(); });
  load();
  setInterval(load, EVERY_MS);
}

// -- a run's page ----------------------------------------------------------------------------------

function runPage() {
  const runId = document.body.dataset.runId;
  const readOnly = document.body.dataset.readOnly === "1";
  const api = "/api/run/" + encodeURIComponent(runId);
  const view = {offset: 0, limit: 50, sort: "", desc: false, q: ""};
  let summary = null;
  let live = true;
  $("#title").textContent = runId;

  function facts(data) {
    const dl = $("#facts");
    dl.replaceChildren();
    const pairs = [["kind", data.kind], ["status", data.status], ["workflow type", data.type],
                   ["task queue", data.task_queue], ["started", (data.started || "").replace("T", " ").slice(0, 19)],
                   ["duration", data.duration], ["snapshot", data.snapshot], ["experiment", data.experiment]];
    for (const [key, value] of Object.entries(data.lineage || {})) pairs.push([key, value]);
    for (const [key, value] of pairs) {
      if (value === "" || value === null || value === undefined) continue;
      dl.appendChild(el("dt", key)); dl.appendChild(el("dd", fmt(value)));
    }
    if (data.web_ui && !$("#webui")) {
      const link = el("a", "open in the Temporal Web UI");
      link.id = "webui"; link.href = data.web_ui; link.rel = "noopener";
      $("#line").after(link);
    }
    $("#line").textContent = data.line || "";
  }

  function controls(data) {
    const box = $("#controls");
    const wanted = readOnly ? [] : data.controls;
    box.hidden = wanted.length === 0;
    const buttons = $("#buttons");
    const key = wanted.join(",");
    if (buttons.dataset.key === key) return;
    buttons.dataset.key = key;
    buttons.replaceChildren();
    for (const action of ["pause", "resume", "stop", "retry_failed"]) {
      if (!wanted.includes(action)) continue;
      const button = el("button", action.replace("_", " "));
      button.type = "button";
      button.dataset.action = action;
      button.addEventListener("click", () => send(runId, action, null, action.replace("_", " ") + " " + runId));
      buttons.appendChild(button);
    }
    for (const [action, label] of [["add_trials", "add trials"], ["set_max_concurrency", "set concurrency"]]) {
      if (!wanted.includes(action)) continue;
      const input = el("input"); input.type = "number"; input.min = "1"; input.value = "1"; input.size = 4;
      input.name = action;
      const button = el("button", label); button.type = "button"; button.dataset.action = action;
      button.addEventListener("click", () => {
        const n = Number(input.value);
        if (!Number.isInteger(n) || n < 1) { say(label + ": a whole number of at least 1", true); return; }
        send(runId, action, n, label + " " + n + " on " + runId);
      });
      buttons.append(input, button);
    }
    enqueueForm(wanted.includes("enqueue") ? data.space : null);
  }

  function enqueueForm(space) {
    const form = $("#enqueue");
    form.hidden = !space;
    if (!space || form.dataset.built) return;
    form.dataset.built = "1";
    const fields = $("#fields");
    for (const [name, param] of Object.entries(space)) {
      if (param.kind === "fixed") continue;
      const label = el("label", name + " ");
      let input;
      if (param.kind === "categorical") {
        input = el("select");
        param.choices.forEach((choice, k) => { const o = el("option", fmt(choice)); o.value = String(k); input.appendChild(o); });
      } else {
        input = el("input"); input.type = "number"; input.min = String(param.low); input.max = String(param.high);
        input.step = param.kind === "int" ? "1" : "any"; input.required = true;
        label.appendChild(el("small", " [" + param.low + ", " + param.high + "] "));
      }
      input.name = name;
      label.appendChild(input);
      fields.appendChild(label);
      fields.appendChild(el("br"));
    }
    form.addEventListener("submit", () => {
      const point = {};
      for (const [name, param] of Object.entries(space)) {
        if (param.kind === "fixed") continue;
        const input = form.elements.namedItem(name);
        if (param.kind === "categorical") { point[name] = param.choices[Number(input.value)]; continue; }
        const value = Number(input.value);
        if (input.value === "" || !Number.isFinite(value)) { say(name + ": a number", true); return; }
        point[name] = param.kind === "int" ? Math.round(value) : value;
      }
      send(runId, "enqueue", point, "enqueue " + JSON.stringify(point) + " in " + runId);
    });
  }

  function rungs(data) {
    const box = $("#rungs");
    box.hidden = !data.rungs;
    if (!data.rungs) return;
    const body = $("#rungtable tbody");
    body.replaceChildren();
    for (const r of data.rungs.counts) {
      const tr = el("tr");
      for (const v of [r.bracket, r.rung, r.budget, r.results, r.promoted, r.running]) tr.appendChild(el("td", fmt(v), "num"));
      body.appendChild(tr);
    }
    const list = $("#decisions");
    list.replaceChildren(...data.rungs.decisions.map((line) => el("li", line)));
  }

  function front(data) {
    // a multi-objective sweep: the trials on its Pareto front, with each objective's value
    const box = $("#front");
    box.hidden = !data.front;
    if (!data.front) return;
    const f = data.front;
    $("#frontline").textContent = f.size + " trial" + (f.size === 1 ? "" : "s") + " on the front" +
      (f.size > f.trials.length ? " (the first " + f.trials.length + " by rank)" : "") +
      ": no other done trial is at least as good in every objective and better in one";
    const head = $("#fronttable thead");
    const tr = el("tr");
    for (const name of ["trial", "rank", ...f.objectives]) tr.appendChild(el("th", name));
    head.replaceChildren(tr);
    const body = $("#fronttable tbody");
    body.replaceChildren();
    for (const t of f.trials) {
      const row = el("tr");
      row.appendChild(el("td", t.name));
      row.appendChild(el("td", fmt(t.rank), "num"));
      for (const v of t.values) row.appendChild(el("td", fmt(v), "num"));
      body.appendChild(row);
    }
  }

  function checkpoints(data) {
    const box = $("#checkpoints");
    box.hidden = !data.checkpoints || data.checkpoints.length === 0;
    if (box.hidden) return;
    const body = $("#ckpttable tbody");
    body.replaceChildren();
    for (const c of data.checkpoints) {
      const tr = el("tr");
      const metrics = Object.entries(c.metrics || {}).map(([k, v]) => k + " " + fmt(v)).join(", ");
      tr.appendChild(el("td", fmt(c.step), "num"));
      tr.appendChild(el("td", (c.sha256 || "").slice(0, 16), "mono"));
      tr.lastChild.title = c.sha256 || "";
      tr.appendChild(el("td", bytes(c.bytes), "num"));
      tr.appendChild(el("td", metrics));
      body.appendChild(tr);
    }
  }

  async function loadRows() {
    const params = new URLSearchParams({offset: view.offset, limit: view.limit, sort: view.sort,
                                        desc: view.desc ? "1" : "0", q: view.q});
    let data;
    try { data = await getJSON(api + "/rows?" + params); } catch (err) { return; }
    const head = $("#rows thead");
    const key = data.columns.join(",");
    if (head.dataset.key !== key) {
      head.dataset.key = key;
      const tr = el("tr");
      for (const column of data.columns) {
        const th = el("th", column);
        th.dataset.sort = column;
        th.addEventListener("click", () => {
          view.desc = view.sort === column ? !view.desc : false;
          view.sort = column; view.offset = 0; loadRows();
        });
        tr.appendChild(th);
      }
      tr.appendChild(el("th", ""));
      head.replaceChildren(tr);
    }
    const body = $("#rows tbody");
    body.replaceChildren();
    const canStop = !readOnly && summary && summary.controls.includes("stop_trial");
    for (const row of data.rows) {
      const tr = el("tr");
      for (const column of data.columns) tr.appendChild(el("td", fmt(row[column]), typeof row[column] === "number" ? "num" : ""));
      const last = el("td");
      if (canStop && row.status === "training" && Number.isInteger(row.index)) {
        const button = el("button", "stop trial"); button.type = "button"; button.dataset.action = "stop_trial";
        button.addEventListener("click", () => send(runId, "stop_trial", row.index, "stop trial " + row.name + " of " + runId));
        last.appendChild(button);
      }
      tr.appendChild(last);
      body.appendChild(tr);
    }
    $("#count").textContent = data.total + " rows";
    $("#rowpage").textContent = data.total ? (view.offset + 1) + "–" + Math.min(data.total, view.offset + view.limit) : "";
    $("#prev").disabled = view.offset === 0;
    $("#next").disabled = view.offset + view.limit >= data.total;
  }

  function images() {
    const stamp = "?t=" + Date.now();
    for (const [id, which] of [["#figure", "all"], ["#live", "live"]]) {
      const img = $(id);
      const next = new Image();
      next.onload = () => { img.src = next.src; img.hidden = false; };
      next.onerror = () => { img.hidden = true; };  // none yet (204), or a failed drawing: try again
      next.src = api + "/figure/" + which + ".png" + stamp;
    }
  }

  async function refresh() {
    try { summary = await getJSON(api); } catch (err) { return; }
    facts(summary); controls(summary); rungs(summary); front(summary); checkpoints(summary);
    await loadRows();
    if (live) images();
    live = summary.status === "running";
  }

  $("#q").addEventListener("input", (event) => { view.q = event.target.value; view.offset = 0; loadRows(); });
  $("#prev").addEventListener("click", () => { view.offset = Math.max(0, view.offset - view.limit); loadRows(); });
  $("#next").addEventListener("click", () => { view.offset += view.limit; loadRows(); });
  refresh();
  setInterval(refresh, EVERY_MS);
}

if (document.body.dataset.page === "runs") runsPage(); else runPage();
