// tcptrace HTML report: charts, connection table, ladder and time-sequence graph.
// No libraries: plain DOM and SVG. The data is the JSON document in #data.
"use strict";
(function () {
  var errors = [];
  window.addEventListener("error", function (e) { errors.push(String(e.message)); });
  var D = JSON.parse(document.getElementById("data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var SYN = 2, FIN = 1, RST = 4, PSH = 8, ACK = 16, URG = 32;
  var selected = null;  // the id of the connection shown

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
    if (Number.isInteger(v)) return String(v);
    var out = v.toFixed(digits === undefined ? 3 : digits);
    return /^-0(\.0*)?$/.test(out) ? out.slice(1) : out;  // never "-0.000"
  }
  function thousands(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
  function niceStep(raw) {  // 1, 2 or 5 times a power of ten, at least raw
    if (!(raw > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var m = [1, 2, 5, 10].filter(function (x) { return raw <= x * p * (1 + 1e-9); })[0];
    return m * p;
  }
  function ticks(lo, hi, want) {  // round values covering [lo, hi], about `want` of them
    var step = niceStep((hi - lo) / (want || 5)), out = [];
    for (var v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
      out.push(Math.abs(v) < step * 1e-9 ? 0 : +v.toPrecision(12));
    return out;
  }
  function tickText(v) { return String(+v.toPrecision(6)); }
  // Time axes: seconds since the first packet in an automatic unit; captures longer than a
  // day on calendar time (UTC), so that years read as dates, not as 96970254.89 s.
  var UNITS = [[1e-6, "µs"], [1e-3, "ms"], [1, "s"], [60, "min"], [3600, "h"], [86400, "d"]];
  var CAL_STEPS = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400,
    7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 182 * 86400, 365 * 86400];
  function timeAxis(span, t0) {  // span in s; t0 the absolute start (epoch s)
    if (span > 86400 && t0 > 0) {
      var step = CAL_STEPS.filter(function (x) { return span / x <= 6; })[0] || 365 * 86400 * Math.ceil(span / (6 * 365 * 86400));
      var first = Math.ceil(t0 / step) * step, out = [];
      for (var t = first; t <= t0 + span; t += step) out.push(t - t0);
      var iso = function (t) { return new Date((t0 + t) * 1000).toISOString(); };
      var label = step >= 86400 ? function (t) { return iso(t).slice(0, 10); }
        : function (t) { return iso(t).slice(5, 16).replace("T", " "); };
      return { ticks: out, label: label, title: "UTC" };
    }
    var u = UNITS[0];
    UNITS.forEach(function (x) { if (span >= 2 * x[0]) u = x; });
    return { ticks: ticks(0, span / u[0], 5).map(function (v) { return v * u[0]; }),
      label: function (t) { return tickText(t / u[0]) + " " + u[1]; }, title: "since the first packet" };
  }
  function textWidth(text, px) { return String(text).length * (px || 6.6); }
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
  function rate(bps) {  // bits per second in the unit link rates are quoted in, 3 digits
    if (bps < 1000) return bps + " bit/s";
    var units = ["kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"], i = -1, v = bps;
    do { v /= 1000; i++; } while (v >= 999.5 && i < units.length - 1);
    return +v.toPrecision(3) + " " + units[i];
  }
  function entriesOf(obj) { return Object.keys(obj || {}).map(function (k) { return [k, obj[k]]; }); }

  function histogram(container, hist, spread) {
    var st = h("div", { "class": "stats" }, container);
    [["n", spread.count], ["p50", spread.p50], ["p90", spread.p90], ["p99", spread.p99], ["max", spread.max]]
      .forEach(function (p) { var d = h("div", { "class": "stat" }, st); h("b", {}, d, fmt(p[1])); h("span", {}, d, p[0]); });
    if (!hist.counts.length) { note(container, "no complete handshake with a known RTT"); return; }
    var edges = hist.edges, counts = hist.counts, log = hist.log;
    var max = Math.max.apply(null, counts), yt = ticks(0, max, 4);
    var ymax = yt[yt.length - 1] < max ? yt[yt.length - 1] + (yt[1] - yt[0]) : Math.max(yt[yt.length - 1], 1);
    var L = 12 + Math.max.apply(null, yt.map(function (v) { return textWidth(thousands(v)); }));
    var W = 420, H = 160, B = 26, T = 8, R = 12;
    var s = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, "class": "histogram" }, container);
    var a = log ? Math.log10(edges[0]) : edges[0], b = log ? Math.log10(edges[edges.length - 1]) : edges[edges.length - 1];
    function xOf(v) { var x = log ? Math.log10(v) : v; return L + (x - a) / (b - a) * (W - L - R); }
    function yOf(n) { return H - B - n / ymax * (H - B - T); }
    yt.concat(ymax > yt[yt.length - 1] ? [ymax] : []).forEach(function (v) {
      svg("line", { x1: L, y1: yOf(v), x2: W - R, y2: yOf(v), "class": "grid" }, s);
      svg("text", { x: L - 4, y: yOf(v) + 4, "text-anchor": "end" }, s, thousands(v));
    });
    counts.forEach(function (c, i) {
      if (!c) return;
      var x1 = xOf(edges[i]), x2 = xOf(edges[i + 1]);
      svg("rect", { x: x1 + 0.5, y: yOf(c), width: Math.max(1, x2 - x1 - 1), height: H - B - yOf(c), fill: "#2563eb" }, s);
    });
    svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, "class": "axis" }, s);
    var xt = log ? edges.filter(function (e) { return Math.abs(Math.log10(e) - Math.round(Math.log10(e))) < 1e-9; })
      : ticks(edges[0], edges[edges.length - 1], 5);
    xt.forEach(function (v, i) {
      var x = xOf(v), anchor = x < L + 15 ? "start" : x > W - R - 15 ? "end" : "middle";
      svg("line", { x1: x, y1: H - B, x2: x, y2: H - B + 4, "class": "axis" }, s);
      svg("text", { x: x, y: H - 8, "text-anchor": anchor }, s, tickText(v) + (i === xt.length - 1 ? " ms" : ""));
    });
    [["p50", spread.p50], ["p90", spread.p90], ["p99", spread.p99]].forEach(function (p, i) {
      if (p[1] === null) return;
      var x = xOf(p[1]);
      svg("line", { x1: x, y1: T + 4 + i * 10, x2: x, y2: H - B, stroke: "#dc2626", "stroke-dasharray": "3 2" }, s);
      var right = x > W - 40;
      svg("text", { x: right ? x - 3 : x + 3, y: T + 12 + i * 10, fill: "#dc2626", "text-anchor": right ? "end" : "start" }, s, p[0]);
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
    var yt = ticks(0, ymax, 4);
    if (yt[yt.length - 1] < ymax) yt.push(yt[yt.length - 1] + (yt.length > 1 ? yt[1] - yt[0] : 1));
    ymax = yt[yt.length - 1];
    var L = 12 + Math.max.apply(null, yt.map(function (v) { return textWidth(thousands(v)); }));
    var W = 1000, H = 200, R = 40, T = 10, B = 26;
    var s = svg("svg", { width: "100%", height: H, viewBox: "0 0 " + W + " " + H, "class": "timewait" }, container);
    var X = function (t) { return L + t / tmax * (W - L - R); }, Y = function (n) { return H - B - n / ymax * (H - B - T); };
    var axis = timeAxis(tmax, D.t0);
    axis.ticks.forEach(function (t) {
      svg("line", { x1: X(t), y1: T, x2: X(t), y2: H - B, "class": "grid" }, s);
      svg("text", { x: X(t), y: H - 8, "text-anchor": X(t) < L + 20 ? "start" : "middle" }, s, axis.label(t));
    });
    yt.forEach(function (v) {
      svg("line", { x1: L, y1: Y(v), x2: W - R, y2: Y(v), "class": "grid" }, s);
      svg("text", { x: L - 6, y: Y(v) + 4, "text-anchor": "end" }, s, thousands(v));
    });
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
      " s from the moment it entered it (--msl); clients grouped by host (host:*), servers by host:port; time " +
      axis.title + "; a long series show the most at once per 1/1200 of the axis");
  }

  // ---- retransmissions and zero-window stalls over time ---------------------------
  // Bars: retransmissions per bucket (1/100 of the capture's time), stacked by cause, as
  // the traces place them (src/page/health.rs); a step line below: the connections stalled
  // on a zero window at once. Both on the TIME_WAIT timeline's time axis.
  var CAUSE_COLOURS = [["rto", "#d97706", "RTO"], ["fast", "#2563eb", "fast retransmit"], ["tlp", "#7c3aed", "tail-loss probe"]];
  function health(container) {
    var HD = D.health, n = HD.buckets, placed = 0, top = 0, per = {};
    CAUSE_COLOURS.forEach(function (c) {  // the sparse [bucket, count] pairs, per bucket
      var bins = per[c[0]] = new Float64Array(n);
      HD.counts[c[0]].forEach(function (p) { bins[p[0]] = p[1]; });
    });
    for (var b = 0; b < n; b++) {
      var sum = 0;
      CAUSE_COLOURS.forEach(function (c) { sum += per[c[0]][b]; });
      placed += sum; top = Math.max(top, sum);
    }
    if (!placed && !HD.unplaced && !HD.periods) { note(container, "no retransmission and no zero window"); return; }
    var span = HD.span || 1, axis = timeAxis(span, D.t0);
    var W = 1000, R = 40, T = 10, B = 26, H1 = 170, H2 = 90;
    function counts(marks) { return marks.filter(function (v) { return v === Math.round(v); }); }
    var yt = counts(ticks(0, Math.max(1, top), 4));
    if (yt[yt.length - 1] < top) yt.push(yt[yt.length - 1] + (yt.length > 1 ? yt[1] - yt[0] : 1));
    var ymax = yt[yt.length - 1] || 1;
    var st = counts(ticks(0, Math.max(1, HD.stalled_peak), 2)), smax = Math.max(1, st[st.length - 1], HD.stalled_peak);
    var L = 12 + Math.max.apply(null, yt.concat(st).map(function (v) { return textWidth(thousands(v)); }));
    var X = function (t) { return L + t / span * (W - L - R); };
    function frame(height, marks, vmax, cls) {
      var s = svg("svg", { width: "100%", height: height, viewBox: "0 0 " + W + " " + height, "class": cls }, container);
      var Y = function (v) { return height - B - v / vmax * (height - B - T); };
      axis.ticks.forEach(function (t) {
        svg("line", { x1: X(t), y1: T, x2: X(t), y2: height - B, "class": "grid" }, s);
        svg("text", { x: X(t), y: height - 8, "text-anchor": X(t) < L + 20 ? "start" : "middle" }, s, axis.label(t));
      });
      marks.forEach(function (v) {
        svg("line", { x1: L, y1: Y(v), x2: W - R, y2: Y(v), "class": "grid" }, s);
        svg("text", { x: L - 6, y: Y(v) + 4, "text-anchor": "end" }, s, thousands(v));
      });
      return { s: s, Y: Y };
    }
    var bars = frame(H1, yt, ymax, "retx");
    var bw = (W - L - R) / n;
    for (var i = 0; i < n; i++) {
      var level = 0;
      CAUSE_COLOURS.forEach(function (c) {
        var k = per[c[0]][i];
        if (!k) return;
        svg("rect", { x: L + i * bw + 0.5, y: bars.Y(level + k), width: Math.max(1, bw - 1), height: bars.Y(level) - bars.Y(level + k),
          fill: c[1], "class": "bar-" + c[0] }, bars.s).appendChild(svg("title", {}, null, thousands(k) + " " + c[2]));
        level += k;
      });
    }
    var stalls = frame(H2, st, smax, "stalls"), d = "", last = 0;
    HD.stalled.forEach(function (p, j) {
      d += (j ? "L" + X(p[0]) + "," + stalls.Y(last) + "L" : "M") + X(p[0]) + "," + stalls.Y(p[1]);
      last = p[1];
    });
    if (d) svg("path", { d: d + "L" + X(span) + "," + stalls.Y(last), fill: "none", stroke: "#dc2626", "stroke-width": 1.8 }, stalls.s);
    var legend = h("div", { "class": "legend" }, container);
    CAUSE_COLOURS.concat([["stalled", "#dc2626", "connections stalled on a zero window (peak " + HD.stalled_peak + ")"]]).forEach(function (c) {
      var item = h("span", {}, legend);
      h("i", { style: "background:" + c[1] }, item);
      item.appendChild(document.createTextNode(c[2]));
    });
    note(container, thousands(placed) + " retransmissions placed, per " + fmt(HD.bucket_s, 3) + " s; " +
      (HD.unplaced ? thousands(HD.unplaced) + " more counted by the records beyond the traces (--max-segments) have no time here; " : "") +
      thousands(HD.periods) + " zero-window periods; time " + axis.title + "; causes and stalls as docs/health.md tells them");
  }

  // ---- connection table ---------------------------------------------------------
  // Rows are arrays (D.fields names the indices; strings are indices into D.strings). The
  // table is virtual: only the rows in view (plus a margin) are in the DOM. Sorting works
  // on a numeric key per row (strings ranked, endpoints by address then port), nulls last
  // in both directions; the filter runs on a lower-case text per row built once.
  var F = {}, S = D.strings, ROWS = D.rows, BY_ID = {};
  D.fields.forEach(function (name, i) { F[name] = i; });
  ROWS.sort(function (a, b) { return a[0] - b[0]; });
  ROWS.forEach(function (r) { BY_ID[r[0]] = r; });
  function str(v) { return v === null ? null : S[v]; }
  function host(ip) { return ip.indexOf(":") >= 0 ? "[" + ip + "]" : ip; }
  function endpoint(r, side) { return host(S[r[F[side + "_ip"]]]) + ":" + r[F[side + "_port"]]; }
  function ipKey(ip) {  // IPv4 before IPv6, numerically
    if (ip.indexOf(":") < 0) return ip.split(".").reduce(function (a, x) { return a * 256 + Number(x); }, 0);
    var parts = ip.split("::"), head = parts[0] ? parts[0].split(":") : [], tail = parts[1] ? parts[1].split(":") : [];
    var groups = head.concat(new Array(Math.max(0, 8 - head.length - tail.length)).fill("0"), tail);
    return 4294967296 + groups.slice(0, 4).reduce(function (a, x) { return a * 65536 + parseInt(x || "0", 16); }, 0);
  }
  var startAxis = timeAxis(Math.max(D.t_end - D.t0, 0), D.t0);
  var calendar = D.t_end - D.t0 > 86400;
  function startText(r) {
    var t = r[F.first_ts] - D.t0;
    return calendar ? new Date(r[F.first_ts] * 1000).toISOString().slice(0, 19).replace("T", " ") : fmt(t, 3);
  }
  var COLUMNS = [  // key, header, numeric?, cell text, sort key (a number or null)
    ["id", "id", true, function (r) { return String(r[0]); }, function (r) { return r[0]; }],
    ["client", "client", false, function (r) { return endpoint(r, "client"); }, null],
    ["server", "server", false, function (r) { return endpoint(r, "server"); }, null],
    ["outcome", "outcome", false, function (r) { return S[r[F.outcome]]; }, "string:outcome"],
    ["rtt", "rtt ms", true, function (r) { return fmt(r[F.rtt]); }, function (r) { return r[F.rtt]; }],
    ["setup", "setup ms", true, function (r) { return fmt(r[F.setup]); }, function (r) { return r[F.setup]; }],
    ["tw", "TW", false, function (r) { return str(r[F.tw]) || "-"; }, "string:tw"],
    ["rst", "RST", false, function (r) { return str(r[F.rst]) || "-"; }, "string:rst"],
    ["ka", "ka", true, function (r) { return r[F.ka] ? String(r[F.ka]) : "-"; }, function (r) { return r[F.ka]; }],
    ["reqs", "reqs", true, function (r) { return fmt(r[F.reqs]); }, function (r) { return r[F.reqs]; }],
    ["pkts", "pkts c/s", true, function (r) { return r[F.pkts_c] + "/" + r[F.pkts_s]; }, function (r) { return r[F.pkts_c] + r[F.pkts_s]; }],
    ["bytes", "bytes c/s", true, function (r) { return bytes(r[F.bytes_c]) + " / " + bytes(r[F.bytes_s]); }, function (r) { return r[F.bytes_c] + r[F.bytes_s]; }],
    ["duration", "dur ms", true, function (r) { return fmt(r[F.duration]); }, function (r) { return r[F.duration]; }],
    ["start", calendar ? "start (UTC)" : "start s", true, startText, function (r) { return r[F.first_ts]; }]
  ];
  var WIDTHS = [56, 170, 170, 100, 70, 76, 62, 90, 40, 48, 84, 150, 84, calendar ? 150 : 90];
  var ROW_H = 23, OVERSCAN = 12;
  var sortKey = "id", sortAsc = true, order = null, view = null, keys = {}, search = null;
  var t0s = performance.now();
  function sortKeys(col) {
    if (keys[col[0]]) return keys[col[0]];
    var n = ROWS.length, k = new Float64Array(n), i;
    if (col[0] === "client" || col[0] === "server") {
      var ranks = {}, hosts = [];
      ROWS.forEach(function (r) { var ip = r[F[col[0] + "_ip"]]; if (!(ip in ranks)) { ranks[ip] = 0; hosts.push(ip); } });
      hosts.sort(function (a, b) { return ipKey(S[a]) - ipKey(S[b]); }).forEach(function (ip, j) { ranks[ip] = j; });
      for (i = 0; i < n; i++) k[i] = ranks[ROWS[i][F[col[0] + "_ip"]]] * 65536 + ROWS[i][F[col[0] + "_port"]];
    } else if (typeof col[4] === "string") {
      var field = F[col[4].slice(7)], names = {};
      ROWS.forEach(function (r) { if (r[field] !== null) names[S[r[field]]] = r[field]; });
      var rank = {};
      Object.keys(names).sort().forEach(function (name, j) { rank[names[name]] = j; });
      for (i = 0; i < n; i++) k[i] = ROWS[i][field] === null ? NaN : rank[ROWS[i][field]];
    } else {
      for (i = 0; i < n; i++) { var v = col[4](ROWS[i]); k[i] = v === null || v === undefined ? NaN : v; }
    }
    return (keys[col[0]] = k);
  }
  function sortRows() {
    var col = COLUMNS.filter(function (c) { return c[0] === sortKey; })[0], k = sortKeys(col);
    var idx = new Uint32Array(ROWS.length), sign = sortAsc ? 1 : -1;
    for (var i = 0; i < idx.length; i++) idx[i] = i;
    idx.sort(function (i, j) {
      var x = k[i], y = k[j], xn = x !== x, yn = y !== y;
      if (xn || yn) return xn === yn ? i - j : xn ? 1 : -1;  // nulls last, either direction
      return x < y ? -sign : x > y ? sign : i - j;  // ties: by id (rows are in id order)
    });
    order = idx;
  }
  function searchText() {
    if (search) return search;
    search = new Array(ROWS.length);
    for (var i = 0; i < ROWS.length; i++) {
      var r = ROWS[i], parts = [];
      for (var c = 0; c < COLUMNS.length; c++) parts.push(COLUMNS[c][3](r));
      parts.push(str(r[F.proto]) || "", S[r[F.final_c]], S[r[F.final_s]], str(r[F.half_close]) ? "half-close" : "",
        str(r[F.health]) || "");
      search[i] = parts.join(" ").toLowerCase();
    }
    return search;
  }
  function applyFilter() {
    var q = document.getElementById("filter").value.trim().toLowerCase(), words = q ? q.split(/\s+/) : [];
    if (!words.length) { view = order; } else {
      var text = searchText(), out = new Uint32Array(order.length), n = 0;
      for (var i = 0; i < order.length; i++) {
        var t = text[order[i]], ok = true;
        for (var w = 0; w < words.length && ok; w++) ok = t.indexOf(words[w]) >= 0;
        if (ok) out[n++] = order[i];
      }
      view = out.subarray(0, n);
    }
    var byOutcome = {};
    for (var j = 0; j < view.length; j++) { var o = S[ROWS[view[j]][F.outcome]]; byOutcome[o] = (byOutcome[o] || 0) + 1; }
    document.getElementById("count").textContent = thousands(view.length) + " of " + thousands(ROWS.length) + " connections";
    document.getElementById("counts").textContent = Object.keys(byOutcome).sort(function (a, b) { return byOutcome[b] - byOutcome[a]; })
      .map(function (o) { return o + " " + thousands(byOutcome[o]); }).join(" · ");
  }
  function escapeHtml(t) { return t.replace(/[&<>"]/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]; }); }
  function renderRows() {
    var wrap = document.querySelector(".tablewrap"), tbody = document.querySelector("#conns tbody");
    var head = document.querySelector("#conns thead").offsetHeight;
    var first = Math.max(0, Math.floor((wrap.scrollTop - head) / ROW_H) - OVERSCAN);
    var last = Math.min(view.length, first + Math.ceil(wrap.clientHeight / ROW_H) + 2 * OVERSCAN);
    var html = '<tr class="pad"><td colspan="' + COLUMNS.length + '" style="height:' + first * ROW_H + 'px"></td></tr>';
    for (var i = first; i < last; i++) {
      var r = ROWS[view[i]], sel = selected && selected === r[0];
      html += '<tr data-id="' + r[0] + '"' + (sel ? ' class="sel"' : "") + ">";
      for (var c = 0; c < COLUMNS.length; c++) {
        var col = COLUMNS[c], text = escapeHtml(col[3](r));
        html += col[0] === "outcome" ? '<td><span class="pill o-' + text + '">' + text + "</span></td>"
          : "<td" + (col[2] ? ' class="num"' : "") + ">" + text + "</td>";
      }
      html += "</tr>";
    }
    html += '<tr class="pad"><td colspan="' + COLUMNS.length + '" style="height:' + (view.length - last) * ROW_H + 'px"></td></tr>';
    tbody.innerHTML = html;
  }
  function refresh(resort) {
    if (resort) sortRows();
    applyFilter();
    document.querySelectorAll("#conns th").forEach(function (th) {
      th.className = th.getAttribute("data-key") === sortKey ? "sorted" + (sortAsc ? " asc" : "") : "";
    });
    renderRows();
  }
  var FILTER_DEBOUNCE_MS = 25;
  function table() {
    var tableEl = document.getElementById("conns");
    tableEl.className = "virtual";
    var colgroup = h("colgroup", {});
    tableEl.insertBefore(colgroup, tableEl.firstChild);
    WIDTHS.forEach(function (w) { h("col", { style: "width:" + w + "px" }, colgroup); });
    tableEl.style.width = WIDTHS.reduce(function (a, b) { return a + b; }, 0) + "px";
    var thead = document.querySelector("#conns thead"), tr = h("tr", {}, thead);
    COLUMNS.forEach(function (col) {
      var th = h("th", { "data-key": col[0] }, tr, col[1]);
      th.addEventListener("click", function () {
        sortAsc = sortKey === col[0] ? !sortAsc : true; sortKey = col[0]; refresh(true);
      });
    });
    var timer = null;
    document.getElementById("filter").addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { timer = null; document.querySelector(".tablewrap").scrollTop = 0; refresh(false); }, FILTER_DEBOUNCE_MS);
    });
    var pending = false;
    document.querySelector(".tablewrap").addEventListener("scroll", function () {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; renderRows(); });
    });
    document.querySelector("#conns tbody").addEventListener("click", function (e) {
      var row = e.target.closest("tr[data-id]");
      if (row) location.hash = "conn=" + row.getAttribute("data-id");
    });
    refresh(true);
    setTimeout(searchText, 0);  // the filter's text, built while the reader looks at the page
  }

  // ---- ladder -------------------------------------------------------------------
  // A segment's marks (seg[9]) are its health verdicts in words, as `tcptrace ladder` draws
  // them (src/page/health.rs mark_words, tcptrace/report/marks.py), and "rst".
  function markColour(seg) {
    var m = seg[9];
    if (m.indexOf("rst") >= 0) return "#dc2626";
    if (m.indexOf("retransmission") >= 0 || m.indexOf("out-of-order") >= 0) return "#d97706";
    if (m.indexOf("keep-alive") >= 0 || m.indexOf("window-probe") >= 0 || m.indexOf("zero-window") >= 0) return "#a21caf";
    if (seg[2] & SYN) return "#16a34a";
    if (seg[2] & FIN) return "#2563eb";
    return "#475467";
  }
  function segLabel(seg) {
    var out = flagText(seg[2]) + " seq=" + seg[3];
    if (seg[4] !== null) out += " ack=" + seg[4];
    if (seg[5]) out += " len=" + seg[5];
    if (seg[6] === 0 && seg[9].indexOf("zero-window") < 0) out += " win=0";
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
    // room for the widest state label on each side, so that none covers the time column
    // or runs off the right edge ("FIN_WAIT_2 › TIME_WAIT", "CLOSE_WAIT › LAST_ACK")
    var leftText = 0, rightText = 0, timeText = 0;
    rows.forEach(function (seg) {
      if (seg.fold) return;
      timeText = Math.max(timeText, textWidth(fmt(seg[0]), 6.2));
      if (seg[7]) leftText = Math.max(leftText, textWidth(seg[7].replace(/>/g, " › "), 7.4));
      if (seg[8]) rightText = Math.max(rightText, textWidth(seg[8].replace(/>/g, " › "), 7.4));
    });
    leftText = Math.max(leftText, textWidth(c.final[0], 7.4) / 2, textWidth(c.client, 6.2) / 2 - 24);
    var top = 46, row = 26, H = top + rows.length * row + 40;
    var xl = Math.max(190, 8 + timeText + 16 + leftText + 8), xr = xl + 370;
    var W = Math.max(700, xr + 8 + rightText + 12, xr + textWidth(c.server, 6.2) / 2 + 8, xr + textWidth(c.final[1], 7.4) / 2 + 8);
    // as wide as its column (scaled down, never clipped: the labels are part of the picture)
    var s = svg("svg", { width: "100%", viewBox: "0 0 " + W + " " + H, id: "ladder", style: "max-width:" + W + "px" }, container);
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

  // ---- RTT over the connection and scan sources (docs/health.md) -------------------
  var SIDE_NAMES = [["client", "client's data (the server's answers)"], ["server", "server's data (the client's answers)"]];
  function rttSpread(container) {  // each connection's median per side (summary.rtt_p50_ms)
    var spread = D.summary.rtt_p50_ms || {}, any = false;
    SIDE_NAMES.forEach(function (side) {
      var d = spread[side[0]];
      if (!d || !d.count) return;
      any = true;
      h("div", { style: "font-weight:600;margin-top:4px" }, container, side[1]);
      var st = h("div", { "class": "stats", "data-side": side[0] }, container);
      [["connections", d.count], ["p50", d.p50], ["p90", d.p90], ["p99", d.p99], ["max", d.max]]
        .forEach(function (p) { var e = h("div", { "class": "stat" }, st); h("b", {}, e, fmt(p[1])); h("span", {}, e, p[0]); });
    });
    note(container, any ? "each connection's median RTT sample (ms): its data at the capture point to the peer's ACK"
      : "no data segment was timed (no RTT sample)");
  }
  function scanSources(container) {  // summary.scans.sources: at least 10 targets each
    var sources = (D.summary.scans || {}).sources || [];
    if (!sources.length) return false;
    var t = h("table", { "class": "sources" }, container), tr = h("tr", {}, h("thead", {}, t));
    ["source", "targets", "probes by kind", "answers"].forEach(function (c) { h("th", {}, tr, c); });
    var body = h("tbody", {}, t);
    sources.forEach(function (src) {
      var row = h("tr", {}, body);
      h("td", {}, row, src.ip);
      h("td", { "class": "num" }, row, thousands(src.targets));
      h("td", {}, row, entriesOf(src.probes).map(function (e) { return e[0] + " " + e[1]; }).join(", "));
      h("td", {}, row, entriesOf(src.answers).map(function (e) { return e[0] + " " + e[1]; }).join(", "));
    });
    return true;
  }
  // What a probe's answer says of the port (nmap(1), "Port Scanning Techniques"; docs/health.md,
  // "Scans and probes"), as tcptrace/report/probes.py words it for the ladder.
  function probeText(kind, answer, sender) {
    var meaning = answer === "syn_ack" ? "open port"
      : answer === "none" ? (kind === "syn" ? "filtered port" : "open or filtered port")
      : kind === "ack" ? "unfiltered port"
      : kind === "maimon" ? "closed port, or open on Linux"
      : kind === "other" ? "closed port, or unfiltered if the probe had ACK" : "closed port";
    return "probe: " + kind + ", " + (answer === "none" ? "unanswered" : "answered by " + answer) +
      " (" + meaning + ")" + (sender === "server" ? ", sent by the server" : "");
  }
  function rttText(rtt) {  // [samples, p50_us, p90_us, max_us] or null
    if (!rtt) return "no samples";
    return "p50 " + fmt(rtt[1] / 1000) + ", p90 " + fmt(rtt[2] / 1000) + ", max " + fmt(rtt[3] / 1000) +
      " ms (" + rtt[0] + " sample" + (rtt[0] === 1 ? "" : "s") + ")";
  }
  function throughputText(tput) {  // [bits_per_s, duration_us] or null
    return tput ? rate(tput[0]) + " over " + fmt(tput[1] / 1000) + " ms" : "-";
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
    var yt = ticks(ylo, yhi, 4);
    var W = 520, H = 260, R = 10, T = 10, B = 26;
    var L = 10 + Math.max.apply(null, yt.map(function (v) { return textWidth(thousands(v)); }));
    var s = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, "class": "tsg", "data-dir": dir }, box);
    var X = function (t) { return L + t / tmax * (W - L - R); };
    var Y = function (v) { return H - B - (Math.min(v, yhi) - ylo) / (yhi - ylo) * (H - B - T); };
    var axis = timeAxis(tmax / 1000, 0);  // trace times are in ms
    axis.ticks.forEach(function (ts) {
      var t = ts * 1000, x = X(t);
      svg("line", { x1: x, y1: T, x2: x, y2: H - B, "class": "grid" }, s);
      svg("text", { x: x, y: H - 8, "text-anchor": x < L + 15 ? "start" : x > W - R - 20 ? "end" : "middle" }, s, axis.label(ts));
    });
    yt.forEach(function (v) {
      svg("line", { x1: L, y1: Y(v), x2: W - R, y2: Y(v), "class": "grid" }, s);
      svg("text", { x: L - 4, y: Y(v) + 4, "text-anchor": "end" }, s, thousands(v));
    });
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
    [["#1d2330", "data (seq .. seq+len)"], ["#d97706", "retransmission"], ["#a21caf", "keep-alive, window probe"],
     ["#059669", "ACK from the peer"], ["#7c3aed", "ACK + window"]].forEach(function (p) {
      var sp = h("span", {}, lg); h("i", { style: "background:" + p[0] }, sp); sp.appendChild(document.createTextNode(p[1]));
    });
    return data.length;
  }

  // ---- detail ----------------------------------------------------------------------
  function connection(r) {
    return { id: r[0], client: endpoint(r, "client"), server: endpoint(r, "server"), outcome: S[r[F.outcome]],
      final: [S[r[F.final_c]], S[r[F.final_s]]], tw: str(r[F.tw]), rst: str(r[F.rst]), rst_sender: str(r[F.rst_sender]),
      pkts: [r[F.pkts_c], r[F.pkts_s]], bytes: [r[F.bytes_c], r[F.bytes_s]], retx: [r[F.retx_c], r[F.retx_s]],
      health: str(r[F.health]), stall_ms: r[F.stall_ms], rtt: [r[F.rtt_c], r[F.rtt_s]],
      tput: [r[F.tput_c], r[F.tput_s]],
      probe: r[F.probe] === null ? null : S[r[F.probe]].split(" ") };
  }
  function inflate(b64) {  // an embedded trace: base64 of zlib-deflated JSON rows
    var bin = atob(b64), raw = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) raw[i] = bin.charCodeAt(i);
    var stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).text().then(JSON.parse);
  }
  function shellWord(w) { return /^[\w@%+=:,./-]+$/.test(w) ? w : "'" + w.replace(/'/g, "'\\''") + "'"; }
  var opened = 0;
  function show(id) {
    var r = BY_ID[id], detail = document.getElementById("detail"), ticket = ++opened;
    detail.textContent = "";
    if (!r) { h("h2", {}, detail, "No connection " + id); return Promise.resolve(null); }
    var c = connection(r);
    selected = id;
    document.querySelectorAll("#conns tbody tr[data-id]").forEach(function (tr) {
      tr.className = Number(tr.getAttribute("data-id")) === id ? "sel" : "";
    });
    h("h2", {}, detail, "Connection " + c.id + ": " + c.client + " → " + c.server + "  " + c.outcome);
    note(detail, "final states: client " + c.final[0] + ", server " + c.final[1] +
      "; TIME_WAIT: " + (c.tw || "-") + "; RST: " + (c.rst ? c.rst + " by " + c.rst_sender : "-") +
      "; packets " + c.pkts.join("/") + "; unique bytes " + c.bytes.map(bytes).join(" / ") +
      "; retransmitted " + c.retx.map(bytes).join(" / "));
    h("div", { "class": "note health" }, detail, "health: " + (c.health || "no retransmission, zero window or duplicate") +
      (c.stall_ms ? "; zero window shut " + fmt(c.stall_ms) + " ms in all" : "") +
      (c.health ? " (rto, fast, tlp: retransmissions by cause; spur: spurious; zw: zero-window periods; dup: frames captured twice)" : ""));
    if (c.probe) h("div", { "class": "note probe" }, detail, probeText(c.probe[0], c.probe[1], c.probe[2]));
    h("div", { "class": "note rtt" }, detail, "RTT of each side's data to the peer's ACK: client " + rttText(c.rtt[0]) +
      "; server " + rttText(c.rtt[1]));
    h("div", { "class": "note throughput" }, detail, "throughput (unique bytes, first to last data segment): client " +
      throughputText(c.tput[0]) + "; server " + throughputText(c.tput[1]));
    var packed = D.traces[String(id)];
    if (!packed) {
      var n = Object.keys(D.traces).length;
      note(detail, "This connection's segments are not in the page: it embeds the traces of " + n +
        " connections (RSTs, the slowest handshakes, stalls, the longest, the largest; --trace-budget " +
        D.trace_budget + " segments). Draw this one with:");
      var cmd = ["tcptrace", "ladder"].concat(D.captures, ["--conn", String(id)]);
      if (D.filter) cmd.push("--filter", D.filter);
      h("code", { "class": "cmd" }, detail, cmd.map(shellWord).join(" "));
      return Promise.resolve({ id: id, arrows: 0, embedded: false });
    }
    h("div", { "class": "note why" }, detail, "embedded: " + packed.why.join(", "));
    return inflate(packed.z).then(function (segs) {
      if (ticket !== opened) return null;  // another connection was opened meanwhile
      c.trace = { segs: segs, total: packed.total, truncated: packed.truncated };
      if (c.trace.truncated) note(detail, "diagrams show the first " + segs.length + " of " + c.trace.total + " segments (--max-segments)");
      var grid = h("div", { "class": "diagrams" }, detail);
      var left = h("div", {}, grid), right = h("div", {}, grid);
      h("div", { style: "font-weight:600;margin:4px 0" }, left, "Ladder (seq/ack relative to each side's ISN; time in ms)");
      var rows = ladder(h("div", { "class": "scroll" }, left), c);
      var a = tsg(right, c, 0), b = tsg(right, c, 1);
      note(right, "Time-sequence graphs in the style of the classic tcptrace: each bar is a segment's sequence range; " +
        "the peer's ACK line below and its advertised window above (scaled when both SYNs negotiated window scaling).");
      return { id: id, rows: rows, arrows: document.querySelectorAll("#ladder .arrow").length, tsg: [a, b], embedded: true };
    });
  }

  function selfcheck(shown) {
    var out = {
      connections: ROWS.length,
      table_rows: document.querySelectorAll("#conns tbody tr[data-id]").length,
      shown: view ? view.length : 0,
      selected: shown,
      ladder_text: Array.prototype.map.call(document.querySelectorAll("#ladder text"), function (t) { return t.textContent; }),
      errors: errors
    };
    var pre = document.getElementById("selfcheck");
    pre.textContent = JSON.stringify(out);
    document.body.setAttribute("data-ready", errors.length ? "errors" : "ok");
    return out;
  }

  function fromHash() {
    var m = /conn=(\d+)/.exec(location.hash);
    var id = m ? Number(m[1]) : (ROWS.length ? ROWS[0][0] : null);
    return (id === null ? Promise.resolve(null) : show(id)).then(selfcheck, function (e) {
      errors.push(String(e && e.stack || e)); return selfcheck(null);
    });
  }

  // For tests and benchmarks (benchmarks/report_bench.py): the interactions a person does,
  // each resolved once the table or the diagrams are drawn (two animation frames).
  function painted() { return new Promise(function (done) { requestAnimationFrame(function () { requestAnimationFrame(done); }); }); }
  window.tcptraceReport = {
    sort: function (key) { document.querySelector('#conns th[data-key="' + key + '"]').click(); return painted(); },
    filter: function (text) {
      var input = document.getElementById("filter");
      input.value = text; input.dispatchEvent(new Event("input"));
      return new Promise(function (done) { setTimeout(done, FILTER_DEBOUNCE_MS + 1); }).then(painted);
    },
    open: function (id) { return show(id).then(function (shown) { return painted().then(function () { return shown; }); }); },
    visible: function () {
      return Array.prototype.map.call(document.querySelectorAll("#conns tbody tr[data-id]"), function (tr) {
        return Array.prototype.map.call(tr.children, function (td) { return td.textContent; });
      });
    },
    count: function () { return document.getElementById("count").textContent; },
    ids: function () { return Array.prototype.slice.call(view, 0, 50).map(function (i) { return ROWS[i][0]; }); },
    embedded: function () { return Object.keys(D.traces).map(Number); },
    errors: errors
  };

  function main() {
    document.getElementById("title").textContent = "tcptrace report";
    document.getElementById("subtitle").textContent = D.captures.join(", ") + " · " + D.source.packets +
      " packets, " + thousands(ROWS.length) + " connections · tcptrace " + D.version;
    histogram(document.getElementById("rtt"), D.rtt_histogram, D.summary.handshake.rtt_ms);
    var outcomes = document.getElementById("outcomes");
    bars(outcomes, entriesOf(D.summary.outcomes), "#2563eb");
    var scans = D.summary.scans;  // docs/health.md, "Scans and probes"
    if (scans && Object.keys(scans.probes).length)
      note(outcomes, "probes: " + entriesOf(scans.probes).map(function (e) { return e[0] + " " + e[1]; }).join(", ") +
        "; scan sources: " + (scans.sources.map(function (s) { return s.ip + " (" + s.targets + " targets)"; }).join(", ") || "none"));
    var rst = document.getElementById("rsts");
    bars(rst, entriesOf(D.summary.rst.by_kind), "#dc2626");
    if (D.summary.rst.by_kind && Object.keys(D.summary.rst.by_kind).length)
      note(rst, "sent by: " + entriesOf(D.summary.rst.by_sender).map(function (e) { return e[0] + " " + e[1]; }).join(", "));
    var counts = {};
    ROWS.forEach(function (r) { var q = r[F.reqs]; if (q) { var k = q >= 10 ? "10+" : String(q); counts[k] = (counts[k] || 0) + 1; } });
    var keys = Object.keys(counts).sort(function (a, b) { return parseInt(a, 10) - parseInt(b, 10); });
    var reuse = document.getElementById("reuse");
    bars(reuse, keys.map(function (k) { return [k + (k === "1" ? " request" : " requests"), counts[k]]; }), "#059669");
    var rq = D.summary.reuse.requests_per_connection;
    note(reuse, "mean " + fmt(rq.mean) + ", p50 " + fmt(rq.p50) + ", max " + fmt(rq.max) + "; reused (> 1 request): " + rq.reused +
      "; HTTP/1.x requests, or request/response turns of other protocols");
    rttSpread(document.getElementById("rtt_sides"));
    if (scanSources(document.getElementById("scans"))) document.getElementById("scans_card").hidden = false;
    timewait(document.getElementById("timewait"));
    health(document.getElementById("health"));
    table();
    window.addEventListener("hashchange", fromHash);
    window.tcptraceReport.ready = fromHash().then(function () {
      window.tcptraceReport.load_ms = performance.now();
    });
  }
  try { main(); } catch (e) { errors.push(String(e && e.stack || e)); selfcheck(null); throw e; }
})();
