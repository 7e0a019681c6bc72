// Pure helpers of the prompt page: wording and parsing, no DOM and no network (the browser
// tests call them through window.fluxPage).

export const FIELD_LABELS = {
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
export const MAX_SAFE_SEED = Number.MAX_SAFE_INTEGER;

export function formatBytes(done, total) {
  const unit = total >= 1e9 ? [1e9, "GB"] : total >= 1e6 ? [1e6, "MB"] : [1e3, "kB"];
  return `${(done / unit[0]).toFixed(1)} / ${(total / unit[0]).toFixed(1)} ${unit[1]}`;
}

export function formatSeconds(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

// A /ready body -> {kind: loading|ready|failed, text, fraction (0-1 or null)}.
export function describeReady(body) {
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
export function retryAfterSeconds(header, fallback, now) {
  if (header) {
    const trimmed = header.trim();
    if (/^\d+$/.test(trimmed)) return Math.max(1, parseInt(trimmed, 10));
    const when = Date.parse(trimmed);
    if (!Number.isNaN(when)) return Math.max(1, Math.ceil((when - (now ?? Date.now())) / 1000));
  }
  return fallback;
}

// A 422 body -> [{field, label, rule}] (the server names each field and its rule).
export function fieldErrors(body) {
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
export function allowedSides(maxSide, defaultSide) {
  const sides = COMMON_SIDES.filter((s) => s <= maxSide);
  if (defaultSide && !sides.includes(defaultSide)) sides.push(defaultSide);
  return sides.sort((a, b) => a - b);
}

export function busyText(status, seconds, attempt) {
  const why = status === 429 ? "the queue is full" : "the model is not ready";
  const again = attempt > 1 ? ` (attempt ${attempt})` : "";
  return `Server busy (${why}): retrying in ${seconds} s${again}…`;
}

export const TUNNEL_CLOSED = "Cannot reach the server: the tunnel is closed (or the server " +
  "stopped). Run `fluxdeploy open` again, then reload this page.";

// The alt text of a generated image: its prompt (shortened) and its seed.
export function altText(prompt, seed) {
  const short = prompt.length > 120 ? `${prompt.slice(0, 117)}…` : prompt;
  return `Generated image for "${short}", seed ${seed}`;
}
