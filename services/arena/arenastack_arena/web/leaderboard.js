"use strict";
const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";

function cell(tag, text) {
  const el = document.createElement(tag);
  el.textContent = text;
  return el;
}

function svgEl(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function renderTable(rows) {
  const body = $("#board tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    const ci = r.lower == null ? "" : `+${(r.upper - r.rating).toFixed(1)} / -${(r.rating - r.lower).toFixed(1)}`;
    tr.append(cell("td", r.rank), cell("td", r.model),
      cell("td", r.rating.toFixed(1)), cell("td", ci), cell("td", r.votes));
    body.appendChild(tr);
  }
}

// Rated but not ranked: too few battles, or only wins (or only losses) against the rest.
function renderPreliminary(rows, minBattles) {
  $("#preliminary-section").hidden = !rows.length;
  $("#preliminary-hint").textContent = `Models with fewer than ${minBattles} battles, or that have ` +
    "only won (or only lost) against the others so far, have no reliable rating yet.";
  const body = $("#preliminary tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    const why = [r.votes < minBattles && "too few battles",
      r.flagged && "not connected: only wins or only losses"].filter(Boolean).join("; ");
    tr.append(cell("td", r.model), cell("td", r.rating.toFixed(1)), cell("td", r.votes), cell("td", why));
    body.appendChild(tr);
  }
}

function renderChart(rows) {
  const chart = $("#chart");
  chart.replaceChildren();
  const shown = rows.slice(0, 30);
  if (!shown.length) return;
  const lo = Math.min(...shown.map((r) => r.lower ?? r.rating)) - 10;
  const hi = Math.max(...shown.map((r) => r.upper ?? r.rating)) + 10;
  const width = 720, left = 220, rowH = 18;
  chart.setAttribute("viewBox", `0 0 ${width} ${shown.length * rowH + 10}`);
  const x = (v) => left + ((v - lo) / (hi - lo)) * (width - left - 10);
  shown.forEach((r, i) => {
    const y = i * rowH + 12;
    const label = svgEl("text", { x: 4, y: y + 4, class: "label" });
    label.textContent = r.model;
    chart.appendChild(label);
    if (r.lower != null) chart.appendChild(svgEl("line", { x1: x(r.lower), x2: x(r.upper), y1: y, y2: y, class: "ci" }));
    chart.appendChild(svgEl("circle", { cx: x(r.rating), cy: y, r: 3, class: "point" }));
  });
}

function renderHeatmap(heatmap) {
  const box = $("#heatmap");
  box.replaceChildren();
  if (!heatmap || !heatmap.models.length) return;
  const table = document.createElement("table");
  table.className = "heatmap";
  const head = document.createElement("tr");
  head.appendChild(cell("th", ""));
  heatmap.models.forEach((m, j) => { const th = cell("th", j + 1); th.title = m; head.appendChild(th); });
  table.appendChild(head);
  heatmap.observed.forEach((row, i) => {
    const tr = document.createElement("tr");
    tr.appendChild(cell("th", `${i + 1}. ${heatmap.models[i]}`));
    row.forEach((v) => {
      const td = cell("td", v == null ? "" : Math.round(v * 100));
      if (v != null) td.style.backgroundColor = `hsl(${Math.round(v * 120)}, 60%, 75%)`;
      tr.appendChild(td);
    });
    table.appendChild(tr);
  });
  box.appendChild(table);
}

// The verdict sources (human first, then each judge), and "all" once there is a judge.
async function loadSources() {
  const response = await fetch("/api/sources");
  if (!response.ok) return;
  const { sources } = await response.json();
  const select = $("#source");
  const current = select.value || "human";
  const options = sources.map((s) => [s.source, `${s.source} (${s.votes} votes)`]);
  if (sources.length > 1) options.push(["all", "all (people and judges)"]);
  select.replaceChildren(...options.map(([value, label]) => {
    const o = cell("option", label); o.value = value; o.selected = value === current; return o;
  }));
}

const percent = (x) => (x == null ? "n/a" : `${(x * 100).toFixed(1)}%`);

// How often a judge's verdict matches the human vote on the same arena battles.
async function loadAgreement(source, category) {
  const box = $("#agreement");
  box.hidden = true;
  if (!source.startsWith("judge:")) return;
  const params = new URLSearchParams({ a: "human", b: source });
  if (category !== "overall") params.set("category", category);
  const response = await fetch(`/api/agreement?${params}`);
  if (!response.ok) return;
  const data = await response.json();
  box.textContent = `Agreement with human votes: ${data.battles} battles compared, ` +
    `${percent(data.withTies)} with ties, ${percent(data.withoutTies.agreement)} without ties ` +
    `(${data.withoutTies.battles} battles where both picked a winner)`;
  box.hidden = false;
}

async function load() {
  await loadSources();
  const source = $("#source").value || "human";
  const category = $("#category").value || "overall";
  const params = new URLSearchParams({ source, category, style_control: $("#style-control").checked });
  const response = await fetch(`/api/leaderboard?${params}`);
  const data = await response.json();
  if (!response.ok) { $("#summary").textContent = data.detail || "failed"; return; }
  const select = $("#category");
  select.replaceChildren(...(data.categories.length ? data.categories : ["overall"]).map((c) => {
    const o = cell("option", c); o.value = c; o.selected = c === category; return o;
  }));
  const preliminary = data.preliminary || [];
  $("#summary").textContent = `${data.votes} votes, ${data.rows.length} models` +
    (preliminary.length ? `, ${preliminary.length} preliminary` : "");
  renderTable(data.rows);
  renderPreliminary(preliminary, data.min_battles);
  renderChart(data.rows);
  renderHeatmap(data.heatmap);
  await loadAgreement(source, category);
}

// Categories differ between sources: a new source starts at its overall board.
$("#source").addEventListener("change", () => { $("#category").replaceChildren(); load(); });
$("#category").addEventListener("change", load);
$("#style-control").addEventListener("change", load);
load();
