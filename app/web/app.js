// vatt web page: search, play moments, ingest with progress, zero-shot classification.
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

  async function api(path, { method = "GET", json, form } = {}) {
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
      xhr.open("POST", path);
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

  function showError(err) {
    const box = $("#error");
    const detail = err instanceof ApiError ? err.detail : String(err && err.message ? err.message : err);
    box.dataset.code = err instanceof ApiError ? err.code : "client";
    box.dataset.status = err instanceof ApiError ? String(err.status) : "";
    $("#error-text").textContent = detail;
    box.hidden = false;
  }

  function clearError() {
    $("#error").hidden = true;
    $("#error-text").textContent = "";
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

  function itemsOf(data) {
    if (Array.isArray(data)) return data;
    return (data && (data.items || data.data || data.results)) || [];
  }

  // The server's own URLs when it gives them; else the documented routes, relative to the page.
  const mediaUrl = (item) => item.media_url || `media/${encodeURIComponent(item.id)}`;
  const thumbnailUrl = (item) => ("thumbnail_url" in item ? item.thumbnail_url
    : `items/${encodeURIComponent(item.id)}/thumbnail`);

  // ---- player -------------------------------------------------------------------------

  let seekToken = 0;

  // Load /media/{id} (once per item) and seek to `start` when its metadata is known.
  function playAt(item, start, end) {
    const player = $("#player");
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
    } else if (player.readyState >= HTMLMediaElement.HAVE_METADATA) {
      seek();
    } else {
      player.addEventListener("loadedmetadata", seek, { once: true });
    }
    const span = end != null ? `${fmtTime(start)}–${fmtTime(end)}` : `from ${fmtTime(start)}`;
    $("#player-caption").textContent = `${itemTitle(item)} · ${span}`;
    for (const b of document.querySelectorAll(".moment[aria-pressed='true']")) b.setAttribute("aria-pressed", "false");
  }

  $("#player").addEventListener("error", () => {
    const player = $("#player");
    if (player.getAttribute("src")) showError(new Error(`This file cannot be played here (media error ${player.error ? player.error.code : "?"}).`));
  });

  // ---- search -------------------------------------------------------------------------

  // `kinds` is sent only to narrow the search: with every box ticked the server picks the kinds
  // the query's space reaches (a text query cannot reach audio-only items, for one).
  function searchOptions() {
    const k = Math.max(1, Math.min(100, parseInt($("#k").value, 10) || 10));
    const boxes = [...document.querySelectorAll("input[name='kinds']")];
    const kinds = boxes.filter((c) => c.checked).map((c) => c.value);
    return kinds.length === boxes.length ? { k } : { k, kinds };
  }

  function renderResults(results, label) {
    const list = $("#results");
    list.replaceChildren();
    const template = $("#result-template");
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
      $(".thumb-btn", card).setAttribute("aria-label", `Play ${itemTitle(item)} from the start`);
      $(".thumb-btn", card).addEventListener("click", () => playAt(item, 0, null));
      $(".card-title", card).textContent = `${rank + 1}. ${itemTitle(item)}`;
      const facts = [item.kind, item.duration != null ? fmtTime(item.duration) : null, item.id].filter(Boolean);
      $(".card-meta", card).textContent = facts.join(" · ");
      $(".card-score", card).textContent = `score ${fmtScore(hit.score)}`;
      const moments = $(".moments", card);
      for (const m of hit.moments || []) {
        const b = el("button", {
          type: "button",
          className: "moment",
          dataset: { start: String(m.start), end: String(m.end), score: String(m.score) },
          "aria-pressed": "false",
          "aria-label": `Play ${itemTitle(item)} from ${fmtTime(m.start)} to ${fmtTime(m.end)}, score ${fmtScore(m.score)}`,
        }, `${fmtTime(m.start)}–${fmtTime(m.end)} `, el("span", { className: "moment-score" }, fmtScore(m.score)));
        b.addEventListener("click", () => {
          playAt(item, m.start, m.end);
          b.setAttribute("aria-pressed", "true");
        });
        moments.append(b);
      }
      $(".similar-btn", card).addEventListener("click", () => doSearch({ item_id: item.id }, `items like ${itemTitle(item)}`));
      $(".classify-item-btn", card).addEventListener("click", () => {
        $("#classify-item").value = item.id;
        $("#classify-source-item").checked = true;
        $("#classify-labels").focus();
      });
      list.append(card);
    });
    const status = $("#search-status");
    status.textContent = results.length ? `${results.length} result${results.length === 1 ? "" : "s"} for ${label}.`
      : `No results for ${label}.`;
    status.dataset.state = "done";
  }

  async function doSearch(query, label) {
    clearError();
    const status = $("#search-status");
    status.textContent = "Searching…";
    status.dataset.state = "busy";
    try {
      const data = await api("search", { method: "POST", json: { ...query, ...searchOptions() } });
      renderResults(data.results || [], label);
    } catch (err) {
      status.textContent = "";
      status.dataset.state = "error";
      showError(err);
    }
  }

  $("#search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("#query").value.trim();
    if (!text) { showError(new Error("Type something to search for.")); return; }
    doSearch({ text }, `“${text}”`);
  });

  $("#search-file-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    clearError();
    const file = $("#search-file").files[0];
    if (!file) { showError(new Error("Choose a video or audio file to search with.")); return; }
    const status = $("#search-status");
    status.textContent = `Uploading ${file.name}…`;
    status.dataset.state = "busy";
    const { k, kinds } = searchOptions();
    const form = new FormData();
    form.append("file", file);
    form.append("k", String(k));
    for (const kind of kinds || []) form.append("kinds", kind);
    try {
      const data = await upload("search", form, (f) => { status.textContent = `Uploading ${file.name}… ${Math.round(100 * f)}%`; });
      renderResults(data.results || [], file.name);
    } catch (err) {
      status.textContent = "";
      status.dataset.state = "error";
      showError(err);
    }
  });

  // ---- ingest -------------------------------------------------------------------------

  function setIngest(state, fraction, text) {
    const bar = $("#ingest-progress");
    if (fraction == null) bar.removeAttribute("value"); // indeterminate
    else bar.value = Math.max(0, Math.min(1, fraction));
    const status = $("#ingest-status");
    status.dataset.status = state;
    status.textContent = text;
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
    clearError();
    const file = $("#ingest-file").files[0];
    if (!file) { showError(new Error("Choose a video or audio file to add.")); return; }
    const metaText = $("#ingest-metadata").value.trim();
    if (metaText) {
      let meta;
      try { meta = JSON.parse(metaText); } catch (err) { showError(new Error(`Metadata is not valid JSON: ${err.message}`)); return; }
      if (meta === null || typeof meta !== "object" || Array.isArray(meta)) {
        showError(new Error("Metadata must be a JSON object, e.g. {\"title\": \"holiday\"}."));
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
      setIngest("done", 1, `Indexed ${file.name} as ${status.dataset.itemId}.`);
      refreshLibrary();
    } catch (err) {
      setIngest("failed", 0, "Failed.");
      showError(err);
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
    clearError();
    const labels = $("#classify-labels").value.split(",").map((s) => s.trim()).filter(Boolean);
    if (labels.length < 2) { showError(new Error("Give at least two labels, separated by commas.")); return; }
    const template = $("#classify-template").value.trim();
    const out = $("#classify-results");
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
      showError(err);
    }
  });

  $("#classify-file").addEventListener("change", () => { $("#classify-source-file").checked = true; });
  $("#classify-item").addEventListener("input", () => { $("#classify-source-item").checked = true; });

  // ---- library ------------------------------------------------------------------------

  async function refreshLibrary() {
    const list = $("#library");
    try {
      const items = itemsOf(await api("items"));
      list.replaceChildren();
      if (!items.length) { list.append(el("li", { className: "empty" }, "Nothing indexed yet.")); return; }
      for (const item of items) {
        const play = el("button", { type: "button", className: "play-btn" }, "Play");
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
          } catch (err) { showError(err); }
        });
        list.append(el("li", { dataset: { itemId: item.id } },
          el("span", { className: "lib-title" }, `${itemTitle(item)} (${item.kind || "?"})`), " ", play, " ", del));
      }
    } catch (err) {
      showError(err);
    }
  }

  $("#library-refresh").addEventListener("click", refreshLibrary);

  // ---- start --------------------------------------------------------------------------

  $("#error-close").addEventListener("click", clearError);
  const keyStore = window.sessionStorage;
  $("#api-key").value = keyStore.getItem("vatt-api-key") || "";
  $("#api-key").addEventListener("change", () => keyStore.setItem("vatt-api-key", $("#api-key").value));

  (async () => {
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

  window.vatt = { api, playAt, doSearch, refreshLibrary }; // for the console and the browser test
})();
