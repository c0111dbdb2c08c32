// inferq dashboard: plain JavaScript over the API's JSON, no framework, no CDN.
// Every value from the server goes into the page as text (textContent), never as HTML.
"use strict";

const REFRESH_MS = 2000;
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2"];
const state = { key: sessionStorage.getItem("inferq-key") || "", operator: false, cursor: null };

const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (state.key) headers.Authorization = `Bearer ${state.key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || { code: "http_error", message: response.statusText };
    throw Object.assign(new Error(`${response.status} ${error.code}: ${error.message}`), {
      status: response.status,
    });
  }
  return data;
}

function showError(error) {
  $("error").hidden = !error;
  $("error").textContent = error ? String(error.message || error) : "";
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "-" : String(text);
  if (className) td.className = className;
  return td;
}

function fillRows(tableId, rows, render) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren();
  for (const item of rows) render(body.insertRow(), item);
  if (!rows.length) {
    const td = body.insertRow().insertCell();
    td.colSpan = $(tableId).tHead.rows[0].cells.length;
    td.textContent = "none";
    td.className = "muted";
  }
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  return `${(seconds / 60).toFixed(1)} min`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "-";
}

// ---- overview -------------------------------------------------------------

async function refreshOverview() {
  const [status, history] = await Promise.all([
    api("GET", "/status"),
    api("GET", `/status/history?minutes=${$("history-minutes").value}`),
  ]);
  const queued = status.queues.reduce((sum, q) => sum + q.queued, 0);
  $("total-queued").textContent = String(queued);
  $("oldest-age").textContent = ago(status.oldest_queued_age_s);
  $("consumers-live").textContent = String(status.consumers_live);
  $("intake").textContent = status.paused ? "intake PAUSED" : "intake open";
  $("intake").className = status.paused ? "badge warn" : "badge";
  fillRows("queues", status.queues, (row, q) => {
    cell(row, q.model);
    cell(row, q.priority);
    cell(row, q.queued, "num");
    cell(row, ago(q.oldest_age_s), "num");
  });
  const now = Date.now() / 1000;
  fillRows("consumers", status.consumers, (row, c) => {
    cell(row, c.host);
    cell(row, c.pid);
    cell(row, c.last_heartbeat ? `${ago(now - c.last_heartbeat)} ago` : "-");
    const running = row.insertCell();
    if (!c.current_model) running.textContent = "idle";
    else {
      running.textContent = `${c.current_model} × ${c.current_batch}: `;
      for (const jobId of c.current_jobs) {
        const link = document.createElement("a");
        link.href = `#/job/${encodeURIComponent(jobId)}`;
        link.textContent = jobId.slice(0, 8);
        link.title = jobId;
        running.append(link, " ");
      }
    }
    cell(row, c.jobs_done, "num");
    cell(row, c.models);
  });
  drawHistory(history.points, history.bucket_s);
}

function drawHistory(points, bucketS) {
  const recent = points.slice(-6);
  const done = recent.reduce((s, p) => s + (p.queued.per_s + p.direct.per_s) * bucketS, 0);
  $("done-minute").textContent = String(Math.round(done));
  const last = [...points].reverse().find((p) => p.queued.p50_ms !== null);
  $("latency-now").textContent = last ? `${last.queued.p50_ms} / ${last.queued.p99_ms} ms` : "-";
  const refused = points.slice(-30).reduce(
    (s, p) => s + Object.values(p.refused).reduce((a, b) => a + b, 0), 0);
  $("refused-recent").textContent = String(refused);

  const series = (pick) => points.map((p) => pick(p));
  chart("chart-throughput", points, {
    queued: series((p) => p.queued.per_s), direct: series((p) => p.direct.per_s),
  });
  chart("chart-latency", points, {
    "queued p50": series((p) => p.queued.p50_ms), "queued p99": series((p) => p.queued.p99_ms),
    "direct p50": series((p) => p.direct.p50_ms), "direct p99": series((p) => p.direct.p99_ms),
  });
  chart("chart-wait", points, {
    p50: series((p) => p.wait_p50_ms), p99: series((p) => p.wait_p99_ms),
  });
  chart("chart-batch", points, {
    queued: series((p) => p.queued.mean_batch), direct: series((p) => p.direct.mean_batch),
  });
  const reasons = [...new Set(points.flatMap((p) => Object.keys(p.refused)))];
  const byReason = {};
  for (const reason of reasons) byReason[reason] = series((p) => p.refused[reason] || 0);
  chart("chart-refused", points, byReason);
}

