// Settings: the caller's API keys. A new key's secret is shown once, in this page's memory
// only; the list shows prefixes, never secrets.

import { del, get, post } from "../api.js";
import { clear, confirmDialog, h, toast, when } from "../dom.js";
import { busy, failed, field, section, setFieldError } from "./settings-common.js";

const MAX_EXPIRES_DAYS = 365;

function scopeList(scopes) {
  if (scopes === null || scopes === undefined) return h("span.muted", "all of yours");
  return h(
    "ul.settings-scopes",
    scopes.map((s) => h("li", h("code", s))),
  );
}

function keyState(key) {
  if (key.revoked_at) return h("span.badge.badge-failed", "revoked");
  if (!key.is_active) return h("span.badge.badge-cancelled", "expired");
  return h("span.badge.badge-completed", "active");
}

// Copies with the Clipboard API; where the browser refuses it, the text is selected so that
// the usual copy keys take it.
async function copyText(text, element) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied to the clipboard", "ok");
  } catch {
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    toast("The key is selected: press Ctrl+C (⌘C) to copy it.");
  }
}

function secretOnce(created) {
  const code = h("code", { id: "new-key-secret" }, created.key);
  const box = h(
    "div.settings-secret",
    { role: "region", "aria-label": "Your new API key" },
    h("p", h("strong", `Key “${created.key_info.name}” created.`), " Copy it now: it will not be shown again."),
    h("div.secret-once", code),
    h(
      "div.actions",
      h("button", { type: "button", onclick: () => box.remove() }, "Done"),
      h("button.primary", { type: "button", id: "copy-new-key", onclick: () => copyText(created.key, code) }, "Copy"),
    ),
  );
  return box;
}

function createForm(session, onCreated) {
  const name = h("input", { id: "key-name", name: "name", type: "text", maxlength: 128, required: true, autocomplete: "off" });
  const expires = h("input", { id: "key-expires", name: "expires_days", type: "number", min: 1, max: MAX_EXPIRES_DAYS, step: 1, inputmode: "numeric" });
  const scopes = [...session.permissions].sort().map((permission) => {
    const id = `scope-${permission.replaceAll(".", "-")}`;
    return h(
      "label.inline",
      { for: id },
      h("input", { id, type: "checkbox", name: "scope", value: permission }),
      h("code", permission),
    );
  });
  const slot = h("div");
  const form = h(
    "form.settings-form",
    { id: "api-key-form", novalidate: true },
    h("h3", "New key"),
    h("div.grid", field(name, "Name"), field(expires, "Expires after (days)", `1 to ${MAX_EXPIRES_DAYS}; empty: never.`)),
    h(
      "fieldset",
      h("legend", "Scopes"),
      h("p.hint", "What the key may do: some of your own permissions. None ticked: all of them."),
      h("div.settings-scope-grid", scopes),
    ),
    slot,
    h("div.actions", h("button.primary", { type: "submit" }, "Create key")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setFieldError(name, "");
    setFieldError(expires, "");
    const body = { name: name.value.trim() };
    if (!body.name) {
      setFieldError(name, "Give the key a name.");
      name.focus();
      return;
    }
    if (expires.value !== "") {
      const days = Number(expires.value);
      if (!Number.isInteger(days) || days < 1 || days > MAX_EXPIRES_DAYS) {
        setFieldError(expires, `A whole number of days from 1 to ${MAX_EXPIRES_DAYS}, or empty.`);
        expires.focus();
        return;
      }
      body.expires_days = days;
    }
    const ticked = [...form.querySelectorAll('input[name="scope"]:checked')].map((box) => box.value);
    if (ticked.length) body.scoped_permissions = ticked;
    await busy(form, slot, async () => {
      const created = await post("/api/cloud/auth/api-keys", body);
      form.reset();
      await onCreated(created);
    });
  });
  return form;
}

function keyTable(keys, onRevoke) {
  if (!keys.length) return h("p.muted", { id: "api-keys-empty" }, "No API keys yet.");
  return h(
    "div.table-wrap",
    h(
      "table",
      { id: "api-keys-table", "aria-label": "API keys" },
      h(
        "thead",
        h(
          "tr",
          h("th", { scope: "col" }, "Name"),
          h("th.hide-narrow", { scope: "col" }, "Prefix"),
          h("th", { scope: "col" }, "Scopes"),
          h("th.hide-narrow", { scope: "col" }, "Created"),
          h("th.hide-narrow", { scope: "col" }, "Expires"),
          h("th.hide-narrow", { scope: "col" }, "Last used"),
          h("th", { scope: "col" }, "State"),
          h("th", { scope: "col" }, h("span.visually-hidden", "Actions")),
        ),
      ),
      h(
        "tbody",
        keys.map((key) =>
          h(
            "tr",
            { dataset: { keyId: key.id } },
            h("td", key.name, h("div.hint.settings-narrow-only", h("code", `${key.key_prefix}…`))),
            h("td.hide-narrow", h("code", `${key.key_prefix}…`)),
            h("td", scopeList(key.scoped_permissions)),
            h("td.hide-narrow", when(key.created_at)),
            h("td.hide-narrow", key.expires_at ? when(key.expires_at) : "never"),
            h("td.hide-narrow", key.last_used_at ? when(key.last_used_at) : "never"),
            h("td", keyState(key)),
            h(
              "td",
              key.revoked_at
                ? null
                : h("button.danger", { type: "button", "aria-label": `Revoke ${key.name}`, onclick: () => onRevoke(key) }, "Revoke"),
            ),
          ),
        ),
      ),
    ),
  );
}

export async function keysSection(session) {
  const secretSlot = h("div", { "aria-live": "polite" });
  const listSlot = h("div");
  const errorSlot = h("div");

  async function load() {
    try {
      const { keys } = await get("/api/cloud/auth/api-keys");
      clear(listSlot).append(keyTable(keys, revoke));
    } catch (error) {
      failed(listSlot, error);
    }
  }

  async function revoke(key) {
    const ok = await confirmDialog(
      `Revoke “${key.name}”?`,
      "Anything using this key is refused from now on. This cannot be undone.",
      "Revoke key",
      true,
    );
    if (!ok) return;
    await busy(listSlot, errorSlot, async () => {
      await del(`/api/cloud/auth/api-keys/${encodeURIComponent(key.id)}`);
      toast(`Key “${key.name}” revoked`, "ok");
      await load();
    });
  }

  const form = createForm(session, async (created) => {
    clear(secretSlot).append(secretOnce(created));
    await load();
    secretSlot.querySelector("#copy-new-key").focus();
  });
  await load();
  return section(
    "settings-api-keys",
    "API keys",
    h("p.muted", "For the CLI, the SDK and scripts: send ", h("code", "Authorization: Bearer <key>"), "."),
    form,
    secretSlot,
    errorSlot,
    h("h3", "Your keys"),
    listSlot,
  );
}
