// vatt web page: search (by vectors, transcript words, or both), play moments, a transcript that follows
// the player, ingest with progress, zero-shot classification.
// Plain browser JavaScript, no build step and no network beyond this server. Every URL is
// relative, so the page also works behind a reverse proxy under a path prefix.
"use strict";

(() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  const el = (tag, props = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key in node) node[key] = value;
      else node.setAttribute(key, value);
    }
    node.append(...children);
    return node;
  };

  // ---- API ----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, detail) {
      super(detail);
      this.status = status;
      this.code = code;
      this.detail = detail;
    }
  }

  // FastAPI's validation errors carry a list of {loc, msg}; ours carry a string.
  function formatDetail(detail) {
    if (detail == null) return "";
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => (d && d.msg ? `${(d.loc || []).join(".")}: ${d.msg}` : JSON.stringify(d)))
        .join("; ");
    }
    return JSON.stringify(detail);
  }

  function parseResponse(status, statusText, text) {
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (status < 200 || status >= 300) {
      const code = (data && data.error) || `HTTP ${status}`;
      const detail = data && data.detail != null ? formatDetail(data.detail)
        : (text && !data ? text.slice(0, 300) : statusText || `request failed with status ${status}`);
      throw new ApiError(status, code, detail);
    }
    return data;
  }

  function authHeaders() {
    const key = $("#api-key").value.trim();
    return key ? { "X-API-Key": key } : {};
  }

  // Catalogue routes of any collection but `default` live under collections/NAME/ (relative paths
  // throughout, so the page works behind a path prefix); service-wide routes stay where they are.
  const SERVICE_WIDE = /^(readyz|healthz|metrics|collections|v1\/|openapi)/;

  function scoped(path) {
    const name = $("#collection").value;
    return !name || name === "default" || SERVICE_WIDE.test(path) ? path : `collections/${encodeURIComponent(name)}/${path}`;
  }

  async function api(path, { method = "GET", json, form } = {}) {
    path = scoped(path);
    const headers = authHeaders();
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    let resp;
    try {
      resp = await fetch(path, { method, headers, body });
    } catch (err) {
      throw new ApiError(0, "network", `The server could not be reached (${err.message}).`);
    }
    return parseResponse(resp.status, resp.statusText, await resp.text());
  }

  // fetch() cannot report upload progress; XMLHttpRequest can.
  function upload(path, form, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", scoped(path));
      for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) onProgress(e.loaded / e.total);
      });
      xhr.addEventListener("load", () => {
        try { resolve(parseResponse(xhr.status, xhr.statusText, xhr.responseText)); } catch (err) { reject(err); }
      });
      xhr.addEventListener("error", () => reject(new ApiError(0, "network", "The upload failed: the server could not be reached.")));
      xhr.send(form);
    });
  }

  // ---- messages -----------------------------------------------------------------------

  // Each panel shows its own errors (#<panel>-error), next to what the user just did.
  function showError(err, panel) {
    const box = $(`#${panel}-error`);
    const detail = err instanceof ApiError ? err.detail : String(err && err.message ? err.message : err);
    box.dataset.code = err instanceof ApiError ? err.code : "client";
    box.dataset.status = err instanceof ApiError ? String(err.status) : "";
    $(".panel-error-text", box).textContent = detail;
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }

  function clearError(panel) {
    const box = $(`#${panel}-error`);
    box.hidden = true;
    $(".panel-error-text", box).textContent = "";
  }

  for (const close of document.querySelectorAll(".panel-error button")) {
    close.addEventListener("click", () => { close.closest(".panel-error").hidden = true; });
  }

  function fmtTime(seconds) {
    const s = Math.max(0, Number(seconds) || 0);
    const m = Math.floor(s / 60);
    const rest = (s - 60 * m).toFixed(1).padStart(4, "0");
    return `${m}:${rest}`;
  }

  const fmtScore = (x) => (typeof x === "number" ? x.toFixed(3) : "–");

  function itemTitle(item) {
    const meta = item.metadata || {};
    if (meta.title) return String(meta.title);
    if (item.source) return String(item.source).split(/[\\/]/).pop();
    return item.id;
  }

  // The server's own URLs: null when it has no copy it can play (an imported item whose file is
  // not under a server-path root), and then the page says so instead of trying.
  const mediaUrl = (item) => item.media_url || null;
  const thumbnailUrl = (item) => item.thumbnail_url || null;
  const NO_COPY = "no playable copy";

  // ---- player -------------------------------------------------------------------------

  let seekToken = 0;

  // Load /media/{id} (once per item) and seek to `start` when its metadata is known.
  function playAt(item, start, end) {
    const player = $("#player");
    clearError("player");
    if (!mediaUrl(item)) {
      showError(new Error(`${itemTitle(item)}: ${NO_COPY} on this server (its file is not stored here, `
        + "nor under a server-path root)."), "player");
      return false;
    }
    const token = ++seekToken;
    const seek = () => {
      if (token !== seekToken) return; // a later click won
      player.currentTime = start;
      const p = player.play();
      if (p && p.catch) p.catch(() => {}); // autoplay may be refused; the seek still stands
    };
    player.dataset.start = String(start);
    if (player.dataset.itemId !== item.id) {
      player.dataset.itemId = item.id;
      player.addEventListener("loadedmetadata", seek, { once: true });
      player.src = mediaUrl(item);
      loadTranscript(item);
    } else if (player.readyState >= HTMLMediaElement.HAVE_METADATA) {
      seek();
    } else {
      player.addEventListener("loadedmetadata", seek, { once: true });
    }
    const span = end != null ? `${fmtTime(start)}–${fmtTime(end)}` : `from ${fmtTime(start)}`;
    $("#player-caption").textContent = `${itemTitle(item)} · ${span}`;
    for (const b of document.querySelectorAll("[aria-pressed='true']")) b.setAttribute("aria-pressed", "false");
    return true;
  }

  $("#player").addEventListener("error", () => {
    const player = $("#player");
    if (player.getAttribute("src")) showError(new Error(`This file cannot be played here (media error ${player.error ? player.error.code : "?"}).`), "player");
  });


  // ---- transcript panel ----------------------------------------------------------------

  // The transcript of the item in the player, one button per cue: a click plays from the cue, and the
  // cue under the playhead is marked (aria-current) as the video plays or seeks.
  let transcriptToken = 0;

  async function loadTranscript(item) {
    const token = ++transcriptToken;
    const box = $("#transcript");
    const list = $("#transcript-lines");
    const status = $("#transcript-status");
    box.hidden = false;
    box.dataset.itemId = item.id;
    box.dataset.state = "loading";
    list.replaceChildren();
    status.textContent = "Loading the transcript…";
    try {
      const data = await api(`items/${encodeURIComponent(item.id)}/transcript?format=json`);
      if (token !== transcriptToken) return; // another item was loaded meanwhile
      const cues = data.cues || [];
      for (const cue of cues) list.append(transcriptLine(item, cue));
      status.textContent = cues.length ? `${cues.length} line${cues.length === 1 ? "" : "s"}; click one to play from it.`
        : "no transcript";
      box.dataset.state = cues.length ? "ready" : "empty";
      followPlayback();
    } catch (err) {
      if (token !== transcriptToken) return;
      status.textContent = `The transcript could not be loaded: ${err instanceof ApiError ? err.detail : err.message}`;
      box.dataset.state = "error";
    }
  }

  function transcriptLine(item, cue) {
    const b = el("button", { type: "button", className: "cue", dataset: { start: String(cue.start), end: String(cue.end) } },
      el("span", { className: "cue-time" }, fmtTime(cue.start)), " ", el("span", { className: "cue-text" }, cue.text));
    b.addEventListener("click", () => playAt(item, cue.start, cue.end));
    return el("li", {}, b);
  }

  // Mark the cue under the playhead (the last one that started, among overlapping cues) and keep it in
  // view inside the list, without scrolling the page.
  function followPlayback() {
    const t = $("#player").currentTime;
    const cues = [...document.querySelectorAll("#transcript-lines .cue")];
    const active = cues.filter((b) => Number(b.dataset.start) <= t && t < Number(b.dataset.end)).pop() || null;
    for (const b of cues) {
      if (b !== active && b.hasAttribute("aria-current")) b.removeAttribute("aria-current");
    }
    if (!active || active.getAttribute("aria-current") === "true") return;
    active.setAttribute("aria-current", "true");
    const list = $("#transcript-lines");
    const lr = list.getBoundingClientRect();
    const ar = active.getBoundingClientRect();
    if (ar.top < lr.top || ar.bottom > lr.bottom) list.scrollTop += ar.top - lr.top - lr.height / 3;
  }

  for (const event of ["timeupdate", "seeked", "loadedmetadata"]) $("#player").addEventListener(event, followPlayback);

  // ---- search filters -------------------------------------------------------------------

  const OPS = [["eq", "="], ["ne", "≠"], ["gt", ">"], ["gte", "≥"], ["lt", "<"], ["lte", "≤"],
    ["in", "in"], ["nin", "not in"], ["contains", "contains"], ["exists", "exists"]];
  let whereRowCount = 0;

  function addWhereRow(key = "", op = "eq", value = "") {
    const n = ++whereRowCount;
    const select = el("select", { className: "where-op", "aria-label": `Operator of condition ${n}` },
      ...OPS.map(([v, label]) => el("option", { value: v, selected: v === op }, label)));
    const row = el("div", { className: "where-row row" },
      el("input", { type: "text", className: "where-key", value: key, placeholder: "key, e.g. lang",
        "aria-label": `Metadata key of condition ${n}`, spellcheck: false }),
      select,
      el("input", { type: "text", className: "where-value", value, placeholder: "value, e.g. en",
        "aria-label": `Value of condition ${n}`, spellcheck: false }));
    const remove = el("button", { type: "button", className: "where-remove", "aria-label": `Remove condition ${n}` }, "×");
    remove.addEventListener("click", () => { row.remove(); updateFilterSummary(); });
    row.append(remove);
    for (const input of row.querySelectorAll("input, select")) input.addEventListener("change", updateFilterSummary);
    $("#where-rows").append(row);
    updateFilterSummary();
    return row;
  }

  // A value is JSON when it parses (numbers, true/false, ["a", "b"]); otherwise the text itself.
  // `in`/`nin` also take a comma-separated list; `exists` takes true (default) or false.
  function whereValue(op, raw) {
    const text = raw.trim();
    let value;
    try { value = JSON.parse(text); } catch (_) { value = text; }
    if ((op === "in" || op === "nin") && !Array.isArray(value)) {
      value = text.split(",").map((t) => t.trim()).filter(Boolean).map((t) => { try { return JSON.parse(t); } catch (_) { return t; } });
    }
    if (op === "exists") value = text === "" ? true : value !== false;
    return value;
  }

  function whereFilter() {
    const where = {};
    for (const row of document.querySelectorAll(".where-row")) {
      const key = $(".where-key", row).value.trim();
      if (!key) continue;
      const op = $(".where-op", row).value;
      const value = whereValue(op, $(".where-value", row).value);
      const prev = where[key];
      if (op === "eq" && prev === undefined) where[key] = value;
      else {
        const cond = prev === undefined ? {} : (prev && typeof prev === "object" && !Array.isArray(prev) ? prev : { eq: prev });
        cond[op] = value;
        where[key] = cond;
      }
    }
    return Object.keys(where).length ? where : null;
  }

  function scoreThreshold() {
    const raw = $("#score-threshold").value.trim();
    if (!raw) return null;
    const x = Number(raw);
    return Number.isFinite(x) ? x : null;
  }

  function updateFilterSummary() {
    const where = whereFilter();
    const threshold = scoreThreshold();
    const parts = [];
    if (where) parts.push(`${Object.keys(where).length} condition${Object.keys(where).length === 1 ? "" : "s"}`);
    if (threshold != null) parts.push(`score ≥ ${threshold}`);
    $("#filters-summary").textContent = parts.length ? `Filters (${parts.join(", ")})` : "Filters";
  }

  $("#where-add").addEventListener("click", () => { $(".where-key", addWhereRow()).focus(); });
  $("#score-threshold").addEventListener("change", updateFilterSummary);

  // ---- search -------------------------------------------------------------------------

  // `kinds` is sent only to narrow the search: with every box ticked the server picks the kinds
  // the query's space reaches (a text query cannot reach audio-only items, for one).
  function searchOptions() {
    const k = Math.max(1, Math.min(100, parseInt($("#k").value, 10) || 10));
    const boxes = [...document.querySelectorAll("input[name='kinds']")];
    const kinds = boxes.filter((c) => c.checked).map((c) => c.value);
    const opts = kinds.length === boxes.length ? { k } : { k, kinds };
    const where = whereFilter();
    const threshold = scoreThreshold();
    if (where) opts.where = where;
    if (threshold != null) opts.score_threshold = threshold;
    opts.include = ["timeline"];
    return opts;
  }

  function clearResults(text, state) {
    $("#results").replaceChildren();
    const status = $("#search-status");
    status.textContent = text;
    status.dataset.state = state;
  }

  // Score -> colour on one scale for the whole answer: the moment floor (and below) is the palest,
  // the answer's best score the hottest, so a weak answer's strips stay pale throughout.
  function cellColour(score, lo, hi) {
    const f = Math.max(0, Math.min(1, (score - lo) / (hi - lo)));
    return `hsl(${Math.round(215 - 175 * f)} ${Math.round(35 + 55 * f)}% ${Math.round(88 - 45 * f)}%)`;
  }

  function renderStrip(item, hit, lo, hi) {
    const strip = el("div", { className: "strip", role: "group",
      "aria-label": `Where ${itemTitle(item)} matches, segment by segment` });
    const best = new Set((hit.moments || []).map((m) => `${m.start}:${m.end}`));
    for (const cell of hit.timeline || []) {
      const isBest = best.has(`${cell.start}:${cell.end}`);
      const b = el("button", {
        type: "button",
        className: isBest ? "cell best" : "cell",
        title: `${fmtTime(cell.start)}–${fmtTime(cell.end)}: ${fmtScore(cell.score)}${isBest ? " (best moment)" : ""}`,
        dataset: { start: String(cell.start), end: String(cell.end), score: String(cell.score), best: String(isBest) },
        "aria-pressed": "false",
        "aria-label": `Play from ${fmtTime(cell.start)}, score ${fmtScore(cell.score)}${isBest ? ", a best moment" : ""}`,
      });
      b.style.flexGrow = String(Math.max(cell.end - cell.start, 0.01));
      b.style.background = cellColour(cell.score, lo, hi);
      b.addEventListener("click", () => {
        if (playAt(item, cell.start, cell.end)) b.setAttribute("aria-pressed", "true");
      });
      strip.append(b);
    }
    return strip;
  }

  function renderMetadata(item) {
    const meta = item.metadata || {};
    const keys = Object.keys(meta);
    const details = el("details", { className: "card-metadata" }, el("summary", {}, `Metadata (${keys.length})`));
    const dl = el("dl");
    for (const key of keys) {
      const v = meta[key];
      dl.append(el("dt", {}, key), el("dd", {}, typeof v === "string" ? v : JSON.stringify(v)));
    }
    dl.append(el("dt", {}, "source"), el("dd", {}, String(item.source || "")));
    details.append(dl);
    return details;
  }

  function renderResults(data, label) {
    const results = data.results || [];
    const floor = typeof data.moment_floor === "number" ? data.moment_floor : 0;
    const list = $("#results");
    list.replaceChildren();
    const template = $("#result-template");
    const cellScores = results.flatMap((h) => (h.timeline || []).map((c) => c.score));
    const lo = floor;
    const hi = Math.max(floor + 0.1, ...cellScores);
    let weak = 0;
    results.forEach((hit, rank) => {
      const item = hit.item;
      const card = template.content.firstElementChild.cloneNode(true);
      card.dataset.itemId = item.id;
      card.dataset.kind = item.kind || "";
      card.dataset.score = String(hit.score);
      card.dataset.rank = String(rank + 1);
      const img = $(".thumb", card);
      const thumb = thumbnailUrl(item);
      if (thumb) {
        img.addEventListener("error", () => card.classList.add("no-thumb"), { once: true });
        img.src = thumb;
      } else {
        card.classList.add("no-thumb"); // audio items have no picture
      }
      const playable = !!mediaUrl(item);
      if (!playable) {
        card.classList.add("no-copy");
        $(".thumb-fallback", card).textContent = NO_COPY;
      }
      $(".thumb-btn", card).setAttribute("aria-label", playable ? `Play ${itemTitle(item)} from the start`
        : `${itemTitle(item)}: ${NO_COPY}`);
      $(".thumb-btn", card).addEventListener("click", () => playAt(item, 0, null));
      $(".card-title", card).textContent = `${rank + 1}. ${itemTitle(item)}`;
      const facts = [item.kind, item.duration != null ? fmtTime(item.duration) : null, item.id,
        playable ? null : NO_COPY].filter(Boolean);
      $(".card-meta", card).textContent = facts.join(" · ");
      const score = $(".card-score", card);
      score.textContent = `score ${fmtScore(hit.score)}`;
      const c = hit.confidence;
      if (c) {
        card.dataset.z = String(c.z);
        card.dataset.percentile = String(c.percentile);
        card.dataset.weak = String(c.weak);
        const standing = `beats ${Math.round(100 * c.percentile)}% of nonsense queries, z ${c.z.toFixed(1)}`;
        if (c.weak) {
          weak += 1;
          card.classList.add("weak");
          score.append(" ", el("span", { className: "weak-badge" }, "weak match"), ` (${standing})`);
        } else {
          score.append(` · ${standing}`);
        }
      }
      if (hit.timeline && hit.timeline.length) $(".strip-slot", card).append(renderStrip(item, hit, lo, hi));
      const moments = $(".moments", card);
      const kept = (hit.moments || []).filter((m) => m.score >= floor);
      if (!kept.length) moments.append(el("span", { className: "no-moments" }, `no moment scores above ${floor}`));
      const withLines = kept.some((m) => m.text); // keyword/hybrid: each moment's matched lines beside it
      if (withLines) moments.classList.add("with-lines");
      for (const m of kept) {
        const b = el("button", {
          type: "button",
          className: "moment",
          dataset: { start: String(m.start), end: String(m.end), score: String(m.score) },
          "aria-pressed": "false",
          "aria-label": `Play ${itemTitle(item)} from ${fmtTime(m.start)} to ${fmtTime(m.end)}, score ${fmtScore(m.score)}`,
        }, `${fmtTime(m.start)}–${fmtTime(m.end)} `, el("span", { className: "moment-score" }, fmtScore(m.score)));
        b.addEventListener("click", () => {
          if (playAt(item, m.start, m.end)) b.setAttribute("aria-pressed", "true");
        });
        moments.append(b);
        if (withLines) moments.append(renderMomentLine(m));
      }
      $(".card-body", card).insertBefore(renderMetadata(item), $(".card-actions", card));
      $(".similar-btn", card).addEventListener("click", () => doSearch({ item_id: item.id }, `items like ${itemTitle(item)}`));
      $(".classify-item-btn", card).addEventListener("click", () => classifyItem(item));
      list.append(card);
    });
    const status = $("#search-status");
    const weakNote = weak ? ` ${weak === results.length ? "All are" : `${weak} are`} weak: they score no better than nonsense queries do here.` : "";
    status.textContent = results.length ? `${results.length} result${results.length === 1 ? "" : "s"} for ${label}.${weakNote}`
      : `No results for ${label}.`;
    status.dataset.state = "done";
  }

  async function doSearch(query, label) {
    clearError("search");
    const status = $("#search-status");
    status.textContent = "Searching…";
    status.dataset.state = "busy";
    try {
      const data = await api("search", { method: "POST", json: { ...searchOptions(), ...query } });
      renderResults(data, label);
    } catch (err) {
      clearResults("", "error"); // results of an earlier query would read as this one's
      showError(err, "search");
    }
  }

  $("#search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("#query").value.trim();
    if (!text) {
      clearResults("", "error");
      showError(new Error("Type something to search for."), "search");
      return;
    }
    const mode = searchMode();
    doSearch({ text, ...modeFields(mode) }, mode === "vector" ? `“${text}”` : `“${text}” (${mode})`);
  });

  $("#search-file-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    clearError("search");
    const file = $("#search-file").files[0];
    if (!file) {
      clearResults("", "error");
      showError(new Error("Choose a video or audio file to search with."), "search");
      return;
    }
    const status = $("#search-status");
    status.textContent = `Uploading ${file.name}…`;
    status.dataset.state = "busy";
    const { k, kinds, where, score_threshold: threshold, include } = searchOptions();
    const form = new FormData();
    form.append("file", file);
    form.append("k", String(k));
    for (const kind of kinds || []) form.append("kinds", kind);
    if (where) form.append("where", JSON.stringify(where));
    if (threshold != null) form.append("score_threshold", String(threshold));
    form.append("include", include.join(","));
    try {
      const data = await upload("search", form, (f) => { status.textContent = `Uploading ${file.name}… ${Math.round(100 * f)}%`; });
      renderResults(data, file.name);
    } catch (err) {
      clearResults("", "error");
      showError(err, "search");
    }
  });


  // ---- search mode and matched transcript lines -----------------------------------------

  // The mode switch applies to text queries (the server searches words only for a text); "More like
  // this" and file queries stay vector searches.
  const searchMode = () => ($("input[name='mode']:checked") || { value: "vector" }).value;

  // What a text query adds to its body for `mode`: keyword hits have no vector, so no score strip.
  function modeFields(mode) {
    if (mode === "vector") return {};
    return mode === "keyword" ? { mode, include: [] } : { mode };
  }

  // The server sends matched lines HTML-escaped with the query's words in <mark>…</mark>. They are
  // rebuilt here as text nodes and <mark> elements (never innerHTML), so a cue can hold no markup.
  const ENTITIES = { "&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": "\"", "&#x27;": "'", "&#39;": "'" };
  const unescapeHtml = (text) => text.replace(/&(?:lt|gt|amp|quot|#x27|#39);/g, (e) => ENTITIES[e]);

  function markedNodes(marked) {
    const nodes = [];
    let inMark = false;
    for (const part of String(marked).split(/(<mark>|<\/mark>)/)) {
      if (part === "<mark>") inMark = true;
      else if (part === "</mark>") inMark = false;
      else if (part) nodes.push(inMark ? el("mark", {}, unescapeHtml(part)) : unescapeHtml(part));
    }
    return nodes;
  }

  // A moment with no line (hybrid: one found by the vectors alone) keeps its row, empty.
  function renderMomentLine(moment) {
    return el("p", { className: "moment-line", dataset: { start: String(moment.start), end: String(moment.end) } },
      ...(moment.text ? markedNodes(moment.text) : []));
  }

  // ---- ingest -------------------------------------------------------------------------

  function setIngest(state, fraction, text) {
    const bar = $("#ingest-progress");
    if (fraction == null) bar.removeAttribute("value"); // indeterminate
    else bar.value = Math.max(0, Math.min(1, fraction));
    const status = $("#ingest-status");
    status.dataset.status = state;
    status.textContent = text;
  }

  // The server's note on an accepted upload (a duplicate: its metadata was not applied).
  function setNote(note) {
    const box = $("#ingest-note");
    box.textContent = note ? `Note: ${note}` : "";
    box.hidden = !note;
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function pollJob(jobId) {
    let delay = 250;
    for (;;) {
      const job = await api(`jobs/${encodeURIComponent(jobId)}`);
      const p = job.progress || {};
      const fraction = p.total ? p.done / p.total : null;
      if (job.status === "done") return job;
      if (job.status === "failed") throw new ApiError(0, "job_failed", job.error || "Indexing failed.");
      const count = p.total ? ` ${p.done}/${p.total}` : "";
      setIngest(job.status, job.status === "queued" ? 0 : fraction, `${job.status === "queued" ? "Queued" : "Indexing"}…${count}`);
      await sleep(delay);
      delay = Math.min(1000, delay * 1.5);
    }
  }

  $("#ingest-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    clearError("ingest");
    setNote(null);
    const file = $("#ingest-file").files[0];
    if (!file) { setIngest("failed", 0, ""); showError(new Error("Choose a video or audio file to add."), "ingest"); return; }
    const metaText = $("#ingest-metadata").value.trim();
    if (metaText) {
      let meta;
      try { meta = JSON.parse(metaText); } catch (err) { setIngest("failed", 0, ""); showError(new Error(`Metadata is not valid JSON: ${err.message}`), "ingest"); return; }
      if (meta === null || typeof meta !== "object" || Array.isArray(meta)) {
        setIngest("failed", 0, "");
        showError(new Error("Metadata must be a JSON object, e.g. {\"title\": \"holiday\"}."), "ingest");
        return;
      }
    }
    const form = new FormData();
    form.append("file", file);
    if (metaText) form.append("metadata", metaText);
    const button = $("#ingest-btn");
    button.disabled = true;
    try {
      setIngest("uploading", 0, `Uploading ${file.name}…`);
      const accepted = await upload("items", form, (f) => setIngest("uploading", f, `Uploading ${file.name}… ${Math.round(100 * f)}%`));
      const status = $("#ingest-status");
      status.dataset.jobId = accepted.job_id;
      status.dataset.itemId = accepted.item_id;
      setIngest("queued", 0, "Queued…");
      const job = await pollJob(accepted.job_id);
      status.dataset.itemId = job.item_id || accepted.item_id; // the job's id is final (duplicates merge)
      const note = job.note || accepted.note;
      setIngest("done", 1, note ? `${file.name} is already indexed as ${status.dataset.itemId}.`
        : `Indexed ${file.name} as ${status.dataset.itemId}.`);
      setNote(note);
      refreshLibrary();
    } catch (err) {
      setIngest("failed", 0, "Failed.");
      showError(err, "ingest");
    } finally {
      button.disabled = false;
    }
  });

  // ---- classify -----------------------------------------------------------------------

  function probTable(labels, probabilities, caption) {
    const pairs = labels.map((label, i) => [label, probabilities[i]]).sort((a, b) => b[1] - a[1]);
    const table = el("table", { className: "probs" }, el("caption", {}, caption));
    table.append(el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "label"), el("th", { scope: "col" }, "probability"))));
    const body = el("tbody");
    for (const [label, p] of pairs) {
      const meter = el("meter", { min: 0, max: 1, value: p }, fmtScore(p));
      body.append(el("tr", { dataset: { label: String(label), probability: String(p) } },
        el("th", { scope: "row" }, String(label)), el("td", {}, meter, " ", fmtScore(p))));
    }
    table.append(body);
    return table;
  }

  // ClassifyResponse: {labels, prompts, probabilities, best, segments: [{start, end, probabilities}]}
  function renderClassification(data, target) {
    const out = $("#classify-results");
    out.replaceChildren();
    out.dataset.best = data.best;
    out.append(el("p", { className: "best" }, "Best label: ", el("strong", {}, data.best), ` (${target})`));
    out.append(probTable(data.labels, data.probabilities, "Whole item"));
    const segments = data.segments || [];
    if (segments.length) {
      const details = el("details", {}, el("summary", {}, `Per segment (${segments.length})`));
      for (const s of segments) {
        details.append(probTable(data.labels, s.probabilities, `${fmtTime(s.start)}–${fmtTime(s.end)}`));
      }
      out.append(details);
    }
  }

  $("#classify-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    clearError("classify");
    const out = $("#classify-results");
    out.replaceChildren(); // a result for other labels or another item must not stay beside this error
    delete out.dataset.best;
    const labels = classifyLabels();
    if (labels.length < 2) { showError(new Error("Give at least two labels, separated by commas."), "classify"); return; }
    const template = $("#classify-template").value.trim();
    out.textContent = "Classifying…";
    try {
      let data;
      let target;
      if ($("#classify-source-item").checked) {
        const itemId = $("#classify-item").value.trim();
        if (!itemId) throw new Error("Pick an item: use “Classify” on a search result, or type its id.");
        target = `item ${itemId}`;
        data = await api("classify", { method: "POST", json: { item_id: itemId, labels, ...(template ? { template } : {}) } });
      } else {
        const file = $("#classify-file").files[0];
        if (!file) throw new Error("Choose a file to classify, or pick an indexed item.");
        const form = new FormData();
        form.append("file", file);
        for (const label of labels) form.append("labels", label);
        if (template) form.append("template", template);
        target = file.name;
        data = await upload("classify", form, () => {});
      }
      renderClassification(data, target);
    } catch (err) {
      out.textContent = "";
      showError(err, "classify");
    }
  });

  const classifyLabels = () => $("#classify-labels").value.split(",").map((s) => s.trim()).filter(Boolean);

  // "Classify" on a result: classify that item with the labels given (or ask for them, in the panel).
  function classifyItem(item) {
    $("#classify-item").value = item.id;
    $("#classify-source-item").checked = true;
    const panel = $("#classify-h").closest(".panel");
    panel.scrollIntoView({ block: "start" });
    if (classifyLabels().length >= 2) {
      $("#classify-form").requestSubmit();
    } else {
      $("#classify-results").replaceChildren();
      showError(new Error(`Type at least two labels (comma-separated) to classify ${itemTitle(item)}, then press Classify.`), "classify");
      $("#classify-labels").focus();
    }
  }

  $("#classify-file").addEventListener("change", () => { $("#classify-source-file").checked = true; });
  $("#classify-item").addEventListener("input", () => { $("#classify-source-item").checked = true; });

  // ---- library ------------------------------------------------------------------------

  let libraryOffset = 0;
  const pageSize = () => Math.max(1, parseInt($("#library").dataset.pageSize, 10) || 20);

  async function refreshLibrary() {
    const list = $("#library");
    clearError("library");
    try {
      const PAGE = pageSize();
      let page = await api(`items?limit=${PAGE}&offset=${libraryOffset}`);
      if (!page.items.length && page.total && libraryOffset) { // the last page emptied (deletes): step back
        libraryOffset = Math.max(0, Math.floor((page.total - 1) / PAGE) * PAGE);
        page = await api(`items?limit=${PAGE}&offset=${libraryOffset}`);
      }
      const { items, total } = page;
      list.replaceChildren();
      const count = $("#library-count");
      count.dataset.total = String(total);
      count.textContent = total ? `${libraryOffset + 1}–${libraryOffset + items.length} of ${total} item${total === 1 ? "" : "s"}`
        : "Nothing indexed yet.";
      $("#library-prev").disabled = libraryOffset === 0;
      $("#library-next").disabled = libraryOffset + items.length >= total;
      for (const item of items) {
        const thumb = thumbnailUrl(item);
        const pic = thumb ? el("img", { className: "lib-thumb", src: thumb, alt: "", width: 64, height: 48, loading: "lazy" })
          : el("span", { className: "lib-thumb lib-thumb-none", "aria-hidden": "true" }, item.kind === "audio" ? "♪" : "–");
        const play = el("button", { type: "button", className: "play-btn", disabled: !mediaUrl(item),
          "aria-label": mediaUrl(item) ? `Play ${itemTitle(item)}` : `${itemTitle(item)}: ${NO_COPY}` },
        mediaUrl(item) ? "Play" : NO_COPY);
        play.addEventListener("click", () => playAt(item, 0, null));
        const del = el("button", { type: "button", className: "delete-btn", "aria-label": `Delete ${itemTitle(item)}` }, "Delete");
        del.addEventListener("click", async () => {
          if (del.dataset.armed !== "true") { // two clicks, no blocking confirm() dialog
            del.dataset.armed = "true";
            del.textContent = "Really delete?";
            return;
          }
          try {
            await api(`items/${encodeURIComponent(item.id)}`, { method: "DELETE" });
            for (const card of document.querySelectorAll(".result-card")) {
              if (card.dataset.itemId === item.id) card.remove();
            }
            refreshLibrary();
          } catch (err) { showError(err, "library"); }
        });
        list.append(el("li", { dataset: { itemId: item.id } }, pic,
          el("span", { className: "lib-title" }, `${itemTitle(item)} (${item.kind || "?"})`), " ", play, " ", del));
      }
    } catch (err) {
      list.replaceChildren();
      showError(err, "library");
    }
  }

  $("#library-refresh").addEventListener("click", refreshLibrary);
  $("#library-prev").addEventListener("click", () => { libraryOffset = Math.max(0, libraryOffset - pageSize()); refreshLibrary(); });
  $("#library-next").addEventListener("click", () => { libraryOffset += pageSize(); refreshLibrary(); });

  // ---- start --------------------------------------------------------------------------

  const keyStore = window.sessionStorage;
  $("#api-key").value = keyStore.getItem("vatt-api-key") || "";
  $("#api-key").addEventListener("change", () => keyStore.setItem("vatt-api-key", $("#api-key").value));

  // ---- collections -------------------------------------------------------------------

  async function loadCollections() {
    const pick = $("#collection");
    const wanted = keyStore.getItem("vatt-collection") || "default";
    try {
      const { collections } = await api("collections");
      pick.replaceChildren(...collections.map((c) => el("option", { value: c.name },
        `${c.name} (${c.items} item${c.items === 1 ? "" : "s"})`)));
    } catch (err) { // an older server: one library
      pick.replaceChildren(el("option", { value: "default" }, "default"));
    }
    pick.value = [...pick.options].some((o) => o.value === wanted) ? wanted : "default";
  }

  $("#collection").addEventListener("change", () => {
    keyStore.setItem("vatt-collection", $("#collection").value);
    libraryOffset = 0;
    clearResults("", "");
    refreshLibrary();
  });

  (async () => {
    await loadCollections();
    const health = $("#health");
    try {
      const r = await api("readyz");
      health.dataset.state = r && r.ready === false ? "not-ready" : "ready";
      health.textContent = r && r.ready === false ? "starting…"
        : `ready${r && r.items != null ? ` · ${r.items} item${r.items === 1 ? "" : "s"} indexed` : ""}`;
    } catch (err) {
      health.dataset.state = err.status ? "not-ready" : "down";
      health.textContent = err.status ? `not ready: ${err.detail}` : "the service is unreachable";
    }
    refreshLibrary();
  })();

  window.vatt = { api, playAt, doSearch, refreshLibrary, addWhereRow, loadTranscript, loadCollections }; // for the console and the browser test
})();