// A line chart on a canvas: one line per series, gaps where a value is null.
function chart(id, points, lines) {
  const canvas = $(id);
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, left = 44, bottom = 18, top = 16;
  ctx.clearRect(0, 0, w, h);
  const values = Object.values(lines).flat().filter((v) => v !== null && v !== undefined);
  const max = Math.max(1e-9, ...values) * 1.1;
  ctx.strokeStyle = "#ccc";
  ctx.fillStyle = "#555";
  ctx.font = "11px sans-serif";
  ctx.beginPath();
  ctx.moveTo(left, top);
  ctx.lineTo(left, h - bottom);
  ctx.lineTo(w, h - bottom);
  ctx.stroke();
  ctx.fillText(values.length ? formatNumber(max) : "no data", 2, top + 4);
  ctx.fillText("0", 2, h - bottom);
  if (points.length) {
    const minutes = Math.round((points[points.length - 1].t - points[0].t) / 60);
    ctx.fillText(`-${minutes} min`, left, h - 4);
    ctx.fillText("now", w - 24, h - 4);
  }
  const x = (i) => left + (i / Math.max(1, points.length - 1)) * (w - left - 4);
  const y = (v) => h - bottom - (v / max) * (h - bottom - top);
  Object.entries(lines).forEach(([name, data], n) => {
    ctx.strokeStyle = COLORS[n % COLORS.length];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let drawing = false;
    data.forEach((v, i) => {
      if (v === null || v === undefined) { drawing = false; return; }
      if (drawing) ctx.lineTo(x(i), y(v)); else ctx.moveTo(x(i), y(v));
      drawing = true;
    });
    ctx.stroke();
    ctx.fillStyle = COLORS[n % COLORS.length];
    ctx.fillText(name, left + 6 + n * 78, 11);
  });
  canvas.dataset.points = String(values.length);
}

function formatNumber(v) {
  return v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toPrecision(2);
}

// ---- jobs -----------------------------------------------------------------

async function loadJobs(append) {
  const query = new URLSearchParams({ limit: "50" });
  for (const [param, id] of [["status", "filter-status"], ["model", "filter-model"],
    ["priority", "filter-priority"]]) {
    if ($(id).value) query.set(param, $(id).value);
  }
  if (append && state.cursor) query.set("cursor", state.cursor);
  const page = await api("GET", `/jobs?${query}`);
  const body = $("jobs").tBodies[0];
  if (!append) body.replaceChildren();
  for (const job of page.jobs) {
    const row = body.insertRow();
    const link = document.createElement("a");
    link.href = `#/job/${encodeURIComponent(job.id)}`;
    link.textContent = job.id;
    link.className = "job-link";
    row.insertCell().appendChild(link);
    cell(row, job.status, `status-${job.status}`);
    cell(row, `${job.model}@${job.model_version}`);
    cell(row, job.priority);
    cell(row, when(job.created_at));
    cell(row, job.attempts, "num");
  }
  state.cursor = page.next_cursor;
  $("more").hidden = !page.next_cursor;
}

async function showJob(jobId) {
  $("job-id").textContent = jobId;
  const job = await api("GET", `/jobs/${encodeURIComponent(jobId)}`);
  const rows = [
    ["status", job.status], ["model", `${job.model}@${job.model_version}`],
    ["priority", job.priority], ["created", when(job.created_at)],
    ["started", when(job.started_at)], ["finished", when(job.finished_at)],
    ["attempts", job.attempts], ["cached", job.cached],
    ["error", job.error ? `${job.error.code}: ${job.error.message}` : null],
    ["result", job.result === null ? null : JSON.stringify(job.result, null, 2)],
    ["requeued as", job.requeued_as], ["requeued from", job.requeued_from],
  ];
  fillRows("job-detail", rows, (row, [name, value]) => {
    cell(row, name, "label");
    const td = cell(row, value);
    td.id = `detail-${name.replace(/ /g, "-")}`;
    if (name === "result") td.className = "pre";
  });
  $("cancel-job").hidden = job.status !== "queued";
  $("cancel-job").dataset.job = job.id;
}

// ---- controls -------------------------------------------------------------

