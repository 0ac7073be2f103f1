// Settings: the providers (status; Replicate's token, webhook URL and IP allowlist) and the
// hardware profiles with their prices.

import { ApiError, del, get, put } from "../api.js";
import { clear, confirmDialog, errorBox, h, money, toast } from "../dom.js";
import { busy, failed, field, section, setFieldError } from "./settings-common.js";

// A settings refusal names its field ("setting 'webhook_url': Value error, ..."): the
// message goes next to that field, without pydantic's prefix.
function settingProblem(error) {
  const match = /^setting '([a-z_]+)': (?:Value error, )?(.*)$/s.exec(error.message || "");
  return match ? { name: match[1], message: match[2] } : null;
}

function providerStatus(provider) {
  if (!provider.available) return h("span.badge.badge-failed", "unavailable");
  if (provider.configured) return h("span.badge.badge-completed", "ready");
  return h("span.badge.badge-cancelled", "not configured");
}

function tokenState(settings) {
  if (!settings.token_configured) return "No token saved: jobs cannot run on Replicate yet.";
  if (settings.token_source === "environment") return "A token is set in the server's environment (REPLICATE_API_TOKEN).";
  return "A token is saved (stored encrypted; it is never shown again).";
}

function tokenForm(initial, onChange) {
  let settings = initial;
  const input = h("input", {
    id: "replicate-token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: settings.token_configured ? "•••••••• (saved; type a new one to replace it)" : "r8_…",
  });
  const state = h("p.hint", { id: "replicate-token-state" }, tokenState(settings));
  const account = h("div", { id: "replicate-account", "aria-live": "polite" });
  const slot = h("div");
  const remove = h("button.danger", { type: "button", id: "replicate-token-remove" }, "Remove token");
  remove.hidden = settings.token_source !== "saved";
  const form = h(
    "form.settings-form",
    { id: "replicate-token-form", novalidate: true },
    h("h3", "API token"),
    state,
    field(input, "Replicate API token", "From replicate.com/account/api-tokens. Saved encrypted on the server."),
    slot,
    account,
    h(
      "div.actions",
      remove,
      h("button", { type: "button", id: "replicate-validate" }, "Validate"),
      h("button.primary", { type: "submit" }, "Save token"),
    ),
  );

  // After a save or removal: what is saved now, without the secret.
  async function refresh() {
    settings = await get("/api/cloud/providers/replicate");
    state.textContent = tokenState(settings);
    remove.hidden = settings.token_source !== "saved";
    input.placeholder = settings.token_configured ? "•••••••• (saved; type a new one to replace it)" : "r8_…";
    await onChange();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setFieldError(input, "");
    clear(account);
    const token = input.value.trim();
    if (!token) {
      setFieldError(input, "Enter a token to save.");
      input.focus();
      return;
    }
    await busy(form, null, async () => {
      try {
        const saved = await put("/api/cloud/providers/replicate/token", { token });
        input.value = "";
        if (saved.error) {
          setFieldError(input, saved.error);
        } else {
          account.append(h("p.settings-ok", "Token saved and accepted by Replicate."));
        }
        await refresh();
      } catch (error) {
        if (error instanceof ApiError && error.status === 400) setFieldError(input, error.message);
        else slot.append(errorBox(error));
      }
    });
  });

  form.querySelector("#replicate-validate").addEventListener("click", async () => {
    setFieldError(input, "");
    clear(account);
    await busy(form, slot, async () => {
      const check = await get("/api/cloud/providers/replicate/validate");
      if (check.valid) {
        const who = check.user_info || {};
        account.append(
          h(
            "p.settings-ok",
            { id: "replicate-account-ok" },
            `Valid: Replicate account ${who.username || "(unnamed)"}`,
            who.name ? ` (${who.name})` : "",
            who.token_source ? `, token from ${who.token_source === "saved" ? "these settings" : "the environment"}.` : ".",
          ),
        );
      } else {
        setFieldError(input, check.error || check.detail || "The token was refused.");
      }
    });
  });

  remove.addEventListener("click", async () => {
    const ok = await confirmDialog("Remove the Replicate token?", "Jobs cannot start on Replicate until a token is saved again.", "Remove token", true);
    if (!ok) return;
    await busy(form, slot, async () => {
      await del("/api/cloud/providers/replicate/token");
      toast("Token removed", "ok");
      await refresh();
    });
  });
  return form;
}

