// lienthong dashboard: KPI tiles, busiest wards, a live chart and open flags.
// Everything comes from this worker's API; live updates from /api/stream (SSE).
"use strict";

const AGENCY_COLORS = {
  POLICE: "#4c9aff", SOCIAL_INSURANCE: "#2fbf9f", HEALTH: "#f778ba",
  JUSTICE: "#d2a8ff", PORTAL: "#f2cc60", LABOUR: "#ff9e64",
};
const AGENCY_LABELS = {
  POLICE: "Công an · police", SOCIAL_INSURANCE: "BHXH · social insurance", HEALTH: "Y tế · health",
  JUSTICE: "Tư pháp · justice", PORTAL: "Cổng DVC · portal", LABOUR: "LĐTBXH · labour",
};
// Flag types: Vietnamese name, English name, and what the flag means in Vietnamese
// (the rule's own detail, in English, follows it).
const FLAG_TEXT = {
  SYNC_FAILED: ["Đồng bộ BHYT lỗi", "insurance sync failed", "BHXH báo đồng bộ thẻ BHYT với CCCD không thành công."],
  SYNC_MISSING: ["Chưa đồng bộ BHYT", "insurance sync missing", "Đã cấp CCCD nhưng BHXH chưa đồng bộ BHYT trong thời hạn."],
  INSURANCE_NOT_SHARED: ["BHYT chưa chia sẻ", "insurance not shared", "Khám bệnh bằng CCCD nhưng không tra được thẻ BHYT của người đã có CCCD."],
  CHAIN_STALLED: ["Liên thông bị treo", "chain stalled", "Một bước của thủ tục liên thông khai sinh/khai tử quá hạn chưa có."],
  PROCEDURE_OVERDUE: ["Hồ sơ quá hạn", "procedure overdue", "Hồ sơ dịch vụ công chưa hoàn thành khi đến hạn."],
  CONTRACT_VIOLATION: ["Dữ liệu sai chuẩn", "contract violation", "Dữ liệu gửi sai chuẩn, đã chuyển vào hàng thư lỗi (deadletter)."],
  DUPLICATE_EVENT: ["Sự kiện trùng", "duplicate event", "Cơ quan gửi lại sự kiện đã nhận; chỉ tính một lần."],
  LATE_EVENT: ["Sự kiện trễ", "late event", "Sự kiện đến hệ thống muộn so với thời điểm phát sinh."],
  AGENCY_SILENT: ["Cơ quan im lặng", "agency silent", "Cơ quan không gửi dữ liệu hay tín hiệu hoạt động quá ngưỡng."],
};
const FLAG_STATUS_VI = { OPEN: "đang mở", RESOLVED: "đã xử lý", WITHDRAWN: "đã rút" };
const FLAGS_SHOWN = 40;
const CHART_MINUTES = 30;
// Hub health: above these the tile asks for attention (a backlog, or more refused than a stray message).
const HEALTH_LAG_WARN = 1000;
const HEALTH_DEAD_RATE_WARN = 0.01;
const NO_DATA = "—"; // a rate with nothing to divide by (the API answers null)
const numberFmt = new Intl.NumberFormat("vi-VN");
const pctFmt = new Intl.NumberFormat("vi-VN", { style: "percent", maximumFractionDigits: 1 });
// Every time on the page is the city's local time, whatever the viewer's machine says.
const CITY_TZ = "Asia/Ho_Chi_Minh";
const timeFmt = new Intl.DateTimeFormat("vi-VN", { timeZone: CITY_TZ, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const dateTimeFmt = new Intl.DateTimeFormat("vi-VN", { timeZone: CITY_TZ, day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });

const state = { kpis: null, minutes: new Map(), flags: new Map(), flagCounts: {} };

function $(sel) { return document.querySelector(sel); }
function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function pick(obj, path) { return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj); }
async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

// -- KPI tiles -------------------------------------------------------------------
function renderKpis(body) {
  const kpis = body.kpis;
  const before = state.kpis;
  state.kpis = kpis;
  for (const el of document.querySelectorAll("[data-kpi]")) {
    const path = el.dataset.kpi;
    const v = pick(kpis, path);
    if (v === undefined) continue;
    const text = v === null ? NO_DATA : el.dataset.format === "pct" ? pctFmt.format(v) : numberFmt.format(v);
    if (el.textContent !== text) {
      el.textContent = text;
      if (before && pick(before, path) !== v) {
        const tile = el.closest(".value") || el;
        tile.classList.add("flash");
        setTimeout(() => tile.classList.remove("flash"), 700);
      }
    }
  }
  for (const el of document.querySelectorAll("[data-share]")) { // null (no data): an empty meter
    el.style.width = `${Math.round(100 * (pick(kpis, el.dataset.share) || 0))}%`;
  }
  for (const el of document.querySelectorAll("[data-ratio]")) {
    const [a, b] = el.dataset.ratio.split("/").map((p) => pick(kpis, p) || 0);
    el.style.width = `${b ? Math.round((100 * a) / b) : 0}%`;
  }
  $("#as-of").textContent = `cập nhật · as of ${dateTimeFmt.format(new Date(body.as_of))} (GMT+7)`;
  renderHealth();
}

// -- hub health: lag, dead-letter rate, silent agencies, worker state ----------------
const health = { worker: null, silent: null };

async function refreshHealth() {
  const r = await fetch("/healthz", { cache: "no-store" });
  let body = {};
  try { body = await r.json(); } catch (e) { body = {}; }
  health.worker = { ok: r.ok && body.status === "ok", status: body.status || `HTTP ${r.status}`,
                    reason: body.reason || "", lag: body.consumer_lag };
  const silent = await getJSON("/api/flags?type=AGENCY_SILENT&status=OPEN&limit=1");
  health.silent = silent.total ?? silent.flags.length;
  renderHealth();
}

function deadLetterRate(k) {
  const all = (k.events_total || 0) + (k.events_dead_lettered || 0);
  return all ? k.events_dead_lettered / all : null;
}

function renderHealth() {
  const k = state.kpis, w = health.worker;
  if (!k || !w) return;
  const dead = deadLetterRate(k);
  const problems = [];
  if (!w.ok) problems.push("worker");
  if (w.lag > HEALTH_LAG_WARN) problems.push("lag");
  if (dead !== null && dead > HEALTH_DEAD_RATE_WARN) problems.push("dead");
  if (health.silent) problems.push("silent");
  const st = !w.ok ? "bad" : problems.length ? "warn" : "ok";
  const el = $("#health-state");
  el.dataset.state = st;
  el.textContent = { ok: "Ổn định · healthy", warn: "Cần chú ý · attention", bad: "Sự cố · failing" }[st];
  $("#health-lag").textContent = w.lag == null ? NO_DATA : `${numberFmt.format(w.lag)} msg`;
  $("#health-dead").textContent = dead === null ? NO_DATA : pctFmt.format(dead);
  $("#health-silent").textContent = health.silent == null ? NO_DATA : numberFmt.format(health.silent);
  $("#health-worker").textContent = w.ok ? "ok" : `${w.status}${w.reason ? `: ${w.reason}` : ""}`;
  $("#health-worker").title = w.reason;
  for (const [id, name] of [["#health-lag", "lag"], ["#health-dead", "dead"], ["#health-silent", "silent"], ["#health-worker", "worker"]]) {
    $(id).classList.toggle("warn", problems.includes(name));
  }
}

// -- wards and agencies (polled: they change with every tile update) ------------
async function refreshWards() {
  const body = await getJSON("/api/wards?limit=12");
  const rows = body.wards;
  const top = rows.length ? Math.max(1, rows[0].events) : 1;
  $("#wards").innerHTML = rows.length
    ? rows.map((w) => `<tr>
        <td>${esc(w.name)} <span class="code">${esc(w.ward)}</span></td>
        <td class="num bar-cell"><i style="width:${Math.round((100 * w.events) / top)}%"></i><span>${numberFmt.format(w.events)}</span></td>
        <td class="num">${numberFmt.format(w.id_cards_issued)}</td>
        <td class="num">${numberFmt.format(w.checkins_by_id_card)}</td>
        <td class="num">${numberFmt.format(w.procedures_submitted)}</td>
        <td class="num">${w.flags_open ? `<b style="color:var(--bad)">${numberFmt.format(w.flags_open)}</b>` : "0"}</td></tr>`).join("")
    : `<tr><td colspan="6" class="empty">No events yet.</td></tr>`;
}

function ago(s) {
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

async function refreshAgencies() {
  const body = await getJSON("/api/agencies");
  $("#agencies").innerHTML = body.agencies.length
    ? body.agencies.map((a) => {
        const cls = a.silent_for_s > 900 ? "silent" : a.silent_for_s > 120 ? "late" : "";
        return `<tr><td><span class="dot ${cls}"></span>${esc(AGENCY_LABELS[a.agency] || a.agency)}</td>
          <td class="num">${numberFmt.format(a.events)}</td><td class="num">${ago(a.silent_for_s)} ago</td></tr>`;
      }).join("")
    : `<tr><td class="empty">No agency has published yet.</td></tr>`;
  renderScorecard(body.scorecard || []);
}

// -- the agency scorecard (rows of /api/agencies: agency × month, every ward) ------
function seconds(s) {
  if (s == null) return "—";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  return ago(s);
}

function renderScorecard(rows) {
  const recent = [...rows].sort((a, b) => b.month.localeCompare(a.month) || a.agency.localeCompare(b.agency)).slice(0, 36);
  $("#scorecard").innerHTML = recent.length
    ? recent.map((r) => `<tr>
        <td>${esc(AGENCY_LABELS[r.agency] || r.agency)}</td><td>${esc(r.month)}</td>
        <td class="num">${numberFmt.format(r.events)}</td>
        <td class="num">${numberFmt.format(r.dead_lettered)}${r.dead_letter_share ? ` (${(100 * r.dead_letter_share).toFixed(1)}%)` : ""}</td>
        <td class="num">${seconds(r.delay_p50_s)}</td><td class="num">${seconds(r.delay_p95_s)}</td>
        <td class="num">${r.sla_breaches ? `<b style="color:var(--bad)">${numberFmt.format(r.sla_breaches)}</b>` : "0"}</td>
        <td class="num">${numberFmt.format(r.flags_open)}</td>
        <td class="num">${r.silences ? `${r.silences} · ${ago(r.silent_s)}` : "0"}</td></tr>`).join("")
    : `<tr><td colspan="9" class="empty">No events yet.</td></tr>`;
}

// -- flags --------------------------------------------------------------------------
// UTC ISO times inside a rule's English detail, shown in the city's local time too.
const ISO_UTC = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/g;
function localTime(iso) { return dateTimeFmt.format(new Date(iso)); }
function localizeDetail(text) { return text.replace(ISO_UTC, (iso) => localTime(iso)); }
function flagName(type) { return (FLAG_TEXT[type] || [type, ""])[0]; }

function renderFlags() {
  $("#flag-types").innerHTML = Object.entries(state.flagCounts).sort((a, b) => b[1] - a[1])
    .map(([t, n]) => `<span class="chip" title="${esc((FLAG_TEXT[t] || [t, t])[1])}">${esc(flagName(t))}<b>${numberFmt.format(n)}</b></span>`).join("");
  const open = [...state.flags.values()].filter((f) => f.status === "OPEN");
  open.sort((a, b) => Date.parse(b.opened_at) - Date.parse(a.opened_at));
  $("#flags").innerHTML = open.length
    ? open.slice(0, FLAGS_SHOWN).map((f) => {
        const [vi, en, meaning] = FLAG_TEXT[f.type] || [f.type, "", ""];
        const ward = f.ward_code ? `${esc(f.ward_name || f.ward_code)} <span class="code">${esc(f.ward_code)}</span>` : "toàn thành phố · city";
        return `<li data-flag-id="${esc(f.flag_id)}">
        <div class="head"><span class="t">${esc(vi)}</span>${en ? ` <span class="en">${esc(en)}</span>` : ""} · ${esc(AGENCY_LABELS[f.agency] || f.agency)}</div>
        <div class="where">${ward} · <time datetime="${esc(f.opened_at)}">${esc(localTime(f.opened_at))}</time></div>
        ${meaning ? `<div class="vi">${esc(meaning)}</div>` : ""}
        ${f.detail ? `<div class="en">${esc(localizeDetail(f.detail))}</div>` : ""}
        ${f.evidence && f.evidence.length ? `<div class="ev">bằng chứng · evidence: ${f.evidence.slice(0, 3).map(esc).join(", ")}${f.evidence.length > 3 ? " …" : ""}</div>` : ""}
      </li>`;
      }).join("")
    : `<li class="empty">Không có cảnh báo · no open flags.</li>`;
}

async function refreshFlags() {
  // newest open flags first, one page; the chips count every open flag (by_type covers all pages)
  const body = await getJSON(`/api/flags?status=OPEN&order=desc&limit=${FLAGS_SHOWN}`);
  state.flags = new Map(body.flags.map((f) => [f.flag_id, f]));
  state.flagCounts = body.by_type;
  renderFlags();
}

let flagRefresh = null;
function scheduleFlagRefresh() {
  if (flagRefresh) return;
  flagRefresh = setTimeout(() => { flagRefresh = null; refreshFlags().catch(() => {}); }, 2000);
}

// -- chart: stacked bars of events per minute by agency -------------------------------
function addCounts(minute, byAgency) {
  const bucket = state.minutes.get(minute) || {};
  for (const [agency, n] of Object.entries(byAgency)) bucket[agency] = (bucket[agency] || 0) + n;
  state.minutes.set(minute, bucket);
}

function drawChart() {
  const canvas = $("#chart");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, w, h);
  const now = Math.floor(Date.now() / 60000) * 60;
  const minutes = [];
  for (let i = CHART_MINUTES - 1; i >= 0; i--) minutes.push(now - i * 60);
  const agencies = Object.keys(AGENCY_COLORS);
  const totals = minutes.map((m) => agencies.reduce((s, a) => s + ((state.minutes.get(m) || {})[a] || 0), 0));
  const max = Math.max(10, ...totals);
  const step = Math.pow(10, Math.floor(Math.log10(max)));
  const top = Math.ceil(max / step) * step;
  const left = 48, bottom = 22, plotH = h - bottom - 8, plotW = w - left - 6;
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#8ea0b3"; ctx.strokeStyle = "#2a3846";
  for (let i = 0; i <= 4; i++) {
    const y = 8 + plotH - (plotH * i) / 4;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w - 6, y); ctx.stroke();
    ctx.textAlign = "right"; ctx.fillText(numberFmt.format(Math.round((top * i) / 4)), left - 6, y + 4);
  }
  const barW = plotW / minutes.length;
  let labelsRight = 0; // right edge of the rightmost time label, for the layout test
  minutes.forEach((m, i) => {
    let y = 8 + plotH;
    const bucket = state.minutes.get(m) || {};
    for (const a of agencies) {
      const n = bucket[a] || 0;
      if (!n) continue;
      const bh = (plotH * n) / top;
      ctx.fillStyle = AGENCY_COLORS[a];
      ctx.fillRect(left + i * barW + 1, y - bh, Math.max(1, barW - 2), bh);
      y -= bh;
    }
    if (i % 5 === 4 || i === minutes.length - 1) {
      ctx.fillStyle = "#8ea0b3"; ctx.textAlign = "left";
      const label = timeFmt.format(new Date(m * 1000));
      const half = ctx.measureText(label).width / 2;
      // centred under its bar, but never past the canvas edge (the last label was clipped on phones)
      const x = Math.min(left + (i + 0.5) * barW - half, w - 2 * half - 1);
      ctx.fillText(label, x, h - 6);
      labelsRight = Math.max(labelsRight, x + 2 * half);
    }
  });
  canvas.dataset.labelsRight = String(Math.ceil(labelsRight));
}

