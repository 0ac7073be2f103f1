// The UI's entry: who is signed in, which page the address names, and moving between pages
// without a reload. Each page module exports `render(main, session, params)`, which may
// return a function that stops what it started (polling, a stream) when the page is left.

import { csrfToken, get, post, whenUnauthenticated } from "./api.js";
import { clear, errorBox, h } from "./dom.js";

const ROUTES = [
  [/^\/$/, "jobs", () => import("./pages/jobs.js")],
  [/^\/jobs$/, "jobs", () => import("./pages/jobs.js")],
  [/^\/jobs\/([A-Za-z0-9_-]+)$/, "jobs", () => import("./pages/job.js")],
  [/^\/configs$/, "configs", () => import("./pages/configs.js")],
  [/^\/configs\/([^/]+)$/, "configs", () => import("./pages/configs.js")],
  [/^\/settings$/, "settings", () => import("./pages/settings.js")],
  [/^\/login$/, null, () => import("./pages/login.js")],
  [/^\/setup$/, null, () => import("./pages/login.js")],
];

// What the pages know of the caller: `can(permission)` hides what it may not use.
export class Session {
  constructor(me, setup) {
    this.me = me;
    this.setup = setup;
    this.permissions = new Set(me ? me.permissions : []);
  }
  get signedIn() {
    return Boolean(this.me);
  }
  get multiUser() {
    return Boolean(this.setup && this.setup.user_count > 0);
  }
  get isAdmin() {
    return Boolean(this.me && this.me.role === "admin");
  }
  can(permission) {
    return this.permissions.has(permission);
  }
  canAny(...permissions) {
    return permissions.some((p) => this.permissions.has(p));
  }
}

let stopPage = null;
let session = null;

export async function loadSession() {
  const setup = await get("/api/auth/setup/status");
  let me = null;
  // Once users exist a signed-in browser holds the CSRF cookie (set with the session's): with
  // none, nobody is signed in, and asking would only be refused.
  if (setup.user_count === 0 || csrfToken()) {
    try {
      me = await get("/api/auth/me");
    } catch (error) {
      if (error.status !== 401) throw error;
    }
  }
  session = new Session(me, setup);
  renderChrome();
  return session;
}

function renderChrome() {
  const who = document.getElementById("whoami");
  const logout = document.getElementById("logout");
  const settings = document.getElementById("settings-link");
  const tabs = document.querySelector(".tabs");
  if (session.signedIn) {
    who.textContent = session.multiUser ? `${session.me.username} (${session.me.role})` : "local admin";
  } else {
    who.textContent = "";
  }
  logout.hidden = !(session.signedIn && session.multiUser && session.me.auth_method !== "local");
  settings.hidden = !session.signedIn;
  tabs.hidden = !session.signedIn;
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  return render();
}

function routeOf(pathname) {
  for (const [pattern, tab, load] of ROUTES) {
    const match = pathname.match(pattern);
    if (match) return { tab, load, params: match.slice(1).map(decodeURIComponent) };
  }
  return null;
}

async function render() {
  const main = document.getElementById("main");
  if (stopPage) {
    stopPage();
    stopPage = null;
  }
  const path = location.pathname;
  const route = routeOf(path);
  for (const link of document.querySelectorAll("[data-tab]")) {
    if (route && link.dataset.tab === route.tab) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!route) {
    clear(main).append(h("h1", "Not found"), h("p", "No page here. ", h("a", { href: "/jobs" }, "Back to the jobs.")));
    return;
  }
  if (!session.signedIn && route.tab !== null) {
    const next = path + location.search;
    return navigate(`/login?next=${encodeURIComponent(next)}`, { replace: true });
  }
  main.setAttribute("aria-busy", "true");
  try {
    const page = await route.load();
    clear(main);
    const stop = await page.render(main, session, route.params);
    if (typeof stop === "function") stopPage = stop;
  } catch (error) {
    clear(main).append(h("h1", "Something went wrong"), errorBox(error));
  } finally {
    main.setAttribute("aria-busy", "false");
  }
}

function interceptLinks(event) {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest("a[href]");
  if (!link || link.target || link.hasAttribute("download")) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/docs")) return;
  if (!routeOf(url.pathname)) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
}

function setupTheme() {
  const saved = localStorage.getItem("cloudtune-theme");
  if (saved) document.documentElement.dataset.theme = saved;
  document.getElementById("theme-toggle").addEventListener("click", () => {
    const dark = document.documentElement.dataset.theme
      ? document.documentElement.dataset.theme === "dark"
      : matchMedia("(prefers-color-scheme: dark)").matches;
    const next = dark ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem("cloudtune-theme", next);
  });
}

async function logout() {
  try {
    await post("/api/auth/logout");
  } finally {
    await loadSession();
    navigate("/login", { replace: true });
  }
}

async function start() {
  setupTheme();
  document.addEventListener("click", interceptLinks);
  window.addEventListener("popstate", render);
  document.getElementById("logout").addEventListener("click", logout);
  whenUnauthenticated(async () => {
    await loadSession();
    if (!session.signedIn && location.pathname !== "/login") {
      navigate(`/login?next=${encodeURIComponent(location.pathname)}`, { replace: true });
    }
  });
  try {
    await loadSession();
  } catch (error) {
    clear(document.getElementById("main")).append(h("h1", "cloudtune"), errorBox(error));
    return;
  }
  await render();
}

start();
