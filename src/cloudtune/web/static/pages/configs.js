// The Configure tab: every named config the caller may see, and (at /configs/<name>, or
// /configs?new / ?copy=<name> for one not saved yet) the editor of one, in config-editor.js.

import { del, get } from "../api.js";
import { navigate } from "../app.js";
import { clear, confirmDialog, errorBox, h, toast, when } from "../dom.js";
import { renderEditor } from "./config-editor.js";

function modelOf(item) {
  const parts = [item.model_family, item.model_type].filter(Boolean);
  return parts.length ? parts.join(" · ") : "—";
}

// The first free "<name>-copy", "<name>-copy-2", ... among the names listed.
export function copyName(name, taken) {
  const base = `${name}-copy`;
  if (!taken.has(base)) return base;
  for (let n = 2; ; n += 1) if (!taken.has(`${base}-${n}`)) return `${base}-${n}`;
}

function emptyState(canEdit) {
  return h(
    "div.empty.panel",
    h("h2", "No configs yet"),
    h("p", "A config holds the trainer's settings and the datasets it trains on; a job starts from one."),
    canEdit ? h("a.button.primary", { href: "/configs?new" }, "New config") : h("p.muted", "Ask an admin for the right to edit configs."),
  );
}

async function renderList(main, session) {
  const canEdit = session.can("config.edit");
  const errorSlot = h("div");
  const content = h("div");
  main.append(
    h(
      "div.page-head",
      h("h1", "Configs"),
      h("span.spacer"),
      canEdit ? h("a.button.primary", { href: "/configs?new", id: "new-config" }, "New config") : null,
    ),
    errorSlot,
    content,
  );

  async function remove(name) {
    const sure = await confirmDialog(
      "Delete config?",
      `Delete the config "${name}"? Its folder is removed; jobs already submitted keep their own copy.`,
      "Delete",
      true,
    );
    if (!sure) return;
    try {
      await del(`/api/configs/${encodeURIComponent(name)}`);
      toast(`Deleted ${name}`, "ok");
      await refresh();
    } catch (error) {
      clear(errorSlot).append(errorBox(error));
    }
  }

  function row(item, taken) {
    const href = `/configs/${encodeURIComponent(item.name)}`;
    const actions = h("div.config-actions");
    if (canEdit) {
      actions.append(
        h("a.button", { href, "aria-label": `Edit ${item.name}` }, "Edit"),
        h(
          "button",
          {
            type: "button",
            "aria-label": `Duplicate ${item.name}`,
            onclick: () => navigate(`/configs?copy=${encodeURIComponent(item.name)}&as=${encodeURIComponent(copyName(item.name, taken))}`),
          },
          "Duplicate",
        ),
        h("button.danger", { type: "button", "aria-label": `Delete ${item.name}`, onclick: () => remove(item.name) }, "Delete"),
      );
    }
    return h(
      "tr",
      { dataset: { config: item.name } },
      h("td", h("a", { href }, item.name)),
      h("td.hide-narrow.config-description", item.description || ""),
      h("td", modelOf(item)),
      h("td.hide-narrow", h("time", { datetime: item.modified_at || "" }, when(item.modified_at))),
      h("td.actions-cell", actions),
    );
  }

  async function refresh() {
    let listed;
    try {
      listed = await get("/api/configs");
    } catch (error) {
      clear(errorSlot).append(errorBox(error));
      return;
    }
    clear(errorSlot);
    if (!listed.configs.length) {
      clear(content).append(emptyState(canEdit));
      return;
    }
    const taken = new Set(listed.configs.map((c) => c.name));
    clear(content).append(
      h(
        "div.table-wrap",
        h(
          "table",
          { id: "configs-table", "aria-label": "Configs" },
          h(
            "thead",
            h(
              "tr",
              h("th", { scope: "col" }, "Name"),
              h("th.hide-narrow", { scope: "col" }, "Description"),
              h("th", { scope: "col" }, "Model"),
              h("th.hide-narrow", { scope: "col" }, "Updated"),
              h("th", { scope: "col" }, h("span.visually-hidden", "Actions")),
            ),
          ),
          h(
            "tbody",
            listed.configs.map((item) => row(item, taken)),
          ),
        ),
      ),
    );
  }

  await refresh();
}

export async function render(main, session, params) {
  const query = new URLSearchParams(location.search);
  if (params && params.length && params[0]) {
    return renderEditor(main, session, { name: params[0] });
  }
  if (query.has("new")) return renderEditor(main, session, { creating: true });
  if (query.get("copy")) {
    return renderEditor(main, session, { creating: true, copyOf: query.get("copy"), copyAs: query.get("as") || `${query.get("copy")}-copy` });
  }
  return renderList(main, session);
}
