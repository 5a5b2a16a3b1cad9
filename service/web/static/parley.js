// Parley's page: the timeline, the state on a date and the tariff chart, read through the public API.
// Plain JavaScript, no build step, no third-party code. Every request goes to this origin.
"use strict";

(() => {
  const KEY_STORE = "parley.key";
  const DAY = 86400000;
  const PAD = 12; // px before the first day of the timeline
  // The lanes, top to bottom; which lane an event goes in is the API's word (`display.lane`, events/describe.py).
  const LANES = [
    { id: "rounds", label: "Rounds & agreements" },
    { id: "truces", label: "Truces" },
    { id: "statements", label: "Statements" },
    { id: "measures", label: "Measures" },
    { id: "deadlines", label: "Deadlines" },
    { id: "issues", label: "Issues" },
  ];
  const ENVELOPE = new Set([
    "type", "occurred_on", "occurred_time", "time_zone", "date_precision", "source", "summary", "topics", "confidence",
    "event_id", "negotiation_id", "version", "position", "recorded_at", "recorded_by", "request_id", "hash",
    "corrected_by", "retracted_by", "display",
  ]);
  const RELIABILITY = {
    A: "completely reliable", B: "usually reliable", C: "fairly reliable", D: "not usually reliable", E: "unreliable",
    F: "reliability cannot be judged",
  };
  const CREDIBILITY = {
    1: "confirmed by other sources", 2: "probably true", 3: "possibly true", 4: "doubtful", 5: "improbable",
    6: "truth cannot be judged",
  };

  const app = {
    negotiation: null,
    info: null,
    events: [],
    byId: new Map(),
    asOf: null,
    knownAt: null,
    legalBasis: "",
    range: null,
    filters: { party: "", topic: "", kinds: new Set(LANES.map((lane) => lane.id)) },
    stateRequest: null,
    stateTimer: null,
    lastState: null,
    lastClaims: null,
    parties: [],
    // why the address cannot be shown (an as_of that is not a date): the page reads nothing until a date is picked
    badUrl: null,
    blocked: false,
  };
  window.parleyTimings = {};

  // --- small helpers -------------------------------------------------------------------------

  const $ = (selector, root = document) => root.querySelector(selector);

  function h(tag, attributes = {}, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") element.className = value;
      else if (name === "style") Object.assign(element.style, value);
      else if (name === "dataset") Object.assign(element.dataset, value);
      else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
      else element.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      element.append(child instanceof Node ? child : String(child));
    }
    return element;
  }

  const toDays = (iso) => Math.round(Date.parse(iso + "T00:00:00Z") / DAY);
  const fromDays = (days) => new Date(days * DAY).toISOString().slice(0, 10);
  const addDays = (iso, n) => fromDays(toDays(iso) + n);
  const todayIso = () => new Date().toISOString().slice(0, 10);
  const isDate = (value) => typeof value === "string" && /^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(Date.parse(value))
    && new Date(Date.parse(value)).toISOString().slice(0, 10) === value;
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const longDate = (iso) => {
    if (!iso) return "";
    const [y, m, d] = iso.slice(0, 10).split("-").map(Number);
    return `${d} ${MONTHS[m - 1]} ${y}`;
  };
  const pct = (value) => (value === null || value === undefined ? "–" : `${Number(value.toFixed(2))}%`);
  const words = (tag) => tag.replaceAll("_", " ");
  const store = {
    get() { try { return localStorage.getItem(KEY_STORE); } catch { return null; } },
    set(value) { try { localStorage.setItem(KEY_STORE, value); } catch { /* private mode: keep for this page only */ } },
    clear() { try { localStorage.removeItem(KEY_STORE); } catch { /* nothing stored */ } },
  };
  let sessionKey = null;
  const currentKey = () => store.get() || sessionKey;

  function say(text, kind = "info") {
    const box = $("#message");
    box.textContent = text || "";
    box.dataset.kind = kind;
    box.hidden = !text;
  }

  // --- the API -------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  let keyPrompt = null;

  // `as`: how to read the body ("json", "text" or "blob"); JSON for JSON, text otherwise.
  async function api(path, { accept = "application/json", signal, as = accept === "application/json" ? "json" : "text" } = {}) {
    for (;;) {
      const key = currentKey();
      const headers = { Accept: accept };
      if (key) headers.Authorization = `Bearer ${key}`;
      const response = await fetch(path, { headers, signal, credentials: "same-origin" });
      if (response.status === 401) {
        await askForKey(key ? "That key was not accepted (unknown or revoked). Enter another one." : undefined);
        continue;
      }
      if (!response.ok) {
        let detail = response.statusText;
        try {
          detail = (await response.json()).detail || detail;
        } catch { /* not a problem document */ }
        throw new ApiError(response.status, detail);
      }
      return response[as]();
    }
  }

  function askForKey(reason) {
    if (keyPrompt) return keyPrompt;
    keyPrompt = new Promise((resolve) => {
      const dialog = $("#key-dialog");
      $("#key-reason").textContent = reason || "Reads on this server need an access key. It is kept in this browser only.";
      $("#key-input").value = "";
      const done = () => {
        dialog.removeEventListener("close", done);
        const value = $("#key-input").value.trim();
        if (dialog.returnValue === "ok" && value) {
          store.set(value);
          sessionKey = value;
          updateKeyButton();
          keyPrompt = null;
          resolve();
        } else {
          say("Reading this negotiation needs an access key.", "error");
          updateKeyButton();
          // Stay pending until a key is given through the header button.
          dialog.addEventListener("close", done);
        }
      };
      dialog.addEventListener("close", done);
      if (!dialog.open) dialog.showModal();
    });
    return keyPrompt;
  }

  function updateKeyButton() {
    $("#key-button").textContent = currentKey() ? "Access key: set" : "Access key";
  }

  const base = () => `/v1/negotiations/${encodeURIComponent(app.negotiation)}`;

  function query(params) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) if (value) search.set(name, value);
    const text = search.toString();
    return text ? `?${text}` : "";
  }

  async function allNegotiations() {
    const items = [];
    let cursor = null;
    do {
      const page = await api(`/v1/negotiations${query({ limit: "100", cursor })}`);
      items.push(...page.items);
      cursor = page.next;
    } while (cursor);
    return items;
  }

  async function allEvents() {
    const items = [];
    let cursor = null;
    do {
      const page = await api(`${base()}/timeline${query({ limit: "1000", known_at: app.knownAt, cursor })}`);
      items.push(...page.items);
      cursor = page.next;
    } while (cursor);
    return items;
  }

  // --- the URL -------------------------------------------------------------------------------

  function readUrl() {
    const params = new URLSearchParams(location.search);
    app.negotiation = params.get("negotiation");
    const asOf = params.get("as_of");
    const knownAt = params.get("known_at");
    app.asOf = isDate(asOf) ? asOf : null;
    app.knownAt = knownAt || null;
    if (asOf && !app.asOf) app.badUrl = `as_of=${asOf} is not a date (YYYY-MM-DD). Pick a date above.`;
    else if (knownAt && Number.isNaN(Date.parse(knownAt.replace(" ", "+")))) {
      app.knownAt = null;
      app.badUrl = `known_at=${knownAt} is not a time (e.g. 2025-08-01T12:00:00Z). Pick a date, or a time under "Known at".`;
    }
    app.legalBasis = params.get("legal_basis") || "";
    app.filters.party = params.get("party") || "";
    app.filters.topic = params.get("topic") || "";
    if (params.get("kinds")) {
      const wanted = params.get("kinds").split(",");
      app.filters.kinds = new Set(LANES.map((lane) => lane.id).filter((id) => wanted.includes(id)));
    }
  }

  function writeUrl() {
    const kinds = [...app.filters.kinds];
    const params = {
      negotiation: app.negotiation,
      as_of: app.asOf,
      known_at: app.knownAt,
      legal_basis: app.legalBasis,
      party: app.filters.party,
      topic: app.filters.topic,
      kinds: kinds.length === LANES.length ? "" : kinds.join(","),
    };
    const url = `${location.pathname}${query(params)}`;
    if (url !== `${location.pathname}${location.search}`) history.replaceState(null, "", url);
    const title = app.info ? app.info.title : "Negotiation timeline";
    document.title = `${title} — as of ${longDate(app.asOf)} — Parley`;
  }

  // --- controls ------------------------------------------------------------------------------

  function knownAtToInput(value) {
    if (!value) return "";
    const time = Date.parse(value.replace(" ", "+"));
    return Number.isNaN(time) ? "" : new Date(time).toISOString().slice(0, 19);
  }

  function setRange(start, end) {
    app.range = { start, end };
    const slider = $("#as-of-slider");
    slider.min = "0";
    slider.max = String(toDays(end) - toDays(start));
    $("#as-of-date").min = start;
    $("#as-of-date").max = end;
    syncControls();
  }

  function syncControls() {
    if (app.range) $("#as-of-slider").value = String(toDays(app.asOf) - toDays(app.range.start));
    $("#as-of-slider").setAttribute("aria-valuetext", longDate(app.asOf));
    $("#as-of-date").value = app.asOf;
    $("#as-of-label").textContent = longDate(app.asOf);
    $("#known-at").value = knownAtToInput(app.knownAt);
    $("#legal-basis").value = app.legalBasis;
  }

  function setAsOf(day, { now = false } = {}) {
    if (!isDate(day) || day === app.asOf) return;
    app.asOf = day;
    if (app.blocked) {
      unblock();
      return;
    }
    syncControls();
    writeUrl();
    placeCursors();
    markFuture();
    clearTimeout(app.stateTimer);
    if (now) loadState();
    else app.stateTimer = setTimeout(loadState, 90);
  }

  // A date or a time picked after an address that could not be shown: read everything for it.
  function unblock() {
    app.blocked = false;
    app.badUrl = null;
    if (!app.asOf) app.asOf = defaultAsOf(app.info);
    syncControls();
    writeUrl();
    reloadAll();
  }

  function bindControls() {
    const slider = $("#as-of-slider");
    slider.addEventListener("input", () => {
      if (app.range) setAsOf(fromDays(toDays(app.range.start) + Number(slider.value)));
    });
    slider.addEventListener("keydown", (event) => {
      if (event.key === "PageUp" || event.key === "PageDown") {
        event.preventDefault();
        const next = Number(slider.value) + (event.key === "PageUp" ? 30 : -30);
        slider.value = String(Math.max(0, Math.min(Number(slider.max), next)));
        slider.dispatchEvent(new Event("input"));
      }
    });
    $("#as-of-date").addEventListener("change", (event) => {
      const value = event.target.value;
      if (isDate(value)) {
        if (app.range && (value < app.range.start || value > app.range.end)) {
          setRange(value < app.range.start ? value : app.range.start, value > app.range.end ? value : app.range.end);
          renderTimeline();
        }
        setAsOf(value, { now: true });
      }
    });
    $("#known-at").addEventListener("change", (event) => {
      const value = event.target.value;
      app.knownAt = value ? `${value.length === 16 ? `${value}:00` : value}Z` : null;
      if (app.blocked) return unblock();
      writeUrl();
      reloadAll();
    });
    $("#known-at-clear").addEventListener("click", () => {
      app.knownAt = null;
      if (app.blocked) return unblock();
      syncControls();
      writeUrl();
      reloadAll();
    });
    $("#legal-basis").addEventListener("change", (event) => {
      app.legalBasis = event.target.value;
      writeUrl();
      loadState();
      loadChart();
    });
    $("#filter-party").addEventListener("change", (event) => {
      app.filters.party = event.target.value;
      writeUrl();
      renderTimeline();
    });
    $("#filter-topic").addEventListener("change", (event) => {
      app.filters.topic = event.target.value;
      writeUrl();
      renderTimeline();
    });
    $("#negotiation").addEventListener("change", (event) => {
      app.negotiation = event.target.value;
      app.asOf = null;
      app.info = null;
      app.badUrl = null;
      writeUrl();
      start();
    });
    $("#key-button").addEventListener("click", () => {
      const dialog = $("#key-dialog");
      $("#key-reason").textContent = "Reads on this server may need an access key. It is kept in this browser only.";
      $("#key-input").value = "";
      const done = () => {
        dialog.removeEventListener("close", done);
        const value = $("#key-input").value.trim();
        if (dialog.returnValue === "ok" && value && !keyPrompt) {
          store.set(value);
          sessionKey = value;
          updateKeyButton();
          reloadAll();
        }
      };
      dialog.addEventListener("close", done);
      dialog.showModal();
    });
    $("#key-cancel").addEventListener("click", () => $("#key-dialog").close("cancel"));
    $("#key-forget").addEventListener("click", () => {
      store.clear();
      sessionKey = null;
      $("#key-input").value = "";
      updateKeyButton();
      say("The stored key is forgotten.");
    });
    for (const button of document.querySelectorAll(".downloads button")) {
      button.addEventListener("click", () => { if (app.negotiation && !app.blocked && app.info) download(button.dataset.format); });
    }
    $("#detail-close").addEventListener("click", () => $("#detail").close());
    $("#detail").addEventListener("click", (event) => {
      if (event.target === event.currentTarget) event.currentTarget.close();
    });
    let resized = null;
    window.addEventListener("resize", () => {
      clearTimeout(resized);
      resized = setTimeout(renderTimeline, 150);
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") hideTip(true);
    });
    document.addEventListener("click", (event) => {
      if (!event.target.closest(".chart-tip, .step")) hideTip(true);
    });
  }

  // --- the state panel -----------------------------------------------------------------------

  async function loadState() {
    if (!app.asOf || !app.info) return; // no negotiation read (an unknown one): nothing to ask
    if (app.stateRequest) app.stateRequest.abort();
    const controller = new AbortController();
    app.stateRequest = controller;
    const asOf = app.asOf;
    $("#state").setAttribute("aria-busy", "true");
    loadDisputes(asOf, controller.signal);
    try {
      const state = await api(`${base()}/state${query({ as_of: asOf, known_at: app.knownAt, legal_basis: app.legalBasis })}`, {
        signal: controller.signal,
      });
      if (controller.signal.aborted) return;
      app.lastState = state;
      renderState(state);
      if (!window.parleyTimings.firstState) window.parleyTimings.firstState = performance.now();
    } catch (error) {
      if (error.name === "AbortError") return;
      say(`Could not read the state: ${error.message}`, "error");
    } finally {
      if (app.stateRequest === controller) app.stateRequest = null;
    }
  }

  function grade(source) {
    if (!source || (!source.reliability && !source.credibility)) return null;
    const code = `${source.reliability || "?"}${source.credibility || "?"}`;
    const meaning = [RELIABILITY[source.reliability], CREDIBILITY[source.credibility]].filter(Boolean).join(", ");
    return h("abbr", { class: "grade", title: `${source.name}: ${meaning} (Admiralty grade)` }, code);
  }

  function measureName(id) {
    return app.measureNames?.get(id) || id;
  }

  function sourcesOf(state, because) {
    const first = (because || []).map((id) => state.sources?.[id]).find(Boolean);
    return first ? grade(first) : null;
  }

  function eventLink(id, text) {
    return h("button", { type: "button", class: "link", onclick: () => openEvent(id) }, text);
  }

  function rateItem(state, rate) {
    const name = measureName(rate.measure_id);
    const meta = [
      rate.legal_basis, `since ${longDate(rate.since)}`,
      rate.lapse_rate_pct !== null && rate.lapse_rate_pct !== undefined ? `${pct(rate.lapse_rate_pct)} on lapse` : null,
      rate.all_destinations ? "every destination" : null,
      ...(rate.exemptions || []).map((exemption) => `except ${exemption.description} since ${longDate(exemption.since)}`),
    ].filter(Boolean).join(" · ");
    return h(
      "li",
      { class: rate.coverage === "all" ? "counted" : "partial", title: `${name} — ${pct(rate.rate_pct)}, ${meta}` },
      h("span", { class: "rate" }, pct(rate.rate_pct)),
      h("span", { class: "what" }, eventLink(rate.because[0], name)),
      sourcesOf(state, rate.because),
    );
  }

  function renderDirection(state, direction) {
    const key = `${direction.imposed_by}->${direction.applies_to}`;
    const isCounted = (rate) => (rate.counted === undefined ? rate.coverage === "all" : rate.counted);
    const counted = direction.measures.filter(isCounted);
    const partial = direction.measures.filter((rate) => !isCounted(rate));
    const others = (direction.not_in_force || []).map((line) =>
      h("li", { class: `not-in-force status-${line.status}` }, h("span", { class: "rate" }, line.rate_pct === null ? "—" : pct(line.rate_pct)),
        h("span", { class: "what" }, eventLink(line.because?.[0], measureName(line.measure_id)),
          h("span", { class: "meta" }, [words(line.status || "not in force"), line.since ? `since ${longDate(line.since)}` : ""].filter(Boolean).join(" ")))));
    const pending = direction.pending.map((change) =>
      h("li", { class: "pending" }, h("span", { class: "rate" }, pct(change.rate_pct)),
        h("span", { class: "what" }, eventLink(change.because?.[0] || change.event_id, measureName(change.measure_id)),
          h("span", { class: "meta" }, `${words(change.status || "")} from ${longDate(change.effective_from)}`))));
    const lapse = direction.on_truce_lapse;
    return h(
      "article",
      { class: "direction", dataset: { direction: key } },
      h("div", { class: "direction-head" },
        h("h3", {}, `${direction.imposed_by} → ${direction.applies_to}`),
        h("p", { class: "total" }, h("span", { class: "total-value" }, Number(direction.total_additional_pct.toFixed(2))), h("span", { class: "unit" }, "%"),
          h("span", { class: "muted" }, " on all goods"))),
      counted.length ? h("ul", { class: "rates" }, counted.map((rate) => rateItem(state, rate))) : h("p", { class: "muted none" }, "No duty on all goods in force."),
      partial.length ? [h("h4", {}, "Listed products only (not in the total)"), h("ul", { class: "rates" }, partial.map((rate) => rateItem(state, rate)))] : null,
      pending.length ? [h("h4", {}, "Pending"), h("ul", { class: "rates" }, pending)] : null,
      others.length ? [h("h4", {}, "Not in force (threatened, announced, removed, expired, invalidated)"), h("ul", { class: "rates" }, others)] : null,
      lapse
        ? h("p", { class: "lapse" }, `If the truce lapses: ${pct(lapse.total_additional_pct)} from ${longDate(lapse.applies_from)}`)
        : null,
    );
  }

  function renderTruce(truce) {
    if (!truce || truce.status === "none") return h("p", { class: "muted" }, "No truce agreed by this date.");
    const bits = [];
    if (truce.expires_on) bits.push(`expires ${longDate(truce.expires_on)}`);
    if (truce.days_remaining !== null && truce.days_remaining !== undefined) bits.push(`${truce.days_remaining} days left`);
    if (truce.ended_on) bits.push(`ended ${longDate(truce.ended_on)}`);
    return h(
      "div",
      { class: "truce" },
      h("p", {}, h("span", { class: `badge status-${truce.status}` }, truce.status), " ",
        eventLink(truce.because[0], truce.truce_id || "truce"), " ", h("span", { class: "truce-when" }, bits.join(" · "))),
      truce.effective_from ? h("p", { class: "muted" }, `In effect from ${longDate(truce.effective_from)}; suspends ${truce.suspends.map(measureName).join(", ") || "nothing named"}.`) : null,
      truce.extensions.length
        ? h("ul", { class: "plain" }, truce.extensions.map((ext) =>
          h("li", {}, "Extended on ", eventLink(ext.event_id, longDate(ext.occurred_on)), ` to ${longDate(ext.due_on)}`)))
        : null,
    );
  }

  function renderDeadlines(deadlines) {
    const upcoming = deadlines.upcoming.slice(0, 5);
    if (!upcoming.length) return h("p", { class: "muted" }, "No deadline ahead.");
    return h("ul", { class: "plain deadlines" }, upcoming.map((deadline) =>
      h("li", {},
        h("strong", {}, longDate(deadline.due_on)), ` (${deadline.days_remaining} days) `,
        eventLink(deadline.because[deadline.because.length - 1] || deadline.because[0], deadline.title || deadline.deadline_id),
        deadline.original_due_on && deadline.original_due_on !== deadline.due_on
          ? h("span", { class: "muted" }, ` · first due ${longDate(deadline.original_due_on)}, extended ${deadline.extensions.length}×`)
          : null)));
  }

  function renderIssues(issues) {
    const open = issues.issues.filter((issue) => !["resolved", "dropped"].includes(issue.status));
    if (!open.length) return h("p", { class: "muted" }, "No open issue.");
    return h("ul", { class: "plain issues" }, open.map((issue) =>
      h("li", {}, eventLink(issue.because[0], issue.title || issue.issue_id), " ",
        h("span", { class: `badge status-${issue.status}` }, words(issue.status)),
        issue.category ? h("span", { class: "muted" }, ` ${issue.category}`) : null)));
  }

  function renderOtherMeasures(measures) {
    const inForce = measures.measures.filter((measure) => measure.in_force && measure.kind !== "tariff");
    if (!inForce.length) return null;
    return h("details", { class: "other-measures" },
      h("summary", {}, `Other measures in force (${inForce.length})`),
      h("ul", { class: "plain" }, inForce.map((measure) =>
        h("li", {}, h("span", { class: "tag" }, words(measure.kind)), " ", `${measure.imposed_by} → ${measure.applies_to}: `,
          eventLink(measure.because[0], measure.name || measure.measure_id)))));
  }

  function coverageBanner(coverage) {
    if (!coverage || !coverage.beyond_record) return null;
    const how = coverage.declared ? "is kept complete through" : "ends with an event of";
    return h("p", { class: "beyond-record", role: "note" },
      h("strong", {}, "Past the end of the record. "),
      `This negotiation's record ${how} ${longDate(coverage.record_through)}: what is shown for ${longDate(app.asOf)} carries the record forward; it is not known fact.`);
  }

  function renderState(state) {
    $("#beyond-record").replaceChildren(...[coverageBanner(state.coverage)].filter(Boolean));
    $("#beyond-record").hidden = !state.coverage?.beyond_record;
    $("#state-date").textContent = longDate(state.as_of);
    $("#context-date").textContent = longDate(state.as_of);
    const known = app.knownAt ? h("p", { class: "muted known-note" }, `As recorded by ${app.knownAt}`) : null;
    const directions = state.tariffs.directions;
    const basis = state.tariffs.legal_basis ? h("p", { class: "muted" }, `Legal basis: ${state.tariffs.legal_basis}`) : null;
    $("#state-body").replaceChildren(h("div", {}, known, basis,
      directions.length ? h("div", { class: "directions" }, directions.map((d) => renderDirection(state, d))) : h("p", { class: "muted" }, "No tariff recorded.")));
    $("#context-body").replaceChildren(
      h("div", {}, h("h3", { class: "section" }, "Truce"), renderTruce(state.truce)),
      h("div", {}, h("h3", { class: "section" }, "Next deadlines"), renderDeadlines(state.deadlines)),
      h("div", {}, h("h3", { class: "section" }, "Open issues"), renderIssues(state.issues), renderOtherMeasures(state.measures)),
    );
    $("#state").dataset.asOf = state.as_of;
    $("#state").setAttribute("aria-busy", "false");
  }

  // --- disputed claims -----------------------------------------------------------------------

  async function loadDisputes(asOf, signal) {
    $("#disputes").setAttribute("aria-busy", "true");
    try {
      const items = [];
      let cursor = null;
      do {
        const page = await api(`${base()}/claims${query({ as_of: asOf, known_at: app.knownAt, limit: "1000", cursor })}`, { signal });
        items.push(...page.items);
        cursor = page.next;
      } while (cursor);
      if (signal.aborted) return;
      app.lastClaims = { asOf, items };
      renderDisputes(app.lastClaims);
    } catch (error) {
      if (error.name === "AbortError") return;
      $("#disputes-body").replaceChildren(h("p", { class: "muted" }, `The claims are not available: ${error.message}`));
      $("#disputes").setAttribute("aria-busy", "false");
    }
  }

  // Who holds a claim: a speaker as reported by one source (the API's rule, projections/claims.py `_voice`).
  const voiceOf = (claim) => `${claim.speaker.toLowerCase()}\u0000${claim.source ? claim.source.id || claim.source.name.toLowerCase() : ""}`;

  function heldBy(subject) {
    const held = new Map();
    for (const claim of subject.values) held.set(voiceOf(claim), claim); // in world order: the latest stays
    return held;
  }

  // Disputed: voices hold different values (settled or not), or the record contradicted what was claimed.
  function isDispute(subject) {
    const values = new Set([...heldBy(subject).values()].map((claim) => claim.value));
    return subject.status === "disputed" || subject.status === "contradicted" || values.size > 1;
  }

  function claimSource(source) {
    if (!source) return h("p", { class: "claim-source muted" }, "No source named.");
    const name = source.url
      ? h("a", { href: source.url, target: "_blank", rel: "noopener noreferrer external" }, source.name)
      : source.name;
    return h("p", { class: "claim-source" }, name, " ", grade(source) || h("span", { class: "muted" }, "(not graded)"),
      source.title ? h("span", { class: "muted" }, ` “${source.title}”`) : null,
      source.published_at ? h("span", { class: "muted" }, `, ${longDate(source.published_at)}`) : null);
  }

  function claimItem(claim, held) {
    const now = held.get(voiceOf(claim));
    return h("li", { class: "claim", dataset: { eventId: claim.event_id } },
      h("p", { class: "claim-who" }, eventLink(claim.event_id, claim.speaker), claim.party ? ` (${claim.party})` : "",
        h("span", { class: "muted" }, ` · ${longDate(claim.occurred_on)}`),
        claim.verdict ? [" ", h("span", { class: `badge verdict-${claim.verdict}` }, claim.verdict)] : null),
      now !== claim ? h("p", { class: "claim-later muted" }, `Later said ${words(now.value)} (${longDate(now.occurred_on)}).`) : null,
      claimSource(claim.source));
  }

  function settlement(subject) {
    if (!subject.settled_by) {
      return h("p", { class: "settlement open" }, h("strong", {}, "Not settled"), ` by ${longDate(app.lastClaims.asOf)}: nothing on record decides it yet.`);
    }
    const event = app.byId.get(subject.settled_by);
    const how = subject.status === "confirmed" ? "some claims matched it" : "no claim matched it";
    return h("p", { class: "settlement" },
      h("strong", {}, `Settled: ${words(subject.settled_value)}`), ` on ${longDate(subject.settled_on)} (${how}), by `,
      eventLink(subject.settled_by, event ? `${longDate(event.occurred_on)}: ${event.display.summary}` : "the event on record"));
  }

  function renderDispute(subject) {
    const held = heldBy(subject);
    const sides = new Map();
    for (const claim of subject.values) {
      if (!sides.has(claim.value)) sides.set(claim.value, []);
      sides.get(claim.value).push(claim);
    }
    return h("article", { class: "dispute", dataset: { subject: subject.subject, status: subject.status } },
      h("div", { class: "dispute-head" }, h("h3", {}, h("code", {}, subject.subject)),
        h("span", { class: `badge status-${subject.status}` }, subject.status)),
      h("div", { class: "sides" }, [...sides].map(([value, claims]) =>
        h("section", { class: "side", dataset: { value }, "aria-label": `Claimed: ${words(value)}` },
          h("h4", {}, words(value)),
          h("ul", { class: "plain claims" }, claims.map((claim) => claimItem(claim, held)))))),
      settlement(subject));
  }

  function renderDisputes(claims) {
    $("#disputes-date").textContent = longDate(claims.asOf);
    const disputes = claims.items.filter(isDispute);
    const others = claims.items.length - disputes.length;
    $("#disputes-body").replaceChildren(
      ...(disputes.length ? disputes.map(renderDispute) : [h("p", { class: "muted none" }, "No disputed claim by this date.")]),
      ...(others ? [h("p", { class: "muted others" }, `${others} other claim subject${others === 1 ? "" : "s"}: one voice, or agreed by all.`)] : []),
    );
    $("#disputes").dataset.asOf = claims.asOf;
    $("#disputes").setAttribute("aria-busy", "false");
  }

  // --- the chart -----------------------------------------------------------------------------

  function chartPath(extension) {
    return `${base()}/charts/tariffs.${extension}${query({ known_at: app.knownAt, legal_basis: app.legalBasis })}`;
  }

  // A plain link would not carry the stored key (a 401 where reads need one): fetch the file, then save it.
  async function download(extension) {
    const button = $(`#chart-${extension}`);
    if (button.getAttribute("aria-busy") === "true") return;
    button.setAttribute("aria-busy", "true");
    try {
      const blob = await api(chartPath(extension), { accept: extension === "svg" ? "image/svg+xml" : "image/png", as: "blob" });
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: `${app.negotiation}-tariffs.${extension}`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (error) {
      say(`Could not download the chart as ${extension.toUpperCase()}: ${error.message}`, "error");
    } finally {
      button.removeAttribute("aria-busy");
    }
  }

  async function loadChart() {
    const box = $("#chart");
    try {
      const text = await api(chartPath("svg"), { accept: "image/svg+xml" });
      const parsed = new DOMParser().parseFromString(text, "image/svg+xml");
      const svg = document.importNode(parsed.documentElement, true);
      svg.removeAttribute("width");
      svg.removeAttribute("height");
      for (const step of svg.querySelectorAll(".step")) {
        const title = step.querySelector("title");
        step.setAttribute("tabindex", "0");
        step.setAttribute("role", "button");
        step.setAttribute("aria-label", title ? title.textContent.split("\n")[0] : "tariff step");
        if (title) title.remove();
      }
      box.replaceChildren(svg);
      placeCursors();
      bindChart(svg);
      const line = svg.querySelector(".as-of-line");
      if (line) reveal(box, (Number(line.getAttribute("x1")) / svg.viewBox.baseVal.width) * svg.getBoundingClientRect().width);
    } catch (error) {
      box.replaceChildren(h("p", { class: "muted" }, `The chart is not available: ${error.message}`));
    }
  }

  let tipPinned = false;

  function hideTip(force) {
    if (tipPinned && !force) return;
    tipPinned = false;
    $("#chart-tip").hidden = true;
  }

  function showTip(step, pin, anchor) {
    const tip = $("#chart-tip");
    const data = step.dataset;
    const [by, to] = data.direction.split("->");
    const measures = JSON.parse(data.measures || "[]").sort((a, b) => (a.coverage === "all" ? 0 : 1) - (b.coverage === "all" ? 0 : 1));
    const until = data.to >= ($("#chart svg")?.dataset.end || "") ? "on" : `to ${longDate(data.to)}`;
    const events = (data.because || "").split(" ").filter(Boolean);
    tip.replaceChildren(
      h("p", { class: "tip-head" }, h("strong", {}, `${by} → ${to}: ${data.total}%`), ` from ${longDate(data.from)} ${until}`),
      measures.length
        ? h("ul", { class: "plain" }, measures.map((m) =>
          h("li", { class: m.coverage === "all" ? "" : "partial" }, `${pct(m.rate_pct)} ${m.name}`,
            h("span", { class: "muted" }, ` ${m.legal_basis || ""}${m.coverage === "all" ? "" : " · listed products, not in total"}`))))
        : h("p", { class: "muted" }, "No additional tariff in force."),
      events.length
        ? h("ul", { class: "plain tip-events" }, events.map((id) => {
          const event = app.byId.get(id);
          return h("li", {}, eventLink(id, event ? `${longDate(event.occurred_on)}: ${event.display.summary}` : id));
        }))
        : null,
    );
    tip.hidden = false;
    tipPinned = pin;
    const panel = $("#chart-panel").getBoundingClientRect();
    const box = anchor.getBoundingClientRect();
    const left = Math.min(Math.max(box.left - panel.left, 8), panel.width - Math.min(360, panel.width - 16) - 8);
    tip.style.left = `${left}px`;
    tip.style.top = `${box.bottom - panel.top + 8}px`;
  }

  function bindChart(svg) {
    for (const step of svg.querySelectorAll(".step")) {
      const rect = step.querySelector("rect");
      step.addEventListener("mouseenter", () => { if (!tipPinned) showTip(step, false, rect); });
      step.addEventListener("mouseleave", () => hideTip(false));
      step.addEventListener("focus", () => showTip(step, false, rect));
      step.addEventListener("blur", (event) => { if (!$("#chart-tip").contains(event.relatedTarget)) hideTip(false); });
      step.addEventListener("click", () => showTip(step, true, rect));
      step.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          showTip(step, true, rect);
          $("#chart-tip button")?.focus();
        }
      });
    }
  }

  // --- the timeline --------------------------------------------------------------------------

  function partiesOf(event) {
    const found = new Set();
    const add = (value) => { if (typeof value === "string" && value) found.add(value); };
    add(event.imposed_by); add(event.applies_to); add(event.by); add(event.to);
    if (event.speaker) add(event.speaker.party);
    for (const party of event.parties || []) add(party);
    if (event.delegations) Object.keys(event.delegations).forEach(add);
    if (event.type === "negotiation_opened") found.clear();
    return found;
  }

  // Who acts: the imposing party, the speaker's, the one demanding or conceding; every party of a joint act.
  function actorsOf(event) {
    const parties = event.type === "measure_changed" ? [event.imposed_by]
      : event.type === "statement_made" ? [event.speaker?.party]
        : ["demand_made", "concession_made"].includes(event.type) ? [event.by] : [...partiesOf(event)];
    return new Set(parties.filter(Boolean));
  }

  function partyClass(event) {
    const list = [...actorsOf(event)];
    return list.length === 1 && ["US", "CN"].includes(list[0]) ? `party-${list[0]}` : "party-other";
  }

  // A correction's replacement stands in for its target (the original stays open in the detail).
  function believed(events) {
    const amendments = new Map();
    for (const event of events) {
      if (event.type === "event_corrected" || event.type === "event_retracted") {
        if (!amendments.has(event.target)) amendments.set(event.target, []);
        amendments.get(event.target).push(event);
      }
    }
    return events.map((event) => {
      const changes = amendments.get(event.event_id) || [];
      let shown = { ...event, amended: changes.length > 0 };
      for (const change of changes) {
        if (change.type === "event_retracted") shown = { ...shown, retracted: true };
        else shown = { ...shown, ...change.replacement, event_id: event.event_id, type: event.type, amended: true };
      }
      return shown;
    });
  }

  function laneOf(event) {
    if (event.type === "event_corrected" || event.type === "event_retracted") {
      const target = app.byId.get(event.target);
      return target ? target.display.lane : "measures";
    }
    return event.display.lane;
  }

  function passes(event) {
    const { party, topic, kinds } = app.filters;
    if (!kinds.has(laneOf(event))) return false;
    if (party) {
      // events that name no party (deadlines, issues) stay: they concern every side
      const parties = actorsOf(event.type.startsWith("event_") ? app.byId.get(event.target) || event : event);
      if (parties.size && !parties.has(party)) return false;
    }
    if (topic) {
      const about = [...(event.topics || []), ...(event.about || [])];
      if (event.measure_id) about.push(event.measure_id);
      if (event.issue_id) about.push(event.issue_id);
      if (!about.includes(topic)) return false;
    }
    return true;
  }

  // The same clamp as the server's default chart range (service/web/chart.py, default_range): retracted
  // events name no date, the end is at most five years past the last event (or today, when earlier),
  // and the range keeps its latest 3,660 days, so one far-off date cannot make the page draw centuries.
  // Unlike the chart, the range always reaches today: the slider must be able to show the present.
  const MAX_RANGE_DAYS = 3660;
  const LOOKAHEAD_DAYS = 5 * 365 + 1;

  function computeRange(events) {
    let first = null;
    let lastOccurred = null;
    let named = null;
    for (const event of events) {
      if (event.retracted_by) continue;
      if (!first || event.occurred_on < first) first = event.occurred_on;
      if (!lastOccurred || event.occurred_on > lastOccurred) lastOccurred = event.occurred_on;
      for (const field of ["occurred_on", "effective_from", "effective_until", "due_on", "starts_on", "ends_on"]) {
        if (isDate(event[field]) && (!named || event[field] > named)) named = event[field];
      }
    }
    if (!first) return { start: app.asOf, end: app.asOf };
    const today = todayIso();
    const base = lastOccurred < (today > first ? today : first) ? lastOccurred : (today > first ? today : first);
    const wanted = addDays(named, 30);
    const cap = addDays(base, LOOKAHEAD_DAYS);
    const clamped = wanted < cap ? wanted : cap;
    const end = clamped > today ? clamped : today;
    const earliest = addDays(end, -MAX_RANGE_DAYS);
    return { start: first > earliest ? first : earliest, end };
  }

  function fillFilters(events) {
    const parties = new Set(app.info?.parties || []);
    events.forEach((event) => partiesOf(event).forEach((party) => parties.add(party)));
    app.parties = [...parties].sort();
    const partySelect = $("#filter-party");
    partySelect.replaceChildren(h("option", { value: "" }, "All parties"), ...app.parties.map((p) => h("option", { value: p }, p)));
    partySelect.value = app.filters.party;
    const counts = new Map();
    events.forEach((event) => (event.topics || []).forEach((topic) => counts.set(topic, (counts.get(topic) || 0) + 1)));
    const topics = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const topicSelect = $("#filter-topic");
    topicSelect.replaceChildren(h("option", { value: "" }, "All topics"), ...topics.map(([t, n]) => h("option", { value: t }, `${t} (${n})`)));
    topicSelect.value = app.filters.topic;
    const kinds = $("#filter-kinds");
    kinds.replaceChildren(h("legend", {}, "Kinds"), ...LANES.map((lane) => {
      const box = h("input", {
        type: "checkbox", value: lane.id, checked: app.filters.kinds.has(lane.id),
        onchange: (event) => {
          if (event.target.checked) app.filters.kinds.add(lane.id);
          else app.filters.kinds.delete(lane.id);
          writeUrl();
          renderTimeline();
        },
      });
      return h("label", { class: `kind kind-${lane.id}` }, box, ` ${lane.label}`);
    }));
    const bases = new Set();
    events.forEach((event) => { if (event.type === "measure_changed" && event.kind === "tariff" && event.legal_basis) bases.add(event.legal_basis); });
    if (app.legalBasis) bases.add(app.legalBasis);
    const basis = $("#legal-basis");
    basis.replaceChildren(h("option", { value: "" }, "All legal bases"), ...[...bases].sort().map((b) => h("option", { value: b }, b)));
    basis.value = app.legalBasis;
  }

  function eventLabel(event) {
    return `${longDate(event.occurred_on)} · ${event.display.summary}`;
  }

  function placeRows(items, gap) {
    // items sorted by x; each gets the first row where it does not overlap the previous one
    const rows = [];
    for (const item of items) {
      let row = rows.findIndex((right) => item.x - right >= gap);
      if (row === -1) { row = rows.length; rows.push(0); }
      rows[row] = item.x + (item.width || 0);
      item.row = row;
    }
    return rows.length;
  }

  function renderTimeline() {
    const box = $("#timeline");
    if (!app.range || !app.events.length) return;
    const shown = believed(app.events).filter(passes);
    const { start, end } = app.range;
    const span = toDays(end) - toDays(start) + 1;
    const labelWidth = box.clientWidth < 560 ? 92 : 150;
    const ppd = Math.max((box.clientWidth - labelWidth - PAD - 130) / span, 2.2);
    const width = Math.ceil(span * ppd) + PAD + 130;
    const x = (day) => PAD + (toDays(day) - toDays(start) + 0.5) * ppd;
    const ticks = [];
    const drawn = new Set();
    const axis = h("div", { class: "axis", style: { width: `${width}px` } });
    for (let day = start.slice(0, 8) + "01"; day <= end; day = addDays(day.slice(0, 8) + "28", 5).slice(0, 8) + "01") {
      if (day < start) continue;
      const [year, month] = day.split("-").map(Number);
      axis.append(h("span", { class: "tick", style: { left: `${x(day)}px` } }, month === 1 || ticks.length === 0 ? `${MONTHS[month - 1]} ${year}` : MONTHS[month - 1]));
      ticks.push(day);
    }
    const rows = [h("div", { class: "lane axis-row" }, h("div", { class: "lane-label", style: { width: `${labelWidth}px` } }, ""), axis)];
    for (const lane of LANES) {
      if (!app.filters.kinds.has(lane.id)) continue;
      const events = shown.filter((event) => laneOf(event) === lane.id);
      const track = h("div", { class: `track track-${lane.id}`, style: { width: `${width}px` } });
      let top = 6;
      if (lane.id === "truces") top = drawTruces(track, events, x, top, drawn);
      if (lane.id === "rounds") top = drawRounds(track, events, x, top, drawn);
      if (lane.id === "deadlines") {
        top = drawDeadlines(track, events, x, top, drawn);
      } else {
        const markers = events
          .filter((event) => !drawn.has(event.event_id))
          .map((event) => ({ event, x: x(event.occurred_on) }))
          .sort((a, b) => a.x - b.x);
        const count = placeRows(markers, 14);
        for (const { event, x: left, row } of markers) track.append(marker(event, left, top + row * 15));
        top += count * 15;
      }
      track.style.height = `${Math.max(top + 6, 34)}px`;
      rows.push(h("div", { class: `lane lane-${lane.id}` },
        h("div", { class: "lane-label", style: { width: `${labelWidth}px` } }, lane.label, h("span", { class: "count" }, ` ${events.length}`)),
        track));
    }
    if (rows.length === 1) rows.push(h("p", { class: "muted" }, "No kind selected."));
    const canvas = h("div", { class: "canvas", style: { width: `${width + labelWidth}px` } }, rows,
      h("div", { class: "cursor", id: "timeline-cursor", "aria-hidden": "true", style: { left: `${labelWidth}px` } }));
    canvas.dataset.labelWidth = String(labelWidth);
    canvas.dataset.ppd = String(ppd);
    const scroller = h("div", { class: "scroller" }, canvas);
    const previous = box.querySelector(".scroller");
    box.replaceChildren(scroller);
    placeCursors(true);
    if (previous) scroller.scrollLeft = previous.scrollLeft;
    else reveal(scroller, parseFloat($("#timeline-cursor").style.left) || 0);
    markFuture();
  }

  function marker(event, left, top, extra = "") {
    const classes = ["ev", `type-${event.type}`, partyClass(event), extra];
    if (event.retracted) classes.push("retracted");
    if (event.amended) classes.push("amended");
    const button = h("button", {
      type: "button",
      class: classes.join(" "),
      style: { left: `${left}px`, top: `${top}px` },
      title: eventLabel(event) + (event.retracted ? " (retracted)" : event.amended ? " (corrected)" : ""),
      "aria-label": eventLabel(event),
      dataset: { eventId: event.event_id, occurred: event.occurred_on, type: event.type, topics: (event.topics || []).join(" ") },
      onclick: () => openEvent(event.event_id),
    });
    return button;
  }

  function drawRounds(track, events, x, top, drawn) {
    const latest = new Map();
    for (const event of events) {
      if (event.round_id && event.starts_on) latest.set(event.round_id, event);
    }
    if (!latest.size) return top;
    const bands = [...latest.values()].map((event) => ({
      event, x: x(event.starts_on) - 3, width: Math.max(x(event.ends_on || event.starts_on) - x(event.starts_on) + 6, 10),
    })).sort((a, b) => a.x - b.x);
    for (const band of bands) band.width += 70; // room for the label
    const count = placeRows(bands, 4);
    for (const band of bands) {
      const { event } = band;
      drawn.add(event.event_id);
      const label = (event.location || event.name || "").split(" (")[0];
      const element = marker(event, band.x, top + band.row * 20, "band");
      element.style.width = `${band.width - 70}px`;
      element.append(h("span", { class: "band-label" }, label));
      track.append(element);
    }
    return top + count * 20 + 2;
  }

  function deadlineChains(events) {
    // deadline_id -> [{event, due_on}] in world order: the set, then each extension
    const chains = new Map();
    for (const event of app.eventsBelieved || []) {
      if (event.type === "deadline_set" || event.type === "deadline_extended") {
        if (event.retracted) continue;
        if (!chains.has(event.deadline_id)) chains.set(event.deadline_id, []);
        chains.get(event.deadline_id).push(event);
      }
    }
    for (const chain of chains.values()) chain.sort((a, b) => (a.occurred_on < b.occurred_on ? -1 : a.occurred_on > b.occurred_on ? 1 : a.version - b.version));
    const ids = new Set(events.map((event) => event.deadline_id));
    return [...chains.entries()].filter(([id]) => ids.has(id));
  }

  function drawTruces(track, events, x, top, drawn) {
    const chains = new Map(deadlineChains(app.eventsBelieved || []));
    let row = 0;
    const truces = new Map();
    for (const event of events) {
      if (!truces.has(event.truce_id)) truces.set(event.truce_id, []);
      truces.get(event.truce_id).push(event);
    }
    for (const [truceId, list] of truces) {
      const agreed = list.find((event) => event.type === "truce_agreed") || list[0];
      const from = agreed.effective_from || agreed.occurred_on;
      const deadline = [...list].reverse().find((event) => event.deadline_id)?.deadline_id;
      const chain = (deadline && chains.get(deadline)) || [];
      const ended = list.find((event) => event.type === "truce_ended");
      const y = top + row * 22;
      let segmentStart = from;
      chain.forEach((step, index) => {
        const until = ended && ended.occurred_on < step.due_on ? ended.occurred_on : step.due_on;
        if (until < segmentStart) return;
        const owner = index === 0 ? agreed : list.find((event) => event.type === "truce_extended" && event.occurred_on >= step.occurred_on) || step;
        const bar = marker(owner, x(segmentStart) - 0.5 * 0, y, index === 0 ? "span" : "span extension");
        bar.style.width = `${Math.max(x(addDays(until, 1)) - x(segmentStart), 6)}px`;
        bar.title = `${truceId}: ${longDate(segmentStart)} – ${longDate(until)}${index ? ` (extended on ${longDate(step.occurred_on)})` : ""}`;
        bar.setAttribute("aria-label", bar.title);
        if (index === 0) bar.append(h("span", { class: "band-label" }, truceId));
        drawn.add(owner.event_id);
        track.append(bar);
        segmentStart = addDays(until, 1);
      });
      if (!chain.length) {
        const bar = marker(agreed, x(from), y, "span open");
        bar.style.width = `${Math.max(x(app.range.end) - x(from), 6)}px`;
        bar.append(h("span", { class: "band-label" }, truceId));
        drawn.add(agreed.event_id);
        track.append(bar);
      }
      row += 1;
    }
    return top + row * 22;
  }

  function drawDeadlines(track, events, x, top, drawn) {
    const chains = deadlineChains(events);
    let y = top;
    for (const [id, chain] of chains) {
      const visible = new Set(events.map((event) => event.event_id));
      // a line from the first due date to the last, a diamond at each; hollow once moved
      const dues = chain.map((event) => x(event.due_on));
      if (dues.length > 1) {
        const line = h("span", { class: "chain", style: { left: `${Math.min(...dues)}px`, top: `${y + 6}px`, width: `${Math.max(...dues) - Math.min(...dues)}px` } });
        track.append(line);
      }
      chain.forEach((event, index) => {
        if (!visible.has(event.event_id)) return;
        const moved = index < chain.length - 1;
        const element = marker(event, x(event.due_on), y, `due${moved ? " moved" : ""}`);
        const title = chain[0].title || id;
        element.title = `${title}: ${index ? `extended on ${longDate(event.occurred_on)} to` : "due"} ${longDate(event.due_on)}${moved ? " (moved later)" : ""}`;
        element.setAttribute("aria-label", element.title);
        track.append(element);
        drawn.add(event.event_id);
      });
      const last = chain[chain.length - 1];
      track.append(h("span", { class: "due-label", style: { left: `${x(last.due_on) + 9}px`, top: `${y - 1}px` } },
        (chain[0].title || id).split(":")[0]));
      y += 20;
    }
    const rest = events.filter((event) => !drawn.has(event.event_id)).map((event) => ({ event, x: x(event.occurred_on) })).sort((a, b) => a.x - b.x);
    const count = placeRows(rest, 14);
    for (const item of rest) track.append(marker(item.event, item.x, y + item.row * 15));
    return y + count * 15;
  }

  function placeCursors() {
    const canvas = $("#timeline .canvas");
    if (canvas && app.range && app.asOf) {
      const left = Number(canvas.dataset.labelWidth) + PAD + (toDays(app.asOf) - toDays(app.range.start) + 0.5) * Number(canvas.dataset.ppd);
      const cursor = $("#timeline-cursor");
      cursor.style.left = `${left}px`;
      cursor.title = longDate(app.asOf);
    }
    const svg = $("#chart svg");
    if (svg && app.asOf) {
      const { start, end, x0, x1, top, bottom } = svg.dataset;
      let line = svg.querySelector(".as-of-line");
      if (!line) {
        line = document.createElementNS("http://www.w3.org/2000/svg", "line");
        line.setAttribute("class", "as-of-line");
        line.setAttribute("stroke", "#111");
        line.setAttribute("stroke-width", "1.5");
        svg.insertBefore(line, svg.querySelector(".steps"));
      }
      const span = toDays(end) - toDays(start) + 1;
      const at = Number(x0) + ((Number(x1) - Number(x0)) * (toDays(app.asOf) - toDays(start) + 0.5)) / span;
      const inside = app.asOf >= start && app.asOf <= end;
      line.setAttribute("x1", String(at));
      line.setAttribute("x2", String(at));
      line.setAttribute("y1", String(Number(top) - 4));
      line.setAttribute("y2", bottom);
      line.setAttribute("visibility", inside ? "visible" : "hidden");
    }
  }

  // On a narrow screen the chart and the timeline scroll sideways: bring the as-of date into view.
  function reveal(scroller, left) {
    if (scroller && scroller.scrollWidth > scroller.clientWidth) {
      scroller.scrollLeft = Math.max(0, left - scroller.clientWidth / 2);
    }
  }

  function markFuture() {
    for (const element of document.querySelectorAll("#timeline .ev")) {
      element.classList.toggle("future", element.dataset.occurred > app.asOf);
    }
  }

  // --- event detail --------------------------------------------------------------------------

  function value(content) {
    if (content === null || content === undefined || content === "") return h("span", { class: "muted" }, "—");
    if (Array.isArray(content)) {
      if (!content.length) return h("span", { class: "muted" }, "—");
      if (content.every((item) => typeof item !== "object")) return content.join(", ");
      return h("ul", { class: "plain" }, content.map((item) => h("li", {}, value(item))));
    }
    if (typeof content === "object") {
      if (content.name && ("role" in content || "party" in content)) {
        return [content.name, [content.role, content.party].filter(Boolean).join(", ")].filter(Boolean).join(" — ");
      }
      return h("dl", { class: "nested" }, Object.entries(content).flatMap(([key, item]) => [h("dt", {}, words(key)), h("dd", {}, value(item))]));
    }
    return String(content);
  }

  function sourceBlock(source) {
    if (!source) return h("p", { class: "muted" }, "This event names no source.");
    const gradeText = source.reliability || source.credibility
      ? `${source.reliability || "?"}${source.credibility || "?"} — ${[RELIABILITY[source.reliability], CREDIBILITY[source.credibility]].filter(Boolean).join(", ")}`
      : "not graded";
    return h("dl", { class: "facts source" },
      h("dt", {}, "Source"), h("dd", { class: "source-name" }, source.name, source.kind ? h("span", { class: "muted" }, ` (${source.kind})`) : null),
      source.title ? [h("dt", {}, "Title"), h("dd", {}, source.title)] : null,
      source.published_at ? [h("dt", {}, "Published"), h("dd", {}, longDate(source.published_at))] : null,
      h("dt", {}, "Grade"), h("dd", { class: "source-grade" }, gradeText),
      h("dt", {}, "Link"), h("dd", {}, source.url
        ? h("a", { href: source.url, target: "_blank", rel: "noopener noreferrer external", class: "source-link" }, source.url)
        : h("span", { class: "muted" }, "none recorded")));
  }

  async function openEvent(id) {
    if (!id) return;
    hideTip(true);
    const dialog = $("#detail");
    const body = $("#detail-body");
    $("#detail-title").textContent = "Event";
    body.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    if (!dialog.open) dialog.showModal();
    try {
      const event = await api(`/v1/events/${encodeURIComponent(id)}`);
      const amended = (event.corrected_by || []).length || (event.retracted_by || []).length;
      const history = amended ? await api(`/v1/events/${encodeURIComponent(id)}/history`) : null;
      renderDetail(event, history);
    } catch (error) {
      body.replaceChildren(h("p", { class: "error" }, `Could not read the event: ${error.message}`));
    }
  }

  function renderDetail(event, history) {
    $("#detail-title").textContent = `${event.display.title} · ${longDate(event.occurred_on)}`;
    const payload = Object.entries(event).filter(([key]) => !ENVELOPE.has(key));
    const amendments = (history?.records || []).filter((record) => record.event_id !== event.event_id);
    const body = h(
      "div",
      { dataset: { eventId: event.event_id } },
      event.summary ? h("p", { class: "summary" }, event.summary) : null,
      event.retracted_by?.length ? h("p", { class: "warning" }, "This event was retracted; it no longer counts.") : null,
      event.corrected_by?.length ? h("p", { class: "warning" }, "This event was corrected; the correction below is what counts now.") : null,
      h("h3", {}, "What happened"),
      h("dl", { class: "facts payload" },
        h("dt", {}, "Occurred"), h("dd", {}, longDate(event.occurred_on), event.occurred_time ? ` ${event.occurred_time} ${event.time_zone || ""}` : "",
          event.date_precision && event.date_precision !== "day" ? ` (to the ${event.date_precision})` : ""),
        payload.flatMap(([key, item]) => [h("dt", {}, words(key)), h("dd", {}, key === "target" ? eventLink(item, item) : key.endsWith("_pct") && typeof item === "number" ? pct(item) : value(item))]),
        event.topics?.length ? [h("dt", {}, "Topics"), h("dd", {}, event.topics.join(", "))] : null,
        event.confidence ? [h("dt", {}, "Confidence"), h("dd", {}, event.confidence)] : null),
      h("h3", {}, "Source"),
      sourceBlock(event.source),
      h("h3", {}, "Record"),
      h("dl", { class: "facts record" },
        h("dt", {}, "Recorded by"), h("dd", { class: "recorded-by" }, event.recorded_by),
        h("dt", {}, "Recorded at"), h("dd", { class: "recorded-at" }, event.recorded_at),
        h("dt", {}, "Position"), h("dd", {}, `${event.position} (version ${event.version} of ${event.negotiation_id})`),
        h("dt", {}, "Event id"), h("dd", {}, h("code", {}, event.event_id)),
        h("dt", {}, "Hash"), h("dd", {}, h("code", { title: event.hash }, `${(event.hash || "").slice(0, 16)}…`))),
      amendments.length
        ? [h("h3", {}, "Corrections and retractions"), h("ol", { class: "amendments" }, amendments.map((record) =>
          h("li", {},
            h("strong", {}, words(record.type)), ` by ${record.recorded_by} at ${record.recorded_at}`,
            record.reason ? h("p", {}, `Reason: ${record.reason}`) : null,
            record.replacement ? h("p", {}, "Now reads: ", record.replacement.summary || JSON.stringify(record.replacement).slice(0, 300)) : null,
            " ", eventLink(record.event_id, "open")))) ]
        : null,
    );
    $("#detail-body").replaceChildren(body);
  }

  // --- loading -------------------------------------------------------------------------------

  function defaultAsOf(info) {
    const today = todayIso();
    const last = info.last_occurred_on || today;
    return today <= addDays(last, 30) ? today : last;
  }

  async function loadTimeline() {
    const events = await allEvents();
    app.events = events;
    app.byId = new Map(events.map((event) => [event.event_id, event]));
    app.eventsBelieved = believed(events);
    app.measureNames = new Map();
    for (const event of app.eventsBelieved) {
      if (event.type === "measure_changed" && event.name) app.measureNames.set(event.measure_id, event.name);
    }
    fillFilters(events);
    const range = computeRange(events);
    const start = app.asOf && app.asOf < range.start ? app.asOf : range.start;
    const end = app.asOf && app.asOf > range.end ? app.asOf : range.end;
    setRange(start, end);
    renderTimeline();
    if (app.lastState) renderState(app.lastState); // measure names arrived
    if (app.lastClaims) renderDisputes(app.lastClaims); // what settled them, by name
  }

  async function reloadAll() {
    if (!app.info) return;
    say("");
    await Promise.allSettled([loadState(), loadChart(), loadTimeline().catch((error) => say(`Could not read the timeline: ${error.message}`, "error"))]);
  }

  // Nothing to show (an unknown negotiation, an address that does not parse): the panels say nothing, the message says why.
  function emptyPanels() {
    app.events = [];
    app.byId = new Map();
    app.range = null;
    app.lastState = null;
    app.lastClaims = null;
    for (const body of ["#state-body", "#context-body", "#chart", "#timeline", "#disputes-body"]) $(body).replaceChildren();
    for (const date of ["#state-date", "#context-date", "#disputes-date"]) $(date).textContent = "—";
    for (const panel of ["#state", "#disputes"]) $(panel).setAttribute("aria-busy", "false");
    $("#beyond-record").hidden = true;
  }

  async function start() {
    say("");
    const listing = allNegotiations();
    try {
      if (!app.negotiation) {
        const items = await listing;
        if (!items.length) {
          emptyPanels();
          say("There is no negotiation yet. Load the demo with `parley demo load`.", "error");
          return;
        }
        app.negotiation = items[0].id;
      }
      listing.then(fillNegotiations).catch(() => {});
      const info = await api(base());
      app.info = info;
      $("#negotiation-title").textContent = info.title;
      if (app.badUrl) {
        app.blocked = true;
        emptyPanels();
        syncControls();
        document.title = `${info.title} — Parley`;
        say(`Nothing is shown: ${app.badUrl}`, "error");
        return;
      }
      if (!app.asOf) app.asOf = defaultAsOf(info);
      syncControls();
      writeUrl();
      await reloadAll();
    } catch (error) {
      app.info = null;
      $("#negotiation-title").textContent = "Negotiation timeline";
      emptyPanels();
      syncControls(); // the date asked for stays in view
      say(error.status === 404
        ? `There is no negotiation "${app.negotiation}" on this server. Pick one in the list above.`
        : `Could not load: ${error.message}`, "error");
    }
  }

  // Every negotiation; when the address names one that is not there, the list says so and offers the others.
  function fillNegotiations(items) {
    const select = $("#negotiation");
    const known = items.some((item) => item.id === app.negotiation);
    select.replaceChildren(
      ...(known ? [] : [h("option", { value: "", disabled: true, selected: true }, "Choose a negotiation")]),
      ...items.map((item) => h("option", { value: item.id }, item.title)),
    );
    select.value = known ? app.negotiation : "";
    select.title = select.selectedOptions[0]?.textContent || "";
    $("#negotiation-pick").hidden = known && items.length < 2;
  }

  document.addEventListener("DOMContentLoaded", () => {
    readUrl();
    updateKeyButton();
    bindControls();
    start();
  });
})();
