// The prompt page of flux_server: plain JavaScript modules, no build step, no third-party
// requests. Every URL is relative to the page, so the same files work behind a tunnel, a
// proxy or a route prefix (Ray Serve). Pure wording and parsing live in logic.js, the result
// cards and the session strip in results.js, the API key (asked for on a 401) in auth.js;
// this file is the form, /ready and /generate.
import {
  FIELD_LABELS, MAX_SAFE_SEED, TUNNEL_CLOSED, allowedSides, busyText, describeReady,
  fieldErrors, formatBytes, retryAfterSeconds,
} from "./logic.js";
import { SessionResults } from "./results.js";
import { apiFetch } from "./auth.js";

window.fluxPage = { describeReady, retryAfterSeconds, fieldErrors, allowedSides, busyText,
  formatBytes, TUNNEL_CLOSED };

// ---- the page ----------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
const form = $("generate-form");
const generateButton = $("generate");
const cancelButton = $("cancel");
const message = $("message");
const seedRandom = $("seed-random");
const seedInput = $("seed");

const page = {
  ready: false,
  busy: false,
  readyTimer: null,
  polling: false,
  statusLoading: false,
  status: null, // last /model-status
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
  const response = await apiFetch(path, { cache: "no-store" });
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
    // `hidden` while the server has API keys: the name comes from /model-status then
    showModel(body.model === "hidden" ? page.status && page.status.model : body.model,
      body.tiny);
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
      response = await apiFetch("generate", {
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
      showResult(body, data);
      setMessage(`Done in ${data.generation_s.toFixed(2)} s` +
        (data.queue_wait_s > 0.05 ? ` (waited ${data.queue_wait_s.toFixed(1)} s in the queue)`
          : "") + ".", "done");
      return;
    }
    const retryable = response.headers.get("x-should-retry") !== "false";  // terminal 503
    if ((response.status === 429 || response.status === 503) && retryable) {
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

// ---- results: the form's part -----------------------------------------------------------

function useSeed(seed) {
  seedRandom.checked = false;
  seedInput.disabled = false;
  seedInput.value = String(seed);
  seedInput.focus();
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
  setMessage(`Showing an earlier result; its settings are in the form (seed ${entry.seed}).`,
    "done");
  $("results-title").focus();
}

const results = new SessionResults({
  grid: $("results"), gridEmpty: $("results-empty"), strip: $("history"),
  stripEmpty: $("history-empty"), onUseSeed: useSeed, onRestore: restore,
});

function showResult(body, data) {
  results.add(body, data);
  if (window.matchMedia("(max-width: 820px)").matches) {
    $("results").scrollIntoView({ block: "start" }); // one column: the result is below the form
  }
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
results.load();
loadModelStatus();
pollReady();
