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
const FLAG_LABELS = {
  SYNC_FAILED: "Đồng bộ BHYT lỗi", SYNC_MISSING: "Chưa đồng bộ BHYT", INSURANCE_NOT_SHARED: "BHYT chưa chia sẻ",
  CHAIN_STALLED: "Liên thông bị treo", PROCEDURE_OVERDUE: "Hồ sơ quá hạn", CONTRACT_VIOLATION: "Dữ liệu sai chuẩn",
  DUPLICATE_EVENT: "Sự kiện trùng", LATE_EVENT: "Sự kiện trễ", AGENCY_SILENT: "Cơ quan im lặng",
};
const CHART_MINUTES = 30;
const numberFmt = new Intl.NumberFormat("vi-VN");
const pctFmt = new Intl.NumberFormat("vi-VN", { style: "percent", maximumFractionDigits: 1 });

const state = { kpis: null, minutes: new Map(), flags: new Map() };

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
    const text = el.dataset.format === "pct" ? pctFmt.format(v) : numberFmt.format(v);
    if (el.textContent !== text) {
      el.textContent = text;
      if (before && pick(before, path) !== v) {
        const tile = el.closest(".value") || el;
        tile.classList.add("flash");
        setTimeout(() => tile.classList.remove("flash"), 700);
      }
    }
  }
  for (const el of document.querySelectorAll("[data-share]")) {
    el.style.width = `${Math.round(100 * (pick(kpis, el.dataset.share) || 0))}%`;
  }
  for (const el of document.querySelectorAll("[data-ratio]")) {
    const [a, b] = el.dataset.ratio.split("/").map((p) => pick(kpis, p) || 0);
    el.style.width = `${b ? Math.round((100 * a) / b) : 0}%`;
  }
  $("#as-of").textContent = `as of ${new Date(body.as_of).toLocaleString("vi-VN")}`;
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
function renderFlags() {
  const open = [...state.flags.values()].filter((f) => f.status === "OPEN");
  const byType = {};
  for (const f of open) byType[f.type] = (byType[f.type] || 0) + 1;
  $("#flag-types").innerHTML = Object.entries(byType).sort((a, b) => b[1] - a[1])
    .map(([t, n]) => `<span class="chip" title="${esc(t)}">${esc(FLAG_LABELS[t] || t)}<b>${numberFmt.format(n)}</b></span>`).join("");
  open.sort((a, b) => b.opened_at - a.opened_at);
  $("#flags").innerHTML = open.length
    ? open.slice(0, 40).map((f) => `<li>
        <span class="t">${esc(FLAG_LABELS[f.type] || f.type)}</span> · ${esc(AGENCY_LABELS[f.agency] || f.agency)}
        <span class="where">· ${esc(f.ward_code || "city")} · ${new Date(f.opened_at).toLocaleString("vi-VN")}</span>
        ${f.detail ? `<div>${esc(f.detail)}</div>` : ""}
        ${f.evidence && f.evidence.length ? `<div class="ev">evidence: ${f.evidence.slice(0, 3).map(esc).join(", ")}${f.evidence.length > 3 ? " …" : ""}</div>` : ""}
      </li>`).join("")
    : `<li class="empty">No open flags.</li>`;
}

async function refreshFlags() {
  const body = await getJSON("/api/flags?status=OPEN");
  state.flags = new Map(body.flags.map((f) => [f.flag_id, f]));
  renderFlags();
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
      ctx.fillStyle = "#8ea0b3"; ctx.textAlign = "center";
      const d = new Date(m * 1000);
      ctx.fillText(`${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`, left + (i + 0.5) * barW, h - 6);
    }
  });
}

function renderLegend() {
  $("#legend").innerHTML = Object.entries(AGENCY_COLORS)
    .map(([a, c]) => `<li><i style="background:${c}"></i>${esc(AGENCY_LABELS[a])}</li>`).join("");
}

async function loadThroughput() {
  const body = await getJSON("/api/throughput");
  state.minutes = new Map(body.minutes.map((row) => [row.minute, { ...row.by_agency }]));
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
    addCounts(Math.floor(data.at / 60000) * 60, data.by_agency);
    drawChart();
  });
  source.addEventListener("flag", (e) => {
    const flag = JSON.parse(e.data);
    if (flag.status === "OPEN") state.flags.set(flag.flag_id, flag); else state.flags.delete(flag.flag_id);
    renderFlags();
  });
}

async function start() {
  renderLegend();
  const loads = [
    getJSON("/api/kpis").then(renderKpis), refreshWards(), refreshAgencies(), refreshFlags(), loadThroughput(),
  ];
  await Promise.allSettled(loads);
  connect();
  window.addEventListener("resize", drawChart);
  setInterval(drawChart, 15000); // the time axis moves even when the city is quiet
  setInterval(() => refreshFlags().catch(() => {}), 30000);
}

start();
