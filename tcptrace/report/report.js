// tcptrace HTML report: charts, connection table, ladder and time-sequence graph.
// No libraries: plain DOM and SVG. The data is the JSON document in #data.
"use strict";
(function () {
  var errors = [];
  window.addEventListener("error", function (e) { errors.push(String(e.message)); });
  var D = JSON.parse(document.getElementById("data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var SYN = 2, FIN = 1, RST = 4, PSH = 8, ACK = 16, URG = 32;
  var selected = null;

  function svg(tag, attrs, parent, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function h(tag, attrs, parent, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v, digits) {
    if (v === null || v === undefined) return "-";
    if (typeof v !== "number") return String(v);
    return Number.isInteger(v) ? String(v) : v.toFixed(digits === undefined ? 3 : digits);
  }
  function bytes(n) {
    if (n < 1000) return n + " B";
    var units = ["kB", "MB", "GB", "TB"], i = -1;
    do { n /= 1000; i++; } while (n >= 1000 && i < units.length - 1);
    return n.toFixed(1) + " " + units[i];
  }
  function flagText(f) {
    var names = [[SYN, "SYN"], [FIN, "FIN"], [RST, "RST"], [PSH, "PSH"], [URG, "URG"], [ACK, "ACK"]];
    var out = names.filter(function (p) { return f & p[0]; }).map(function (p) { return p[1]; });
    return out.length ? out.join("/") : "none";
  }
  function nice(max) {  // a round axis maximum
    if (max <= 0) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(max))), m = max / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function note(parent, text) { return h("div", { "class": "note" }, parent, text); }

  // ---- bar charts -------------------------------------------------------------
  function bars(container, entries, colour) {
    if (!entries.length) { note(container, "none in this capture"); return; }
    var W = 420, row = 22, left = 130, H = entries.length * row + 8;
    var max = Math.max.apply(null, entries.map(function (e) { return e[1]; }));
    var s = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H }, container);
    entries.forEach(function (e, i) {
      var y = 4 + i * row, w = (W - left - 50) * e[1] / max;
      svg("text", { x: left - 6, y: y + 14, "text-anchor": "end" }, s, e[0]);
      svg("rect", { x: left, y: y + 3, width: Math.max(w, 1), height: row - 8, rx: 2, fill: colour }, s);
      svg("text", { x: left + w + 5, y: y + 14 }, s, String(e[1]));
    });
  }
  function entriesOf(obj) { return Object.keys(obj || {}).map(function (k) { return [k, obj[k]]; }); }

  function histogram(container, values, spread) {
    var st = h("div", { "class": "stats" }, container);
    [["n", spread.count], ["p50", spread.p50], ["p90", spread.p90], ["p99", spread.p99], ["max", spread.max]]
      .forEach(function (p) { var d = h("div", { "class": "stat" }, st); h("b", {}, d, fmt(p[1])); h("span", {}, d, p[0]); });
    if (!values.length) { note(container, "no complete handshake with a known RTT"); return; }
    var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    var log = lo > 0 && hi / lo > 50, bins = 24;
    var a = log ? Math.log10(lo) : 0, b = log ? Math.log10(hi) : hi;
    if (b === a) b = a + 1;
    var counts = new Array(bins).fill(0);
    values.forEach(function (v) {
      var x = log ? Math.log10(v) : v, i = Math.min(bins - 1, Math.floor((x - a) / (b - a) * bins));
      counts[Math.max(0, i)]++;
    });
    var W = 420, H = 150, L = 34, B = 24, max = Math.max.apply(null, counts);
    var s = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H }, container);
    var bw = (W - L - 8) / bins;
    counts.forEach(function (c, i) {
      var hh = (H - B - 8) * c / max;
      svg("rect", { x: L + i * bw + 1, y: H - B - hh, width: bw - 2, height: hh, fill: "#2563eb" }, s);
    });
    svg("line", { x1: L, y1: H - B, x2: W - 8, y2: H - B, "class": "axis" }, s);
    svg("text", { x: L - 4, y: 14, "text-anchor": "end" }, s, String(max));
    function xOf(v) { var x = log ? Math.log10(v) : v; return L + (x - a) / (b - a) * (W - L - 8); }
    [lo, hi].forEach(function (v, i) {
      svg("text", { x: xOf(v), y: H - 8, "text-anchor": i ? "end" : "start" }, s, fmt(v) + " ms");
    });
    [["p50", spread.p50], ["p90", spread.p90], ["p99", spread.p99]].forEach(function (p, i) {
      if (p[1] === null) return;
      var x = xOf(p[1]);
      svg("line", { x1: x, y1: 10 + i * 10, x2: x, y2: H - B, stroke: "#dc2626", "stroke-dasharray": "3 2" }, s);
      var right = x > W - 40;
      svg("text", { x: right ? x - 3 : x + 3, y: 18 + i * 10, fill: "#dc2626", "text-anchor": right ? "end" : "start" }, s, p[0]);
    });
    note(container, (log ? "logarithmic bins; " : "") + "set-up time (first SYN to ACK): p50 " +
      fmt(D.summary.handshake.setup_ms.p50) + " ms, max " + fmt(D.summary.handshake.setup_ms.max) + " ms");
  }

  // ---- TIME_WAIT timeline -----------------------------------------------------
  var PALETTE = ["#1d2330", "#2563eb", "#059669", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#be185d", "#65a30d"];
  function timewait(container) {
    var series = D.time_wait;
    if (!series.length) { note(container, "no endpoint entered TIME_WAIT"); return; }
    var tmax = 0, ymax = 0;
    series.forEach(function (s) { s.steps.forEach(function (p) { tmax = Math.max(tmax, p[0]); ymax = Math.max(ymax, p[1]); }); });
    tmax = tmax || 1; ymax = Math.max(1, ymax);
    var W = 1000, H = 200, L = 40, R = 12, T = 10, B = 26;
    var s = svg("svg", { width: "100%", height: H, viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none" }, container);
    var X = function (t) { return L + t / tmax * (W - L - R); }, Y = function (n) { return H - B - n / ymax * (H - B - T); };
    for (var k = 0; k <= 4; k++) {
      var t = tmax * k / 4;
      svg("line", { x1: X(t), y1: T, x2: X(t), y2: H - B, "class": "grid" }, s);
      svg("text", { x: X(t), y: H - 8, "text-anchor": k === 0 ? "start" : k === 4 ? "end" : "middle" }, s, fmt(t, 2) + " s");
    }
    svg("text", { x: L - 6, y: T + 8, "text-anchor": "end" }, s, String(ymax));
    svg("text", { x: L - 6, y: H - B, "text-anchor": "end" }, s, "0");
    var legend = h("div", { "class": "legend" }, container);
    series.forEach(function (ser, i) {
      var d = "", last = 0;
      ser.steps.forEach(function (p, j) {
        d += (j ? "L" + X(p[0]) + "," + Y(last) + "L" : "M") + X(p[0]) + "," + Y(p[1]);
        last = p[1];
      });
      d += "L" + X(tmax) + "," + Y(last);
      var c = PALETTE[i % PALETTE.length];
      svg("path", { d: d, fill: "none", stroke: c, "stroke-width": ser.key === "all" ? 2.5 : 1.5 }, s);
      var item = h("span", {}, legend);
      h("i", { style: "background:" + c }, item);
      item.appendChild(document.createTextNode((ser.key === "all" ? "all endpoints" : ser.key) + " (peak " + ser.peak + ")"));
    });
    note(container, "each holder stays in TIME_WAIT for 2 × MSL = " + fmt(2 * D.msl, 1) +
      " s from the moment it entered it (--msl); clients grouped by host (host:*), servers by host:port; time since the first packet");
  }

  // ---- connection table ---------------------------------------------------------
  var COLUMNS = [
    ["id", "id", true], ["client", "client"], ["server", "server"], ["outcome", "outcome"],
    ["rtt", "rtt ms", true], ["setup", "setup ms", true], ["tw", "TW"], ["rst", "RST"],
    ["ka", "ka", true], ["reqs", "reqs", true], ["pkts", "pkts c/s", true], ["bytes", "bytes c/s", true],
    ["duration", "dur ms", true], ["start", "start s", true]
  ];
  var sortKey = "id", sortAsc = true;
  function cell(c, key) {
    var v = c[key];
    if (key === "pkts") return v[0] + "/" + v[1];
    if (key === "bytes") return bytes(v[0]) + " / " + bytes(v[1]);
    if (v === null || v === undefined || v === 0 && (key === "ka")) return "-";
    return fmt(v);
  }
  function sortValue(c, key) {
    var v = c[key];
    if (Array.isArray(v)) return v[0] + v[1];
    return v === null || v === undefined ? -Infinity : v;
  }
  function table() {
    var thead = document.querySelector("#conns thead"), tr = h("tr", {}, thead);
    COLUMNS.forEach(function (col) {
      var th = h("th", { "data-key": col[0] }, tr, col[1]);
      th.addEventListener("click", function () {
        sortAsc = sortKey === col[0] ? !sortAsc : true; sortKey = col[0]; fillTable();
      });
    });
    document.getElementById("filter").addEventListener("input", fillTable);
    fillTable();
  }
  function fillTable() {
    var q = document.getElementById("filter").value.trim().toLowerCase();
    var rows = D.connections.filter(function (c) {
      if (!q) return true;
      var text = COLUMNS.map(function (col) { return cell(c, col[0]); }).join(" ") + " " + (c.proto || "") + " " + c.final.join(" ");
      return q.split(/\s+/).every(function (w) { return text.toLowerCase().indexOf(w) >= 0; });
    });
    rows.sort(function (a, b) {
      var x = sortValue(a, sortKey), y = sortValue(b, sortKey);
      var r = x < y ? -1 : x > y ? 1 : a.id - b.id;
      return sortAsc ? r : -r;
    });
    document.querySelectorAll("#conns th").forEach(function (th) {
      th.className = th.getAttribute("data-key") === sortKey ? "sorted" + (sortAsc ? " asc" : "") : "";
    });
    var tbody = document.querySelector("#conns tbody");
    tbody.textContent = "";
    rows.forEach(function (c) {
      var tr = h("tr", { "data-id": c.id }, tbody);
      if (selected && selected.id === c.id) tr.className = "sel";
      COLUMNS.forEach(function (col) {
        var td = h("td", { "class": col[2] ? "num" : "" }, tr);
        if (col[0] === "outcome") h("span", { "class": "pill o-" + c.outcome }, td, c.outcome);
        else td.textContent = cell(c, col[0]);
      });
      tr.addEventListener("click", function () { location.hash = "conn=" + c.id; });
    });
    document.getElementById("count").textContent = rows.length + " of " + D.connections.length + " connections";
  }

  // ---- ladder -------------------------------------------------------------------
  function markColour(seg) {
    var m = seg[9];
    if (m.indexOf("rst") >= 0) return "#dc2626";
    if (m.indexOf("retransmission") >= 0 || m.indexOf("out-of-order") >= 0) return "#d97706";
    if (m.indexOf("keep-alive") >= 0) return "#a21caf";
    if (seg[2] & SYN) return "#16a34a";
    if (seg[2] & FIN) return "#2563eb";
    return "#475467";
  }
  function segLabel(seg) {
    var out = flagText(seg[2]) + " seq=" + seg[3];
    if (seg[4] !== null) out += " ack=" + seg[4];
    if (seg[5]) out += " len=" + seg[5];
    if (seg[6] === 0) out += " win=0";
    seg[9].split(",").forEach(function (m) { if (m && m !== "rst") out += " [" + m + "]"; });
    return out;
  }
  function plain(seg) { return !(seg[2] & (SYN | FIN | RST)) && !seg[9] && !seg[7] && !seg[8]; }
  function ladderRows(segs) {  // the terminal ladder's folding rule: > 6 plain segments
    var rows = [], run = [];
    function flush() {
      if (run.length > 6) {
        rows.push(run[0], run[1]);
        rows.push({ fold: run.slice(2, -2) });
        rows.push(run[run.length - 2], run[run.length - 1]);
      } else rows.push.apply(rows, run);
      run = [];
    }
    segs.forEach(function (s) {
      if (plain(s)) run.push(s); else { flush(); rows.push(s); }
    });
    flush();
    return rows;
  }
  function ladder(container, c) {
    var segs = c.trace.segs, rows = ladderRows(segs);
    var W = 700, top = 46, row = 26, H = top + rows.length * row + 40;
    var xl = 190, xr = 560;
    var s = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, id: "ladder" }, container);
    svg("text", { x: xl, y: 16, "text-anchor": "middle", "font-weight": 600 }, s, "client");
    svg("text", { x: xl, y: 30, "text-anchor": "middle" }, s, c.client);
    svg("text", { x: xr, y: 16, "text-anchor": "middle", "font-weight": 600 }, s, "server");
    svg("text", { x: xr, y: 30, "text-anchor": "middle" }, s, c.server);
    svg("line", { x1: xl, y1: top - 6, x2: xl, y2: H - 24, stroke: "#98a2b3", "stroke-width": 2 }, s);
    svg("line", { x1: xr, y1: top - 6, x2: xr, y2: H - 24, stroke: "#98a2b3", "stroke-width": 2 }, s);
    var defs = svg("defs", {}, s);
    var colours = {};
    function head(colour) {
      var id = "h" + colour.slice(1);
      if (!colours[id]) {
        colours[id] = 1;
        var m = svg("marker", { id: id, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
        svg("path", { d: "M0,0L10,5L0,10z", fill: colour }, m);
      }
      return "url(#" + id + ")";
    }
    rows.forEach(function (seg, i) {
      var y = top + i * row + 10;
      if (seg.fold) {
        var f = seg.fold, total = 0;
        f.forEach(function (x) { total += x[5]; });
        svg("text", { x: (xl + xr) / 2, y: y + 4, "text-anchor": "middle", fill: "#667085", "class": "fold" }, s,
          "… " + f.length + " segments, " + bytes(total) + ", " + fmt(f[f.length - 1][0] - f[0][0]) + " ms …");
        return;
      }
      var colour = markColour(seg), fromX = seg[1] === 0 ? xl : xr, toX = seg[1] === 0 ? xr : xl;
      svg("text", { x: 8, y: y + 8, fill: "#667085" }, s, fmt(seg[0]));
      var line = svg("line", { x1: fromX, y1: y, x2: toX, y2: y + 10, stroke: colour, "stroke-width": seg[2] & (SYN | FIN | RST) ? 2 : 1.3, "marker-end": head(colour), "class": "arrow" }, s);
      if (seg[9].indexOf("retransmission") >= 0) line.setAttribute("stroke-dasharray", "5 3");
      svg("text", { x: (xl + xr) / 2, y: y + 1, "text-anchor": "middle", fill: colour }, s, segLabel(seg));
      if (seg[7]) svg("text", { x: xl - 8, y: y + 9, "text-anchor": "end", "font-weight": 600, fill: "#2563eb" }, s, seg[7].replace(/>/g, " › "));
      if (seg[8]) svg("text", { x: xr + 8, y: y + 9, "font-weight": 600, fill: "#059669" }, s, seg[8].replace(/>/g, " › "));
    });
    svg("text", { x: xl, y: H - 8, "text-anchor": "middle", "font-weight": 600 }, s, c.final[0]);
    svg("text", { x: xr, y: H - 8, "text-anchor": "middle", "font-weight": 600 }, s, c.final[1]);
    return rows.length;
  }

  // ---- time-sequence graph --------------------------------------------------------
  function tsg(container, c, dir) {
    var segs = c.trace.segs, data = [], acks = [], tmax = 0, ylo = Infinity, yhi = -Infinity;
    segs.forEach(function (s) {
      tmax = Math.max(tmax, s[0]);
      if (s[1] === dir && !(s[2] & RST)) {
        var end = s[3] + s[5] + (s[2] & SYN ? 1 : 0) + (s[2] & FIN ? 1 : 0);
        data.push([s[0], s[3], end, s]);
        ylo = Math.min(ylo, s[3]); yhi = Math.max(yhi, end);
      } else if (s[1] !== dir && s[4] !== null && !(s[2] & RST)) {
        acks.push([s[0], s[4], s[4] + s[6]]);
        ylo = Math.min(ylo, s[4]); yhi = Math.max(yhi, s[4]);
      }
    });
    var title = dir === 0 ? "client → server" : "server → client";
    var box = h("div", {}, container);
    h("div", { style: "font-weight:600;margin:4px 0" }, box, title + " (" + data.length + " segments)");
    if (!data.length) { note(box, "no segments in this direction"); return 0; }
    var winMax = yhi;
    acks.forEach(function (a) { winMax = Math.max(winMax, a[2]); });
    if (winMax > yhi) yhi = Math.min(winMax, yhi + Math.max(yhi - ylo, 10) * 0.5);
    if (yhi === ylo) yhi = ylo + 1;
    tmax = tmax || 1;
    var W = 520, H = 260, L = 58, R = 10, T = 10, B = 26;
    var s = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, "class": "tsg", "data-dir": dir }, box);
    var X = function (t) { return L + t / tmax * (W - L - R); };
    var Y = function (v) { return H - B - (Math.min(v, yhi) - ylo) / (yhi - ylo) * (H - B - T); };
    for (var k = 0; k <= 4; k++) {
      var t = tmax * k / 4, v = ylo + (yhi - ylo) * k / 4;
      svg("line", { x1: X(t), y1: T, x2: X(t), y2: H - B, "class": "grid" }, s);
      svg("line", { x1: L, y1: Y(v), x2: W - R, y2: Y(v), "class": "grid" }, s);
      svg("text", { x: X(t), y: H - 8, "text-anchor": k === 0 ? "start" : k === 4 ? "end" : "middle" }, s, fmt(t, 1) + " ms");
      svg("text", { x: L - 4, y: Y(v) + 4, "text-anchor": "end" }, s, String(Math.round(v)));
    }
    function step(points, idx, colour, dash) {
      if (!points.length) return;
      var d = "", last = null;
      points.forEach(function (p) {
        d += (last === null ? "M" + X(p[0]) + "," + Y(p[idx]) : "L" + X(p[0]) + "," + Y(last) + "L" + X(p[0]) + "," + Y(p[idx]));
        last = p[idx];
      });
      d += "L" + X(tmax) + "," + Y(last);
      var e = svg("path", { d: d, fill: "none", stroke: colour, "stroke-width": 1.3 }, s);
      if (dash) e.setAttribute("stroke-dasharray", dash);
    }
    step(acks, 1, "#059669");
    step(acks, 2, "#7c3aed", "4 3");
    data.forEach(function (p) {
      var seg = p[3], colour = markColour(seg), x = X(p[0]);
      var y1 = Y(p[1]), y2 = Y(p[2]);
      if (Math.abs(y1 - y2) < 2) { y1 += 1.5; y2 -= 1.5; }
      svg("line", { x1: x, y1: y1, x2: x, y2: y2, stroke: colour === "#475467" ? "#1d2330" : colour, "stroke-width": 1.6, "class": "seg" }, s);
      svg("line", { x1: x - 2, y1: y2, x2: x + 2, y2: y2, stroke: colour === "#475467" ? "#1d2330" : colour }, s);
      if (seg[9]) svg("circle", { cx: x, cy: y2 - 4, r: 2.5, fill: colour }, s);
    });
    var lg = h("div", { "class": "legend" }, box);
    [["#1d2330", "data (seq .. seq+len)"], ["#d97706", "retransmission"], ["#a21caf", "keep-alive"],
     ["#059669", "ACK from the peer"], ["#7c3aed", "ACK + window"]].forEach(function (p) {
      var sp = h("span", {}, lg); h("i", { style: "background:" + p[0] }, sp); sp.appendChild(document.createTextNode(p[1]));
    });
    return data.length;
  }

  // ---- detail ----------------------------------------------------------------------
  function show(id) {
    var c = D.connections.filter(function (x) { return x.id === id; })[0];
    var detail = document.getElementById("detail");
    detail.textContent = "";
    if (!c) { h("h2", {}, detail, "No connection " + id); return null; }
    selected = c;
    document.querySelectorAll("#conns tbody tr").forEach(function (tr) {
      tr.className = Number(tr.getAttribute("data-id")) === id ? "sel" : "";
    });
    h("h2", {}, detail, "Connection " + c.id + ": " + c.client + " → " + c.server + "  " + c.outcome);
    note(detail, "final states: client " + c.final[0] + ", server " + c.final[1] +
      "; TIME_WAIT: " + (c.tw || "-") + "; RST: " + (c.rst ? c.rst + " by " + c.rst_sender : "-") +
      "; packets " + c.pkts.join("/") + "; unique bytes " + c.bytes.map(bytes).join(" / ") +
      "; retransmitted " + c.retx.map(bytes).join(" / "));
    if (!c.trace) { note(detail, "no segments were traced"); return { id: id, arrows: 0 }; }
    if (c.trace.truncated) note(detail, "diagrams show the first " + c.trace.segs.length + " of " + c.trace.total + " segments (--max-segments)");
    var grid = h("div", { "class": "diagrams" }, detail);
    var left = h("div", {}, grid), right = h("div", {}, grid);
    h("div", { style: "font-weight:600;margin:4px 0" }, left, "Ladder (seq/ack relative to each side's ISN; time in ms)");
    var rows = ladder(h("div", { "class": "scroll" }, left), c);
    var a = tsg(right, c, 0), b = tsg(right, c, 1);
    note(right, "Time-sequence graphs in the style of the classic tcptrace: each bar is a segment's sequence range; " +
      "the peer's ACK line below and its advertised window above (scaled when both SYNs negotiated window scaling).");
    return { id: id, rows: rows, arrows: document.querySelectorAll("#ladder .arrow").length, tsg: [a, b] };
  }

  function selfcheck(shown) {
    var out = {
      connections: D.connections.length,
      table_rows: document.querySelectorAll("#conns tbody tr").length,
      selected: shown,
      ladder_text: Array.prototype.map.call(document.querySelectorAll("#ladder text"), function (t) { return t.textContent; }),
      errors: errors
    };
    var pre = document.getElementById("selfcheck");
    pre.textContent = JSON.stringify(out);
    document.body.setAttribute("data-ready", errors.length ? "errors" : "ok");
  }

  function fromHash() {
    var m = /conn=(\d+)/.exec(location.hash);
    var id = m ? Number(m[1]) : (D.connections.length ? D.connections[0].id : null);
    var shown = id === null ? null : show(id);
    selfcheck(shown);
  }

  function main() {
    document.getElementById("title").textContent = "tcptrace report";
    document.getElementById("subtitle").textContent = D.captures.join(", ") + " · " + D.source.packets +
      " packets, " + D.connections.length + " connections · tcptrace " + D.version;
    histogram(document.getElementById("rtt"), D.rtt, D.summary.handshake.rtt_ms);
    bars(document.getElementById("outcomes"), entriesOf(D.summary.outcomes), "#2563eb");
    var rst = document.getElementById("rsts");
    bars(rst, entriesOf(D.summary.rst.by_kind), "#dc2626");
    if (D.summary.rst.by_kind && Object.keys(D.summary.rst.by_kind).length)
      note(rst, "sent by: " + entriesOf(D.summary.rst.by_sender).map(function (e) { return e[0] + " " + e[1]; }).join(", "));
    var counts = {};
    D.connections.forEach(function (c) { if (c.reqs) { var k = c.reqs >= 10 ? "10+" : String(c.reqs); counts[k] = (counts[k] || 0) + 1; } });
    var keys = Object.keys(counts).sort(function (a, b) { return parseInt(a, 10) - parseInt(b, 10); });
    var reuse = document.getElementById("reuse");
    bars(reuse, keys.map(function (k) { return [k + (k === "1" ? " request" : " requests"), counts[k]]; }), "#059669");
    var rq = D.summary.reuse.requests_per_connection;
    note(reuse, "mean " + fmt(rq.mean) + ", p50 " + fmt(rq.p50) + ", max " + fmt(rq.max) + "; reused (> 1 request): " + rq.reused +
      "; HTTP/1.x requests, or request/response turns of other protocols");
    timewait(document.getElementById("timewait"));
    table();
    window.addEventListener("hashchange", fromHash);
    fromHash();
  }
  try { main(); } catch (e) { errors.push(String(e && e.stack || e)); selfcheck(null); throw e; }
})();
