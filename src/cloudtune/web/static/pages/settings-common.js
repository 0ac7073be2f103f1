// Pieces every Settings section shares: a titled section, a labelled field with its own
// error line, and the busy state of a form while its request runs.

import { clear, errorBox, h } from "../dom.js";

export function section(id, title, ...children) {
  return h(
    "section.panel.settings-section",
    { id, "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title` }, title),
    children,
  );
}

// A label, the control, an optional hint and an error line that the control points at.
export function field(control, label, hint) {
  const id = control.id;
  const error = h("div.field-error", { id: `${id}-error`, "aria-live": "polite" });
  const hintLine = hint ? h("div.hint", { id: `${id}-hint` }, hint) : null;
  control.setAttribute("aria-describedby", [hintLine ? `${id}-hint` : "", `${id}-error`].filter(Boolean).join(" "));
  return h("div.settings-field", h("label", { for: id }, label), control, hintLine, error);
}

export function setFieldError(control, message) {
  const line = document.getElementById(`${control.id}-error`);
  if (line) line.textContent = message || "";
  if (message) control.setAttribute("aria-invalid", "true");
  else control.removeAttribute("aria-invalid");
}

// Runs `work` with the form's buttons disabled; an error lands in `slot` (or a field).
export async function busy(form, slot, work) {
  const buttons = [...form.querySelectorAll("button")];
  for (const button of buttons) button.disabled = true;
  if (slot) clear(slot);
  try {
    return await work();
  } catch (error) {
    if (slot) slot.append(errorBox(error));
    return undefined;
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}

// What a section shows where its data could not be read.
export function failed(container, error) {
  clear(container).append(errorBox(error));
}
