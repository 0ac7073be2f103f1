// The Settings page (the gear): providers, hardware prices, the cost limit, API keys and
// users. Each section shows only where the caller holds its permission, and reads and saves
// through the same HTTP API as the CLI and SDK.

import { get, put } from "../api.js";
import { clear, h, money, toast, when } from "../dom.js";
import { keysSection } from "./settings-keys.js";
import { hardwareSection, providersSection } from "./settings-providers.js";
import { busy, failed, field, section, setFieldError } from "./settings-common.js";
import { usersSection } from "./settings-users.js";

const PERIODS = ["daily", "weekly", "monthly"];
const IN_PERIOD = { daily: "today", weekly: "this week", monthly: "this month" };

function spendSummary(limit) {
  const period = `${when(limit.period_start)} – ${when(limit.period_end)}`;
  const parts = [
    h("p", { id: "cost-spent" }, h("strong", money(limit.spent_usd)), ` spent ${IN_PERIOD[limit.period] || `this ${limit.period} period`} (${period})`),
  ];
  if (limit.enabled) {
    parts.push(h("p.muted", `${money(limit.remaining_usd)} left of ${money(limit.limit_usd)}.`));
    if (limit.exceeded) {
      parts.push(
        h(
          "p.warn-box",
          limit.action === "block" ? "The limit is reached: new cloud jobs are refused." : "The limit is reached: new jobs warn before they start.",
        ),
      );
    }
  } else {
    parts.push(h("p.muted", "No limit is enforced."));
  }
  return parts;
}

async function costSection() {
  const summary = h("div.settings-spend", { "aria-live": "polite" });
  const formSlot = h("div", h("p.muted", "Loading…"));
  const root = section(
    "settings-cost",
    "Cost limit",
    h("p.muted", "One limit for everyone's cloud spend in a period. Warn lets jobs start with a warning; block refuses them."),
    summary,
    formSlot,
  );
  let limit;
  try {
    limit = await get("/api/cloud/metrics/cost-limit");
  } catch (error) {
    failed(formSlot, error);
    return root;
  }
  clear(summary).append(...spendSummary(limit));

  const amount = h("input", { id: "cost-amount", name: "limit_usd", type: "number", min: 0, max: 1000000, step: "0.01", inputmode: "decimal", value: String(limit.limit_usd) });
  const period = h(
    "select",
    { id: "cost-period", name: "period" },
    PERIODS.map((p) => h("option", { value: p, selected: p === limit.period }, p)),
  );
  const action = h(
    "select",
    { id: "cost-action", name: "action" },
    h("option", { value: "warn", selected: limit.action === "warn" }, "warn"),
    h("option", { value: "block", selected: limit.action === "block" }, "block"),
  );
  const enabled = h("input", { id: "cost-enabled", name: "enabled", type: "checkbox", checked: limit.enabled });
  const slot = h("div");
  const form = h(
    "form.settings-form",
    { id: "cost-limit-form", novalidate: true },
    h("div.grid", field(amount, "Limit (USD)"), field(period, "Period"), field(action, "When reached")),
    h("label.inline", { for: "cost-enabled" }, enabled, "Enforce this limit"),
    slot,
    h("div.actions", h("button.primary", { type: "submit" }, "Save cost limit")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setFieldError(amount, "");
    const value = Number(amount.value);
    if (amount.value === "" || !Number.isFinite(value) || value < 0 || value > 1000000) {
      setFieldError(amount, "A number of dollars from 0 to 1,000,000.");
      amount.focus();
      return;
    }
    await busy(form, slot, async () => {
      const saved = await put("/api/cloud/metrics/cost-limit", {
        limit_usd: value,
        period: period.value,
        action: action.value,
        enabled: enabled.checked,
      });
      clear(summary).append(...spendSummary(saved));
      toast("Cost limit saved", "ok");
    });
  });
  clear(formSlot).append(form);
  return root;
}

export async function render(main, session) {
  const builders = [];
  if (session.can("provider.manage")) builders.push(providersSection());
  builders.push(hardwareSection());
  if (session.can("cost.manage")) builders.push(costSection());
  if (session.can("api.keys.own")) builders.push(keysSection(session));
  if (session.can("user.manage") && session.multiUser) builders.push(usersSection(session));
  const sections = await Promise.all(builders);
  main.append(
    h(
      "div.page-head",
      h("h1", "Settings"),
      session.multiUser ? h("span.muted", `signed in as ${session.me.username} (${session.me.role})`) : null,
    ),
    h("div.settings", sections),
  );
}
