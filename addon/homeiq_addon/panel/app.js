// HomeIQ ingress panel. Plain JS, no build step. Every URL is relative to the page so
// the panel works below the Supervisor's ingress prefix (/api/hassio_ingress/<token>/).
"use strict";

const $ = (sel) => document.querySelector(sel);
const TIERS = ["raw_days", "hourly_days", "daily_days"];

function url(path) {
  return new URL(path, document.baseURI).toString();
}

async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: {} };
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(url(path), init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { message: text }; }
  if (!response.ok) {
    const message = (data && (data.message || data.error)) || `HTTP ${response.status}`;
    throw new Error(message);
  }
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

function days(value) {
  if (value === null || value === undefined) return "inherit";
  return value === "forever" ? "forever" : `${value} d`;
}

// ---- status header and alerts -------------------------------------------------------
async function refreshStatus() {
  const status = $("#status");
  try {
    const health = await api("api/v1/health");
    status.dataset.status = health.status;
    status.textContent = `${health.status} · v${health.version}`;
  } catch (err) {
    status.dataset.status = "offline";
    status.textContent = "offline";
  }
  try {
    const stats = await api("api/v1/stats?period=1h");
    const alerts = $("#alerts");
    alerts.replaceChildren(...(stats.alerts || []).map((a) =>
      el("div", { class: `alert ${a.level}` }, `${a.level.toUpperCase()}: ${a.message}`)));
  } catch (_) { /* the header already shows the add-on is unreachable */ }
}

// ---- storage ------------------------------------------------------------------------
async function refreshStorage() {
  try {
    const stats = await api("api/v1/retention/stats");
    const tiers = Object.entries(stats.tiers).map(([name, tier]) =>
      el("div", { class: "tier", "data-tier": name },
        el("span", { class: "muted" }, name),
        el("b", {}, `${tier.rows.toLocaleString()} rows`),
        el("span", {}, bytes(tier.bytes)), el("br"),
        el("span", { class: "muted" }, `oldest ${when(tier.oldest)}`)));
    const total = el("div", { class: "tier" }, el("span", { class: "muted" }, "database"),
      el("b", {}, bytes(stats.db_size_bytes)),
      el("span", { class: "muted" }, `oldest event ${when(stats.tiers.raw.oldest)}`));
    $("#storage").replaceChildren(total, ...tiers);
    const last = stats.last_run;
    $("#run-info").textContent =
      `Next run ${when(stats.next_run)}` +
      (last ? ` · last run ${when(last.finished_at)} (${last.status})` : "");
  } catch (err) {
    $("#storage").replaceChildren(el("p", { class: "error" }, err.message));
  }
}

// ---- policies -----------------------------------------------------------------------
let policies = [];

async function refreshPolicies() {
  policies = (await api("api/v1/retention/policies")).policies;
  const rows = policies.map((p) => el("tr", { "data-policy": p.name },
    el("td", {}, p.name),
    el("td", {}, p.match_type === "default" ? "everything else" : `${p.match_type}: ${p.pattern}`),
    ...TIERS.map((t) => el("td", {}, days(p[t]))),
    el("td", {},
      el("button", { class: "small secondary", onclick: () => editPolicy(p) }, "Edit"),
      p.builtin ? "" : el("button", { class: "small danger", onclick: () => deletePolicy(p.name) }, "Delete"))));
  $("#policies tbody").replaceChildren(...rows);
}

function editPolicy(p) {
  $("#policy-form-title").textContent = `Edit ${p.name}`;
  $("#p-editing").value = p.name;
  $("#p-name").value = p.name;
  $("#p-name").disabled = true;
  $("#p-match-type").value = p.match_type === "default" ? "entity" : p.match_type;
  $("#p-match-type").disabled = p.builtin;
  $("#p-pattern").value = p.pattern || "";
  $("#p-pattern").disabled = p.builtin;
  $("#p-raw").value = p.raw_days ?? "";
  $("#p-hourly").value = p.hourly_days ?? "";
  $("#p-daily").value = p.daily_days ?? "";
  $("#policy-error").textContent = "";
  $("#p-name").scrollIntoView({ block: "center" });
}

function resetForm() {
  $("#policy-form").reset();
  $("#p-editing").value = "";
  for (const id of ["#p-name", "#p-match-type", "#p-pattern"]) $(id).disabled = false;
  $("#policy-form-title").textContent = "Add a policy";
  $("#policy-error").textContent = "";
  for (const input of document.querySelectorAll("#policy-form input")) input.removeAttribute("aria-invalid");
}

function tierValue(raw) {
  const text = raw.trim();
  if (text === "") return null;
  if (text.toLowerCase() === "forever") return "forever";
  const n = Number(text);
  return Number.isFinite(n) ? n : text; // the server names the field if it is not a number
}

async function savePolicy(event) {
  event.preventDefault();
  const editing = $("#p-editing").value;
  const body = {};
  for (const [id, key] of [["#p-raw", "raw_days"], ["#p-hourly", "hourly_days"], ["#p-daily", "daily_days"]]) {
    const value = tierValue($(id).value);
    if (value !== null) body[key] = value;
  }
  if (editing !== "default") {
    body.name = $("#p-name").value.trim();
    body.match_type = $("#p-match-type").value;
    body.pattern = $("#p-pattern").value.trim();
  }
  try {
    if (editing) await api(`api/v1/retention/policies/${encodeURIComponent(editing)}`, { method: "PUT", body });
    else await api("api/v1/retention/policies", { method: "POST", body });
    resetForm();
    await refreshPolicies();
  } catch (err) {
    $("#policy-error").textContent = err.message;
    const field = { name: "#p-name", pattern: "#p-pattern", raw_days: "#p-raw", hourly_days: "#p-hourly", daily_days: "#p-daily" }[err.message.split(":")[0]];
    if (field) $(field).setAttribute("aria-invalid", "true");
  }
}

