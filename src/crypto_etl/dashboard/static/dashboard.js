// The built-in dashboard's script: fills each chart card from the JSON API.
//
// Each <section data-chart> card is loaded from /api/charts/<id> with the
// filters it uses, then drawn with uPlot (line, bar, stacked_area) or as an
// HTML table (table, status). Every card ends in one state, written to its
// data-state attribute: ok, empty, not_ready, unavailable or error, and its
// row count to data-rows. <body data-ready="1"> is set once every card has
// finished its first load, whatever its state.
"use strict";

(function () {
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed",
    "#0891b2", "#db2777", "#65a30d", "#ea580c", "#475569"];
  const HEIGHT = 260;
  const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 2 });
  const plain = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });
  const precise = new Intl.NumberFormat("en", { maximumSignificantDigits: 6 });
  const dayLabel = new Intl.DateTimeFormat("en", { month: "short", day: "numeric", timeZone: "UTC" });
  const HINTS = {
    empty: "No data yet. Load some with `crypto-etl run all` (and `crypto-etl backfill` for price history), then build the marts with `crypto-etl transform`.",
    not_ready: "The dashboard's tables are not built yet: run `crypto-etl transform`.",
    unavailable: "The warehouse is not reachable. Start it (`crypto-etl warehouse start` or `make up`); the charts retry on the next refresh.",
    error: "This chart could not be loaded.",
  };

  const body = document.body;
  const form = document.getElementById("filters");
  const cards = Array.from(document.querySelectorAll("section[data-chart]"));
  // Each card's title as defined; the shown one adds the filters it uses.
  const titles = new Map(cards.map((card) => [card.id, card.querySelector("h2").textContent]));
  const plots = new Map(); // card id -> uPlot instance
  const generation = new Map(); // card id -> number of the latest request
  let refreshing = false;

  function selections() {
    const values = {};
    for (const select of form.querySelectorAll("select[data-filter]")) {
      values[select.name] = select.value;
    }
    return values;
  }

  function queryFor(card) {
    const values = selections();
    const params = new URLSearchParams();
    for (const name of JSON.parse(card.dataset.uses)) {
      if (values[name]) params.set(name, values[name]);
    }
    return params.toString();
  }

  function filterLabel(name) {
    const select = form.querySelector(`select[name="${name}"]`);
    if (!select) return null;
    if (select.dataset.filter === "range") {
      return select.value === "all" ? "all time" : "last " + select.value;
    }
    const option = select.selectedOptions[0];
    return option ? option.textContent : null;
  }

  function showTitle(card) {
    // Names the active filters, so a chart read alone says what it shows.
    const parts = JSON.parse(card.dataset.uses).map(filterLabel).filter((p) => p);
    const base = titles.get(card.id);
    card.querySelector("h2").textContent = parts.length ? base + " · " + parts.join(", ") : base;
  }

  function toNumber(value) {
    // The API sends numerics as exact decimal strings; drawing needs floats.
    return value === null || value === undefined ? null : Number(value);
  }

  function toSeconds(value) {
    return value === null ? null : Date.parse(value.length === 10 ? value + "T00:00:00Z" : value) / 1000;
  }

  function formatCell(value, kind, column) {
    if (value === null || value === undefined) return "–";
    if (kind === "number") {
      const n = Number(value);
      if (column.includes("percent") || column.endsWith("_pct")) {
        if (Math.abs(n) < 0.005) return "0 %"; // not "-0 %"
        return (n > 0 ? "+" : "") + plain.format(n) + " %";
      }
      if (column.includes("market_cap") || column.includes("volume")) return "$" + compact.format(n);
      if (column.includes("price")) return "$" + precise.format(n);
      return plain.format(n);
    }
    if (kind === "time") return value.replace("T", " ").replace(/(\.\d+)?\+00:00$/, " UTC");
    return String(value);
  }

  function message(card, state, detail) {
    const plot = card.querySelector(".plot");
    destroyPlot(card);
    plot.replaceChildren();
    const p = document.createElement("p");
    p.className = "message message-" + state;
    p.textContent = HINTS[state] || HINTS.error;
    plot.appendChild(p);
    if (detail) {
      const d = document.createElement("p");
      d.className = "detail";
      d.textContent = detail;
      plot.appendChild(d);
    }
  }

  function destroyPlot(card) {
    const old = plots.get(card.id);
    if (old) {
      old.destroy();
      plots.delete(card.id);
    }
  }

  function drawTable(card, data) {
    const wanted = JSON.parse(card.dataset.y);
    const columns = wanted.length ? wanted : data.columns;
    const at = columns.map((c) => data.columns.indexOf(c)).filter((i) => i >= 0);
    const table = document.createElement("table");
    table.className = "data";
    const head = table.createTHead().insertRow();
    for (const i of at) {
      const th = document.createElement("th");
      th.textContent = data.columns[i].replace(/_/g, " ");
      if (data.kinds[i] === "number") th.className = "num";
      head.appendChild(th);
    }
    const tbody = table.createTBody();
    for (const row of data.rows) {
      const tr = tbody.insertRow();
      for (const i of at) {
        const td = tr.insertCell();
        const column = data.columns[i];
        td.textContent = formatCell(row[i], data.kinds[i], column);
        if (data.kinds[i] === "number") {
          td.className = "num";
          if (row[i] !== null) td.title = row[i];
          if (column.startsWith("change") && row[i] !== null) {
            td.classList.add(Number(row[i]) < 0 ? "down" : "up");
          }
        }
        if (column === "status" && row[i] !== null) td.className = "status status-" + row[i];
      }
    }
    destroyPlot(card);
    card.querySelector(".plot").replaceChildren(table);
  }

  function timeAxis() {
    return { stroke: "#334155", grid: { stroke: "#e2e8f0" } };
  }

  function tickLabels(splits) {
    // As few decimals as make every tick's label differ: close values
    // (2.691B, 2.692B) must not all read "2.69B".
    for (let digits = 0; digits <= 6; digits++) {
      const format = new Intl.NumberFormat("en", {
        notation: "compact", minimumFractionDigits: digits, maximumFractionDigits: digits });
      const labels = splits.map((v) => format.format(v));
      if (new Set(labels).size === labels.length) return labels;
    }
    return splits.map((v) => precise.format(v));
  }

  function valueAxis() {
    return {
      stroke: "#334155", size: 64, grid: { stroke: "#e2e8f0" },
      values: (u, splits) => tickLabels(splits),
    };
  }

  function dayAxis(xs) {
    // One tick per day (at most ~10 labels), never hours inside a day.
    const stride = Math.ceil(xs.length / 10);
    const ticks = xs.filter((_, i) => i % stride === 0);
    return Object.assign(timeAxis(), {
      splits: () => ticks,
      values: (u, splits) => splits.map((v) => dayLabel.format(new Date(v * 1000))),
    });
  }

  function timeScale(xs, pad) {
    // A fixed span: the data's, plus ``pad`` seconds each side (an hour when
    // there is a single point, which uPlot would otherwise stretch).
    const min = Math.min(...xs);
    const max = Math.max(...xs);
    const room = pad || (min === max ? 3600 : 0);
    return { time: true, range: [min - room, max + room] };
  }

  function fromZero(u, min, max) {
    return [Math.min(0, min), max > 0 ? max * 1.05 : 1];
  }

  function label(column) {
    return column.replace(/_/g, " ");
  }

  function plotOptions(card, series, extra) {
    const width = Math.max(280, card.querySelector(".plot").clientWidth || 480);
    return Object.assign({
      width: width, height: HEIGHT, series: series,
      // Times are shown in UTC, as stored.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      scales: { x: { time: true } },
      axes: [timeAxis(), valueAxis()],
      legend: { live: true },
    }, extra || {});
  }

  function drawUplot(card, opts, aligned) {
    const plot = card.querySelector(".plot");
    destroyPlot(card);
    plot.replaceChildren();
    plots.set(card.id, new uPlot(opts, aligned, plot));
  }

  function drawLine(card, data) {
    const xi = data.columns.indexOf(card.dataset.x);
    const ys = JSON.parse(card.dataset.y).map((c) => data.columns.indexOf(c));
    const aligned = [data.rows.map((r) => toSeconds(r[xi]))];
    const series = [{}];
    ys.forEach((yi, n) => {
      aligned.push(data.rows.map((r) => toNumber(r[yi])));
      series.push({ label: label(data.columns[yi]), stroke: COLORS[n % COLORS.length], width: 2,
        value: (u, v) => (v === null ? "–" : compact.format(v)) });
    });
    drawUplot(card, plotOptions(card, series, { scales: { x: timeScale(aligned[0], 0) } }), aligned);
  }

  function drawBar(card, data) {
    const xi = data.columns.indexOf(card.dataset.x);
    const yi = data.columns.indexOf(JSON.parse(card.dataset.y)[0]);
    const bars = uPlot.paths.bars({ size: [0.6, 80] });
    const series = [{}, { label: label(data.columns[yi]), stroke: COLORS[0], fill: COLORS[0] + "99",
      paths: bars, points: { show: false },
      value: (u, v) => (v === null ? "–" : plain.format(v)) }];
    const yValues = data.rows.map((r) => toNumber(r[yi]));
    if (data.kinds[xi] === "time") {
      const xs = data.rows.map((r) => toSeconds(r[xi]));
      // Half a step of room on each side, so the end bars are whole.
      const step = xs.length > 1 ? Math.min(...xs.slice(1).map((x, i) => x - xs[i])) : 86400;
      const daily = data.rows.every((r) => r[xi] !== null && r[xi].length === 10);
      const opts = plotOptions(card, series, {
        scales: { x: timeScale(xs, step / 2), y: { range: fromZero } },
        axes: [daily ? dayAxis(xs) : timeAxis(), valueAxis()],
      });
      drawUplot(card, opts, [xs, yValues]);
      return;
    }
    // Categories (e.g. exchange names) sit at 0..n-1, labelled by name.
    const labels = data.rows.map((r) => String(r[xi]));
    const index = labels.map((_, i) => i);
    series[0] = { label: label(data.columns[xi]), value: (u, v) => (v === null ? "–" : labels[v]) };
    const opts = plotOptions(card, series, {
      scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: fromZero } },
      axes: [{ stroke: "#334155", grid: { show: false }, rotate: -30, size: 70,
        splits: () => index, values: (u, splits) => splits.map((v) => labels[v] || "") },
      valueAxis()],
    });
    drawUplot(card, opts, [index, yValues]);
  }

  function drawStacked(card, data) {
    const xi = data.columns.indexOf(card.dataset.x);
    const si = data.columns.indexOf(card.dataset.series);
    const yi = data.columns.indexOf(JSON.parse(card.dataset.y)[0]);
    const times = Array.from(new Set(data.rows.map((r) => r[xi]))).sort();
    const names = Array.from(new Set(data.rows.map((r) => r[si]))).sort();
    const at = new Map(times.map((t, i) => [t, i]));
    const raw = names.map(() => new Array(times.length).fill(0));
    for (const r of data.rows) raw[names.indexOf(r[si])][at.get(r[xi])] = toNumber(r[yi]) || 0;
    // Stack: each series is drawn at the running total; bands fill between
    // neighbours, so each colour's height is that series' own share.
    const total = new Array(times.length).fill(0);
    const stacked = raw.map((values) => values.map((v, i) => (total[i] += v)));
    const series = [{}].concat(names.map((name, n) => ({
      label: String(name), stroke: COLORS[n % COLORS.length], fill: COLORS[n % COLORS.length] + "88",
      width: 1, points: { show: false },
      value: (u, v, s, idx) => (idx === null ? "–" : plain.format(raw[n][idx])),
    })));
    const bands = names.slice(1).map((_, n) => ({ series: [n + 2, n + 1] }));
    const xs = times.map(toSeconds);
    const scales = { x: timeScale(xs, 0), y: { range: fromZero } };
    drawUplot(card, plotOptions(card, series, { bands: bands, scales: scales }), [xs].concat(stacked));
  }

  const DRAW = { line: drawLine, bar: drawBar, stacked_area: drawStacked, table: drawTable, status: drawTable };

  async function loadCard(card) {
    const query = queryFor(card);
    const number = (generation.get(card.id) || 0) + 1;
    generation.set(card.id, number);
    card.classList.add("loading");
    const csv = card.querySelector("a.csv");
    csv.href = "/api/charts/" + card.dataset.chart + ".csv" + (query ? "?" + query : "");
    let state = "error";
    let rows = 0;
    try {
      const response = await fetch("/api/charts/" + card.dataset.chart + (query ? "?" + query : ""),
        { headers: { Accept: "application/json" }, cache: "no-store" });
      const data = await response.json();
      if (generation.get(card.id) !== number) return; // a newer request won
      if (!response.ok) {
        state = data.state || "error";
        message(card, state, data.error);
      } else if (data.row_count === 0) {
        state = "empty";
        message(card, state, null);
      } else {
        DRAW[card.dataset.type](card, data);
        state = "ok";
        rows = data.row_count;
      }
    } catch (err) {
      if (generation.get(card.id) !== number) return;
      state = "error";
      message(card, state, "The dashboard server did not answer: " + err.message);
    }
    card.classList.remove("loading");
    showTitle(card);
    card.dataset.params = query;
    card.dataset.rows = String(rows);
    card.dataset.state = state;
    card.dataset.draws = String(Number(card.dataset.draws || 0) + 1);
  }

  async function loadCards(which) {
    body.dataset.pending = String(Number(body.dataset.pending || 0) + which.length);
    await Promise.all(which.map(async (card) => {
      try {
        await loadCard(card);
      } finally {
        body.dataset.pending = String(Number(body.dataset.pending) - 1);
      }
    }));
    document.getElementById("refreshed").textContent = new Date().toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  async function refreshAll() {
    if (refreshing) return;
    refreshing = true;
    try {
      await loadCards(cards);
    } finally {
      refreshing = false;
    }
  }

  async function loadOptions(select) {
    try {
      const response = await fetch(select.dataset.options, { headers: { Accept: "application/json" } });
      if (!response.ok) return; // the cards show why
      const data = await response.json();
      const current = select.value;
      const keep = Array.from(select.options).filter((o) => o.value === "");
      select.replaceChildren(...keep);
      for (const option of data.options) {
        const o = document.createElement("option");
        o.value = option.value;
        o.textContent = option.label || option.value;
        select.appendChild(o);
      }
      if (current && !data.options.some((o) => o.value === current)) {
        const o = document.createElement("option");
        o.value = o.textContent = current;
        select.appendChild(o);
      }
      select.value = current;
      for (const card of cards) showTitle(card); // the option labels are in
    } catch (err) {
      // The server is gone; the cards say so.
    }
  }

  form.addEventListener("change", (event) => {
    const name = event.target.name;
    const params = new URLSearchParams(selections());
    for (const [key, value] of Array.from(params)) if (!value) params.delete(key);
    history.replaceState(null, "", "?" + params.toString());
    loadCards(cards.filter((card) => JSON.parse(card.dataset.uses).includes(name)));
  });
  document.getElementById("refresh").addEventListener("click", refreshAll);

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const card of cards) {
        const u = plots.get(card.id);
        if (u) u.setSize({ width: card.querySelector(".plot").clientWidth, height: HEIGHT });
      }
    }, 150);
  });

  for (const select of form.querySelectorAll("select[data-options]")) loadOptions(select);
  refreshAll().then(() => {
    body.dataset.ready = "1";
  });
  const period = Number(body.dataset.refreshSeconds) || 60;
  setInterval(refreshAll, period * 1000);
})();