function webhookForm(settings) {
  const config = settings.config || {};
  const url = h("input", {
    id: "replicate-webhook-url",
    name: "webhook_url",
    type: "url",
    inputmode: "url",
    placeholder: "https://cloudtune.example.com",
    value: config.webhook_url || "",
  });
  const ips = h("textarea", {
    id: "replicate-webhook-ips",
    name: "webhook_allowed_ips",
    rows: 3,
    spellcheck: "false",
    placeholder: "203.0.113.7\n198.51.100.0/24",
  });
  ips.value = (config.webhook_allowed_ips || []).join("\n");
  const slot = h("div");
  const form = h(
    "form.settings-form",
    { id: "replicate-webhook-form", novalidate: true },
    h("h3", "Webhooks"),
    field(url, "Webhook URL", "This server's public address; Replicate posts job updates there. Empty: jobs are followed by polling."),
    field(ips, "Allowed webhook sources", "One address or network per line (CIDR). Empty: any source, still checked by signature."),
    slot,
    h("div.actions", h("button.primary", { type: "submit" }, "Save webhook settings")),
  );
  const controls = { webhook_url: url, webhook_allowed_ips: ips };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const control of Object.values(controls)) setFieldError(control, "");
    const allowed = ips.value
      .split("\n")
      .map((line) => line.trim())
      .filter(Boolean);
    await busy(form, null, async () => {
      try {
        const saved = await put("/api/cloud/providers/replicate", { webhook_url: url.value.trim(), webhook_allowed_ips: allowed });
        url.value = saved.config.webhook_url || "";
        ips.value = (saved.config.webhook_allowed_ips || []).join("\n");
        toast("Webhook settings saved", "ok");
      } catch (error) {
        const problem = settingProblem(error);
        if (problem && controls[problem.name]) {
          setFieldError(controls[problem.name], problem.message);
          controls[problem.name].focus();
        } else {
          slot.append(errorBox(error));
        }
      }
    });
  });
  return form;
}

function providerCard(provider) {
  return h(
    "article.settings-provider",
    { dataset: { provider: provider.name } },
    h(
      "div.settings-provider-head",
      h("h3", provider.name),
      providerStatus(provider),
    ),
    provider.description ? h("p.muted", provider.description) : null,
    provider.reason ? h("p.warn-box", provider.reason) : null,
    provider.hardware
      ? h("p.hint", `Default hardware: ${provider.hardware}, ${money(provider.cost_per_hour)} per hour`)
      : null,
  );
}

export async function providersSection() {
  const body = h("div", h("p.muted", "Loading…"));
  const root = section("settings-providers", "Providers", body);

  // The badges follow a token's save or removal; the forms stay as they are.
  async function refreshBadges() {
    const { providers } = await get("/api/cloud/providers");
    for (const provider of providers) {
      const badge = body.querySelector(`[data-provider="${CSS.escape(provider.name)}"] .settings-provider-head .badge`);
      if (badge) badge.replaceWith(providerStatus(provider));
    }
  }

  try {
    const { providers } = await get("/api/cloud/providers");
    const cards = [];
    for (const provider of providers) {
      const card = providerCard(provider);
      if (provider.name === "replicate") {
        const settings = await get("/api/cloud/providers/replicate");
        card.append(h("div.settings-columns", tokenForm(settings, refreshBadges), webhookForm(settings)));
      }
      cards.push(card);
    }
    clear(body).append(...cards);
  } catch (error) {
    failed(body, error);
  }
  return root;
}

export async function hardwareSection() {
  const body = h("div");
  const root = section("settings-hardware", "Hardware and prices", body);
  try {
    const { hardware } = await get("/api/cloud/hardware");
    const rows = hardware.map((p) =>
      h(
        "tr",
        { dataset: { profile: `${p.provider}/${p.name}` } },
        h("td", p.provider),
        h("td", h("code", p.name)),
        h("td", p.gpu_type ? `${p.gpu_count > 1 ? `${p.gpu_count}× ` : ""}${p.gpu_type}` : p.hardware_type),
        h("td.num.hide-narrow", p.vram_gb ? `${p.vram_gb} GB` : "—"),
        h("td.num", money(p.price_per_hour_usd)),
      ),
    );
    body.append(
      h(
        "div.table-wrap",
        h(
          "table",
          { id: "hardware-table", "aria-label": "Hardware and prices" },
          h(
            "thead",
            h(
              "tr",
              h("th", { scope: "col" }, "Provider"),
              h("th", { scope: "col" }, "Profile"),
              h("th", { scope: "col" }, "GPU"),
              h("th.num.hide-narrow", { scope: "col" }, "GPU memory"),
              h("th.num", { scope: "col" }, "Per hour"),
            ),
          ),
          h("tbody", rows),
        ),
      ),
      h("p.hint", "Prices come from this server's settings; a job's estimate uses them."),
    );
  } catch (error) {
    failed(body, error);
  }
  return root;
}
