// Settings: the users of a multi-user server and their roles (admins only).

import { api, del, get, post } from "../api.js";

const userPath = (user) => `/api/users/${encodeURIComponent(user.id)}`;
import { clear, confirmDialog, h, toast, when } from "../dom.js";
import { busy, failed, field, section, setFieldError } from "./settings-common.js";

// The server's roles, least to most; it refuses any other (and names these in its answer).
const ROLES = ["viewer", "researcher", "lead", "admin"];

function roleSelect(id, selected) {
  return h(
    "select",
    { id, name: "role" },
    ROLES.map((role) => h("option", { value: role, selected: role === selected }, role)),
  );
}

function addForm(onAdded) {
  const username = h("input", { id: "user-username", name: "username", type: "text", required: true, maxlength: 50, autocomplete: "off" });
  const email = h("input", { id: "user-email", name: "email", type: "email", required: true, maxlength: 255, autocomplete: "off" });
  const password = h("input", { id: "user-password", name: "password", type: "password", required: true, autocomplete: "new-password" });
  const role = roleSelect("user-role", "researcher");
  const slot = h("div");
  const form = h(
    "form.settings-form",
    { id: "add-user-form", novalidate: true },
    h("h3", "Add a user"),
    h(
      "div.grid",
      field(username, "Username"),
      field(email, "Email"),
      field(password, "Password", "Tell it to them yourself; they sign in with it."),
      field(role, "Role"),
    ),
    slot,
    h("div.actions", h("button.primary", { type: "submit" }, "Add user")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const missing = [username, email, password].filter((input) => !input.value.trim());
    for (const input of [username, email, password]) setFieldError(input, missing.includes(input) ? "Required." : "");
    if (missing.length) {
      missing[0].focus();
      return;
    }
    await busy(form, slot, async () => {
      const user = await post("/api/users", {
        username: username.value.trim(),
        email: email.value.trim(),
        password: password.value,
        role: role.value,
      });
      form.reset();
      role.value = "researcher";
      toast(`User ${user.username} added as ${user.role}`, "ok");
      await onAdded();
    });
  });
  return form;
}

function userRow(user, session, actions) {
  const self = session.me && user.id === session.me.id;
  let roleCell = h("span", user.role);
  if (!self && user.is_active) {
    const select = roleSelect(`role-of-${user.id}`, user.role);
    select.setAttribute("aria-label", `Role of ${user.username}`);
    select.addEventListener("change", () => actions.setRole(user, select));
    roleCell = select;
  }
  return h(
    "tr",
    { dataset: { username: user.username } },
    h("td", user.username, self ? h("span.muted", " (you)") : null, user.is_active ? null : h("span.muted", " (disabled)")),
    h("td.hide-narrow", user.email || "—"),
    h("td", roleCell),
    h("td.hide-narrow", when(user.created_at)),
    h("td.hide-narrow", user.last_login_at ? when(user.last_login_at) : "never"),
    h(
      "td",
      self
        ? null
        : user.is_active
          ? h("button.danger", { type: "button", "aria-label": `Disable ${user.username}`, onclick: () => actions.remove(user) }, "Disable")
          : h("button", { type: "button", "aria-label": `Enable ${user.username}`, onclick: () => actions.enable(user) }, "Enable"),
    ),
  );
}

export async function usersSection(session) {
  const listSlot = h("div");
  const errorSlot = h("div");

  const actions = {
    async setRole(user, select) {
      await busy(listSlot, errorSlot, async () => {
        await api("PATCH", userPath(user), { role: select.value });
        toast(`${user.username} is now ${select.value}`, "ok");
      });
      await load();
    },
    async remove(user) {
      const ok = await confirmDialog(
        `Disable ${user.username}?`,
        "They can no longer sign in; their sessions end and their API and storage keys are revoked. Their jobs and files stay.",
        "Disable user",
        true,
      );
      if (!ok) return;
      await busy(listSlot, errorSlot, async () => {
        await del(userPath(user));
        toast(`${user.username} disabled`, "ok");
        await load();
      });
    },
    async enable(user) {
      await busy(listSlot, errorSlot, async () => {
        await api("PATCH", userPath(user), { is_active: true });
        toast(`${user.username} may sign in again`, "ok");
        await load();
      });
    },
  };

  async function load() {
    try {
      const users = await get("/api/users");
      clear(listSlot).append(
        h(
          "div.table-wrap",
          h(
            "table",
            { id: "users-table", "aria-label": "Users" },
            h(
              "thead",
              h(
                "tr",
                h("th", { scope: "col" }, "Username"),
                h("th.hide-narrow", { scope: "col" }, "Email"),
                h("th", { scope: "col" }, "Role"),
                h("th.hide-narrow", { scope: "col" }, "Created"),
                h("th.hide-narrow", { scope: "col" }, "Last sign-in"),
                h("th", { scope: "col" }, h("span.visually-hidden", "Actions")),
              ),
            ),
            h(
              "tbody",
              users.map((user) => userRow(user, session, actions)),
            ),
          ),
        ),
      );
    } catch (error) {
      failed(listSlot, error);
    }
  }

  await load();
  return section(
    "settings-users",
    "Users",
    h("p.muted", "Roles: a viewer sees its own jobs; a researcher trains; a lead also sees everyone's jobs and the costs; an admin may do everything."),
    errorSlot,
    listSlot,
    addForm(load),
  );
}
