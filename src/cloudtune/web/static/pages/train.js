// "Train in Cloud": a modal dialog in two steps. Set up (a saved config, where it trains, on
// what hardware, a run name, where the model is published), then review what the server's
// preview says a submit would send and cost, agree to the upload where the data consent
// setting asks for it, and submit. The server enforces the consent and the cost limit itself:
// a refusal is shown here and the dialog stays open.

import { get, post } from "../api.js";
import { navigate } from "../app.js";
import { append, bytes, clear, errorBox, h, money, toast } from "../dom.js";

const CONSENT_WORDS = { ask: "always ask", allow: "always allow", deny: "never upload" };

function newKey() {
  // One per attempt: a submit retried after a lost answer makes one job, not two.
  if (crypto.randomUUID) return `ui-${crypto.randomUUID()}`;
  const parts = crypto.getRandomValues(new Uint32Array(4));
  return `ui-${Array.from(parts, (n) => n.toString(16)).join("")}`;
}

function field(id, label, control, hint) {
  return h("div.train-field", h("label", { for: id }, label), control, hint ? h("p.hint", { id: `${id}-hint` }, hint) : null);
}

async function loadChoices() {
  const [configs, providers, hardware] = await Promise.all([
    get("/api/configs"),
    get("/api/cloud/providers"),
    get("/api/cloud/hardware").catch(() => ({ hardware: [] })),
  ]);
  const gpus = new Map((hardware.hardware || []).map((item) => [`${item.provider}/${item.name}`, item]));
  return { configs: configs.configs || [], providers: providers.providers || [], gpus };
}

function profileLabel(provider, profile, gpus) {
  const gpu = gpus.get(`${provider}/${profile.id}`);
  const memory = gpu && gpu.vram_gb ? ` · ${gpu.vram_gb} GB` : "";
  const price = Number(profile.cost_per_hour) > 0 ? `${money(profile.cost_per_hour)}/h` : "free";
  return `${profile.label}${memory} · ${price}`;
}

// The upload summary of a preview: what leaves the machine (or that nothing does).
function summaryOf(preview, providerName) {
  const datasets = preview.datasets || [];
  const excludedRules = Object.entries(preview.excluded || {});
  const excludedCount = excludedRules.reduce((sum, [, group]) => sum + group.count, 0);
  const where = preview.data_leaves_machine
    ? h("p", { id: "upload-where" }, h("strong", `${preview.files} files (${bytes(preview.bytes)})`), ` will be uploaded to ${providerName}.`)
    : h("p", { id: "upload-where" }, h("strong", `${preview.files} files (${bytes(preview.bytes)})`), " counted. Nothing is uploaded: the job reads them on this machine.");
  const table = datasets.length
    ? h(
        "div.table-wrap",
        h(
          "table",
          { id: "upload-datasets", "aria-label": "Datasets" },
          h(
            "thead",
            h(
              "tr",
              h("th", { scope: "col" }, "Dataset"),
              h("th.num", { scope: "col" }, "Files"),
              h("th.num", { scope: "col" }, "Images"),
              h("th.num", { scope: "col" }, "Size"),
            ),
          ),
          h(
            "tbody",
            datasets.map((d) =>
              h(
                "tr",
                h("td", h("div", d.id), h("div.hint.train-path", d.path)),
                h("td.num", String(d.files)),
                h("td.num", String(d.images)),
                h("td.num", bytes(d.bytes)),
              ),
            ),
          ),
        ),
      )
    : h("p.muted", "No local datasets: the provider reads its data itself.");
  const excluded = excludedCount
    ? h(
        "details.train-excluded",
        h("summary", `${excludedCount} files left out`),
        h(
          "ul",
          excludedRules.map(([rule, group]) => h("li", `${rule.replaceAll("_", " ")}: ${group.count}`, group.examples.length ? ` (${group.examples.join(", ")})` : "")),
        ),
      )
    : h("p.hint", "No file left out.");
  return h("section", { "aria-labelledby": "upload-summary-title", id: "upload-summary" }, h("h3", { id: "upload-summary-title" }, "Data"), where, table, excluded);
}

