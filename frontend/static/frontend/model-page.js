// The model page: figures from /api/v1/stats and /api/v1/model-versions/{id}, drawn as inline SVG.
import { $, API, glyph, request, pct } from "./common.js";

const SVG = "http://www.w3.org/2000/svg";
const STATUS_COLOUR = { active: "#1a7f37", retired: "#6e7781", candidate: "#bc4c00", rejected: "#b42318" };

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
  if (text !== undefined) node.textContent = text;
  return node;
}
function titled(node, text) { node.appendChild(el("title", {}, text)); return node; }
function svgRoot(width, height, label) {
  return el("svg", { viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": label, preserveAspectRatio: "xMidYMid meet" });
}

async function getJson(url) {
  const got = await request(url, { headers: { Accept: "application/json" } }, 20000);
  if (!got.response.ok) throw new Error(url + " answered " + got.response.status);
  return got.body;
}

// ---- summary -------------------------------------------------------------------

function card(list, value, name, detail) {
  const box = document.createElement("div");
  box.className = "card";
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = value;
  box.append(dt, dd);
  if (detail) {
    const small = document.createElement("dd");
    small.className = "detail";
    small.textContent = detail;
    box.appendChild(small);
  }
  list.appendChild(box);
}

function drawSummary(stats, version) {
  const v = (version.metrics && version.metrics.validation) || {};
  $("model-name").textContent = version.name + (version.status === "active" ? "" : " (" + version.status + ")");
  const list = $("summary");
  list.replaceChildren();
  card(list, pct(v.top1), "Right first time", "top-1 accuracy on " + (v.n || 0).toLocaleString("en") + " validation images");
  card(list, pct(v.top3), "Right within 3 guesses", "top-3 accuracy");
  card(list, pct(v.lookalike_top1), "Right up to look-alikes", "top-1, counting o/O/0, l/I/1, s/S\u2026 as one");
  const c = stats.corrections;
  card(list, c.total.toLocaleString("en"), "Corrections contributed", c.approved + " approved, " + c.pending + " waiting for review");
  card(list, c.learned.toLocaleString("en"), "Corrections learned", "used by a promoted model version");
  card(list, stats.predictions.toLocaleString("en"), "Drawings read", "predictions made on this site");
}

// ---- history -----------------------------------------------------------------

function drawHistory(stats) {
  const versions = stats.model_versions;
  const box = $("history-chart");
  box.replaceChildren();
  const values = [];
  versions.forEach(function (v) { [v.top1, v.top3, v.held_back_top1].forEach(function (x) { if (typeof x === "number") values.push(x); }); });
  const W = 760, H = 260, L = 52, R = 44, T = 16, B = 58;
  const svg = svgRoot(W, H, "Top-1 and top-3 validation accuracy of each model version, oldest first");
  svg.classList.add("history");
  if (!values.length) { box.textContent = "No version has validation figures yet."; return; }
  // Round ticks: every 5 points (10 when the range is wide), from below the lowest figure to 100%.
  const hi = 1;
  let lo = Math.max(0, Math.floor((Math.min.apply(null, values) - 0.02) * 20) / 20);
  if (hi - lo < 0.1) lo = hi - 0.1;
  const tick = hi - lo > 0.3 ? 0.1 : 0.05;
  lo = hi - Math.ceil((hi - lo) / tick - 1e-9) * tick;
  const x = function (i) { return versions.length === 1 ? L + (W - L - R) / 2 : L + ((W - L - R) * i) / (versions.length - 1); };
  const y = function (v) { return T + (H - T - B) * (1 - (v - lo) / (hi - lo)); };
  for (let v = lo; v <= hi + 1e-9; v += tick) {
    svg.appendChild(el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    svg.appendChild(el("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, pct(v, 0)));
  }
  [["top3", "series-top3"], ["top1", "series-top1"], ["held_back_top1", "series-held"]].forEach(function (s) {
    const pts = versions.map(function (v, i) { return typeof v[s[0]] === "number" ? x(i) + "," + y(v[s[0]]) : null; }).filter(Boolean);
    if (pts.length > 1) svg.appendChild(el("polyline", { points: pts.join(" "), class: "line " + s[1] }));
  });
  versions.forEach(function (v, i) {
    const colour = STATUS_COLOUR[v.status] || "#444";
    if (typeof v.top3 === "number") svg.appendChild(titled(el("circle", { cx: x(i), cy: y(v.top3), r: 4, class: "dot-top3" }), v.name + ": top-3 " + pct(v.top3)));
    if (typeof v.held_back_top1 === "number") svg.appendChild(titled(el("rect", { x: x(i) - 4, y: y(v.held_back_top1) - 4, width: 8, height: 8, class: "dot-held" }), v.name + ": held-back corrections " + pct(v.held_back_top1)));
    if (typeof v.top1 === "number") {
      svg.appendChild(titled(el("circle", { cx: x(i), cy: y(v.top1), r: v.status === "active" ? 8 : 6, fill: colour, class: "dot status-" + v.status }),
        v.name + " (" + v.status + "): top-1 " + pct(v.top1)));
    }
    svg.appendChild(el("text", { x: x(i), y: H - B + 18, class: "axis version-name", "text-anchor": "middle" }, "v" + (i + 1)));
    svg.appendChild(el("text", { x: x(i), y: H - B + 34, class: "axis status-name", "text-anchor": "middle", style: "fill:" + colour }, v.status));
  });
  const legend = [["series-top1", "top-1"], ["series-top3", "top-3"], ["series-held", "held-back corrections"]];
  legend.forEach(function (item, i) {
    const lx = L + i * 150;
    svg.appendChild(el("line", { x1: lx, x2: lx + 24, y1: H - 8, y2: H - 8, class: "line " + item[0] }));
    svg.appendChild(el("text", { x: lx + 30, y: H - 4, class: "axis" }, item[1]));
  });
  box.appendChild(svg);

  const body = $("history-table").querySelector("tbody");
  body.replaceChildren();
  versions.forEach(function (v, i) {
    const tr = document.createElement("tr");
    const link = document.createElement("a");
    link.href = "?version=" + v.id;
    link.textContent = "v" + (i + 1) + " " + v.name;
    const cells = [
      link,
      v.status,
      new Date(v.created_at).toLocaleDateString("en", { year: "numeric", month: "short", day: "numeric" }),
      pct(v.top1),
      pct(v.top3),
      pct(v.held_back_top1),
      v.corrections_used === null || v.corrections_used === undefined ? "\u2013" : String(v.corrections_used),
      v.gate_reason || (v.status === "rejected" ? "failed" : "\u2013"),
    ];
    cells.forEach(function (c, j) {
      const td = document.createElement(j === 0 ? "th" : "td");
      if (j === 0) td.scope = "row";
      if (j === 1) { const s = document.createElement("span"); s.className = "status status-" + v.status; s.textContent = c; td.appendChild(s); }
      else if (c instanceof Node) td.appendChild(c);
      else td.textContent = c;
      tr.appendChild(td);
    });
    body.appendChild(tr);
  });
}

// ---- per class ---------------------------------------------------------------

function drawPerClass(version) {
  const v = (version.metrics && version.metrics.validation) || {};
  const perClass = v.per_class || {};
  const classes = version.classes.filter(function (c) { return perClass[c]; });
  const box = $("per-class-chart");
  box.replaceChildren();
  if (!classes.length) { box.textContent = "This version has no per-class figures."; return; }
  const step = 14, L = 40, T = 10, B = 30, H = 240;
  const W = L + classes.length * step + 10;
  const worst = classes.slice().sort(function (a, b) { return perClass[a].recall - perClass[b].recall; }).slice(0, 5);
  const svg = svgRoot(W, H, "Recall per character. Hardest: " + worst.map(function (c) { return c + " " + pct(perClass[c].recall, 0); }).join(", "));
  svg.classList.add("per-class");
  const y = function (r) { return T + (H - T - B) * (1 - r); };
  [0, 0.25, 0.5, 0.75, 1].forEach(function (g) {
    svg.appendChild(el("line", { x1: L, x2: W - 6, y1: y(g), y2: y(g), class: "grid" }));
    svg.appendChild(el("text", { x: L - 5, y: y(g) + 4, class: "axis", "text-anchor": "end" }, pct(g, 0)));
  });
  classes.forEach(function (c, i) {
    const m = perClass[c];
    const tone = m.recall >= 0.9 ? "good" : m.recall >= 0.7 ? "fair" : "poor";
    svg.appendChild(titled(el("rect", { x: L + i * step + 2, y: y(m.recall), width: step - 4, height: Math.max(0.5, y(0) - y(m.recall)), class: "bar " + tone, "data-class": c }),
      c + ": recall " + pct(m.recall) + ", precision " + pct(m.precision) + ", " + m.support + " images"));
    svg.appendChild(el("text", { x: L + i * step + step / 2, y: H - B + 16, class: "class-name", "text-anchor": "middle" }, c));
  });
  box.appendChild(svg);

  // The same figures as a table, for screen readers and for copying.
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "The figures as a table";
  const table = document.createElement("table");
  table.className = "table compact";
  table.innerHTML = "<thead><tr><th scope='col'>Character</th><th scope='col'>Recall</th><th scope='col'>Precision</th><th scope='col'>Images</th></tr></thead>";
  const tbody = document.createElement("tbody");
  classes.forEach(function (c) {
    const tr = document.createElement("tr");
    [c, pct(perClass[c].recall), pct(perClass[c].precision), String(perClass[c].support)].forEach(function (t, j) {
      const cell = document.createElement(j === 0 ? "th" : "td");
      cell.textContent = t;
      tr.appendChild(cell);
    });
    tbody.appendChild(tr);
  });
  table.appendChild(tbody);
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  wrap.appendChild(table);
  details.append(summary, wrap);
  box.appendChild(details);

  const pairs = $("confused-pairs");
  pairs.replaceChildren();
  (v.confused_pairs || []).slice(0, 10).forEach(function (p) {
    const li = document.createElement("li");
    li.append(glyph(p.true), " read as ", glyph(p.predicted), ": " + p.count.toLocaleString("en") + " times");
    pairs.appendChild(li);
  });
}

// ---- confusion matrix ----------------------------------------------------------

function mix(a, b, t) {
  const pa = [1, 3, 5].map(function (i) { return parseInt(a.slice(i, i + 2), 16); });
  const pb = [1, 3, 5].map(function (i) { return parseInt(b.slice(i, i + 2), 16); });
  return "rgb(" + pa.map(function (v, i) { return Math.round(v + (pb[i] - v) * t); }).join(",") + ")";
}

function drawConfusion(version) {
  const cm = version.metrics && version.metrics.validation && version.metrics.validation.confusion_matrix;
  const box = $("confusion-chart");
  box.replaceChildren();
  if (!cm || !cm.length) { box.textContent = "This version has no confusion matrix."; return; }
  const names = version.classes;
  const n = cm.length, cell = 12, L = 34, T = 34;
  const W = L + n * cell + 8, H = T + n * cell + 8;
  const svg = svgRoot(W, H, "Confusion matrix of " + n + " characters: rows are the true character, columns the model's answer");
  svg.classList.add("confusion-matrix");
  svg.appendChild(el("rect", { x: L, y: T, width: n * cell, height: n * cell, class: "cm-bg" }));
  for (let r = 0; r < n; r++) {
    const total = cm[r].reduce(function (a, b) { return a + b; }, 0) || 1;
    for (let c = 0; c < n; c++) {
      const count = cm[r][c];
      if (!count) continue;
      const rate = count / total;
      const t = Math.min(1, Math.max(0.08, (Math.log10(rate) + 3) / 3)); // 0.1% .. 100%
      const colour = r === c ? mix("#ffffff", "#0b3d91", t) : mix("#ffffff", "#c2410c", Math.min(1, t * 1.15));
      svg.appendChild(titled(el("rect", { x: L + c * cell, y: T + r * cell, width: cell, height: cell, fill: colour, class: r === c ? "cm-cell diag" : "cm-cell" }),
        "true " + names[r] + ", answered " + names[c] + ": " + count + " of " + total + " (" + pct(rate) + ")"));
    }
  }
  for (let i = 0; i < n; i++) {
    svg.appendChild(el("text", { x: L - 4, y: T + i * cell + cell - 2.5, class: "class-name row-name", "text-anchor": "end" }, names[i]));
    svg.appendChild(el("text", { x: L + i * cell + cell / 2, y: T - 4, class: "class-name col-name", "text-anchor": "middle" }, names[i]));
  }
  svg.appendChild(el("text", { x: L + (n * cell) / 2, y: 11, class: "axis-title", "text-anchor": "middle" }, "answered \u2192"));
  svg.appendChild(el("text", { x: 10, y: T + (n * cell) / 2, class: "axis-title", "text-anchor": "middle", transform: "rotate(-90 10 " + (T + (n * cell) / 2) + ")" }, "true \u2192"));
  box.appendChild(svg);
}

async function main() {
  const message = $("model-message");
  try {
    const stats = await getJson(API + "/stats");
    drawHistory(stats);
    const wanted = document.body.dataset.versionId || (stats.active_model && stats.active_model.id);
    if (!wanted) { message.textContent = "No model version is registered yet."; return; }
    const version = await getJson(API + "/model-versions/" + wanted);
    document.querySelectorAll(".version-label").forEach(function (s) { s.textContent = "(" + version.name + ")"; });
    drawSummary(stats, version);
    drawPerClass(version);
    drawConfusion(version);
    message.textContent = "";
    document.body.dataset.ready = "1";
  } catch (err) {
    message.textContent = "Could not load the figures: " + err.message;
  }
}

main();