function confirmAction(text) {
  return new Promise((resolve) => {
    $("confirm-text").textContent = text;
    $("confirm").hidden = false;
    const done = (answer) => {
      $("confirm").hidden = true;
      $("confirm-yes").onclick = $("confirm-no").onclick = null;
      resolve(answer);
    };
    $("confirm-yes").onclick = () => done(true);
    $("confirm-no").onclick = () => done(false);
  });
}

async function control(action) {
  try {
    $("control-result").textContent = await action();
    showError(null);
    await route();
  } catch (error) {
    showError(error);
  }
}

async function previewThenDo(path, body, describe) {
  const preview = await api("POST", path, { ...body, dry_run: true });
  if (!preview.count) return `nothing to do: ${describe(0)}`;
  if (!(await confirmAction(`${describe(preview.count)}?`))) return "not done";
  const done = await api("POST", path, { ...body, dry_run: false });
  return `done: ${describe(done.count)}`;
}

function wireControls() {
  $("pause").onclick = () => control(async () => {
    if (!(await confirmAction("Pause intake: new jobs get 503 until resumed?"))) return "not done";
    await api("POST", "/admin/pause");
    return "intake paused";
  });
  $("resume").onclick = () => control(async () => {
    await api("POST", "/admin/resume");
    return "intake open";
  });
  $("purge").onclick = () => control(() => {
    const body = { model: $("purge-model").value || null, priority: $("purge-priority").value || null };
    return previewThenDo("/admin/purge", body, (n) => `cancel ${n} queued jobs`);
  });
  $("requeue").onclick = () => control(() => {
    const body = { status: $("requeue-status").value, model: $("requeue-model").value || null };
    return previewThenDo("/admin/requeue", body, (n) => `requeue ${n} ${body.status} jobs`);
  });
  $("cancel-job").onclick = () => control(async () => {
    const jobId = $("cancel-job").dataset.job;
    if (!(await confirmAction(`Cancel job ${jobId}?`))) return "not done";
    await api("DELETE", `/jobs/${encodeURIComponent(jobId)}`);
    return `job ${jobId} canceled`;
  });
}

// ---- page -----------------------------------------------------------------

async function whoAmI() {
  try {
    await api("GET", "/admin/intake");
    state.operator = true;
  } catch (error) {
    state.operator = false;
  }
  $("role").textContent = state.operator ? "operator" : "read-only";
  $("role").className = state.operator ? "badge operator" : "badge";
  $("controls").hidden = !state.operator;
  try {
    const models = await api("GET", "/models");
    for (const id of ["purge-model", "requeue-model", "filter-model"]) {
      const select = $(id);
      select.replaceChildren(select.options[0]);
      for (const model of models) select.add(new Option(model.name, model.name));
    }
  } catch (error) {
    showError(error);
  }
}

async function route() {
  const hash = location.hash || "#/";
  const pages = { "overview-page": hash === "#/", "jobs-page": hash === "#/jobs",
    "job-page": hash.startsWith("#/job/") };
  for (const [id, shown] of Object.entries(pages)) $(id).hidden = !shown;
  try {
    if (pages["overview-page"]) await refreshOverview();
    if (pages["jobs-page"]) await loadJobs(false);
    if (pages["job-page"]) await showJob(decodeURIComponent(hash.slice(6)));
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    showError(null);
  } catch (error) {
    showError(error);
  }
}

function start() {
  $("key").value = state.key;
  $("key-form").onsubmit = (event) => {
    event.preventDefault();
    state.key = $("key").value.trim();
    sessionStorage.setItem("inferq-key", state.key);
    whoAmI().then(route);
  };
  $("job-filters").onsubmit = (event) => { event.preventDefault(); loadJobs(false).catch(showError); };
  $("job-search").onsubmit = (event) => {
    event.preventDefault();
    const jobId = $("search-id").value.trim();
    if (jobId) location.hash = `#/job/${encodeURIComponent(jobId)}`;
  };
  $("more").onclick = () => loadJobs(true).catch(showError);
  $("history-minutes").onchange = () => route();
  wireControls();
  window.addEventListener("hashchange", route);
  whoAmI().then(route);
  // Live: the overview refreshes itself; lists and details refresh when asked.
  setInterval(() => { if (!$("overview-page").hidden && $("confirm").hidden) route(); }, REFRESH_MS);
}

start();