function costOf(preview, limit) {
  const rows = [
    ["Hardware", preview.hardware_type || preview.hardware_profile || "—"],
    ["Price", Number(preview.price_per_hour_usd) > 0 ? `${money(preview.price_per_hour_usd)} per hour` : "free"],
    ["Steps", preview.max_train_steps ?? "—"],
    ["Estimated cost", preview.estimated_cost_usd === null ? "no estimate" : money(preview.estimated_cost_usd)],
  ];
  const notes = [];
  if (limit && limit.enabled) {
    const estimate = Number(preview.estimated_cost_usd || 0);
    const left = Number(limit.remaining_usd);
    const what = `${money(limit.spent_usd)} of the ${money(limit.limit_usd)} ${limit.period} limit is spent`;
    if (limit.exceeded || estimate > left) {
      const outcome = limit.action === "block" ? "the server will refuse this job" : "the job will be accepted with a warning";
      notes.push(`${what}; this estimate goes over it: ${outcome}.`);
    } else if ((Number(limit.spent_usd) + estimate) * 10 >= Number(limit.limit_usd) * 8) {
      notes.push(`${what}; this job brings it close to the limit.`);
    }
  }
  return h(
    "section",
    { "aria-labelledby": "cost-title", id: "cost-summary" },
    h("h3", { id: "cost-title" }, "Cost"),
    h("dl.kv", rows.map(([k, v]) => [h("dt", k), h("dd", String(v))])),
    notes.map((note) => h("div.warn-box", { role: "note" }, note)),
  );
}

