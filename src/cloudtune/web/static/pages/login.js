// Sign-in, and the first admin's setup (which turns on multi-user mode).

import { post } from "../api.js";
import { loadSession, navigate } from "../app.js";
import { clear, errorBox, h } from "../dom.js";

function field(id, label, attributes) {
  return [h("label", { for: id }, label), h("input", { id, name: id, required: true, ...attributes })];
}

function nextPath() {
  const next = new URLSearchParams(location.search).get("next") || "/jobs";
  // Only a page of this site, read as the browser reads it (`/\\host` is another host).
  try {
    const url = new URL(next, location.origin);
    if (url.origin === location.origin) return url.pathname + url.search;
  } catch {
    // not an address at all
  }
  return "/jobs";
}

function loginForm(main, session) {
  const errors = h("div", { "aria-live": "assertive" });
  const form = h(
    "form.panel.login-card",
    { id: "login-form" },
    h("h1", "Sign in"),
    session.setup.needs_setup
      ? h(
          "p.muted",
          "No user exists yet: on the server's own machine you are its admin without signing in. ",
          h("a", { href: "/setup" }, "Create the first admin"),
          " to let others in.",
        )
      : null,
    errors,
    field("username", "Username", { type: "text", autocomplete: "username", autofocus: true }),
    field("password", "Password", { type: "password", autocomplete: "current-password" }),
    h("div.actions", h("button.primary", { type: "submit" }, "Sign in")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(errors);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await post("/api/auth/login", { username: form.username.value, password: form.password.value });
      await loadSession();
      navigate(nextPath(), { replace: true });
    } catch (error) {
      errors.append(errorBox(error));
      form.password.value = "";
      form.password.focus();
    } finally {
      button.disabled = false;
    }
  });
  main.append(form);
  if (session.signedIn && !session.setup.needs_setup) {
    main.prepend(h("p.muted", "You are signed in as ", session.me.username, ". ", h("a", { href: "/jobs" }, "Go to the jobs.")));
  }
}

function setupForm(main, session) {
  if (!session.setup.needs_setup) {
    main.append(
      h("div.panel.login-card", h("h1", "Setup done"), h("p", "An admin exists already. ", h("a", { href: "/login" }, "Sign in."))),
    );
    return;
  }
  const errors = h("div", { "aria-live": "assertive" });
  const form = h(
    "form.panel.login-card",
    { id: "setup-form" },
    h("h1", "Create the first admin"),
    h("p.muted", "From then on everyone signs in, and the admin adds users and their roles."),
    errors,
    field("username", "Username", { type: "text", autocomplete: "username", minlength: 3 }),
    field("email", "Email", { type: "email", autocomplete: "email" }),
    field("password", "Password", { type: "password", autocomplete: "new-password", minlength: 8 }),
    h("label", { for: "setup-token" }, "Setup token"),
    h("input", { id: "setup-token", name: "setup_token", type: "password", autocomplete: "off" }),
    h("p.hint", "Only needed from another machine: the server prints it in its log."),
    h("div.actions", h("button.primary", { type: "submit" }, "Create admin")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(errors);
    const token = form.setup_token.value.trim();
    try {
      await post(
        "/api/auth/setup/first-admin",
        { username: form.username.value, email: form.email.value, password: form.password.value },
        { headers: token ? { "X-Setup-Token": token } : {} },
      );
      await loadSession();
      navigate("/jobs", { replace: true });
    } catch (error) {
      errors.append(errorBox(error));
    }
  });
  main.append(form);
}

export async function render(main, session) {
  if (location.pathname === "/setup") setupForm(main, session);
  else loginForm(main, session);
}
