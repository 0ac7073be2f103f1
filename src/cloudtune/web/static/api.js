// The one way the UI speaks to the server: JSON over the same HTTP API as the CLI and SDK,
// with the session cookie, and the CSRF token on every change (read from its cookie).

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message || `request failed (${status})`);
    this.status = status;
    this.code = code || "error";
    this.body = body || {};
  }
}

const CSRF_COOKIE = "cloudtune_csrf";

export function csrfToken() {
  for (const part of document.cookie.split("; ")) {
    const at = part.indexOf("=");
    if (part.slice(0, at) === CSRF_COOKIE) return decodeURIComponent(part.slice(at + 1));
  }
  return null;
}

// Called with the error of any 401 outside /api/auth (the app sends the user to the login).
let onUnauthenticated = () => {};
export function whenUnauthenticated(handler) {
  onUnauthenticated = handler;
}

function messageOf(body, status) {
  if (body && typeof body.error === "string" && body.error) return body.error;
  if (body && typeof body.detail === "string") return body.detail;
  return `the server answered ${status}`;
}

export async function api(method, path, body, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") {
    const token = csrfToken();
    if (token) headers["X-CSRF-Token"] = token;
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal: options.signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "unreachable", "The server cannot be reached; is it running?");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: text.slice(0, 300) };
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data && data.code, messageOf(data, response.status), data);
    if (response.status === 401 && !path.startsWith("/api/auth/")) onUnauthenticated(error);
    throw error;
  }
  return data;
}

export const get = (path, options) => api("GET", path, undefined, options);
export const post = (path, body, options) => api("POST", path, body === undefined ? {} : body, options);
export const put = (path, body, options) => api("PUT", path, body, options);
export const del = (path, options) => api("DELETE", path, undefined, options);

// Server-sent events with the session cookie (same origin): calls onEvent(event, data) for
// each message; returns a function that stops it. EventSource reconnects by itself; a stream
// the server ended (`done`) is closed here so it does not start again.
export function stream(path, onEvent, onError) {
  const source = new EventSource(path, { withCredentials: true });
  const names = ["message", "status", "progress", "log", "done"];
  for (const name of names) {
    source.addEventListener(name, (event) => {
      onEvent(name, event.data);
      if (name === "done") source.close();
    });
  }
  source.onerror = () => {
    if (onError) onError();
  };
  return () => source.close();
}
