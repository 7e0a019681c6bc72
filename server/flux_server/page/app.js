// The prompt page of flux_server: plain JavaScript, no build step, no third-party requests.
// Every URL is relative to the page, so the same file works behind a tunnel, a proxy or a
// route prefix (Ray Serve). Pure helpers first (window.fluxPage exposes them for the tests),
// then the parts that touch the DOM and the network.
"use strict";

(function () {
  // ---- pure helpers ------------------------------------------------------------------------

  const FIELD_LABELS = {
    prompt: "Prompt",
    negative_prompt: "Negative prompt",
    num_inference_steps: "Steps",
    guidance_scale: "Guidance",
    true_cfg_scale: "Negative strength",
    width: "Width",
    height: "Height",
    seed: "Seed",
    num_images: "Images",
  };
  const COMMON_SIDES = [64, 128, 256, 384, 512, 640, 768, 896, 1024, 1152, 1280, 1536, 1792,
    2048];
  const MAX_SAFE_SEED = Number.MAX_SAFE_INTEGER;
  const HISTORY_KEY = "flux-page-history-v1";
  const HISTORY_LIMIT = 24;

  function formatBytes(done, total) {
    const unit = total >= 1e9 ? [1e9, "GB"] : total >= 1e6 ? [1e6, "MB"] : [1e3, "kB"];
    return `${(done / unit[0]).toFixed(1)} / ${(total / unit[0]).toFixed(1)} ${unit[1]}`;
  }

  function formatSeconds(seconds) {
    if (seconds < 60) return `${Math.round(seconds)} s`;
    return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  }

  // A /ready body -> {kind: loading|ready|failed, text, fraction (0-1 or null)}.
  function describeReady(body) {
    const progress = body.progress || {};
    const state = body.state || "starting";
    const elapsed = (body.phase_elapsed_s || {})[state];
    const after = elapsed ? ` · ${formatSeconds(elapsed)}` : "";
    if (state === "ready") return { kind: "ready", text: "ready", fraction: null };
    if (state === "failed") {
      const error = body.error || {};
      const reason = [error.type, error.message].filter(Boolean).join(": ") || "unknown";
      const fix = error.hint ? ` — ${error.hint}` : "";
      return { kind: "failed", text: `failed: ${reason}${fix}`, fraction: null };
    }
    if (state === "downloading" && progress.bytes_total) {
      return {
        kind: "loading",
        text: `downloading ${formatBytes(progress.bytes_done || 0, progress.bytes_total)}${after}`,
        fraction: Math.min(1, (progress.bytes_done || 0) / progress.bytes_total),
      };
    }
    if (state === "loading" && progress.components_total) {
      const done = progress.components_done || 0;
      return {
        kind: "loading",
        text: `loading ${done}/${progress.components_total}${after}`,
        fraction: Math.min(1, done / progress.components_total),
      };
    }
    const words = { starting: "starting", downloading: "downloading", loading: "loading",
      warming: "warming up" };
    return { kind: "loading", text: `${words[state] || state}${after}`, fraction: null };
  }

  // Retry-After (seconds or an HTTP date) -> whole seconds to wait, at least 1.
  function retryAfterSeconds(header, fallback, now) {
    if (header) {
      const trimmed = header.trim();
      if (/^\d+$/.test(trimmed)) return Math.max(1, parseInt(trimmed, 10));
      const when = Date.parse(trimmed);
      if (!Number.isNaN(when)) return Math.max(1, Math.ceil((when - (now ?? Date.now())) / 1000));
    }
    return fallback;
  }

  // A 422 body -> [{field, label, rule}] (the server names each field and its rule).
  function fieldErrors(body) {
    const detail = Array.isArray(body && body.detail) ? body.detail : [];
    const found = detail.map((d) => {
      const field = String(d.field || "body");
      return { field, label: FIELD_LABELS[field] || field, rule: String(d.rule || "invalid") };
    });
    if (!found.length && body && body.error) {
      found.push({ field: "body", label: "Request", rule: body.error.message || "invalid" });
    }
    return found;
  }

  // The sides offered for width and height: multiples of 16 between 64 and maxSide.
  function allowedSides(maxSide, defaultSide) {
    const sides = COMMON_SIDES.filter((s) => s <= maxSide);
    if (defaultSide && !sides.includes(defaultSide)) sides.push(defaultSide);
    return sides.sort((a, b) => a - b);
  }

  function busyText(status, seconds, attempt) {
    const why = status === 429 ? "the queue is full" : "the model is not ready";
    const again = attempt > 1 ? ` (attempt ${attempt})` : "";
    return `Server busy (${why}): retrying in ${seconds} s${again}…`;
  }

  const TUNNEL_CLOSED = "Cannot reach the server: the tunnel is closed (or the server " +
    "stopped). Run `fluxdeploy open` again, then reload this page.";

  window.fluxPage = { describeReady, retryAfterSeconds, fieldErrors, allowedSides, busyText,
    formatBytes, TUNNEL_CLOSED };

  // ---- the page ----------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const form = $("generate-form");
  const generateButton = $("generate");
  const cancelButton = $("cancel");
  const message = $("message");
  const results = $("results");
  const historyList = $("history");
  const seedRandom = $("seed-random");
  const seedInput = $("seed");

  const page = {
    ready: false,
    busy: false,
    readyTimer: null,
    polling: false,
    statusLoading: false,
    status: null, // last /model-status
    history: [], // {id, prompt, params, seed, seconds, width, height, thumb, url}
    controller: null,
  };

  // Screen readers hear the model's state when it changes, not every poll.
  function announce(text) {
    const region = $("ready-announce");
    if (region.textContent !== text) region.textContent = text;
  }

  // The visible message; screen readers hear it too unless `quiet` (countdown ticks).
  function setMessage(text, kind, quiet) {
    if (message.textContent === (text || "") && message.dataset.kind === (kind || "")) return;
    message.textContent = text || "";
    message.dataset.kind = kind || "";
    if (!quiet) $("message-announce").textContent = text || "";
  }

  function updateButton() {
    generateButton.disabled = !page.ready || page.busy;
    cancelButton.hidden = !page.busy;
    form.setAttribute("aria-busy", page.busy ? "true" : "false");
  }

  function showReadiness(kind, text, fraction) {
    const box = $("readiness");
    box.dataset.kind = kind;
    $("ready-text").textContent = text;
    const bar = $("ready-progress");
    bar.hidden = fraction === null || fraction === undefined;
    if (!bar.hidden) {
      bar.value = fraction;
      bar.setAttribute("aria-label", text);
    }
  }

  async function fetchJSON(path) {
    const response = await fetch(path, { cache: "no-store" });
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    return { response, body };
  }

  // ---- readiness: poll /ready (every second while loading, every 30 s once ready) ----------

  async function pollReady() {
    if (page.polling) return;
    page.polling = true;
    clearTimeout(page.readyTimer);
    let next = 1000;
    try {
      const { body } = await fetchJSON("ready");
      if (!body || !body.state) throw new Error("no /ready body");
      const seen = describeReady(body);
      showReadiness(seen.kind, seen.text, seen.fraction);
      showModel(body.model, body.tiny);
      const wasReady = page.ready;
      page.ready = seen.kind === "ready";
      if ((page.ready && !wasReady) || !page.status) loadModelStatus();
      announce(seen.kind === "failed" ? `Model ${seen.text}` : `Model ${body.state}`);
      if (!page.ready && !page.busy) {
        setMessage(seen.kind === "failed" ? "The model failed to load: the reason is above."
          : "Generate unlocks when the model is ready.", "waiting", true);
      } else if (page.ready && message.dataset.kind === "waiting") {
        setMessage("", "");
      }
      if (seen.kind === "failed") next = 10000;
      if (page.ready) next = 30000;
    } catch (_) {
      page.ready = false;
      showReadiness("offline", "not connected: the tunnel is closed, or the server stopped",
        null);
      announce("Not connected to the server");
      next = 3000;
    } finally {
      page.polling = false;
    }
    updateButton();
    page.readyTimer = setTimeout(pollReady, next);
  }

  function showModel(model, tiny) {
    if (model) $("model-name").textContent = model;
    $("tiny-notice").hidden = !tiny;
  }

  async function loadModelStatus() {
    if (page.statusLoading) return;
    page.statusLoading = true;
    try {
      const { response, body } = await fetchJSON("model-status");
      if (!response.ok || !body) return;
      page.status = body;
      showModel(body.model, body.tiny);
      const defaults = body.defaults || {};
      const settings = body.settings || {};
      if (defaults.num_inference_steps !== undefined) {
        $("num_inference_steps").placeholder = `${defaults.num_inference_steps} (default)`;
      }
      if (defaults.guidance_scale !== undefined) {
        $("guidance_scale").placeholder = `${defaults.guidance_scale} (default)`;
      }
      if (settings.max_images) $("num_images").max = String(settings.max_images);
      fillSides($("width"), settings.max_side || 2048, defaults.width);
      fillSides($("height"), settings.max_side || 2048, defaults.height);
    } catch (_) {
      /* the readiness line already says the server is unreachable */
    } finally {
      page.statusLoading = false;
    }
  }

  // Offer the allowed sides; keep the person's choice, else select the model's default.
  function fillSides(select, maxSide, defaultSide) {
    const current = select.dataset.chosen === "yes" ? parseInt(select.value, 10) : NaN;
    select.replaceChildren();
    for (const side of allowedSides(maxSide, defaultSide)) {
      const option = new Option(side === defaultSide ? `${side} (default)` : String(side),
        String(side));
      select.add(option);
    }
    const keep = current && [...select.options].some((o) => o.value === String(current));
    select.value = String(keep ? current : defaultSide || 1024);
  }

  // ---- the request -------------------------------------------------------------------------

  function clearFieldErrors() {
    for (const element of form.querySelectorAll("[aria-invalid]")) {
      element.removeAttribute("aria-invalid");
    }
    for (const element of form.querySelectorAll(".field-error")) {
      element.hidden = true;
      element.textContent = "";
    }
  }

  function markField(field, text) {
    const input = $(field);
    const note = $(`${field}-error`);
    if (input) input.setAttribute("aria-invalid", "true");
    if (note) {
      note.textContent = text;
      note.hidden = false;
    }
    return input;
  }

  function numberField(id, errors) {
    const input = $(id);
    if (input.validity.badInput) {
      errors.push({ field: id, label: FIELD_LABELS[id], rule: "is not a number" });
      return undefined;
    }
    if (input.value.trim() === "") return undefined;
    return Number(input.value);
  }

  // The form -> the /generate body; client-side errors only for what JSON cannot carry.
  function readForm() {
    const errors = [];
    const body = { prompt: $("prompt").value.trim(), response_format: "b64_json",
      output_format: "png" };
    const negative = $("negative_prompt").value.trim();
    if (negative) {
      body.negative_prompt = negative;
      const strength = numberField("true_cfg_scale", errors);
      if (strength !== undefined) body.true_cfg_scale = strength;
    }
    for (const id of ["num_inference_steps", "guidance_scale", "num_images"]) {
      const value = numberField(id, errors);
      if (value !== undefined) body[id] = value;
    }
    for (const id of ["width", "height"]) {
      if ($(id).value) body[id] = parseInt($(id).value, 10);
    }
    if (!seedRandom.checked) {
      const seed = numberField("seed", errors);
      if (seed === undefined && !errors.length) {
        errors.push({ field: "seed", label: "Seed", rule: "type a seed, or choose Random" });
      } else if (seed !== undefined && seed > MAX_SAFE_SEED) {
        errors.push({ field: "seed", label: "Seed",
          rule: `must be at most ${MAX_SAFE_SEED} on this page` });
      } else if (seed !== undefined) {
        body.seed = seed;
      }
    }
    return { body, errors };
  }

  function showFieldErrors(errors) {
    let first = null;
    for (const e of errors) {
      const input = markField(e.field, e.rule);
      first = first || input;
    }
    const summary = errors.map((e) => `${e.label} (${e.field}): ${e.rule}`).join("; ");
    setMessage(`Check the settings. ${summary}`, "error");
    if (first) first.focus();
  }

  function sleepWithCountdown(seconds, onTick, signal) {
    return new Promise((resolve, reject) => {
      let left = seconds;
      onTick(left);
      const timer = setInterval(() => {
        left -= 1;
        if (left <= 0) {
          clearInterval(timer);
          resolve();
        } else {
          onTick(left);
        }
      }, 1000);
      signal.addEventListener("abort", () => {
        clearInterval(timer);
        reject(new DOMException("cancelled", "AbortError"));
      }, { once: true });
    });
  }

  async function submit(event) {
    event.preventDefault();
    if (!page.ready || page.busy) return;
    clearFieldErrors();
    const { body, errors } = readForm();
    if (errors.length) {
      showFieldErrors(errors);
      return;
    }
    page.busy = true;
    page.controller = new AbortController();
    updateButton();
    const started = performance.now();
    const ticker = setInterval(() => {
      if (message.dataset.kind === "working") {
        setMessage(`Generating… ${((performance.now() - started) / 1000).toFixed(1)} s`,
          "working", true);
      }
    }, 200);
    try {
      await generateWithRetries(body, page.controller.signal);
    } catch (error) {
      if (error && error.name === "AbortError") setMessage("Cancelled.", "");
      else setMessage(`Unexpected error: ${error}`, "error");
    } finally {
      clearInterval(ticker);
      page.busy = false;
      page.controller = null;
      updateButton();
    }
  }

  async function generateWithRetries(body, signal) {
    for (let attempt = 1; attempt <= 60; attempt += 1) {
      setMessage("Generating… 0.0 s", "working");
      let response;
      try {
        response = await fetch("generate", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body), signal, cache: "no-store",
        });
      } catch (error) {
        if (error.name === "AbortError") throw error;
        setMessage(TUNNEL_CLOSED, "error");
        pollReady();
        return;
      }
      let data = null;
      try { data = await response.json(); } catch (_) { data = null; }
      if (response.ok && data) {
        showResults(body, data);
        setMessage(`Done in ${data.generation_s.toFixed(2)} s` +
          (data.queue_wait_s > 0.05 ? ` (waited ${data.queue_wait_s.toFixed(1)} s in the queue)`
            : "") + ".", "done");
        return;
      }
      if (response.status === 429 || response.status === 503) {
        if (response.status === 503) pollReady();
        const seconds = retryAfterSeconds(response.headers.get("Retry-After"), 5);
        await sleepWithCountdown(seconds,
          (left) => setMessage(busyText(response.status, left, attempt), "busy",
            left !== seconds), signal);
        continue;
      }
      if (response.status === 422) {
        showFieldErrors(fieldErrors(data));
        return;
      }
      const error = (data && data.error) || {};
      const hint = error.hint ? ` — ${error.hint}` : "";
      setMessage(`The server answered ${response.status}: ` +
        `${error.message || response.statusText}${hint}`, "error");
      return;
    }
    setMessage("The server stayed busy for too long: try again later.", "error");
  }

  // ---- results and the session strip -------------------------------------------------------

  function base64ToBlob(b64, type) {
    const raw = atob(b64);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i);
    return new Blob([bytes], { type });
  }

  function altText(prompt, seed) {
    const short = prompt.length > 120 ? `${prompt.slice(0, 117)}…` : prompt;
    return `Generated image for "${short}", seed ${seed}`;
  }

  function resultCard(entry) {
    const figure = document.createElement("figure");
    figure.className = "card";
    const img = document.createElement("img");
    img.src = entry.url || entry.thumb;
    img.alt = altText(entry.prompt, entry.seed);
    img.width = entry.width;
    img.height = entry.height;
    if (Math.max(entry.width, entry.height) < 256) img.classList.add("pixelated");
    const caption = document.createElement("figcaption");
    const facts = document.createElement("span");
    facts.className = "facts";
    facts.textContent = `seed ${entry.seed} · ${entry.seconds.toFixed(2)} s · ` +
      `${entry.width}×${entry.height}`;
    const promptLine = document.createElement("span");
    promptLine.className = "prompt-line";
    promptLine.textContent = entry.prompt;
    promptLine.title = entry.prompt;
    caption.append(facts, promptLine);
    const tools = document.createElement("span");
    tools.className = "tools";
    if (entry.url) {
      const link = document.createElement("a");
      link.href = entry.url;
      link.download = `flux-${entry.seed}.png`;
      link.textContent = "Download";
      link.setAttribute("aria-label", `Download the image with seed ${entry.seed}`);
      tools.append(link);
    } else {
      const note = document.createElement("span");
      note.textContent = "thumbnail only (page reloaded)";
      tools.append(note);
    }
    const reuse = document.createElement("button");
    reuse.type = "button";
    reuse.className = "link";
    reuse.textContent = "Use seed";
    reuse.setAttribute("aria-label", `Use seed ${entry.seed} in the form`);
    reuse.addEventListener("click", () => useSeed(entry.seed));
    tools.append(reuse);
    caption.append(tools);
    figure.append(img, caption);
    return figure;
  }

  function useSeed(seed) {
    seedRandom.checked = false;
    seedInput.disabled = false;
    seedInput.value = String(seed);
    seedInput.focus();
  }

  function showEntries(entries) {
    results.replaceChildren(...entries.map(resultCard));
    results.classList.toggle("single", entries.length === 1);
    $("results-empty").hidden = entries.length > 0;
  }

  function showResults(body, data) {
    const perImage = data.generation_s / Math.max(1, data.images.length);
    const batch = Date.now();
    const entries = data.images.map((image, i) => {
      const blob = base64ToBlob(image.b64, "image/png");
      return {
        id: `${batch}-${i}`, prompt: body.prompt, params: { ...body }, seed: image.seed,
        seconds: data.images.length > 1 ? perImage : data.generation_s,
        width: data.width, height: data.height, url: URL.createObjectURL(blob), thumb: null,
      };
    });
    showEntries(entries);
    if (window.matchMedia("(max-width: 820px)").matches) {
      results.scrollIntoView({ block: "start" }); // one column: the result is below the form
    }
    page.history.unshift(...entries);
    renderHistory();
    Promise.all(entries.map(makeThumb)).then(() => { renderHistory(); saveHistory(); });
  }

  function makeThumb(entry) {
    return new Promise((resolve) => {
      const img = new Image();
      img.onload = () => {
        const scale = Math.min(1, 160 / Math.max(img.naturalWidth, img.naturalHeight));
        const canvas = document.createElement("canvas");
        canvas.width = Math.max(1, Math.round(img.naturalWidth * scale));
        canvas.height = Math.max(1, Math.round(img.naturalHeight * scale));
        canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
        entry.thumb = canvas.toDataURL("image/jpeg", 0.85);
        resolve();
      };
      img.onerror = () => resolve();
      img.src = entry.url;
    });
  }

  function renderHistory() {
    const items = page.history.map((entry) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "thumb";
      button.title = `${entry.prompt} — seed ${entry.seed}`;
      button.setAttribute("aria-label", `Show again: ${altText(entry.prompt, entry.seed)}`);
      const img = document.createElement("img");
      img.src = entry.thumb || entry.url;
      img.alt = "";
      img.width = 80;
      img.height = Math.round(80 * entry.height / entry.width);
      if (Math.max(entry.width, entry.height) < 256) img.classList.add("pixelated");
      const label = document.createElement("span");
      label.textContent = `seed ${entry.seed}`;
      button.append(img, label);
      button.addEventListener("click", () => restore(entry));
      item.append(button);
      return item;
    });
    historyList.replaceChildren(...items);
    $("history-empty").hidden = items.length > 0;
  }

  function restore(entry) {
    const p = entry.params || {};
    $("prompt").value = p.prompt || entry.prompt;
    $("negative_prompt").value = p.negative_prompt || "";
    for (const id of ["num_inference_steps", "guidance_scale", "num_images"]) {
      $(id).value = p[id] !== undefined ? String(p[id]) : (id === "num_images" ? "1" : "");
    }
    if (p.true_cfg_scale !== undefined) $("true_cfg_scale").value = String(p.true_cfg_scale);
    for (const id of ["width", "height"]) {
      if (p[id]) {
        $(id).value = String(p[id]);
        $(id).dataset.chosen = "yes";
      }
    }
    useSeed(entry.seed);
    showEntries([entry]);
    setMessage(`Showing an earlier result; its settings are in the form (seed ${entry.seed}).`,
      "done");
    $("results-title").focus();
  }

  function saveHistory() {
    let kept = page.history.slice(0, HISTORY_LIMIT)
      .filter((e) => e.thumb)
      .map(({ url, ...rest }) => rest);
    while (kept.length) {
      try {
        sessionStorage.setItem(HISTORY_KEY, JSON.stringify(kept));
        return;
      } catch (_) {
        kept = kept.slice(0, -1); // over the quota: drop the oldest
      }
    }
  }

  function loadHistory() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]");
      if (Array.isArray(saved)) page.history = saved.filter((e) => e && e.thumb);
    } catch (_) {
      page.history = [];
    }
    renderHistory();
  }

  // ---- wiring ------------------------------------------------------------------------------

  seedRandom.addEventListener("change", () => {
    seedInput.disabled = seedRandom.checked;
    if (!seedRandom.checked) seedInput.focus();
  });
  form.addEventListener("submit", submit);
  for (const id of ["width", "height"]) {
    $(id).addEventListener("change", () => { $(id).dataset.chosen = "yes"; });
  }
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  cancelButton.addEventListener("click", () => page.controller && page.controller.abort());
  $("results-title").tabIndex = -1;
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) pollReady();
  });

  fillSides($("width"), 2048, 1024);
  fillSides($("height"), 2048, 1024);
  loadHistory();
  loadModelStatus();
  pollReady();
})();
