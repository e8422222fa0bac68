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
    tr.append(cell("td", r.rank), cell("td", r.model + (r.flagged ? " (flagged)" : "")),
      cell("td", r.rating.toFixed(1)), cell("td", ci), cell("td", r.votes));
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

async function load() {
  const params = new URLSearchParams({ category: $("#category").value || "overall", style_control: $("#style-control").checked });
  const response = await fetch(`/api/leaderboard?${params}`);
  const data = await response.json();
  if (!response.ok) { $("#summary").textContent = data.detail || "failed"; return; }
  const select = $("#category");
  const current = select.value || "overall";
  select.replaceChildren(...(data.categories.length ? data.categories : ["overall"]).map((c) => {
    const o = cell("option", c); o.value = c; o.selected = c === current; return o;
  }));
  $("#summary").textContent = `${data.votes} votes, ${data.rows.length} models`;
  renderTable(data.rows);
  renderChart(data.rows);
  renderHeatmap(data.heatmap);
}

$("#category").addEventListener("change", load);
$("#style-control").addEventListener("change", load);
load();