function renderLegend() {
  $("#legend").innerHTML = Object.entries(AGENCY_COLORS)
    .map(([a, c]) => `<li><i style="background:${c}"></i>${esc(AGENCY_LABELS[a])}</li>`).join("");
}

async function loadThroughput() {
  const body = await getJSON("/api/throughput");
  state.minutes = new Map(body.minutes.map((row) => [Date.parse(row.minute) / 1000, { ...row.by_agency }]));
  drawChart();
}

// -- live stream ----------------------------------------------------------------------
function setLive(on, text) {
  const el = $("#live");
  el.className = `live ${on ? "on" : "off"}`;
  $("#live-text").textContent = text;
}

let sideRefresh = null;
function scheduleSideRefresh() {
  if (sideRefresh) return;
  sideRefresh = setTimeout(() => {
    sideRefresh = null;
    refreshWards().catch(() => {});
    refreshAgencies().catch(() => {});
  }, 2000);
}

function connect() {
  const source = new EventSource("/api/stream");
  source.onopen = () => setLive(true, "Trực tiếp · live");
  source.onerror = () => setLive(false, "reconnecting…");
  source.addEventListener("kpis", (e) => { renderKpis(JSON.parse(e.data)); scheduleSideRefresh(); });
  source.addEventListener("counts", (e) => {
    const data = JSON.parse(e.data);
    addCounts(Math.floor(Date.parse(data.at) / 60000) * 60, data.by_agency);
    drawChart();
  });
  source.addEventListener("flag", (e) => {
    const flag = JSON.parse(e.data);
    if (flag.status === "OPEN") state.flags.set(flag.flag_id, flag); else state.flags.delete(flag.flag_id);
    renderFlags();
    scheduleFlagRefresh(); // the counts by type come from the server
  });
}

async function start() {
  renderLegend();
  const loads = [
    getJSON("/api/kpis").then(renderKpis), refreshWards(), refreshAgencies(), refreshFlags(), loadThroughput(),
    refreshHealth(),
  ];
  await Promise.allSettled(loads);
  connect();
  window.addEventListener("resize", drawChart);
  setInterval(drawChart, 15000); // the time axis moves even when the city is quiet
  setInterval(() => refreshFlags().catch(() => {}), 30000);
  setInterval(() => refreshHealth().catch(() => {}), 5000);
}

start();
