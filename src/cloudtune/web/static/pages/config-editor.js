// The editor of one named config: a form in three tabs (model, training, datasets) and the raw
// JSON of the same document. Both edit one object, so what is typed in one view is what the
// other shows; keys the form has no field for are kept as they are.

import { get, post, put } from "../api.js";
import { navigate } from "../app.js";
import { clear, errorBox, h, toast, when } from "../dom.js";
import { PATH_FIELDS, jsonErrorOffset, lineColumn, parseNumber, serverProblems } from "./config-errors.js";

// "reference" is the built-in trainer of this machine; the others are SimpleTuner's families
// (trained by SimpleTuner here when installed, or by a cloud provider).
const FAMILIES = [
  "reference",
  "flux",
  "sdxl",
  "sd3",
  "sd1x",
  "sd2x",
  "pixart_sigma",
  "kolors",
  "auraflow",
  "hidream",
  "chroma",
  "sana",
  "lumina2",
  "qwen_image",
  "omnigen",
  "cosmos2image",
  "ltxvideo",
  "wan",
  "hunyuanvideo",
];
const MODEL_TYPES = ["lora", "full"];
const CAPTIONS = ["textfile", "filename", "instanceprompt"];
const NAME_PATTERN = /^(?!\.)[A-Za-z0-9._-]{1,128}$/;
const TABS = [
  ["model", "Model"],
  ["training", "Training"],
  ["dataloader", "Dataloader"],
  ["raw", "Raw JSON"],
];
// The form's numbers: [input id, trainer arg, label, whole number?, hint]
const NUMBERS = [
  ["train-steps", "max_train_steps", "Max steps", true, "How many optimiser steps the job runs."],
  ["train-rank", "lora_rank", "LoRA rank", true, "Only for model type lora."],
  ["train-lr", "learning_rate", "Learning rate", false, "For example 0.0001 or 1e-4."],
  ["train-resolution", "resolution", "Resolution", true, "Pixels on the short side of each image."],
];

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

function newDocument() {
  return {
    description: "",
    config: {
      "--model_family": "reference",
      "--model_type": "lora",
      "--max_train_steps": 100,
      "--lora_rank": 4,
      "--learning_rate": 0.0001,
    },
    dataloader_config: [],
  };
}

function documentOf(answer) {
  return {
    description: answer.metadata?.description ?? "",
    config: answer.config,
    dataloader_config: answer.dataloader_config,
  };
}

// A stored config may spell an arg with `--` or without; the form edits the spelling it has.
function argKey(config, name) {
  if (`--${name}` in config) return `--${name}`;
  return name in config ? name : `--${name}`;
}

function shown(value) {
  return value === undefined || value === null ? "" : String(value);
}

function hinted(id, label, control, hint) {
  if (hint) {
    control.setAttribute("aria-describedby", `${id}-hint`);
    control.dataset.hint = `${id}-hint`;
  }
  return h("div.field", h("label", { for: id }, label), control, hint ? h("div.hint", { id: `${id}-hint` }, hint) : null);
}

function select(id, choices, current, { empty } = {}) {
  const values = [...choices];
  if (current && !values.includes(current)) values.push(current);
  return h(
    "select",
    { id },
    empty ? h("option", { value: "", selected: !current }, empty) : null,
    values.map((v) => h("option", { value: v, selected: v === current }, v)),
  );
}

export function setFieldError(input, message) {
  input.setAttribute("aria-invalid", "true");
  const id = `${input.id}-error`;
  let note = document.getElementById(id);
  if (!note) {
    note = h("div.field-error", { id });
    input.after(note);
  }
  note.textContent = message;
  input.setAttribute("aria-describedby", [id, input.dataset.hint].filter(Boolean).join(" "));
}

function clearFieldErrors(root) {
  for (const note of root.querySelectorAll(".field-error")) note.remove();
  for (const input of root.querySelectorAll('[aria-invalid="true"]')) {
    input.removeAttribute("aria-invalid");
    if (input.dataset.hint) input.setAttribute("aria-describedby", input.dataset.hint);
    else input.removeAttribute("aria-describedby");
  }
}