export function openTrainDialog(session) {
  if (!session || !session.can("job.submit")) return null;
  let key = newKey();
  let choices = null;
  let preview = null;

  const title = h("h2", { id: "train-title" }, "Train in Cloud");
  const errorSlot = h("div", { id: "train-error" });
  const body = h("div.train-body", h("p.muted", "Loading…"));
  const form = h("form.train-form", { method: "dialog", novalidate: true }, body);
  const dialog = h("dialog.train-dialog", { "aria-labelledby": "train-title", id: "train-dialog" }, title, errorSlot, form);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();

  function showError(error) {
    clear(errorSlot).append(errorBox(error));
    errorSlot.querySelector(".error-box").tabIndex = -1;
    errorSlot.querySelector(".error-box").focus();
  }

  // -- step 1: what to train, where --------------------------------------------------------
  const config = h("select", { id: "train-config", name: "config", required: true });
  const provider = h("select", { id: "train-provider", name: "provider" });
  const profile = h("select", { id: "train-hardware", name: "hardware" });
  const providerHint = h("p.hint", { id: "train-provider-hint" });
  const runName = h("input", { id: "train-run-name", name: "run_name", type: "text", maxLength: 255, autocomplete: "off", placeholder: "from the config" });
  const publishNone = h("input", { type: "radio", name: "publish", id: "train-publish-none", value: "none", checked: true });
  const publishDefault = h("input", { type: "radio", name: "publish", id: "train-publish-default", value: "default" });
  const publishHub = h("input", { type: "radio", name: "publish", id: "train-publish-hub", value: "hub" });
  const repoId = h("input", { id: "train-repo-id", name: "repo_id", type: "text", maxLength: 200, autocomplete: "off", placeholder: "owner/name", "aria-describedby": "train-repo-id-hint" });
  const repoPrivate = h("input", { id: "train-repo-private", type: "checkbox", checked: true });
  const hubToken = h("input", { id: "train-hub-token", name: "hub_token", type: "password", autocomplete: "off", maxLength: 512, "aria-describedby": "train-hub-token-hint" });
  const hubFields = h(
    "div.train-hub",
    { hidden: true },
    field("train-repo-id", "Hub repository", repoId, "owner/name"),
    h("label.inline", { for: "train-repo-private" }, repoPrivate, "Private repository"),
    field("train-hub-token", "Hub token (optional)", hubToken),
    h("p.hint", { id: "train-hub-token-hint" }, "Kept encrypted by the server for this job, never shown. Without it, the server's saved token publishes only to its saved repository."),
  );
  for (const radio of [publishNone, publishDefault, publishHub]) {
    radio.addEventListener("change", () => {
      hubFields.hidden = !publishHub.checked;
    });
  }

  function fillProfiles() {
    const chosen = choices.providers.find((p) => p.id === provider.value);
    const profiles = chosen ? chosen.hardware_profiles || [] : [];
    clear(profile).append(
      ...profiles.map((p) => h("option", { value: p.id, selected: p.id === chosen.hardware_profile }, profileLabel(chosen.id, p, choices.gpus))),
    );
    profile.disabled = profiles.length <= 1;
    const notes = [];
    if (chosen && chosen.job_type === "local") notes.push("Trains on this machine: no data leaves it.");
    else if (chosen) notes.push("Trains on the provider's GPUs: local datasets are uploaded to it.");
    if (chosen && !chosen.configured) notes.push("No token is set for it yet (Settings).");
    providerHint.textContent = notes.join(" ");
  }
  provider.addEventListener("change", fillProfiles);

  function requestBody() {
    const request = { config_name_to_load: config.value, idempotency_key: key };
    if (profile.value) request.hardware_profile = profile.value;
    const name = runName.value.trim();
    if (name) request.tracker_run_name = name;
    if (publishNone.checked) request.publish = {};
    if (publishHub.checked) {
      request.publish = { hub: { repo_id: repoId.value.trim(), private: repoPrivate.checked } };
      if (hubToken.value.trim()) request.publish.hub.token = hubToken.value.trim();
    }
    return request;
  }

  function setupStep() {
    preview = null;
    clear(errorSlot);
    const review = h("button.primary", { type: "submit", id: "train-review" }, "Review");
    const hasConfigs = choices.configs.length > 0;
    clear(body).append(
      hasConfigs
        ? field("train-config", "Config", config)
        : h("div.warn-box", "No saved config yet. ", h("a", { href: "/configs", onclick: () => dialog.close() }, "Make one in Configure"), " first."),
      h("div.grid", field("train-provider", "Provider", provider), field("train-hardware", "Hardware", profile)),
      providerHint,
      field("train-run-name", "Run name", runName, "Optional: the name the job and its tracker show."),
      h(
        "fieldset",
        h("legend", "Publish the model"),
        h("label.inline", { for: "train-publish-none" }, publishNone, "Nowhere (it stays in the job's outputs)"),
        h("label.inline", { for: "train-publish-default" }, publishDefault, "The saved defaults"),
        h("label.inline", { for: "train-publish-hub" }, publishHub, "A Hugging Face Hub repository"),
        hubFields,
      ),
      h("div.actions", h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"), review),
    );
    review.disabled = !hasConfigs;
    form.onsubmit = async (event) => {
      event.preventDefault();
      if (publishHub.checked && !repoId.value.trim()) {
        repoId.setAttribute("aria-invalid", "true");
        showError(new Error("Name the Hub repository (owner/name), or choose another place to publish."));
        repoId.focus();
        return;
      }
      repoId.removeAttribute("aria-invalid");
      review.disabled = true;
      review.textContent = "Checking…";
      try {
        const request = requestBody();
        const [answer, limit] = await Promise.all([
          post(`/api/cloud/jobs/preview?provider=${encodeURIComponent(provider.value)}`, request),
          get("/api/cloud/metrics/cost-limit").catch(() => null),
        ]);
        preview = answer;
        reviewStep(request, limit);
      } catch (error) {
        review.disabled = false;
        review.textContent = "Review";
        showError(error);
      }
    };
    (hasConfigs ? config : provider).focus();
  }

  // -- step 2: what the submit would do ------------------------------------------------------
  function reviewStep(request, limit) {
    clear(errorSlot);
    const providerName = provider.value;
    const uploads = preview.data_leaves_machine;
    const submit = h("button.primary", { type: "submit", id: "train-submit" }, "Submit");
    const back = h("button", { type: "button", id: "train-back" }, "Back");
    let consent = null;
    let consentPart = null;
    if (uploads && preview.consent === "deny") {
      submit.disabled = true;
      consentPart = h(
        "div.error-box",
        { id: "consent-refused", role: "note" },
        `The data consent setting is “${CONSENT_WORDS.deny}”: local datasets are never uploaded, so this job cannot go to ${providerName}. `,
        "Train it on this machine (provider local), or ask an admin to change the setting.",
      );
    } else if (uploads && preview.consent === "ask") {
      consent = h("input", { type: "checkbox", id: "train-consent", "aria-describedby": "train-consent-hint" });
      consentPart = h(
        "div.train-consent",
        h("label.inline", { for: "train-consent" }, consent, `I agree to upload these files to ${providerName}`),
        h("p.hint", { id: "train-consent-hint" }, `The data consent setting is “${CONSENT_WORDS.ask}”: each upload needs your agreement.`),
      );
      submit.disabled = true;
      consent.addEventListener("change", () => {
        submit.disabled = !consent.checked;
      });
    }
    const warnings = (preview.warnings || []).map((text) => h("div.warn-box", { role: "note" }, text));
    const facts = h(
      "dl.kv.train-facts",
      h("dt", "Config"),
      h("dd", preview.config_name || request.config_name_to_load),
      h("dt", "Model"),
      h("dd", preview.model_family || "—"),
      h("dt", "Provider"),
      h("dd", providerName),
      h("dt", "Run name"),
      h("dd", request.tracker_run_name || "from the config"),
      h("dt", "Publish"),
      h("dd", request.publish === undefined ? "the saved defaults" : request.publish.hub ? `${request.publish.hub.repo_id} (${request.publish.hub.private ? "private" : "public"})` : "nowhere"),
    );
    append(clear(body), [
      h("h3.train-step", "Review"),
      facts,
      summaryOf(preview, providerName),
      costOf(preview, limit),
      warnings,
      consentPart,
      h("div.actions", back, submit),
    ]);
    back.addEventListener("click", () => {
      key = newKey(); // a changed request is another job
      setupStep();
    });
    form.onsubmit = async (event) => {
      event.preventDefault();
      if (submit.disabled) return;
      submit.disabled = true;
      back.disabled = true;
      submit.textContent = "Submitting…";
      const sent = { ...request };
      if (consent && consent.checked) sent.upload_consent = true;
      try {
        const result = await post(`/api/cloud/jobs/submit?provider=${encodeURIComponent(providerName)}`, sent);
        dialog.close();
        const notes = [result.cost_limit_warning, ...(result.quota_warnings || [])].filter(Boolean);
        for (const note of notes) toast(note, "error");
        toast(`Job submitted to ${result.provider}`, "ok");
        navigate(`/jobs/${encodeURIComponent(result.job_id)}`);
      } catch (error) {
        submit.textContent = "Submit";
        submit.disabled = Boolean(consent && !consent.checked);
        back.disabled = false;
        showError(error);
      }
    };
    if (submit.disabled) back.focus();
    else submit.focus();
  }

  loadChoices().then(
    (loaded) => {
      choices = loaded;
      clear(config).append(
        ...choices.configs.map((c) => h("option", { value: c.name }, c.model_family ? `${c.name} (${c.model_family})` : c.name)),
      );
      const usable = choices.providers.filter((p) => p.available !== false);
      clear(provider).append(...usable.map((p) => h("option", { value: p.id }, p.job_type === "local" ? `${p.id} (this machine)` : p.id)));
      fillProfiles();
      setupStep();
    },
    (error) => {
      clear(body).append(h("div.actions", h("button", { type: "button", onclick: () => dialog.close() }, "Close")));
      showError(error);
    },
  );
  return dialog;
}

// No page of its own: the dialog opens from the jobs list. Here, for a link to /train if one
// is ever routed, a button that opens it.
export async function render(main, session) {
  main.append(
    h("h1", "Train in Cloud"),
    session.can("job.submit")
      ? h("button.primary", { type: "button", onclick: () => openTrainDialog(session) }, "Train in Cloud")
      : h("p.muted", "You may not submit jobs."),
  );
}