async function deletePolicy(name) {
  try {
    await api(`api/v1/retention/policies/${encodeURIComponent(name)}`, { method: "DELETE" });
    await refreshPolicies();
  } catch (err) {
    $("#policy-error").textContent = err.message;
  }
}

// ---- retention run ------------------------------------------------------------------
async function runRetention(dryRun) {
  $("#run-error").textContent = "";
  for (const id of ["#run-dry", "#run-now"]) $(id).disabled = true;
  try {
    const report = await api("api/v1/retention/run", { method: "POST", body: { dry_run: dryRun } });
    const head = el("tr", {}, el("th", {}, "Policy"), el("th", {}, "Raw events"),
      el("th", {}, "Hourly"), el("th", {}, "Daily"));
    const rows = report.policies.map((p) => el("tr", { "data-policy": p.name },
      el("td", {}, p.name), el("td", {}, p.raw_events), el("td", {}, p.hourly_rollups), el("td", {}, p.daily_rollups)));
    const verb = dryRun ? "Would delete" : "Deleted";
    $("#run-result").replaceChildren(
      el("p", { id: "run-summary", "data-dry-run": String(dryRun) },
        `${verb} ${report.totals.raw_events} raw events, ${report.totals.hourly_rollups} hourly and ` +
        `${report.totals.daily_rollups} daily rollups` +
        (report.attribute_sets_removed ? `, and ${report.attribute_sets_removed} attribute sets no event uses any more.` : ".")),
      el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
    await refreshStorage();
  } catch (err) {
    $("#run-error").textContent = err.message;
  } finally {
    for (const id of ["#run-dry", "#run-now"]) $(id).disabled = false;
  }
}

// ---- backups ------------------------------------------------------------------------
async function refreshBackups() {
  const list = (await api("api/v1/backups")).backups;
  $("#backups tbody").replaceChildren(...list.map((b) => {
    const restore = el("button", { class: "small secondary" }, "Restore");
    // A second click confirms: window.confirm() is unavailable inside some HA frames.
    restore.addEventListener("click", () => {
      if (restore.dataset.armed) backupAction(`api/v1/backups/${encodeURIComponent(b.name)}/restore`, "POST",
        (r) => `Restored ${b.name}; the data it replaced is kept as ${r.previous_data}`);
      else { restore.dataset.armed = "1"; restore.textContent = "Confirm restore"; }
    });
    return el("tr", { "data-backup": b.name },
      el("td", {}, b.name), el("td", {}, bytes(b.size_bytes)), el("td", {}, when(b.created_at)),
      el("td", {}, restore, el("button", { class: "small danger", onclick: () =>
        backupAction(`api/v1/backups/${encodeURIComponent(b.name)}`, "DELETE", `Deleted ${b.name}`) }, "Delete")));
  }));
}

async function backupAction(path, method, message) {
  $("#backup-error").textContent = "";
  $("#backup-create").disabled = true;
  try {
    const result = await api(path, { method });
    const text = typeof message === "function" ? message(result) : message;
    $("#backup-message").textContent = text || `Created ${result.name}`;
    await Promise.all([refreshBackups(), refreshStorage()]);
  } catch (err) {
    $("#backup-error").textContent = err.message;
  } finally {
    $("#backup-create").disabled = false;
  }
}

// ---- live event rate ----------------------------------------------------------------
const rates = [];

function drawChart() {
  const canvas = $("#rate-chart");
  const ratio = window.devicePixelRatio || 1;
  canvas.width = canvas.clientWidth * ratio;
  canvas.height = 120 * ratio;
  const ctx = canvas.getContext("2d");
  const max = Math.max(1, ...rates);
  const step = canvas.width / 119;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue("--primary");
  ctx.lineWidth = 2 * ratio;
  ctx.beginPath();
  rates.forEach((r, i) => {
    const x = canvas.width - (rates.length - 1 - i) * step;
    const y = canvas.height - (r / max) * (canvas.height - 4 * ratio) - 2 * ratio;
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

function pushRate(value) {
  rates.push(value);
  if (rates.length > 120) rates.shift();
  $("#rate-now").textContent = value.toFixed(1);
  drawChart();
}

function connectLive() {
  const ws = new WebSocket(url("api/v1/ws").replace(/^http/, "ws"));
  ws.addEventListener("message", (msg) => {
    const data = JSON.parse(msg.data);
    if (data.type === "rate") pushRate(Number(data.events_per_second) || 0);
  });
  ws.addEventListener("close", () => setTimeout(connectLive, 5000));
}

// ---- start --------------------------------------------------------------------------
function start() {
  $("#policy-form").addEventListener("submit", savePolicy);
  $("#policy-cancel").addEventListener("click", resetForm);
  $("#run-dry").addEventListener("click", () => runRetention(true));
  $("#run-now").addEventListener("click", () => runRetention(false));
  $("#backup-create").addEventListener("click", () => backupAction("api/v1/backups", "POST"));
  Promise.allSettled([refreshStatus(), refreshStorage(), refreshPolicies(), refreshBackups()])
    .then(() => { document.body.dataset.ready = "1"; });
  connectLive();
  setInterval(refreshStatus, 30000);
  setInterval(refreshStorage, 60000);
}

start();
