// Bar charts for the staff dashboard, drawn as SVG from the page's own JSON (no library, no CDN).
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var COLORS = { succeeded: "#2e7d32", failed: "#c62828", other: "#9e9e9e", bar: "#1565c0" };

  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function svg(width, height, label) {
    return el("svg", { viewBox: "0 0 " + width + " " + height, width: "100%", role: "img",
      "aria-label": label, "class": "chart-svg" });
  }

  // Vertical stacked bars: one per day, a segment per series.
  function columns(box, rows, series, label) {
    var W = 420, H = 200, top = 14, bottom = 34, left = 36;
    var max = Math.max.apply(null, rows.map(function (r) {
      return series.reduce(function (sum, s) { return sum + r[s]; }, 0);
    }).concat([1]));
    var chart = svg(W, H, label), slot = (W - left) / rows.length, bar = slot * 0.6;
    chart.appendChild(el("text", { x: left - 6, y: top + 4, "text-anchor": "end", "class": "tick" }, fmt(max)));
    chart.appendChild(el("line", { x1: left, y1: top, x2: W, y2: top, "class": "grid" }));
    chart.appendChild(el("line", { x1: left, y1: H - bottom, x2: W, y2: H - bottom, "class": "axis" }));
    rows.forEach(function (r, i) {
      var x = left + i * slot + (slot - bar) / 2, y = H - bottom;
      series.forEach(function (s) {
        var h = (r[s] / max) * (H - top - bottom);
        if (h <= 0) { return; }
        y -= h;
        var rect = el("rect", { x: x, y: y, width: bar, height: h, fill: COLORS[s] || COLORS.bar });
        rect.appendChild(el("title", {}, r.label + ": " + fmt(r[s]) + " " + (s === "v" ? "" : s)));
        chart.appendChild(rect);
      });
      chart.appendChild(el("text", { x: x + bar / 2, y: H - bottom + 14, "text-anchor": "middle",
        "class": "tick" }, r.label.split(" ")[0]));
      chart.appendChild(el("text", { x: x + bar / 2, y: H - bottom + 27, "text-anchor": "middle",
        "class": "tick" }, r.label.split(" ").slice(1).join(" ")));
    });
    done(box, chart);
  }

  // Horizontal bars: one per named count.
  function bars(box, counts, label) {
    var names = Object.keys(counts);
    if (!names.length) { box.appendChild(document.createTextNode("Nothing in the last 7 days.")); box.dataset.rendered = "empty"; return; }
    var W = 420, row = 24, H = names.length * row + 8, left = 150;
    var max = Math.max.apply(null, names.map(function (n) { return counts[n]; }).concat([1]));
    var chart = svg(W, H, label);
    names.forEach(function (n, i) {
      var w = (counts[n] / max) * (W - left - 40), y = 4 + i * row;
      chart.appendChild(el("text", { x: left - 6, y: y + 15, "text-anchor": "end", "class": "tick" },
        n.length > 24 ? n.slice(0, 23) + "…" : n));
      var rect = el("rect", { x: left, y: y + 3, width: Math.max(w, 1), height: row - 8, fill: COLORS.bar });
      rect.appendChild(el("title", {}, n + ": " + counts[n]));
      chart.appendChild(rect);
      chart.appendChild(el("text", { x: left + w + 4, y: y + 15, "class": "tick" }, String(counts[n])));
    });
    done(box, chart);
  }

  function fmt(n) { return n >= 1000 ? (n / 1000).toFixed(1) + "k" : String(Math.round(n * 100) / 100); }

  function done(box, chart) { box.appendChild(chart); box.dataset.rendered = "true"; }

  function draw() {
    var source = document.getElementById("kpi-data");
    if (!source) { return; }
    var data = JSON.parse(source.textContent);
    var amounts = data.days.map(function (d) { return { label: d.label, v: d.amount }; });
    document.querySelectorAll("[data-chart]").forEach(function (box) {
      var kind = box.dataset.chart;
      if (kind === "volume") { columns(box, data.days, ["succeeded", "failed", "other"], "Transactions a day"); }
      if (kind === "amount") { columns(box, amounts, ["v"], "Rupees moved a day"); }
      if (kind === "failures") { bars(box, data.failures, "Failures by reason"); }
      if (kind === "channels") { bars(box, data.channels, "Channels"); }
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
