// modelplex live dashboard: polls /v2/dashboard/data (only new points after the first answer)
// and draws with plain DOM and <canvas>. No build step, no libraries.
"use strict";

const params = new URLSearchParams(location.search);
const REFRESH_MS = Math.max(100, Number(params.get("refresh_ms")) || 1000);
// model colours, apart from the chart lines' (arrivals blue, goodput green, p50 violet, p99 orange)
const PALETTE = ["#2a9bb5", "#c2407a", "#b38a1c", "#4d5a75", "#7a9a2e", "#a0522d", "#d4a017", "#6a3d9a"];
const FIELDS = ["arrival_rps", "goodput_rps", "p50_ms", "p99_ms", "rejected_deadline_rps", "rejected_other_rps", "rows_per_batch"];
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

const state = { t: [], series: {}, after: null, doc: null, planKey: null, colours: {}, lastOk: 0 };

function colour(model) {
  if (!(model in state.colours)) state.colours[model] = PALETTE[Object.keys(state.colours).length % PALETTE.length];
  return state.colours[model];
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

const fmt = (v, digits = 1) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(digits));
const ago = (s) => (s < 60 ? `${Math.round(s)} s ago` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s ago`);

// ---- data ------------------------------------------------------------------------------------
function merge(doc) {
  const s = doc.series;
  const names = Object.keys(doc.models);
  for (const m of names) if (!state.series[m]) state.series[m] = Object.fromEntries(FIELDS.map((f) => [f, state.t.map(() => null)]));
  for (let i = 0; i < s.t.length; i++) {
    state.t.push(s.t[i]);
    for (const m of Object.keys(state.series)) {
      const col = s.models[m];
      for (const f of FIELDS) state.series[m][f].push(col ? col[f][i] : null);
    }
  }
  if (s.t.length) state.after = s.t[s.t.length - 1];
  let drop = 0;
  while (drop < state.t.length && state.t[drop] < doc.now_s - doc.window_s) drop++;
  if (drop) {
    state.t.splice(0, drop);
    for (const m of Object.keys(state.series)) for (const f of FIELDS) state.series[m][f].splice(0, drop);
  }
  state.doc = doc;
}

async function poll() {
  try {
    const url = "/v2/dashboard/data" + (state.after === null ? "" : `?after=${state.after}`);
    const r = await fetch(url, { cache: "no-store" });
    if (!r.ok) throw new Error(`${r.status} ${(await r.text()).slice(0, 200)}`);
    merge(await r.json());
    state.lastOk = Date.now();
    render();
    showError(null);
  } catch (e) {
    showError(`cannot read /v2/dashboard/data: ${e.message}`);
  }
  document.getElementById("live-dot").className = "dot " + (Date.now() - state.lastOk < 5000 ? "live" : "stale");
  setTimeout(poll, REFRESH_MS);
}

function showError(text) {
  const e = document.getElementById("error");
  e.hidden = !text;
  e.textContent = text || "";
}

// ---- rendering -------------------------------------------------------------------------------
function render() {
  const doc = state.doc;
  const badge = document.getElementById("plan-state");
  if (doc.plan) {
    badge.textContent = `plan: ${doc.plan.policy} · ${doc.plan.slices} slices`;
    badge.className = "badge";
  } else {
    badge.textContent = "no plan: one slice per model instance";
    badge.className = "badge noplan";
  }
  const upd = document.getElementById("updated");
  upd.textContent = "updated " + new Date().toLocaleTimeString();
  upd.dataset.now = doc.now_s;
  document.getElementById("window-min").textContent = Math.round(doc.window_s / 60);
  renderDevices(doc);
  renderModels(doc);
  renderDecisions(doc);
  renderPicture(doc);
}

function renderDevices(doc) {
  const root = document.getElementById("devices");
  root.replaceChildren();
  if (!doc.devices.length) root.append(el("div", { class: "empty", text: "no slices running" }));
  for (const d of doc.devices) {
    const unit = d.kind === "cpu" ? "cores" : "%";
    const bar = el("div", { class: "device-bar" });
    for (const s of d.slices) bar.append(sliceBox(s, d));
    root.append(el("div", { class: "device", "data-device": d.device_id },
      el("div", { class: "device-label" }, el("b", { text: d.device_id }), el("span", { class: "muted small", text: `${d.kind} · ${d.capacity} ${unit}` })),
      bar));
  }
}

function sliceBox(s, d) {
  const cores = s.cpus.join(",");
  const where = s.cpus.length ? `cores ${cores}` : `${s.size}%`;
  const busy = s.busy === null ? null : s.busy;
  const box = el("div", { class: "slice" + (s.alive ? "" : " down"), "data-slice": s.slice_id, "data-cores": cores, "data-pid": s.pid ?? "",
    style: `flex: ${s.size / d.capacity} 1 0` },
    el("div", { class: "slice-head" }, el("b", { text: s.slice_id }), el("span", { text: where })),
    el("div", { class: "slice-head" },
      el("span", { text: `pid ${s.pid ?? "–"}${s.processes > 1 ? ` ×${s.processes}` : ""}` }),
      el("span", { "data-field": "busy", text: `busy ${busy === null ? "–" : Math.round(busy * 100) + "%"}` })),
    el("div", { class: "busy" }, el("div", { style: `width:${Math.round((busy || 0) * 100)}%` })));
  const chips = el("div", { class: "chips" });
  for (const m of s.models) {
    const parts = [m.model, `b${m.batch ?? "?"}`];
    if (m.share !== null && m.share < 1) parts.push(`${Math.round(m.share * 100)}%`);
    if (m.queued_rows) parts.push(`q${m.queued_rows}`);
    chips.append(el("span", { class: "chip", "data-model": m.model, style: `background:${colour(m.model)}`, text: parts.join(" · ") }));
  }
  box.append(chips);
  const notes = [];
  if (s.duty_cycle_ms) notes.push(`duty cycle ${fmt(s.duty_cycle_ms)} ms`);
  if (s.planned_utilisation !== null) notes.push(`planned busy ${Math.round(s.planned_utilisation * 100)}%`);
  if (s.restarts) notes.push(`${s.restarts} restarts`);
  if (s.failing) notes.push(s.failing);
  if (notes.length) box.append(el("div", { class: "slice-head", style: "margin-top:4px" }, el("span", { text: notes.join(" · ") })));
  return box;
}

function renderModels(doc) {
  const root = document.getElementById("models");
  const names = Object.keys(doc.models);
  for (const row of [...root.children]) if (!names.includes(row.dataset.model)) row.remove();
  if (!names.length) root.replaceChildren(el("div", { class: "empty", text: "no models" }));
  for (const name of names) {
    let row = root.querySelector(`.model[data-model="${CSS.escape(name)}"]`);
    if (!row) row = root.appendChild(modelRow(name));
    updateModel(row, name, doc.models[name], doc);
  }
}

function modelRow(name) {
  const stat = (label, field) => [el("span", { text: label }), el("span", { "data-field": field, text: "–" })];
  const chart = (title, key) => el("div", {}, el("div", { class: "chart-title", text: title }), el("canvas", { class: "chart", "data-chart": key }));
  return el("div", { class: "model", "data-model": name },
    el("div", {},
      el("div", { class: "model-name" }, el("span", { class: "swatch", style: `background:${colour(name)}` }), el("span", { text: name })),
      el("div", { class: "stats" }, ...stat("SLO", "slo_ms"), ...stat("arrivals/s", "arrival_rps"), ...stat("goodput/s", "goodput_rps"),
        ...stat("p50 ms", "p50_ms"), ...stat("p99 ms", "p99_ms"), ...stat("refused/s", "rejected_rps"), ...stat("rows/batch", "rows_per_batch"),
        ...stat("slices", "slices"))),
    chart("requests per second", "rate"), chart("latency (ms)", "latency"), chart("refused per second", "rejected"));
}

function lastOf(values) {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
  return null;
}

function setField(row, field, value, text, over = false) {
  const e = row.querySelector(`[data-field="${field}"]`);
  e.textContent = text;
  e.dataset.value = value === null || value === undefined ? "" : value;
  e.className = over ? "over" : "";
}

function updateModel(row, name, info, doc) {
  const s = state.series[name];
  const n = state.t.length;
  const latest = (f) => (n ? s[f][n - 1] : null);
  const slo = info.slo_ms;
  setField(row, "slo_ms", slo, slo === null ? "none" : `${fmt(slo, 0)} ms`);
  setField(row, "arrival_rps", latest("arrival_rps"), fmt(latest("arrival_rps")));
  setField(row, "goodput_rps", latest("goodput_rps"), fmt(latest("goodput_rps")));
  const p50 = latest("p50_ms"), p99 = latest("p99_ms");
  setField(row, "p50_ms", p50, fmt(p50, 2), slo !== null && p50 !== null && p50 > slo);
  setField(row, "p99_ms", p99, fmt(p99, 2), slo !== null && p99 !== null && p99 > slo);
  const rej = n ? (latest("rejected_deadline_rps") || 0) + (latest("rejected_other_rps") || 0) : null;
  setField(row, "rejected_rps", rej, fmt(rej), rej > 0);
  setField(row, "rows_per_batch", lastOf(s.rows_per_batch), fmt(lastOf(s.rows_per_batch)));
  const placed = info.slices.length ? info.slices.join(", ") : (info.failed ? "failed" : "not placed");
  setField(row, "slices", info.slices.join(","), placed, !info.slices.length);
  const now = doc.now_s, win = doc.window_s;
  drawChart(row.querySelector('[data-chart="rate"]'), now, win, [
    { v: s.arrival_rps, c: css("--arrival"), w: 4, a: 0.35 }, { v: s.goodput_rps, c: css("--good") }]);  // wide under narrow: both show where they meet
  drawChart(row.querySelector('[data-chart="latency"]'), now, win, [
    { v: s.p50_ms, c: css("--p50") }, { v: s.p99_ms, c: css("--p99") }], slo);
  drawChart(row.querySelector('[data-chart="rejected"]'), now, win, [
    { v: s.rejected_deadline_rps, c: css("--deadline") }, { v: s.rejected_other_rps, c: css("--other") }]);
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function setupCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  return [g, w, h];
}

function drawChart(canvas, now, win, lines, slo = null) {
  const [g, w, h] = setupCanvas(canvas);
  const L = 40, R = 6, T = 6, B = 16;
  let top = slo === null ? 0 : slo * 1.15;
  for (const l of lines) for (const v of l.v) if (v !== null && v > top) top = v;
  top = niceMax(top);
  const x = (t) => L + ((t - (now - win)) / win) * (w - L - R);
  const y = (v) => T + (1 - v / top) * (h - T - B);
  g.font = "10px system-ui, sans-serif";
  g.strokeStyle = "#e7eaef";
  g.fillStyle = "#6b7385";
  g.lineWidth = 1;
  for (let k = 0; k <= 2; k++) {
    const v = (top * k) / 2, yy = Math.round(y(v)) + 0.5;
    g.beginPath(); g.moveTo(L, yy); g.lineTo(w - R, yy); g.stroke();
    g.textAlign = "right"; g.textBaseline = "middle";
    g.fillText(v >= 100 ? v.toFixed(0) : String(+v.toPrecision(3)), L - 4, yy);
  }
  g.textAlign = "center"; g.textBaseline = "top";
  for (let s = 0; s <= win; s += 60) g.fillText(s === 0 ? "now" : `-${s / 60}m`, Math.min(w - R - 10, Math.max(L + 8, x(now - s))), h - B + 3);
  if (slo !== null) {
    g.strokeStyle = css("--slo"); g.setLineDash([5, 4]);
    g.beginPath(); g.moveTo(L, y(slo)); g.lineTo(w - R, y(slo)); g.stroke();
    g.setLineDash([]);
  }
  for (const l of lines) {
    g.strokeStyle = l.c; g.lineWidth = l.w || 1.6; g.globalAlpha = l.a || 1; g.lineJoin = "round"; g.beginPath();
    let pen = false;
    for (let i = 0; i < state.t.length; i++) {
      const v = l.v[i];
      if (v === null) { pen = false; continue; }
      const px = x(state.t[i]), py = y(v);
      if (pen) g.lineTo(px, py); else g.moveTo(px, py);
      pen = true;
    }
    g.stroke();
    for (let i = state.t.length - 1; i >= 0; i--) {
      if (l.v[i] === null) continue;
      g.fillStyle = l.c; g.beginPath(); g.arc(x(state.t[i]), y(l.v[i]), 2.5, 0, 2 * Math.PI); g.fill();
      break;
    }
    g.globalAlpha = 1;
  }
}

function renderDecisions(doc) {
  const canvas = document.getElementById("timeline");
  const [g, w, h] = setupCanvas(canvas);
  const L = 40, R = 6, now = doc.now_s, win = doc.window_s;
  const x = (t) => L + ((t - (now - win)) / win) * (w - L - R);
  g.strokeStyle = "#cfd4dc"; g.beginPath(); g.moveTo(L, h / 2 - 4); g.lineTo(w - R, h / 2 - 4); g.stroke();
  g.font = "10px system-ui, sans-serif"; g.fillStyle = "#6b7385"; g.textAlign = "center"; g.textBaseline = "top";
  for (let s = 0; s <= win; s += 60) g.fillText(s === 0 ? "now" : `-${s / 60}m`, Math.min(w - R - 10, Math.max(L + 8, x(now - s))), h - 12);
  for (const d of doc.decisions) {
    g.fillStyle = d.ok ? css("--" + d.source) || "#555" : "#b8202a";
    g.beginPath(); g.arc(x(d.at_s), h / 2 - 4, 5, 0, 2 * Math.PI); g.fill();
  }
  const list = document.getElementById("decisions");
  list.replaceChildren();
  if (!doc.decisions.length) list.append(el("li", { class: "empty", text: "no decisions in this window" }));
  for (const d of [...doc.decisions].reverse()) {
    list.append(el("li", { class: d.ok ? "" : "failed" },
      el("span", { class: "when", text: ago(now - d.at_s) }),
      el("span", { class: "src", style: `color:${css("--" + d.source) || "inherit"}`, text: d.source }),
      el("span", { class: "what", text: `${d.action}: ${d.detail}` })));
  }
}

function renderPicture(doc) {
  const section = document.getElementById("picture-section");
  const show = !!(doc.plan && doc.plan.picture);
  section.hidden = !show;
  if (show && state.planKey !== doc.plan.key) {
    state.planKey = doc.plan.key;
    document.getElementById("plan-picture").src = `/v2/dashboard/plan.png?key=${doc.plan.key}`;
  }
}

poll();
