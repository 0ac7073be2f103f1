// Small helpers to build the DOM without HTML strings (so nothing a server or a user wrote
// is ever parsed as markup) and to format what the API answers.

// h("button.primary", {type: "button", onclick: fn}, "Text", child, ...)
export function h(tag, props, ...children) {
  const [name, ...classes] = tag.split(".");
  const element = document.createElement(name || "div");
  if (classes.length) element.className = classes.join(" ");
  if (props && (typeof props !== "object" || props instanceof Node || Array.isArray(props))) {
    children.unshift(props);
    props = null;
  }
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      element.className = [element.className, value].filter(Boolean).join(" ");
    } else if (key === "dataset") {
      Object.assign(element.dataset, value);
    } else if (key in element && typeof value !== "string") {
      element[key] = value;
    } else {
      element.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

const SVG = "http://www.w3.org/2000/svg";
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  append(element, children);
  return element;
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

export function money(usd) {
  if (usd === null || usd === undefined) return "—";
  const value = Number(usd);
  if (!Number.isFinite(value)) return "—";
  return value < 0.01 && value > 0 ? `$${value.toFixed(4)}` : `$${value.toFixed(2)}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "—";
  let rest = Math.max(0, Math.round(Number(seconds)));
  const hours = Math.floor(rest / 3600);
  rest -= hours * 3600;
  const minutes = Math.floor(rest / 60);
  const secs = rest - minutes * 60;
  if (hours) return `${hours}h ${String(minutes).padStart(2, "0")}m`;
  if (minutes) return `${minutes}m ${String(secs).padStart(2, "0")}s`;
  return `${secs}s`;
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "—";
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function bytes(count) {
  if (count === null || count === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(count);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

// The job statuses, in their order, with the badge's class.
export const STATUSES = ["pending", "uploading", "queued", "running", "completed", "failed", "cancelled"];
export const ACTIVE = new Set(["pending", "uploading", "queued", "running"]);

export function badge(status) {
  return h(`span.badge.badge-${status}`, { title: `status: ${status}` }, status);
}

// A <progress> bar with its label (step/total and loss), as the list and the detail show it.
export function progressOf(job) {
  const p = job.progress || {};
  const step = Number(p.step ?? p.current_step ?? 0);
  const total = Number(p.total_steps ?? p.total ?? 0);
  const label = total ? `${step}/${total}` : step ? `step ${step}` : "";
  const loss = p.loss !== undefined && p.loss !== null ? ` · loss ${Number(p.loss).toFixed(4)}` : "";
  const bar = h("progress", { max: total || 1, value: total ? Math.min(step, total) : 0 });
  bar.setAttribute("aria-label", total ? `step ${step} of ${total}` : "no progress yet");
  return h("div.progress", bar, h("span.progress-label", label + loss));
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const item = h(`div.toast.toast-${kind}`, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

// A modal <dialog>: resolves true on confirm, false on cancel or Escape.
export function confirmDialog(title, text, confirmLabel = "Confirm", danger = false) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog.confirm",
      { "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, title),
      h("p", text),
      h(
        "form.actions",
        { method: "dialog" },
        h("button", { value: "cancel", type: "submit" }, "Cancel"),
        h(`button.${danger ? "danger" : "primary"}`, { value: "ok", type: "submit" }, confirmLabel),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function errorBox(error) {
  return h("div.error-box", { role: "alert" }, error.message || String(error));
}
