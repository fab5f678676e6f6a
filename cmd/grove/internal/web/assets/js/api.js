// The JSON API of the daemon's web server (docs/API.md). Every call
// carries the session cookie (the browser adds it) and the per-session
// request token, which lives in sessionStorage: it never leaves this
// origin, unlike a cookie, which other ports of 127.0.0.1 also receive.

const tokenKey = "grove.token";

export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function hasToken() {
  return !!sessionStorage.getItem(tokenKey);
}

export function forgetToken() {
  sessionStorage.removeItem(tokenKey);
}

// signIn redeems the one-time token of a sign-in link.
export async function signIn(loginToken) {
  const r = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: loginToken }),
    credentials: "same-origin",
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new APIError(r.status, body.code, body.message || "sign-in failed");
  sessionStorage.setItem(tokenKey, body.token);
}

function headers(extra) {
  return Object.assign({ "X-Grove-Token": sessionStorage.getItem(tokenKey) || "" }, extra);
}

// call performs one API request and returns its decoded JSON answer.
export async function call(method, path, body, signal) {
  const init = { method, headers: headers(), credentials: "same-origin", signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new APIError(r.status, data.code, data.message || r.statusText);
  return data;
}

// blob fetches a file the API streams (a download) and returns it as a
// Blob; an error answer is thrown like call's.
export async function blob(path) {
  const r = await fetch(path, { headers: headers(), credentials: "same-origin" });
  if (!r.ok) {
    const data = await r.json().catch(() => ({}));
    throw new APIError(r.status, data.code, data.message || r.statusText);
  }
  return r.blob();
}

export const get = (path, signal) => call("GET", path, undefined, signal);
export const post = (path, body) => call("POST", path, body === undefined ? {} : body);
export const del = (path) => call("DELETE", path);

export function q(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "" && v !== null) u.set(k, String(v));
  const s = u.toString();
  return s ? "?" + s : "";
}

// events reads the server-sent event stream (over fetch, because
// EventSource cannot send the token header) and calls onEvent for each
// event and onReady each time the stream (re)connects. It reconnects with
// a growing pause until stop() is called; onAuthError ends it for good.
export function events({ onEvent, onReady, onDown, onAuthError }) {
  let stopped = false;
  let ctrl = null;
  let pause = 500;
  async function run() {
    while (!stopped) {
      ctrl = new AbortController();
      try {
        const r = await fetch("/api/events", { headers: headers(), credentials: "same-origin", signal: ctrl.signal });
        if (r.status === 401 || r.status === 403) {
          const body = await r.json().catch(() => ({}));
          onAuthError(new APIError(r.status, body.code, body.message || "signed out"));
          return;
        }
        if (!r.ok || !r.body) throw new Error("event stream: " + r.status);
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            if (block.startsWith(": ready")) {
              pause = 500;
              onReady();
              continue;
            }
            let data = "";
            for (const line of block.split("\n")) if (line.startsWith("data: ")) data += line.slice(6);
            if (data) {
              try {
                onEvent(JSON.parse(data));
              } catch (e) {
                console.error("bad event", e);
              }
            }
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      if (stopped) return;
      onDown();
      await new Promise((res) => setTimeout(res, pause));
      pause = Math.min(pause * 2, 10000);
    }
  }
  run();
  return { stop() { stopped = true; if (ctrl) ctrl.abort(); } };
}
