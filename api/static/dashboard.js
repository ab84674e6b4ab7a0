// The targetologists' page of charts. It reads the JSON API with the token kept in
// sessionStorage (sent as "Authorization: Bearer"), draws spend, leads, CPL and ROAS per day with
// the vendored Chart.js, marks provisional days, and lists each source's freshness. All data is
// written with textContent, never as HTML.
(function () {
  "use strict";

  const TOKEN_KEY = "traffic-dashboard-token";
  const API = "/api/traffic-dashboard";
  const DEFAULT_DAYS = 30;
  const PROBE_DAYS = 366; // when the last 30 days hold nothing: find the latest day with data
  const SOURCE_NAMES = {
    amocrm: "AmoCRM",
    facebook: "Facebook Ads",
    supabase_main: "Supabase Main",
    supabase_tripwire: "Supabase Tripwire",
    supabase_traffic: "Supabase Traffic",
  };
  const COLORS = { spend: "#3566c8", leads: "#2f9d6a", cpl: "#c2612b", roas: "#7b4fc0" };

  const tz = document.querySelector('meta[name="reporting-tz"]').content || "Asia/Almaty";
  const $ = (id) => document.getElementById(id);
  const app = $("app");
  const charts = {};
  let targetologists = [];
  let generation = 0; // a newer load supersedes an older one still in flight

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // ---- dates (YYYY-MM-DD strings, computed on UTC midnights) -------------------------------
  const todayInZone = () =>
    new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" })
      .format(new Date());
  const parseDay = (s) => new Date(s + "T00:00:00Z");
  const formatDay = (d) => d.toISOString().slice(0, 10);
  const addDays = (s, n) => {
    const d = parseDay(s);
    d.setUTCDate(d.getUTCDate() + n);
    return formatDay(d);
  };
  const daysBetween = (from, to) => {
    const out = [];
    for (let d = from; d <= to && out.length < 1000; d = addDays(d, 1)) out.push(d);
    return out;
  };
  const monthRange = (ym) => {
    const [y, m] = ym.split("-").map(Number);
    const last = new Date(Date.UTC(y, m, 0));
    return [ym + "-01", formatDay(last)];
  };
  const formatInstant = (iso) => {
    if (!iso) return "never";
    const parts = new Intl.DateTimeFormat("en-CA", {
      timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).formatToParts(new Date(iso));
    const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
  };

  // ---- numbers: money in integer cents so sums and ratios round like PostgreSQL's round() ---
  const cents = (v) => (v === null || v === undefined ? null : Math.round(Number(v) * 100));
  const groupFmt = (digits) =>
    new Intl.NumberFormat("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const FMT = { 0: groupFmt(0), 2: groupFmt(2), 4: groupFmt(4) };
  const show = (v, digits) => (v === null || v === undefined || Number.isNaN(v) ? "n/a" : FMT[digits].format(v));
  // half away from zero on exact quotients, as PostgreSQL rounds numeric
  const ratio = (num, den, scale) => (num === null || den === null || den === 0 ? null
    : Math.sign(num / den) * Math.round(Math.abs(num * scale / den)) / scale);

  // one day (or the range's total) from several targetologists' rows
  function aggregate(rows) {
    let spend = 0;
    let revenue = 0;
    const out = { leads: 0, sales: 0, impressions: 0, clicks: 0, is_provisional: false };
    for (const r of rows) {
      const s = cents(r.spend);
      spend = spend === null || s === null ? null : spend + s; // one unknown spend: unknown
      revenue += cents(r.revenue) || 0;
      out.leads += r.leads || 0;
      out.sales += r.sales || 0;
      out.impressions += r.impressions || 0;
      out.clicks += r.clicks || 0;
      out.is_provisional = out.is_provisional || Boolean(r.is_provisional);
    }
    out.spend = spend === null ? null : spend / 100;
    out.revenue = revenue / 100;
    const money = (c) => (c === null ? null : c / 100);
    out.cpl = money(ratio(spend, out.leads, 1));
    out.cpa = money(ratio(spend, out.sales, 1));
    out.roas = ratio(revenue, spend, 10000);
    return out;
  }

  // ---- the API -------------------------------------------------------------------------------
  async function api(path) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    let response;
    try {
      response = await fetch(path, {
        headers: { Authorization: "Bearer " + token, Accept: "application/json" },
        cache: "no-store",
      });
    } catch (e) {
      throw new ApiError(0, "The dashboard API could not be reached.");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (response.ok && body && body.success !== false) return body;
    const detail = body && body.detail !== undefined ? body.detail : body && body.error;
    const text = typeof detail === "string" ? detail
      : Array.isArray(detail) ? detail.map((d) => (d && d.msg) || JSON.stringify(d)).join("; ")
      : detail ? JSON.stringify(detail) : "";
    if (response.status === 401) throw new ApiError(401, "Token not accepted." + (text ? ` (${text})` : ""));
    if (response.status === 403) throw new ApiError(403, text || "This token may not see that.");
    if (response.status === 422) throw new ApiError(422, text || "The request was not valid.");
    throw new ApiError(response.status, `The API answered ${response.status}` + (text ? `: ${text}` : "."));
  }

  const daily = (from, to, who) => {
    const q = new URLSearchParams({ from, to });
    if (who) q.set("targetologist", who);
    return api(`${API}/targetologist-daily?${q}`);
  };

  // ---- messages ------------------------------------------------------------------------------
  function setError(message) {
    $("error").textContent = message || "";
    $("error").hidden = !message;
  }
  function setNotice(message) {
    $("notice").textContent = message || "";
    $("notice").hidden = !message;
  }
  function fail(err) {
    app.dataset.state = "error";
    setError(err && err.message ? err.message : String(err));
    if (err && err.status === 401) sessionStorage.removeItem(TOKEN_KEY);
  }

  // ---- rendering -----------------------------------------------------------------------------
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderFreshness(freshness) {
    const list = $("freshness-list");
    list.replaceChildren();
    if (!freshness) {
      $("freshness").hidden = true;
      return;
    }
    const stale = new Set(freshness.stale || []);
    $("stale-rule").textContent = freshness.stale_after_minutes
      ? `(stale: the last attempt failed, or no successful load for ${freshness.stale_after_minutes} min)` : "";
    const sources = freshness.sources && freshness.sources.length ? freshness.sources
      : Object.entries(freshness.as_of || {}).map(([source, as_of]) => ({ source, as_of, stale: stale.has(source) }));
    for (const s of sources) {
      const isStale = Boolean(s.stale) || stale.has(s.source);
      const failed = s.status === "error";
      const item = el("li", {
        class: "source" + (isStale ? " is-stale" : "") + (failed ? " is-failed" : ""),
        "data-testid": "freshness-item", "data-source": s.source,
        "data-stale": String(isStale), "data-status": s.status || "",
      });
      item.append(el("span", { class: "name" }, SOURCE_NAMES[s.source] || s.source));
      item.append(el("span", { class: "as-of", "data-testid": "freshness-as-of", title: s.as_of || "" },
        "as of " + formatInstant(s.as_of)));
      const badge = isStale ? "stale" : failed ? "last attempt failed" : "fresh";
      item.append(el("span", { class: "badge " + (isStale ? "bad" : failed ? "warn" : "ok"),
        "data-testid": "freshness-badge" }, badge));
      if (s.error) {
        item.append(el("span", { class: "why", "data-testid": "freshness-error" }, s.error));
      }
      if (s.last_attempt_at && s.last_attempt_at !== s.as_of) {
        item.title = "last attempt " + formatInstant(s.last_attempt_at) + (s.error ? ": " + s.error : "");
      }
      list.append(item);
    }
    $("freshness").hidden = false;
  }

  function hatch(color) {
    const c = document.createElement("canvas");
    c.width = c.height = 8;
    const g = c.getContext("2d");
    g.fillStyle = color + "33";
    g.fillRect(0, 0, 8, 8);
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    g.moveTo(-2, 2); g.lineTo(2, -2);
    g.moveTo(0, 8); g.lineTo(8, 0);
    g.moveTo(6, 10); g.lineTo(10, 6);
    g.stroke();
    return g.createPattern(c, "repeat");
  }

  // a grey band behind the provisional days, labelled once per chart
  const provisionalBand = {
    id: "provisionalBand",
    beforeDatasetsDraw(chart, args, opts) {
      const flags = opts.flags || [];
      const x = chart.scales.x;
      const area = chart.chartArea;
      const first = flags.indexOf(true);
      if (first < 0 || !x) return;
      const last = flags.lastIndexOf(true);
      const half = flags.length > 1 ? (x.getPixelForValue(1) - x.getPixelForValue(0)) / 2 : area.width / 2;
      const left = Math.max(area.left, x.getPixelForValue(first) - half);
      const right = Math.min(area.right, x.getPixelForValue(last) + half);
      const ctx = chart.ctx;
      ctx.save();
      ctx.fillStyle = "rgba(120, 120, 120, 0.10)";
      ctx.fillRect(left, area.top, right - left, area.bottom - area.top);
      ctx.fillStyle = "#666";
      ctx.font = "11px sans-serif";
      ctx.textAlign = "right";
      ctx.fillText("provisional", right - 4, area.top + 12);
      ctx.restore();
    },
  };

  // "n/a" on the days that have rows but no value (spend unknown: an exchange rate is missing)
  const unknownMarks = {
    id: "unknownMarks",
    afterDatasetsDraw(chart, args, opts) {
      const x = chart.scales.x;
      if (!x || !(opts.unknown || []).length) return;
      const ctx = chart.ctx;
      ctx.save();
      ctx.fillStyle = "#a86200";
      ctx.font = "10px sans-serif";
      ctx.textAlign = "center";
      for (const i of opts.unknown) ctx.fillText("n/a", x.getPixelForValue(i), chart.chartArea.bottom - 4);
      ctx.restore();
    },
  };

  function drawChart(key, kind, labels, values, flags, digits, present) {
    const unknown = values.flatMap((v, i) => (v === null && present[i] ? [i] : []));
    if (charts[key]) charts[key].destroy();
    const color = COLORS[key];
    const pattern = hatch(color);
    const dataset = kind === "bar"
      ? {
          data: values,
          backgroundColor: flags.map((p) => (p ? pattern : color)),
          borderColor: color,
          borderWidth: flags.map((p) => (p ? 1 : 0)),
        }
      : {
          data: values,
          borderColor: color,
          backgroundColor: color,
          pointBackgroundColor: flags.map((p) => (p ? "#fff" : color)),
          pointRadius: 3,
          spanGaps: false,
          segment: { borderDash: (ctx) => (flags[ctx.p1DataIndex] ? [4, 3] : undefined) },
        };
    charts[key] = new window.Chart($("chart-" + key), {
      type: kind,
      data: { labels, datasets: [dataset] },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: {
          legend: { display: false },
          provisionalBand: { flags },
          unknownMarks: { unknown },
          tooltip: {
            callbacks: {
              title: (items) => items[0].label + (flags[items[0].dataIndex] ? " (provisional)" : ""),
              label: (item) => show(item.raw, digits),
            },
          },
        },
        scales: {
          x: { ticks: { maxRotation: 0, autoSkip: true, callback(v) { return labels[v].slice(5); } } },
          y: { beginAtZero: true },
        },
      },
      plugins: [provisionalBand, unknownMarks],
    });
  }

  function renderReport(data, who, from, to) {
    const rows = data.rows || [];
    const currency = data.currency || (rows[0] && rows[0].currency) || "";
    for (const node of document.querySelectorAll(".currency")) node.textContent = currency;

    // per day: one targetologist's rows as the API gives them, or all of them summed
    const byDay = new Map();
    for (const r of rows) {
      if (!byDay.has(r.day)) byDay.set(r.day, []);
      byDay.get(r.day).push(r);
    }
    const perDay = [...byDay.entries()].sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([day, list]) => ({ day, ...(list.length === 1 && who ? list[0] : aggregate(list)) }));

    // totals: the API's own for one targetologist, the sum over all of them otherwise
    const apiTotals = (data.totals || []).filter((t) => !who || t.targetologist === who);
    const totals = who && apiTotals.length === 1 ? apiTotals[0] : aggregate(apiTotals.length ? apiTotals : rows);
    $("report-title").textContent = `${who || "All targetologists"}, ${from} to ${to}`;
    const cells = { spend: 2, leads: 0, sales: 0, revenue: 2, cpl: 2, roas: 4 };
    for (const [k, digits] of Object.entries(cells)) {
      document.querySelector(`[data-testid="total-${k}"]`).textContent = show(totals[k], digits);
    }

    const tbody = $("daily-rows");
    tbody.replaceChildren();
    for (const d of perDay) {
      const tr = el("tr", { "data-testid": "day-row", "data-day": d.day,
        "data-provisional": String(Boolean(d.is_provisional)), class: d.is_provisional ? "provisional" : "" });
      tr.append(el("td", { "data-testid": "day" }, d.day));
      for (const [k, digits] of Object.entries(cells)) {
        tr.append(el("td", { "data-testid": k, class: d[k] === null ? "na" : "" }, show(d[k], digits)));
      }
      tr.append(el("td", { "data-testid": "provisional" }, d.is_provisional ? "provisional" : ""));
      tbody.append(tr);
    }
    if (!perDay.length) {
      const tr = el("tr", { "data-testid": "no-rows" });
      tr.append(el("td", { colSpan: 8, class: "empty" }, "No data in this range."));
      tbody.append(tr);
    }

    const labels = daysBetween(from, to);
    const index = new Map(perDay.map((d) => [d.day, d]));
    const flags = labels.map((day) => Boolean(index.get(day) && index.get(day).is_provisional));
    const series = (k) => labels.map((day) => (index.has(day) ? index.get(day)[k] : null));
    const present = labels.map((day) => index.has(day));
    drawChart("spend", "bar", labels, series("spend"), flags, 2, present);
    drawChart("leads", "bar", labels, series("leads"), flags, 0, present);
    drawChart("cpl", "line", labels, series("cpl"), flags, 2, present);
    drawChart("roas", "line", labels, series("roas"), flags, 4, present);
    $("report").hidden = false;
  }

  // ---- flow ----------------------------------------------------------------------------------
  async function load({ probe = false } = {}) {
    const mine = ++generation;
    let from = $("from").value;
    let to = $("to").value;
    const who = $("who").value || (targetologists.length === 1 ? targetologists[0] : "");
    if (!from || !to) {
      setError("Choose both dates.");
      return;
    }
    if (from > to) {
      setError("The first day is after the last one.");
      return;
    }
    app.dataset.state = "loading";
    setError("");
    setNotice("");
    try {
      let body = await daily(from, to, who);
      if (probe && !(body.data.rows || []).length) {
        // nothing in the default range: show the 30 days ending at the latest day with data
        const wide = await daily(addDays(to, -(PROBE_DAYS - 1)), to, who).catch(() => null);
        const days = wide ? (wide.data.rows || []).map((r) => r.day).sort() : [];
        if (days.length) {
          to = days[days.length - 1];
          from = addDays(to, -(DEFAULT_DAYS - 1));
          $("from").value = from;
          $("to").value = to;
          body = await daily(from, to, who);
          setNotice(`No data in the last ${DEFAULT_DAYS} days; showing the ${DEFAULT_DAYS} days ending ${to}, the latest day with data.`);
        }
      }
      if (mine !== generation) return;
      $("month").value = from.slice(0, 7) === to.slice(0, 7) && from.endsWith("-01") && monthRange(from.slice(0, 7))[1] === to
        ? from.slice(0, 7) : "";
      renderFreshness(body.freshness);
      renderReport(body.data, who, body.data.from || from, body.data.to || to);
      app.dataset.range = `${from}..${to}`;
      app.dataset.who = who || "all";
      app.dataset.state = "ready";
    } catch (err) {
      if (mine === generation) fail(err);
    }
  }

  async function start() {
    app.dataset.state = "loading";
    setError("");
    try {
      const body = await api(`${API}/targetologists`);
      targetologists = (body.data && body.data.targetologists) || [];
      renderFreshness(body.freshness);
    } catch (err) {
      $("controls").hidden = true;
      $("report").hidden = true;
      fail(err);
      return;
    }
    const select = $("who");
    select.replaceChildren();
    if (targetologists.length > 1) {
      select.append(el("option", { value: "" }, "All targetologists"));
      for (const name of targetologists) select.append(el("option", { value: name }, name));
      $("who-label").hidden = false;
      $("who-fixed").hidden = true;
    } else {
      $("who-label").hidden = true;
      $("who-fixed").textContent = targetologists[0] ? "Targetologist: " + targetologists[0] : "No targetologist";
      $("who-fixed").hidden = false;
    }
    $("controls").hidden = false;
    const chosen = $("from").value && $("to").value;
    if (!chosen) {
      $("to").value = todayInZone();
      $("from").value = addDays($("to").value, -(DEFAULT_DAYS - 1));
    }
    await load({ probe: !chosen });
  }

  // ---- wiring --------------------------------------------------------------------------------
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token").value.trim();
    if (!token) {
      setError("Enter a token.");
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    $("token").placeholder = "token kept for this tab";
    start();
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("token").placeholder = "your dashboard token";
    $("controls").hidden = true;
    $("report").hidden = true;
    $("freshness").hidden = true;
    app.dataset.state = "idle";
    setError("");
    setNotice("");
  });
  $("controls").addEventListener("submit", (e) => {
    e.preventDefault();
    load();
  });
  $("month").addEventListener("change", () => {
    if (!$("month").value) return;
    const [from, to] = monthRange($("month").value);
    $("from").value = from;
    $("to").value = to;
    load();
  });
  $("who").addEventListener("change", () => load());

  if (sessionStorage.getItem(TOKEN_KEY)) {
    $("token").placeholder = "token kept for this tab";
    start();
  }
})();
