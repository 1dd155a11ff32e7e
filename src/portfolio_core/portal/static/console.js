// portfolio-core console: live view of a portal's registry, over server-sent events.
// Everything received is put in the page as text (textContent), never as markup; every list
// is bounded, so a page left open keeps its memory flat.
"use strict";

(function () {
  const LIVE = "/console/api/live";
  const state = {
    who: null,
    config: { interval: 1, history: 300, tail: 50, timeline: 200 },
    offset: 0, // server clock minus ours, seconds
    entries: [],
    methods: [],
    history: new Map(), // method key -> [[t, calls, errors, rejected], ...] (bounded)
    timeline: [], // oldest first, bounded
    tails: new Map(), // store -> {events: [...] oldest first, error}
    panels: [],
    filter: { store: "", stream: "", type: "" },
    filtered: null, // events fetched for the current filter, or null
  };
  let source = null;
  let retryDelay = 1000;
  let retryTimer = 0;
  let watchdog = 0;
  let lastFrame = 0;
  let everLive = false;

  // -- small DOM helpers (text only) ------------------------------------------------------
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === "text") node.textContent = String(v);
        else if (k === "class") node.className = v;
        else node.setAttribute(k, v === true ? "" : String(v));
      }
    }
    if (children) for (const c of children) if (c) node.append(c);
    return node;
  }
  const $ = (id) => document.getElementById(id);
  const now = () => Date.now() / 1000 + state.offset;
  function clock(t) {
    return new Date((t - state.offset) * 1000).toLocaleTimeString([], { hour12: false });
  }
  function seconds(s) {
    if (s === null || s === undefined) return "–";
    if (s === 0) return "0";
    if (s < 0.001) return (s * 1e6).toFixed(0) + " µs";
    if (s < 1) return (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + " ms";
    return s.toFixed(2) + " s";
  }
  function count(n) {
    return n === null || n === undefined ? "–" : Number(n).toLocaleString("en");
  }
  function cell(label, children, cls) {
    return el("td", { "data-label": label, class: cls }, children);
  }

  // Keyed updates: a node is rebuilt only when what it shows changed, so focus, open
  // <details> and a pointer over a button survive the live updates.
  function sync(container, items, keyOf, signOf, build) {
    const old = new Map();
    for (const node of [...container.children]) old.set(node.dataset.key, node);
    let at = container.firstElementChild;
    for (const item of items) {
      const key = String(keyOf(item));
      const sign = signOf(item);
      let node = old.get(key);
      old.delete(key);
      if (!node || node.dataset.sign !== sign) {
        const fresh = build(item);
        fresh.dataset.key = key;
        fresh.dataset.sign = sign;
        if (node) {
          patch(node, fresh);
        } else {
          node = fresh;
          for (const child of node.children) child.__built = child.outerHTML;
        }
      }
      if (node !== at) container.insertBefore(node, at);
      else at = at.nextElementSibling;
    }
    for (const node of old.values()) node.remove();
  }

  // Replace the children of ``node`` that differ from those of ``fresh`` (same shape).
  function patch(node, fresh) {
    if (node.children.length !== fresh.children.length || node.tagName !== fresh.tagName) {
      node.replaceWith(fresh);
      return;
    }
    for (const attr of [...fresh.attributes]) node.setAttribute(attr.name, attr.value);
    for (const attr of [...node.attributes]) if (!fresh.hasAttribute(attr.name)) node.removeAttribute(attr.name);
    const kids = [...fresh.children];
    [...node.children].forEach((child, i) => {
      // compared with what the child was built as (a countdown may have changed its text)
      const html = kids[i].outerHTML;
      if (child.__built !== html) {
        kids[i].__built = html;
        child.replaceWith(kids[i]);
      }
    });
  }

  // -- connection ---------------------------------------------------------------------------
  function setConnection(kind, text) {
    const node = $("connection");
    node.dataset.state = kind;
    node.textContent = text;
  }

  function connect() {
    clearTimeout(retryTimer);
    if (source) source.close();
    source = new EventSource(LIVE);
    source.addEventListener("hello", (e) => {
      onFrame();
      hello(JSON.parse(e.data));
      setConnection("live", everLive ? "Live (reconnected " + clock(now()) + ")" : "Live");
      everLive = true;
      retryDelay = 1000;
    });
    source.addEventListener("tick", (e) => {
      onFrame();
      tick(JSON.parse(e.data));
    });
    source.onerror = () => lost();
  }

  function onFrame() {
    lastFrame = Date.now();
  }

  function lost() {
    if (source) {
      source.close();
      source = null;
    }
    clearTimeout(retryTimer);
    const wait = retryDelay;
    retryDelay = Math.min(retryDelay * 2, 5000);
    setConnection("lost", "Connection lost: reconnecting in " + Math.round(wait / 1000) + " s…");
    retryTimer = setTimeout(async () => {
      setConnection("reconnecting", "Reconnecting…");
      try {
        const probe = await fetch("/console/api/state?probe=1", { credentials: "same-origin" });
        if (probe.status === 401) {
          window.location.assign("/console");
          return;
        }
      } catch (err) {
        lost();
        return;
      }
      connect();
    }, wait);
  }

  function startWatchdog() {
    clearInterval(watchdog);
    watchdog = setInterval(() => {
      const limit = Math.max(5000, state.config.interval * 5000);
      if (source && lastFrame && Date.now() - lastFrame > limit) lost();
      renderCountdowns();
    }, 1000);
  }

  // -- frames ---------------------------------------------------------------------------------
  function hello(data) {
    state.who = data.who;
    state.config = data.config;
    state.offset = data.time - Date.now() / 1000;
    state.entries = data.entries;
    state.methods = data.methods;
    state.history = new Map();
    const times = data.history.times;
    for (const [key, samples] of Object.entries(data.history.series)) {
      const rows = [];
      samples.forEach((s, i) => {
        if (s) rows.push([times[i], s[0], s[1], s[2]]);
      });
      state.history.set(key, rows);
    }
    state.timeline = data.timeline.slice(-state.config.timeline);
    state.tails = new Map();
    for (const [name, tail] of Object.entries(data.tails)) {
      state.tails.set(name, { events: tail.events.slice(-state.config.tail), error: tail.error });
    }
    state.panels = data.panels;
    renderWho();
    renderEntries();
    renderMethods();
    renderTimeline();
    renderStores();
    renderEvents();
    renderPanels();
  }

  function tick(data) {
    state.offset = data.time - Date.now() / 1000;
    state.entries = data.entries;
    state.methods = data.methods;
    if (data.sample) {
      const [t, values] = data.sample;
      for (const [key, v] of Object.entries(values)) {
        let rows = state.history.get(key);
        if (!rows) state.history.set(key, (rows = []));
        if (!rows.length || rows[rows.length - 1][0] < t) rows.push([t, v[0], v[1], v[2]]);
        if (rows.length > state.config.history) rows.splice(0, rows.length - state.config.history);
      }
      for (const key of state.history.keys()) if (!(key in values)) state.history.delete(key);
    }
    if (data.timeline.length) {
      for (const event of data.timeline) {
        const i = state.timeline.findIndex((e) => coalescedInto(e, event));
        if (i >= 0) state.timeline.splice(i, 1);
        state.timeline.push(event);
      }
      if (state.timeline.length > state.config.timeline)
        state.timeline.splice(0, state.timeline.length - state.config.timeline);
      renderTimeline();
    }
    let newEvents = false;
    for (const [name, tail] of Object.entries(data.tails)) {
      let kept = state.tails.get(name);
      if (!kept) state.tails.set(name, (kept = { events: [], error: "" }));
      kept.error = tail.error;
      if (tail.events) {
        kept.events.push(...tail.events);
        if (kept.events.length > state.config.tail) kept.events.splice(0, kept.events.length - state.config.tail);
        if (state.filtered && name === state.filter.store) {
          for (const e of tail.events) if (matches(e)) state.filtered.push(e);
          if (state.filtered.length > state.config.tail)
            state.filtered.splice(0, state.filtered.length - state.config.tail);
        }
        newEvents = true;
      }
    }
    for (const name of [...state.tails.keys()]) if (!(name in data.tails)) state.tails.delete(name);
    state.panels = data.panels;
    renderEntries();
    renderMethods();
    if (newEvents) renderEvents();
    renderStores();
    renderPanels();
  }

  function coalescedInto(old, event) {
    // a coalesced event replaces the one it updates (same kind, entry and title shape)
    return event.count > 1 && old.kind === event.kind && old.entry === event.entry &&
      old.data && event.data && JSON.stringify(old.data) === JSON.stringify(event.data);
  }

  // -- overview -------------------------------------------------------------------------------
  function renderWho() {
    const who = state.who;
    $("who").textContent = who.auth ? "Signed in as " + who.name : "No credentials configured (loopback only)";
    $("logout").hidden = !who.auth;
    $("reload").hidden = !who.can_reload;
    const minutes = (state.config.history * state.config.interval) / 60;
    $("window").textContent = minutes >= 1 ? minutes.toFixed(minutes < 10 ? 1 : 0) + " minutes" : Math.round(minutes * 60) + " seconds";
  }

  function healthBadge(entry) {
    if (entry.healthy === null) return el("span", { class: "badge unknown", text: "not checked yet" });
    return el("span", {
      class: "badge " + (entry.healthy ? "ok" : "error"),
      text: entry.healthy ? "healthy" : "unhealthy",
    });
  }

  function entryRow(e) {
    const bad = e.healthy === false || (e.breaker && e.breaker.state === "open");
    const caps = el("div", { class: "caps" }, e.capabilities.map((c) => el("span", { class: "tag", text: c })));
    if (!e.capabilities.length) caps.append(el("span", { class: "sub", text: "none declared" }));
    const boundary = e.boundary.length ? el("span", { class: "sub", text: "boundary: " + e.boundary.join(", ") }) : null;
    return el("tr", { "data-entry": e.name, class: bad ? "unhealthy" : null }, [
      cell("Entry", [el("span", { class: "name", text: e.name }), e.default ? el("span", { class: "sub", text: "default " + e.port }) : null]),
      cell("Port", [document.createTextNode(e.port_name)]),
      cell("Adapter", [el("span", { text: e.adapter }), el("span", { class: "sub", title: e["class"], text: e["class"].split(".").pop() }), boundary]),
      cell("Capabilities", [caps]),
      cell("Configured at", [el("span", { class: "sub location", text: e.location })]),
      cell("Health", [healthBadge(e), healthDetail(e)]),
      cell("Breaker", breakerCell(e)),
      cell("Calls / errors", [document.createTextNode(e.calls === null ? "not counted" : count(e.calls) + " / " + count(e.errors))], "num"),
    ]);
  }

  function healthDetail(e) {
    const d = e.detail;
    if (!d || d === "ok" || d === "no ping") return null;
    if (e.breaker && d.startsWith("circuit breaker")) return null; // the breaker column says it
    return el("span", { class: "sub", text: d });
  }

  function breakerCell(entry) {
    const b = entry.breaker;
    if (!b) return [el("span", { class: "sub", text: "no breaker" })];
    const parts = [el("span", { class: "badge " + b.state, "data-breaker-state": b.state, text: b.state })];
    if (b.refuses_until) {
      parts.push(el("span", { class: "sub countdown", "data-countdown": entry.name }));
    } else if (b.detail) {
      parts.push(el("span", { class: "sub", text: b.detail }));
    }
    if (b.can_reset && b.state !== "closed") {
      const button = el("button", { type: "button", class: "danger", text: "Reset…", "aria-label": "Reset the circuit breaker of " + entry.name });
      button.addEventListener("click", () => resetBreaker(entry.name));
      parts.push(button);
    }
    return parts;
  }

  function refusing(until) {
    const left = until - now();
    return left > 0
      ? "refuses calls until " + clock(until) + " (" + Math.ceil(left) + " s)"
      : "next call is admitted as a probe";
  }

  function renderCountdowns() {
    const until = new Map(state.entries.filter((e) => e.breaker && e.breaker.refuses_until).map((e) => [e.name, e.breaker.refuses_until]));
    for (const node of document.querySelectorAll(".countdown")) {
      const t = until.get(node.dataset.countdown);
      node.textContent = t ? refusing(t) : "";
    }
  }

  function renderEntries() {
    const body = $("entries").tBodies[0];
    const unhealthy = [];
    for (const e of state.entries) {
      if (e.healthy === false || (e.breaker && e.breaker.state === "open")) unhealthy.push(e);
    }
    sync(body, state.entries, (e) => e.name, (e) => JSON.stringify(e), entryRow);
    renderCountdowns();
    const banner = $("banner");
    if (unhealthy.length) {
      banner.hidden = false;
      banner.textContent =
        "Degraded: " + unhealthy.length + " of " + state.entries.length + " entries unhealthy (" +
        unhealthy.map((e) => e.name + (e.breaker && e.breaker.state === "open" ? ": circuit breaker open" : "")).join("; ") + ")";
    } else {
      banner.hidden = true;
      banner.textContent = "";
    }
    $("summary").textContent = state.entries.length + " entries; " + (unhealthy.length ? unhealthy.length + " unhealthy" : "all healthy");
  }

  // -- methods --------------------------------------------------------------------------------
  function rates(rows) {
    const calls = [];
    const errors = [];
    for (let i = 1; i < rows.length; i++) {
      const dt = rows[i][0] - rows[i - 1][0] || 1;
      calls.push(Math.max(0, (rows[i][1] - rows[i - 1][1]) / dt));
      errors.push(Math.max(0, (rows[i][2] - rows[i - 1][2] + rows[i][3] - rows[i - 1][3]) / dt));
    }
    return [calls, errors];
  }

  const SVG = "http://www.w3.org/2000/svg";
  function chart(key, label) {
    const rows = state.history.get(key) || [];
    const [calls, errors] = rates(rows);
    const peak = Math.max(1e-9, ...calls, ...errors);
    const width = 160;
    const height = 36;
    const n = Math.max(1, state.config.history - 1);
    const line = (values) =>
      values
        .map((v, i) => (width - (values.length - 1 - i) * (width / n)).toFixed(1) + "," + (height - 2 - (v / peak) * (height - 4)).toFixed(1))
        .join(" ");
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "chart");
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    const last = calls.length ? calls[calls.length - 1] : 0;
    const lastErr = errors.length ? errors[errors.length - 1] : 0;
    svg.setAttribute(
      "aria-label",
      label + ": " + last.toFixed(1) + " calls per second now, peak " + (calls.length ? Math.max(...calls).toFixed(1) : "0") +
        "; " + lastErr.toFixed(1) + " errors or refusals per second now",
    );
    const base = document.createElementNS(SVG, "line");
    base.setAttribute("class", "base");
    base.setAttribute("x1", "0");
    base.setAttribute("x2", String(width));
    base.setAttribute("y1", String(height - 1));
    base.setAttribute("y2", String(height - 1));
    svg.append(base);
    for (const [values, cls] of [[calls, "calls"], [errors, "errors"]]) {
      if (values.length < 2 || (cls === "errors" && !values.some((v) => v > 0))) continue;
      const poly = document.createElementNS(SVG, "polyline");
      poly.setAttribute("class", cls);
      poly.setAttribute("points", line(values));
      svg.append(poly);
    }
    return svg;
  }

  function renderMethods() {
    const body = $("methods").tBodies[0];
    $("no-methods").hidden = state.methods.length > 0;
    if (!$("view-methods").hidden || !body.children.length) {
      // methods that have been called first, each group in registry order
      const ordered = state.methods.filter((m) => m.calls || m.rejected).concat(state.methods.filter((m) => !(m.calls || m.rejected)));
      sync(body, ordered, (m) => m.key, (m) => JSON.stringify([m, (state.history.get(m.key) || []).length]), methodRow);
    }
  }

  function methodRow(m) {
    return el("tr", { "data-method": m.key }, [
      cell("Method", [el("span", { class: "name", text: m.entry + "." + m.method }), el("span", { class: "sub", text: m.port })]),
      cell("Calls", [document.createTextNode(count(m.calls))], "num"),
      cell("Errors", [document.createTextNode(count(m.errors))], "num"),
      cell("Refused", [document.createTextNode(count(m.rejected))], "num"),
      cell("p50", [document.createTextNode(m.calls ? seconds(m.p50) : "–")], "num"),
      cell("p95", [document.createTextNode(m.calls ? seconds(m.p95) : "–")], "num"),
      cell("p99", [document.createTextNode(m.calls ? seconds(m.p99) : "–")], "num"),
      cell("Last minutes", [chart(m.key, m.entry + "." + m.method)]),
    ]);
  }

  // -- timeline -------------------------------------------------------------------------------
  function diffView(data) {
    const box = el("div", { class: "diff" });
    for (const a of data.added || []) box.append(el("div", {}, [el("ins", { text: "+ " + a.entry + " (" + a.port + ", " + a.adapter + ") at " + a.location })]));
    for (const r of data.removed || []) box.append(el("div", {}, [el("del", { text: "− " + r.entry + " (" + r.port + ", " + r.adapter + ")" })]));
    for (const c of data.changed || []) {
      box.append(el("div", { class: "name", text: c.entry + " (" + c.location + ")" }));
      for (const f of c.fields)
        box.append(el("div", {}, [document.createTextNode(f.path + ": "), el("del", { text: f.old }), document.createTextNode(" → "), el("ins", { text: f.new })]));
    }
    if (data.omitted) box.append(el("div", { class: "sub", text: data.omitted + " more changes not listed" }));
    return box;
  }

  function dataView(data) {
    const keys = Object.keys(data || {});
    if (!keys.length) return null;
    return el("details", {}, [
      el("summary", { text: "Details" }),
      el("pre", { class: "payload", text: JSON.stringify(data, null, 1) }),
    ]);
  }

  function timelineItem(e) {
    const extra = e.kind === "reload" && (e.data.changed || e.data.added || e.data.removed)
      ? el("details", { open: true }, [el("summary", { text: "Manifest diff" }), diffView(e.data)])
      : dataView(e.data);
    return el("li", { "data-kind": e.kind, "data-id": e.id, "data-entry": e.entry }, [
      el("span", { class: "when", text: clock(e.time) }),
      el("span", { class: "badge " + e.severity, text: e.kind }),
      document.createTextNode(" "),
      el("span", { class: "title", text: e.title + (e.count > 1 ? " (×" + e.count + ")" : "") }),
      e.detail ? el("span", { class: "detail", text: e.detail }) : null,
      extra,
    ]);
  }

  function renderTimeline() {
    const kinds = new Set(state.timeline.map((e) => e.kind));
    const select = $("timeline-kind");
    const chosen = select.value;
    const have = new Set([...select.options].map((o) => o.value));
    for (const k of [...kinds].sort()) if (!have.has(k)) select.append(el("option", { value: k, text: k }));
    const shown = state.timeline.filter((e) => !chosen || e.kind === chosen);
    sync($("timeline"), shown.slice().reverse(), (e) => e.id, () => "", timelineItem);
    $("timeline-empty").hidden = shown.length > 0;
    const serious = state.timeline.filter((e) => e.severity === "error").length;
    $("timeline-count").textContent = serious ? String(serious) : "";
    $("tab-timeline").setAttribute("aria-label", "Timeline" + (serious ? ", " + serious + " errors" : ""));
  }

  // -- events ---------------------------------------------------------------------------------
  function matches(e) {
    return (!state.filter.stream || e.stream === state.filter.stream) && (!state.filter.type || e.type === state.filter.type);
  }

  function renderStores() {
    const select = $("event-store");
    const names = [...state.tails.keys()];
    const current = [...select.options].map((o) => o.value);
    if (names.join("\n") !== current.join("\n")) {
      select.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
      if (names.includes(state.filter.store)) select.value = state.filter.store;
      else state.filter.store = names[0] || "";
      renderEvents();
    }
  }

  function eventItem(e) {
    const parts = [
      el("span", { class: "when", text: clock(e.recorded_at) }),
      el("span", { class: "name", text: e.type }),
      el("span", { class: "sub", text: e.stream + " · version " + e.version + " · position " + e.position }),
      el("pre", { class: "payload", text: e.payload }),
    ];
    if (e.truncated)
      parts.push(el("p", { class: "cut", text: "Payload cut: showing " + kib(state.config.max_payload_bytes) + " of " + kib(e.size) + "." }));
    return el("li", { "data-position": e.position, "data-type": e.type }, parts);
  }

  function kib(n) {
    return n >= 1e6 ? (n / 1e6).toFixed(1) + " MB" : (n / 1e3).toFixed(1) + " kB";
  }

  function renderEvents() {
    const store = state.filter.store;
    const tail = state.tails.get(store);
    const list = state.filtered || (tail ? tail.events.filter(matches) : []);
    sync($("events"), list.slice().reverse(), (e) => e.position, () => "", eventItem);
    const note = $("events-note");
    if (!store) note.textContent = "No event store is wired.";
    else if (tail && tail.error) note.textContent = "This store cannot be read: " + tail.error;
    else note.textContent = list.length + " latest events of " + store + (state.filter.stream || state.filter.type ? " matching the filter" : "") + ", newest first.";
  }

  async function applyFilter(ev) {
    ev.preventDefault();
    state.filter = { store: $("event-store").value, stream: $("event-stream").value.trim(), type: $("event-type").value.trim() };
    if (!state.filter.stream && !state.filter.type) {
      state.filtered = null;
      renderEvents();
      return;
    }
    const q = new URLSearchParams({ entry: state.filter.store, stream: state.filter.stream, type: state.filter.type, limit: String(state.config.tail) });
    const reply = await fetch("/console/api/events?" + q, { credentials: "same-origin" });
    if (!reply.ok) {
      $("events-note").textContent = "The filter failed: " + (await problemText(reply));
      return;
    }
    const body = await reply.json();
    state.filtered = body.events;
    renderEvents();
    if (body.partial) $("events-note").textContent += " (searched the latest 20,000 events only)";
  }

  // -- panels ---------------------------------------------------------------------------------
  function renderPanels() {
    $("tab-panels").hidden = state.panels.length === 0;
    $("panels").replaceChildren(
      ...state.panels.map((p) =>
        el("div", { class: "panel", "data-panel": p.name }, [
          el("h2", {}, [document.createTextNode(p.title + " "), el("span", { class: "badge " + (p.status === "ok" ? "ok" : p.status), text: p.status })]),
          p.note ? el("p", { class: "hint", text: p.note }) : null,
          p.columns.length
            ? el("table", {}, [
                el("thead", {}, [el("tr", {}, p.columns.map((c) => el("th", { scope: "col", text: c })))]),
                el("tbody", {}, p.rows.map((r) => el("tr", {}, r.map((c, i) => el("td", { "data-label": p.columns[i] || "", text: c === null ? "–" : String(c) }))))),
              ])
            : null,
        ]),
      ),
    );
  }

  // -- actions (write scope + confirmation) ---------------------------------------------------
  function confirmDialog(text) {
    return new Promise((resolve) => {
      const dialog = $("confirm");
      $("confirm-text").textContent = text;
      dialog.returnValue = "";
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
      dialog.showModal();
      dialog.querySelector("button[value=cancel]").focus();
    });
  }

  async function problemText(reply) {
    try {
      const p = await reply.json();
      return p.detail || p.title || reply.statusText;
    } catch (err) {
      return reply.statusText;
    }
  }

  async function act(url, text) {
    if (!(await confirmDialog(text))) return;
    const reply = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ confirm: true }),
    });
    if (!reply.ok) alertText("The action failed: " + (await problemText(reply)));
  }

  function alertText(text) {
    const banner = $("banner");
    banner.hidden = false;
    banner.textContent = text;
  }

  function resetBreaker(name) {
    act("/console/api/breakers/" + encodeURIComponent(name) + "/reset", "Close the circuit breaker of " + name + " now? Calls will reach the adapter again.");
  }

  // -- tabs (WAI-ARIA tabs: arrows, Home, End) -------------------------------------------------
  function setupTabs() {
    const tabs = [...document.querySelectorAll('[role="tab"]')];
    function select(tab, focus) {
      for (const t of tabs) {
        const on = t === tab;
        t.setAttribute("aria-selected", String(on));
        t.tabIndex = on ? 0 : -1;
        $(t.getAttribute("aria-controls")).hidden = !on;
      }
      if (focus) tab.focus();
      if (tab.id === "tab-methods") renderMethods();
      history.replaceState(null, "", "#" + tab.id.slice(4));
    }
    for (const tab of tabs) {
      tab.addEventListener("click", () => select(tab, false));
      tab.addEventListener("keydown", (ev) => {
        const visible = tabs.filter((t) => !t.hidden);
        const i = visible.indexOf(tab);
        let next = null;
        if (ev.key === "ArrowRight") next = visible[(i + 1) % visible.length];
        else if (ev.key === "ArrowLeft") next = visible[(i - 1 + visible.length) % visible.length];
        else if (ev.key === "Home") next = visible[0];
        else if (ev.key === "End") next = visible[visible.length - 1];
        if (next) {
          ev.preventDefault();
          select(next, true);
        }
      });
    }
    const wanted = tabs.find((t) => "#" + t.id.slice(4) === location.hash);
    if (wanted) select(wanted, false);
  }

  document.addEventListener("DOMContentLoaded", () => {
    setupTabs();
    $("event-filters").addEventListener("submit", applyFilter);
    $("event-store").addEventListener("change", (ev) => applyFilter(ev));
    $("timeline-kind").addEventListener("change", () => renderTimeline());
    $("reload").addEventListener("click", () => act("/console/api/reload", "Reload the manifest now? New adapters are built and started before the swap; if that fails the current wiring stays."));
    connect();
    startWatchdog();
  });
})();
