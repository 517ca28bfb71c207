// HomeIQ ingress panel. Plain JS, no build step. Every URL is relative to the page so
// the panel works below the Supervisor's ingress prefix (/api/hassio_ingress/<token>/).
"use strict";

const $ = (sel) => document.querySelector(sel);
const TIERS = ["raw_days", "hourly_days", "daily_days"];
// The server names the field it refuses by its API name; people read the form's label.
const FIELDS = {
  name: ["#p-name", "Name"], match_type: ["#p-match-type", "Match"], pattern: ["#p-pattern", "Pattern"],
  raw_days: ["#p-raw", "Raw days"], hourly_days: ["#p-hourly", "Hourly days"], daily_days: ["#p-daily", "Daily days"],
};

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

// Decimal units, as Home Assistant shows the integration's database size sensor.
function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

// A table cell that carries its column name, shown beside the value at phone width.
function cell(label, ...children) {
  return el("td", label ? { "data-label": label } : { class: "actions" }, ...children);
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
    cell("Name", p.name),
    cell("Matches", p.match_type === "default" ? "everything else" : `${p.match_type}: ${p.pattern}`),
    ...TIERS.map((t, i) => cell(["Raw", "Hourly", "Daily"][i], days(p[t]))),
    cell("",
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
    const [key, ...rest] = err.message.split(":");
    const field = FIELDS[key.trim()];
    $("#policy-error").textContent = field ? `${field[1]}:${rest.join(":")}` : err.message;
    if (field) $(field[0]).setAttribute("aria-invalid", "true");
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
      cell("Policy", p.name), cell("Raw events", p.raw_events), cell("Hourly", p.hourly_rollups),
      cell("Daily", p.daily_rollups)));
    const verb = dryRun ? "Would delete" : "Deleted";
    $("#run-result").replaceChildren(
      el("p", { id: "run-summary", "data-dry-run": String(dryRun) },
        `${verb} ${report.totals.raw_events} raw events, ${report.totals.hourly_rollups} hourly and ` +
        `${report.totals.daily_rollups} daily rollups` +
        (report.attribute_sets_removed ? `, and ${report.attribute_sets_removed} attribute sets no event uses any more.` : ".")),
      el("table", { class: "stack" }, el("thead", {}, head), el("tbody", {}, ...rows)));
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
  if (!list.length) {
    $("#backups tbody").replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: "4" },
      "No backups yet. Create one here; the app also makes one every day unless its backup_keep option is 0.")));
    return;
  }
  $("#backups tbody").replaceChildren(...list.map((b) => {
    const restore = el("button", { class: "small secondary" }, "Restore");
    // A second click confirms: window.confirm() is unavailable inside some HA frames.
    restore.addEventListener("click", () => {
      if (restore.dataset.armed) backupAction(`api/v1/backups/${encodeURIComponent(b.name)}/restore`, "POST",
        (r) => `Restored ${b.name}; the data it replaced is kept as ${r.previous_data}`);
      else { restore.dataset.armed = "1"; restore.textContent = "Confirm restore"; }
    });
    return el("tr", { "data-backup": b.name },
      cell("Name", b.name), cell("Size", bytes(b.size_bytes)), cell("Created", when(b.created_at)),
      cell("", restore, el("button", { class: "small danger", onclick: () =>
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

// ---- mirror targets -----------------------------------------------------------------
const MIRROR_STATUS = {
  ok: "OK", backfilling: "Sending history", auth_failed: "Access refused",
  unreachable: "Unreachable", disabled: "Disabled",
};

function duration(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

function lag(target) {
  if (!target.lag_events) return "up to date";
  const age = target.lag_seconds == null ? "" : `, ${duration(target.lag_seconds)}`;
  return `${target.lag_events.toLocaleString()} events${age}`;
}

async function refreshMirror() {
  let targets;
  try {
    targets = (await api("api/v1/mirror/targets")).targets;
  } catch (err) {
    $("#mirror-error").textContent = err.message;
    return;
  }
  if (!targets.length) {
    $("#mirror-targets tbody").replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: "7" },
      "No mirror targets. Add one under mirror_targets in the app's configuration.")));
    return;
  }
  $("#mirror-targets tbody").replaceChildren(...targets.flatMap((t) => {
    const name = encodeURIComponent(t.name);
    const test = el("button", { class: "small secondary", onclick: () => mirrorAction(t.name,
      `api/v1/mirror/targets/${name}/test`, (r) =>
        `${t.name}: connected in ${Math.round(r.round_trip_ms)} ms` +
        (r.version ? ` (${r.build ? `${r.build} ` : ""}version ${r.version})` : "")) }, "Test connection");
    const again = el("button", { class: "small" }, "Send history again");
    if (t.status === "disabled") again.disabled = true;
    // A second click confirms, as for a restore: it sends every stored event once more.
    again.addEventListener("click", () => {
      if (again.dataset.armed) mirrorAction(t.name, `api/v1/mirror/targets/${name}/backfill`,
        (r) => `${t.name}: sending ${r.lag_events.toLocaleString()} stored events again`);
      else { again.dataset.armed = "1"; again.textContent = "Confirm: send all again"; }
    });
    const row = el("tr", { "data-target": t.name, "data-status": t.status },
      cell("Name", t.name),
      cell("Status", el("span", { class: "state", "data-status": t.status }, MIRROR_STATUS[t.status] || t.status)),
      cell("Lag", lag(t)), cell("Written", t.points_written.toLocaleString()),
      cell("Refused", t.points_refused.toLocaleString()), cell("Last success", when(t.last_success)),
      cell("", test, again));
    if (!t.last_error) return [row];
    return [row, el("tr", { class: "target-error", "data-target-error": t.name },
      el("td", { colspan: "7" }, t.last_error))];
  }));
}

async function mirrorAction(name, path, message) {
  $("#mirror-error").textContent = "";
  $("#mirror-message").textContent = `${name}: waiting for the target…`;
  try {
    const result = await api(path, { method: "POST" });
    $("#mirror-message").textContent = message(result);
  } catch (err) {
    $("#mirror-message").textContent = "";
    $("#mirror-error").textContent = err.message; // the app's message names the target
  }
  await refreshMirror();
}

// ---- event rate chart ---------------------------------------------------------------
// The last hour per minute (by the time events fired, from the app's per-minute counts),
// loaded when the panel opens and every minute; "now" is the live rate of the WebSocket.
const HOUR_MS = 3600e3;
let minutes = []; // [{t: ms, v: events}]
let live = null; // events over the last 60 s, or null before the first message

function niceMax(value) {
  if (value <= 5) return 5;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((m) => m >= value);
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function drawChart() {
  const canvas = $("#rate-chart");
  const style = getComputedStyle(document.documentElement);
  const color = (name) => style.getPropertyValue(name).trim();
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (!width) return;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const now = Date.now();
  const points = minutes.map((m) => ({ t: m.t + 30e3, v: m.v }));
  if (live !== null) points.push({ t: now, v: live });
  const top = niceMax(Math.max(1, ...points.map((p) => p.v)));
  ctx.font = `12px ${style.fontFamily}`;
  const left = 8 + ctx.measureText(String(top)).width + 12, right = 8, above = 20, below = 22;
  const plotW = width - left - right, plotH = height - above - below;
  const x = (t) => left + ((t - (now - HOUR_MS)) / HOUR_MS) * plotW;
  const y = (v) => above + plotH - (v / top) * plotH;

  ctx.fillStyle = color("--muted");
  ctx.strokeStyle = color("--divider");
  ctx.lineWidth = 1;
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  for (const v of [0, top / 2, top]) {
    ctx.beginPath(); ctx.moveTo(left, Math.round(y(v)) + 0.5); ctx.lineTo(width - right, Math.round(y(v)) + 0.5); ctx.stroke();
    ctx.fillText(String(v), left - 6, y(v));
  }
  ctx.textAlign = "left";
  ctx.textBaseline = "top";
  ctx.fillText("events/min", 0, 0);
  ctx.textBaseline = "bottom";
  const step = plotW < 320 ? 30 : 15; // minutes between time labels
  for (let ago = 60; ago >= 0; ago -= step) {
    const t = now - ago * 60e3;
    ctx.textAlign = ago === 60 ? "left" : ago === 0 ? "right" : "center";
    ctx.fillText(ago === 0 ? "now" : clock(t), ago === 0 ? width - right : ago === 60 ? left : x(t), height);
  }
  ctx.strokeStyle = color("--primary");
  ctx.lineWidth = 2;
  ctx.lineJoin = "round";
  ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.v)) : ctx.moveTo(x(p.t), y(p.v))));
  ctx.stroke();
  const total = minutes.reduce((sum, m) => sum + m.v, 0);
  const peak = minutes.reduce((best, m) => (m.v > best.v ? m : best), { v: 0, t: 0 });
  $("#rate-chart").dataset.points = String(points.length);
  $("#rate-caption").textContent = total
    ? `Last hour: ${total.toLocaleString()} events, at most ${peak.v.toLocaleString()} in a minute (${clock(peak.t)}).`
    : "No events in the last hour.";
}

async function refreshRate() {
  try {
    const rate = await api("api/v1/event-rate");
    // The current minute is not over: its count would draw a false drop at the end.
    minutes = (rate.minutes || []).slice(0, -1).map((m) => ({ t: Date.parse(m.start), v: m.events }));
    if (live === null) showLive(rate.events_per_minute);
    drawChart();
  } catch (_) { /* the header shows the app is unreachable */ }
}

function showLive(perMinute) {
  live = Number(perMinute) || 0;
  $("#rate-now").textContent = live.toLocaleString();
}

function connectLive() {
  const ws = new WebSocket(url("api/v1/ws").replace(/^http/, "ws"));
  ws.addEventListener("message", (msg) => {
    const data = JSON.parse(msg.data);
    if (data.type === "rate") { showLive(data.events_per_minute); drawChart(); }
  });
  ws.addEventListener("close", () => setTimeout(connectLive, 5000));
}

// ---- API token ----------------------------------------------------------------------
async function loadToken() {
  try {
    $("#token").value = (await api("token")).token;
  } catch (err) {
    $("#token-message").textContent = err.message;
  }
}

function toggleToken() {
  const input = $("#token");
  const hidden = input.type === "password";
  input.type = hidden ? "text" : "password";
  $("#token-show").textContent = hidden ? "Hide" : "Show";
}

async function copyToken() {
  const input = $("#token");
  try {
    await navigator.clipboard.writeText(input.value);
  } catch (_) {
    // No clipboard API outside a secure context: copy from the (briefly shown) field.
    const type = input.type;
    input.type = "text";
    input.select();
    document.execCommand("copy");
    input.type = type;
  }
  $("#token-message").textContent = "Copied. Paste it into the integration's Token field.";
}

// ---- start --------------------------------------------------------------------------
function start() {
  $("#policy-form").addEventListener("submit", savePolicy);
  $("#policy-cancel").addEventListener("click", resetForm);
  $("#run-dry").addEventListener("click", () => runRetention(true));
  $("#run-now").addEventListener("click", () => runRetention(false));
  $("#backup-create").addEventListener("click", () => backupAction("api/v1/backups", "POST"));
  $("#token-show").addEventListener("click", toggleToken);
  $("#token-copy").addEventListener("click", copyToken);
  window.addEventListener("resize", drawChart);
  Promise.allSettled([refreshStatus(), refreshStorage(), refreshPolicies(), refreshBackups(),
    refreshMirror(), refreshRate(), loadToken()])
    .then(() => { document.body.dataset.ready = "1"; });
  connectLive();
  setInterval(refreshStatus, 30000);
  setInterval(refreshMirror, 30000);
  setInterval(refreshStorage, 60000);
  setInterval(refreshRate, 60000);
}

start();
