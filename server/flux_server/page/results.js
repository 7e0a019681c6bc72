// The results of the prompt page: image cards (seed, time, download) and the strip of this
// browser session's earlier results (thumbnails kept in sessionStorage across reloads).
import { altText } from "./logic.js";

const HISTORY_KEY = "flux-page-history-v1";
const HISTORY_LIMIT = 24;
const THUMB_SIDE = 160;

function base64ToBlob(b64, type) {
  const raw = atob(b64);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i);
  return new Blob([bytes], { type });
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// A small JPEG data: URL of the entry's image (what the strip keeps across reloads).
function makeThumb(entry) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => {
      const scale = Math.min(1, THUMB_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
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

export class SessionResults {
  // grid, strip, empty notes: elements; onUseSeed(seed), onRestore(entry): the form's part.
  constructor({ grid, gridEmpty, strip, stripEmpty, onUseSeed, onRestore }) {
    Object.assign(this, { grid, gridEmpty, strip, stripEmpty, onUseSeed, onRestore });
    this.history = []; // {id, prompt, params, seed, seconds, width, height, url, thumb}
  }

  // A /generate b64_json answer for the request `body` -> cards, and the strip.
  add(body, data) {
    const perImage = data.generation_s / Math.max(1, data.images.length);
    const batch = Date.now();
    const entries = data.images.map((image, i) => ({
      id: `${batch}-${i}`, prompt: body.prompt, params: { ...body }, seed: image.seed,
      seconds: data.images.length > 1 ? perImage : data.generation_s,
      width: data.width, height: data.height, thumb: null,
      url: URL.createObjectURL(base64ToBlob(image.b64, "image/png")),
    }));
    this.show(entries);
    this.history.unshift(...entries);
    this.renderStrip();
    Promise.all(entries.map(makeThumb)).then(() => { this.renderStrip(); this.save(); });
  }

  show(entries) {
    this.grid.replaceChildren(...entries.map((entry) => this.card(entry)));
    this.grid.classList.toggle("single", entries.length === 1);
    this.gridEmpty.hidden = entries.length > 0;
  }

  card(entry) {
    const figure = element("figure", "card");
    const img = document.createElement("img");
    img.src = entry.url || entry.thumb;
    img.alt = altText(entry.prompt, entry.seed);
    img.width = entry.width;
    img.height = entry.height;
    if (Math.max(entry.width, entry.height) < 256) img.classList.add("pixelated");
    const caption = document.createElement("figcaption");
    const facts = element("span", "facts", `seed ${entry.seed} · ${entry.seconds.toFixed(2)} s` +
      ` · ${entry.width}×${entry.height}`);
    const promptLine = element("span", "prompt-line", entry.prompt);
    promptLine.title = entry.prompt;
    const tools = element("span", "tools");
    if (entry.url) {
      const link = element("a", "", "Download");
      link.href = entry.url;
      link.download = `flux-${entry.seed}.png`;
      link.setAttribute("aria-label", `Download the image with seed ${entry.seed}`);
      tools.append(link);
    } else {
      tools.append(element("span", "", "thumbnail only (page reloaded)"));
    }
    const reuse = element("button", "link", "Use seed");
    reuse.type = "button";
    reuse.setAttribute("aria-label", `Use seed ${entry.seed} in the form`);
    reuse.addEventListener("click", () => this.onUseSeed(entry.seed));
    tools.append(reuse);
    caption.append(facts, promptLine, tools);
    figure.append(img, caption);
    return figure;
  }

  renderStrip() {
    const items = this.history.map((entry) => {
      const item = document.createElement("li");
      const button = element("button", "thumb");
      button.type = "button";
      button.title = `${entry.prompt} — seed ${entry.seed}`;
      button.setAttribute("aria-label", `Show again: ${altText(entry.prompt, entry.seed)}`);
      const img = document.createElement("img");
      img.src = entry.thumb || entry.url;
      img.alt = "";
      img.width = 80;
      img.height = Math.round((80 * entry.height) / entry.width);
      if (Math.max(entry.width, entry.height) < 256) img.classList.add("pixelated");
      button.append(img, element("span", "", `seed ${entry.seed}`));
      button.addEventListener("click", () => {
        this.show([entry]);
        this.onRestore(entry);
      });
      item.append(button);
      return item;
    });
    this.strip.replaceChildren(...items);
    this.stripEmpty.hidden = items.length > 0;
  }

  save() {
    let kept = this.history.slice(0, HISTORY_LIMIT).filter((e) => e.thumb)
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

  load() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]");
      this.history = Array.isArray(saved) ? saved.filter((e) => e && e.thumb) : [];
    } catch (_) {
      this.history = [];
    }
    this.renderStrip();
  }
}
