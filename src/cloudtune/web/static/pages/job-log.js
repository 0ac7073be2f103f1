// The job page's log: a <pre> that follows the end while "Follow" is on, fed from the log's
// SSE stream (or set whole from its tail).

import { clear, h } from "../dom.js";

const MAX_LOG_LINES = 5000; // kept in the page while streaming

export function logPanel() {
  const pre = h("pre.log-view", { id: "job-log", tabindex: "0", "aria-label": "Log" });
  const follow = h("input", { type: "checkbox", id: "log-follow", checked: true });
  let nodes = []; // [text node, its line count]
  let lines = 0;
  let pending = [];
  let flushTimer = null;

  const atBottom = () => pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  const toBottom = () => {
    if (follow.checked) pre.scrollTop = pre.scrollHeight;
  };
  // The reader scrolling up means they want to read: stop pulling the view down.
  pre.addEventListener("scroll", () => {
    if (follow.checked && !atBottom()) follow.checked = false;
  });
  follow.addEventListener("change", toBottom);

  function reset() {
    clearTimeout(flushTimer);
    flushTimer = null;
    clear(pre);
    nodes = [];
    lines = 0;
    pending = [];
  }

  function flush() {
    flushTimer = null;
    if (!pending.length) return;
    const node = document.createTextNode(pending.join("\n") + "\n");
    nodes.push([node, pending.length]);
    lines += pending.length;
    pending = [];
    pre.append(node);
    while (lines > MAX_LOG_LINES && nodes.length > 1) {
      const [first, count] = nodes.shift();
      first.remove();
      lines -= count;
    }
    toBottom();
  }

  return {
    panel: h(
      "section.panel",
      { "aria-labelledby": "log-title" },
      h("div.log-head", h("h2", { id: "log-title" }, "Log"), h("span.spacer"), h("label.inline", { for: "log-follow" }, follow, "Follow")),
      pre,
    ),
    add(line) {
      pending.push(line);
      if (!flushTimer) flushTimer = setTimeout(flush, 100);
    },
    reset,
    set(all) {
      reset();
      pending = all.slice(-MAX_LOG_LINES);
      if (pending.length && pending[pending.length - 1] === "") pending.pop();
      if (!pending.length) pre.append(h("span.muted", "No log lines yet."));
      else flush();
    },
  };
}

// The server replays a job's whole log on every connection, so a reconnect starts the view
// again rather than repeating lines; `done` (sent at the end) closes it for good.
export function openStream(path, logs, onEvent) {
  const source = new EventSource(path, { withCredentials: true });
  let first = true;
  source.addEventListener("open", () => {
    first = true;
  });
  const line = (event) => {
    if (first) logs.reset();
    first = false;
    logs.add(event.data);
  };
  source.addEventListener("message", line);
  source.addEventListener("status", (event) => onEvent("status", event.data));
  source.addEventListener("done", (event) => {
    source.close();
    onEvent("done", event.data);
  });
  return () => source.close();
}
