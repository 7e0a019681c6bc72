// The API key of a server started with FLUX_API_KEYS_FILE. The first 401 asks for it in a
// dialog; it is kept in sessionStorage (this tab only, gone when the tab closes) and sent as
// `Authorization: Bearer <key>` on every API call; a key the server refuses asks again.
// Without FLUX_API_KEYS_FILE the server never answers 401 and nothing is ever asked.

const STORAGE_KEY = "flux.apiKey";
const $ = (id) => document.getElementById(id);
let asking = null; // the open dialog's promise, shared by calls refused at the same time

export function storedKey() {
  try { return sessionStorage.getItem(STORAGE_KEY) || ""; } catch (_) { return ""; }
}

function storeKey(key) {
  try {
    if (key) sessionStorage.setItem(STORAGE_KEY, key);
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch (_) { /* storage off: the key lives until the next 401 */ }
}

function withKey(init) {
  const headers = new Headers((init && init.headers) || {});
  const key = storedKey();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  return { ...(init || {}), headers };
}

// Show the dialog; resolves with the key typed, or "" when the user cancels.
function askForKey(reason) {
  if (asking) return asking;
  const dialog = $("key-dialog");
  const input = $("api-key");
  $("key-reason").textContent = reason;
  input.value = "";
  asking = new Promise((resolve) => {
    const finish = (key) => {
      $("key-form").removeEventListener("submit", onSubmit);
      $("key-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      if (dialog.open) dialog.close();
      asking = null;
      resolve(key);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (key) finish(key);
    };
    const onCancel = (event) => { event.preventDefault(); finish(""); };
    $("key-form").addEventListener("submit", onSubmit);
    $("key-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel); // Escape
  });
  dialog.showModal();
  input.focus();
  return asking;
}

// fetch() with the key; on a 401 ask for a key and try again. Returns the last response
// (a 401 when the user cancelled the dialog).
export async function apiFetch(path, init) {
  for (;;) {
    const sent = storedKey();
    const response = await fetch(path, withKey(init));
    if (response.status !== 401) return response;
    if (storedKey() !== sent) continue; // another call got a new key meanwhile
    const key = await askForKey(sent
      ? "The server did not accept that key (wrong, or revoked). Enter another one."
      : "This server needs an API key. Ask whoever deployed it for one.");
    storeKey(key);
    if (!key) return response;
  }
}