export async function renderEditor(main, session, { name, creating = false, copyOf, copyAs }) {
  const canEdit = session.can("config.edit");
  let doc;
  let metadata = null;
  if (creating && !canEdit) {
    main.append(h("h1", "New config"), errorBox(new Error("You may not edit configs.")));
    return;
  }
  if (name) {
    const answer = await get(`/api/configs/${encodeURIComponent(name)}`);
    doc = documentOf(answer);
    metadata = answer.metadata;
  } else if (copyOf) {
    doc = documentOf(await get(`/api/configs/${encodeURIComponent(copyOf)}`));
  } else {
    doc = newDocument();
  }
  const readOnly = !canEdit;
  let active = "model";

  const heading = h("h1", { id: "config-title" }, creating ? (copyOf ? `Copy of ${copyOf}` : "New config") : name);
  const updated = h("span.muted", { id: "config-updated" }, metadata ? `updated ${when(metadata.modified_at)}` : "");
  const formError = h("div", { "aria-live": "assertive" });
  const nameInput = h("input", {
    id: "config-name",
    type: "text",
    value: creating ? copyAs || "" : name,
    readOnly: !creating,
    autocomplete: "off",
    spellcheck: "false",
    required: true,
  });
  const descriptionInput = h("input", { id: "config-description", type: "text", value: shown(doc.description), maxLength: 1000 });
  descriptionInput.addEventListener("input", () => {
    doc.description = descriptionInput.value;
  });
  const secretsNote =
    copyOf && JSON.stringify(doc).includes('"***"')
      ? h("div.warn-box", "Secrets (tokens, keys) are not copied: enter them again in the copy.")
      : null;

  // -- the form's tabs -------------------------------------------------------------------
  const panels = {};
  const tabs = {};
  for (const [key, label] of TABS) {
    tabs[key] = h("button", { type: "button", role: "tab", id: `tab-${key}`, "aria-controls": `panel-${key}`, "aria-selected": "false", tabindex: "-1" }, label);
    tabs[key].addEventListener("click", () => selectTab(key));
    panels[key] = h("div.tab-panel", { role: "tabpanel", id: `panel-${key}`, "aria-labelledby": `tab-${key}`, tabindex: "0", hidden: true });
  }
  const tabList = h("div.tab-list", { role: "tablist", "aria-label": "Config sections" }, Object.values(tabs));
  tabList.addEventListener("keydown", (event) => {
    const keys = TABS.map(([k]) => k);
    const at = keys.indexOf(active);
    const moves = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: keys.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const next = keys[(moves[event.key] + keys.length) % keys.length];
    if (selectTab(next)) tabs[next].focus();
  });

  const raw = h("textarea.code", { id: "raw-json", spellcheck: "false", readOnly, "aria-describedby": "raw-json-hint" });
  raw.dataset.hint = "raw-json-hint";
  raw.addEventListener("input", () => {
    const parsed = parseRaw(raw.value);
    if (parsed.doc) {
      doc = parsed.doc;
      clearFieldErrors(panels.raw);
    }
  });
  raw.addEventListener("change", () => applyRaw());
  panels.raw.append(
    h("label", { for: "raw-json" }, "The whole config as JSON"),
    raw,
    h("div.hint", { id: "raw-json-hint" }, "description, config (trainer args) and dataloader_config (datasets). What you change here shows in the other tabs, and theirs here."),
  );

  function writeArg(arg, value) {
    const key = argKey(doc.config, arg);
    if (value === undefined || value === "") delete doc.config[key];
    else doc.config[key] = value;
  }

  function argInput(id, arg, attributes = {}) {
    const input = h("input", { id, type: "text", value: shown(doc.config[argKey(doc.config, arg)]), spellcheck: "false", ...attributes });
    input.addEventListener("input", () => writeArg(arg, input.value.trim()));
    return input;
  }

  function argSelect(id, arg, choices) {
    const control = select(id, choices, shown(doc.config[argKey(doc.config, arg)]), { empty: "(not set)" });
    control.addEventListener("change", () => writeArg(arg, control.value));
    return control;
  }

  function numberInput(id, current, integer, onValue) {
    const input = h("input", { id, type: "text", inputmode: integer ? "numeric" : "decimal", value: shown(current), autocomplete: "off" });
    input.addEventListener("input", () => onValue(parseNumber(input.value)));
    return input;
  }

  function renderModel() {
    clear(panels.model).append(
      h(
        "div.grid",
        hinted("model-family", "Model family", argSelect("model-family", "model_family", FAMILIES), "reference: the built-in trainer of this machine; the others need SimpleTuner or a cloud provider."),
        hinted("model-type", "Model type", argSelect("model-type", "model_type", MODEL_TYPES)),
      ),
      hinted("model-base", "Base model", argInput("model-base", "pretrained_model_name_or_path", { placeholder: "black-forest-labs/FLUX.1-dev" }), "A Hugging Face model id, or a path on this server."),
      hinted("model-output", "Output folder", argInput("model-output", "output_dir", { placeholder: "my-lora" }), "Relative folders land in your own output folder; left empty, each job gets one."),
    );
  }

  function renderTraining() {
    clear(panels.training).append(
      h(
        "div.grid",
        NUMBERS.map(([id, arg, label, integer, hint]) =>
          hinted(id, label, numberInput(id, doc.config[argKey(doc.config, arg)], integer, (v) => writeArg(arg, v)), hint),
        ),
      ),
    );
  }

  function datasetFields(entry, index) {
    const prefix = `ds-${index}`;
    const idInput = h("input", { id: `${prefix}-id`, type: "text", value: shown(entry.id), spellcheck: "false" });
    idInput.addEventListener("input", () => {
      entry.id = idInput.value;
    });
    const pathInput = h("input", { id: `${prefix}-path`, type: "text", value: shown(entry.instance_data_dir), spellcheck: "false", placeholder: "/data/my-images" });
    pathInput.addEventListener("input", () => {
      entry.instance_data_dir = pathInput.value.trim();
    });
    const caption = select(`${prefix}-caption`, CAPTIONS, shown(entry.caption_strategy), { empty: "(not set)" });
    caption.addEventListener("change", () => {
      if (caption.value) entry.caption_strategy = caption.value;
      else delete entry.caption_strategy;
    });
    const resolution = numberInput(`${prefix}-resolution`, entry.resolution, true, (v) => {
      if (v === undefined) delete entry.resolution;
      else entry.resolution = v;
    });
    const remove = readOnly
      ? null
      : h("button.linkish", { type: "button", "aria-label": `Remove dataset ${index + 1}`, onclick: () => removeDataset(index) }, "Remove");
    return h(
      "fieldset.dataset",
      { dataset: { index: String(index) } },
      h("legend", `Dataset ${index + 1}`),
      h(
        "div.grid",
        hinted(`${prefix}-id`, "ID", idInput),
        hinted(`${prefix}-caption`, "Caption strategy", caption, "textfile: a .txt beside each image; filename: the file's name."),
      ),
      hinted(`${prefix}-path`, "Path", pathInput, "A folder of images on this server that you may read."),
      h("div.grid", hinted(`${prefix}-resolution`, "Resolution", resolution)),
      remove ? h("div.actions", remove) : null,
    );
  }

  function renderDataloader() {
    const list = Array.isArray(doc.dataloader_config) ? doc.dataloader_config : [];
    const items = list.map((entry, index) =>
      isObject(entry)
        ? datasetFields(entry, index)
        : h("p.warn-box", `Dataset ${index + 1} is not a JSON object: edit it in Raw JSON.`),
    );
    clear(panels.dataloader).append(
      ...(items.length ? items : [h("p.muted", { id: "no-datasets" }, "No dataset yet.")]),
      readOnly ? null : h("div.actions", h("button", { type: "button", id: "add-dataset", onclick: addDataset }, "Add dataset")),
    );
  }

  function addDataset() {
    if (!Array.isArray(doc.dataloader_config)) doc.dataloader_config = [];
    const ids = new Set(doc.dataloader_config.map((d) => d && d.id));
    let n = doc.dataloader_config.length + 1;
    while (ids.has(`dataset-${n}`)) n += 1;
    doc.dataloader_config.push({ id: `dataset-${n}`, type: "local", dataset_type: "image", instance_data_dir: "", caption_strategy: "textfile" });
    renderDataloader();
    document.getElementById(`ds-${doc.dataloader_config.length - 1}-path`).focus();
  }

  function removeDataset(index) {
    doc.dataloader_config.splice(index, 1);
    renderDataloader();
    (document.getElementById("add-dataset") || tabs.dataloader).focus();
  }

  function renderForm() {
    renderModel();
    renderTraining();
    renderDataloader();
    if (readOnly) for (const input of form.querySelectorAll(".tab-panel input, .tab-panel select")) input.disabled = true;
  }

  // -- raw JSON --------------------------------------------------------------------------
  function parseRaw(text) {
    let value;
    try {
      value = JSON.parse(text);
    } catch (error) {
      const offset = jsonErrorOffset(text);
      const at = offset === null ? null : lineColumn(text, offset);
      const where = at ? `at line ${at.line}, column ${at.column}` : "";
      // The browser's own words, without the place it may also give (said once, above).
      const reason = error.message.replace(/ in JSON at position \d+.*$/, "");
      return { error: `Invalid JSON ${where}: ${reason}`, offset };
    }
    if (!isObject(value)) return { error: 'The document must be a JSON object: {"description", "config", "dataloader_config"}.' };
    if (!isObject(value.config)) return { error: '"config" must be a JSON object of trainer args.' };
    if (value.dataloader_config !== undefined && !Array.isArray(value.dataloader_config)) {
      return { error: '"dataloader_config" must be a JSON array of datasets.' };
    }
    if (value.description !== undefined && value.description !== null && typeof value.description !== "string") {
      return { error: '"description" must be text.' };
    }
    return { doc: { dataloader_config: [], ...value } };
  }

  // Takes the raw text into the document; false (and the error beside it) when it cannot be.
  function applyRaw() {
    if (readOnly) return true;
    clearFieldErrors(panels.raw);
    const parsed = parseRaw(raw.value);
    if (parsed.error) {
      setFieldError(raw, parsed.error);
      if (parsed.offset !== undefined && parsed.offset !== null) raw.setSelectionRange(parsed.offset, parsed.offset);
      return false;
    }
    doc = parsed.doc;
    descriptionInput.value = shown(doc.description);
    return true;
  }

  function selectTab(key) {
    if (key === active && !panels[key].hidden) return true;
    if (active === "raw" && key !== "raw") {
      if (!applyRaw()) {
        raw.focus();
        return false;
      }
      renderForm();
    }
    if (key === "raw") raw.value = JSON.stringify(doc, null, 2);
    active = key;
    for (const [k] of TABS) {
      tabs[k].setAttribute("aria-selected", String(k === key));
      tabs[k].tabIndex = k === key ? 0 : -1;
      panels[k].hidden = k !== key;
    }
    return true;
  }

  // -- checks and save -------------------------------------------------------------------
  function clientProblems() {
    const problems = [];
    const chosen = nameInput.value.trim();
    if (!chosen) problems.push(["config-name", "A name is required."]);
    else if (!NAME_PATTERN.test(chosen)) problems.push(["config-name", "Use letters, digits, '.', '_' and '-' (at most 128, not starting with a dot)."]);
    for (const [id, arg, label, integer] of NUMBERS) {
      const value = doc.config[argKey(doc.config, arg)];
      if (value === undefined || value === null) continue;
      const bad = typeof value !== "number" || !(value > 0) || (integer && !Number.isInteger(value));
      if (bad) problems.push([id, `${label} must be ${integer ? "a whole number" : "a number"} above 0.`]);
    }
    (Array.isArray(doc.dataloader_config) ? doc.dataloader_config : []).forEach((entry, index) => {
      if (!isObject(entry) || entry.disabled) return;
      const local = (entry.type ?? "local") === "local" && !["text_embeds", "image_embeds"].includes(entry.dataset_type);
      if (local && !entry.dataset && !shown(entry.instance_data_dir).trim()) problems.push([`ds-${index}-path`, "A dataset needs the path of its folder."]);
      const r = entry.resolution;
      if (r !== undefined && r !== null && (typeof r !== "number" || !Number.isInteger(r) || r <= 0)) {
        problems.push([`ds-${index}-resolution`, "Resolution must be a whole number above 0."]);
      }
    });
    return problems;
  }

  function showProblems(problems) {
    const found = problems.filter(([id]) => document.getElementById(id));
    if (!found.length) return false;
    // The tab first: leaving the raw view draws the form again, with new inputs.
    const panel = document.getElementById(found[0][0]).closest('[role="tabpanel"]');
    if (panel) selectTab(panel.id.replace("panel-", ""));
    for (const [id, message] of found) setFieldError(document.getElementById(id), message);
    document.getElementById(found[0][0]).focus();
    return true;
  }

  function showServerError(error) {
    if (!showProblems(serverProblems(error, doc))) clear(formError).append(errorBox(error));
  }

  // Saving does not look at paths: a preview of a job on this machine does, with the caller's
  // file access policy, so a refused folder is shown here and not at the first submit.
  async function pathProblems() {
    if (!session.can("job.submit")) return [];
    try {
      await post("/api/cloud/jobs/preview?provider=local", { config: doc.config, dataloader_config: doc.dataloader_config });
      return [];
    } catch (error) {
      const problems = serverProblems(error, doc);
      return problems.filter(([id]) => PATH_FIELDS.has(id.replace(/^ds-\d+-/, "ds-")));
    }
  }

  async function save(event) {
    event.preventDefault();
    clear(formError);
    clearFieldErrors(form);
    if (active === "raw" && !applyRaw()) {
      raw.focus();
      return;
    }
    if (active === "raw") renderForm();
    if (showProblems(clientProblems())) return;
    const chosen = nameInput.value.trim();
    const body = { description: doc.description ?? "", config: doc.config, dataloader_config: doc.dataloader_config ?? [] };
    saveButton.disabled = true;
    try {
      if (showProblems(await pathProblems())) return;
      const answer = creating
        ? await post("/api/configs", { name: chosen, ...body })
        : await put(`/api/configs/${encodeURIComponent(chosen)}`, body);
      toast(answer.message || `Saved ${chosen}`, "ok");
      if (creating) {
        await navigate(`/configs/${encodeURIComponent(chosen)}`, { replace: true });
        return;
      }
      doc = documentOf(answer);
      updated.textContent = `updated ${when(answer.metadata.modified_at)}`;
      if (active === "raw") raw.value = JSON.stringify(doc, null, 2);
    } catch (error) {
      showServerError(error);
    } finally {
      saveButton.disabled = false;
    }
  }

  const saveButton = h("button.primary", { type: "submit", id: "save-config" }, creating ? "Create config" : "Save");
  const duplicate =
    !creating && canEdit
      ? h("a.button", { href: `/configs?copy=${encodeURIComponent(name)}&as=${encodeURIComponent(`${name}-copy`)}` }, "Duplicate")
      : null;
  const form = h(
    "form.config-editor",
    { id: "config-form", novalidate: true, "aria-labelledby": "config-title" },
    formError,
    secretsNote,
    h(
      "div.grid.config-identity",
      hinted("config-name", "Name", nameInput, creating ? "Letters, digits, '.', '_' and '-'." : "A saved config keeps its name; duplicate it to make one under another."),
      hinted("config-description", "Description", descriptionInput),
    ),
    tabList,
    Object.values(panels),
    readOnly ? h("p.muted", "You may view this config, not change it.") : h("div.actions", saveButton),
  );
  form.addEventListener("submit", save);
  if (readOnly) descriptionInput.disabled = true;

  main.append(
    h("p.crumbs", h("a", { href: "/configs" }, "← Configs")),
    h("div.page-head", heading, updated, h("span.spacer"), duplicate),
    form,
  );
  renderForm();
  selectTab("model");
}
