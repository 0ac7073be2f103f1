// One job: its state and costs, the config it runs with, the live log, the loss over the
// run, its samples and files, and its history. Followed live while the job is active (the
// log by SSE, the rest polled), still once it has ended.

import { del, get, post } from "../api.js";
import { navigate } from "../app.js";
import { append, badge, bytes, clear, confirmDialog, duration, errorBox, h, money, progressOf, toast, when } from "../dom.js";
import { lossChart } from "./job-chart.js";
import { logPanel, openStream } from "./job-log.js";

const POLL_MS = 2000;
const OUTPUTS_EVERY = 5; // polls between output listings while the job runs
const LOG_TAIL = 2000; // lines of a finished job's log
const IMAGE = /\.(png|jpe?g|webp|gif)$/i;

export async function render(main, session, params) {
  const jobId = params[0];
  const base = `/api/cloud/jobs/${encodeURIComponent(jobId)}`;
  let job;
  try {
    job = (await get(base)).job;
  } catch (error) {
    if (error.status !== 404) throw error;
    main.append(
      h("h1", "Job not found"),
      h("p", "No job ", h("code", jobId), " here, or it is not yours to see."),
      h("a", { href: "/jobs" }, "Back to the jobs"),
    );
    return undefined;
  }

  const view = {
    head: h("div.page-head"),
    summary: h("section.panel.job-summary", { "aria-label": "Summary" }),
    chart: h("div.chart"),
    timeline: h("ol.timeline"),
    outputs: h("div.job-outputs"),
    config: h("pre.job-config"),
  };
  const logs = logPanel();
  main.append(
    view.head,
    view.summary,
    h(
      "div.job-columns",
      h("section.panel", { "aria-labelledby": "loss-title" }, h("h2", { id: "loss-title" }, "Loss"), view.chart),
      h("section.panel", { "aria-labelledby": "events-title" }, h("h2", { id: "events-title" }, "Timeline"), view.timeline),
    ),
    logs.panel,
    h("section.panel", { "aria-labelledby": "outputs-title" }, h("h2", { id: "outputs-title" }, "Samples and files"), view.outputs),
    h(
      "section.panel",
      { "aria-labelledby": "config-title" },
      h("h2", { id: "config-title" }, "Config"),
      h("p.hint", "The config the job runs with; secrets are masked."),
      view.config,
    ),
  );

  let stopped = false;
  let timer = null;
  let closeStream = null;
  let polls = 0;

  const actions = { busy: false };
  let shownStatus = null;
  function showJob() {
    // The head holds the buttons: rebuilt only when the status changes, so focus stays put.
    if (shownStatus === job.status) {
      append(clear(view.summary), [summaryOf(job)]);
      return;
    }
    shownStatus = job.status;
    clear(view.head).append(
      h("div.job-title", h("h1", runName(job)), h("code.muted.job-id", job.job_id)),
      badge(job.status),
      h("span.spacer"),
      actionButtons(job, session, actions, { cancel, remove }),
    );
    append(clear(view.summary), [summaryOf(job)]);
    view.config.textContent = JSON.stringify(maskSecrets(job.config_snapshot ?? job.metadata?.runtime_config ?? {}), null, 2);
  }

  async function refreshEvents() {
    const { events } = await get(`${base}/events`);
    append(clear(view.chart), [lossChart(events, view.chart.clientWidth)]);
    append(clear(view.timeline), [timelineOf(events)]);
  }

  async function refreshOutputs() {
    append(clear(view.outputs), [outputsOf(await get(`${base}/outputs`))]);
  }

  async function refreshAll() {
    job = (await get(base)).job;
    showJob();
    await refreshEvents();
  }

  async function cancel() {
    const ok = await confirmDialog("Cancel this job?", "The trainer is stopped now; what it saved so far is kept.", "Cancel job", true);
    if (!ok) return;
    try {
      await post(`${base}/cancel`);
      toast("Job cancelled", "ok");
      await refreshAll();
      await refreshOutputs();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function remove() {
    const ok = await confirmDialog(
      "Delete this job?",
      "The job and its history are removed from this server. Files in its output folder are kept.",
      "Delete job",
      true,
    );
    if (!ok) return;
    try {
      await del(base);
      toast("Job deleted", "ok");
      navigate("/jobs");
    } catch (error) {
      toast(error.message, "error");
    }
  }

  function followLog() {
    closeStream = openStream(`${base}/logs/stream`, logs, async (name, data) => {
      if (name === "status" && data !== job.status && !stopped) await poll(true);
    });
  }

  let polling = false;
  async function poll(now = false) {
    clearTimeout(timer);
    if (stopped || polling) return;
    polling = true;
    if (now || document.visibilityState === "visible") {
      try {
        const wasActive = job.is_active;
        await refreshAll();
        polls += 1;
        if (!job.is_active || polls % OUTPUTS_EVERY === 0) await refreshOutputs();
        if (wasActive && !job.is_active) {
          polling = false;
          return; // ended: nothing more to follow
        }
      } catch (error) {
        if (error.status === 404) {
          clear(main).append(h("h1", "Job not found"), h("p", "This job was deleted."), h("a", { href: "/jobs" }, "Back to the jobs"));
          stopped = true;
          return;
        }
        toast(error.message, "error");
      }
    }
    polling = false;
    if (!stopped && job.is_active) timer = setTimeout(poll, POLL_MS);
  }

  showJob();
  await Promise.all([refreshEvents(), refreshOutputs().catch((error) => view.outputs.append(errorBox(error)))]);
  if (job.is_active) {
    logs.set([]);
    followLog();
    timer = setTimeout(poll, POLL_MS);
  } else {
    const { logs: text } = await get(`${base}/logs?tail=${LOG_TAIL}`);
    logs.set(text ? text.split("\n") : []);
  }
  return () => {
    stopped = true;
    clearTimeout(timer);
    if (closeStream) closeStream();
  };
}

function runName(job) {
  return job.tracker_run_name || job.config_name || job.job_id.slice(0, 12);
}

function actionButtons(job, session, state, { cancel, remove }) {
  const mine = session.me && job.user_id === session.me.id;
  const may = (action) => session.can(`job.${action}.all`) || (mine && session.can(`job.${action}.own`));
  const run = (fn) => async (event) => {
    if (state.busy) return;
    const button = event.currentTarget;
    state.busy = true;
    button.disabled = true;
    try {
      await fn();
    } finally {
      state.busy = false;
      button.disabled = false;
    }
  };
  return h(
    "div.job-actions",
    job.is_active && may("cancel") ? h("button.danger", { type: "button", id: "cancel-job", onclick: run(cancel) }, "Cancel job") : null,
    job.is_terminal && may("delete") ? h("button.danger", { type: "button", id: "delete-job", onclick: run(remove) }, "Delete job") : null,
  );
}

function summaryOf(job) {
  const row = (label, value) => [h("dt", label), h("dd", value)];
  const time = (iso) => h("time", { datetime: iso || "" }, when(iso));
  const problems = [
    ["Error", job.error_message],
    ["Outputs did not all come home", job.delivery_error],
    ["Publishing failed", job.publish_error],
  ].filter(([, text]) => text);
  return [
    progressOf(job),
    problems.map(([title, text]) => h("div.error-box", { role: "alert" }, h("strong", `${title}: `), text)),
    h(
      "dl.kv.job-facts",
      row("Provider", job.provider),
      row("Hardware", job.hardware_type || job.hardware_profile || "—"),
      row("Created", time(job.created_at)),
      row("Started", time(job.started_at)),
      row("Completed", time(job.completed_at)),
      row("Duration", duration(job.duration_seconds)),
      row("Estimated cost", money(job.estimated_cost_usd)),
      row(job.is_active ? "Cost so far" : "Cost", money(job.cost_usd)),
      job.max_cost_usd ? row("Cost limit", money(job.max_cost_usd)) : null,
      job.queue_position ? row("Queue position", String(job.queue_position)) : null,
    ),
  ];
}

// -- the timeline and the outputs -----------------------------------------------------------

function timelineOf(events) {
  const changes = events.filter((event) => event.kind !== "progress");
  if (!changes.length) return h("li.muted", "Nothing happened yet.");
  return changes.map((event) =>
    h(
      "li",
      h("time", { datetime: event.at }, when(event.at)),
      " ",
      event.from_status ? [badge(event.from_status), " → "] : null,
      event.to_status ? badge(event.to_status) : h("span", event.kind),
      event.message ? h("div.hint", event.message) : null,
    ),
  );
}

function outputsOf(listing) {
  const files = listing.files || [];
  const images = files.filter((file) => IMAGE.test(file.path));
  const parts = [];
  if (listing.delivery_error) parts.push(h("div.warn-box", { role: "alert" }, `Outputs: ${listing.delivery_error}`));
  if (!files.length) {
    parts.push(h("p.muted", listing.job_status && ["completed", "failed", "cancelled"].includes(listing.job_status) ? "No files." : "No files yet."));
    return parts;
  }
  if (images.length) {
    parts.push(
      h(
        "div.samples",
        images.map((file) =>
          h("figure", h("img", { src: file.url, alt: `Sample ${file.path}`, loading: "lazy" }), h("figcaption", file.path)),
        ),
      ),
    );
  }
  parts.push(
    h(
      "div.table-wrap",
      h(
        "table",
        { id: "outputs-table", "aria-label": "Output files" },
        h("thead", h("tr", h("th", { scope: "col" }, "File"), h("th.num", { scope: "col" }, "Size"), h("th", { scope: "col" }, h("span.sr-only", "Download")))),
        h(
          "tbody",
          files.map((file) =>
            h(
              "tr",
              h("td", h("code", file.path)),
              h("td.num", bytes(file.size)),
              h("td", h("a", { href: file.url, download: file.path.split("/").pop(), "aria-label": `Download ${file.path}` }, "Download")),
            ),
          ),
        ),
      ),
    ),
  );
  if (listing.truncated) parts.push(h("p.hint", "More files than listed here."));
  return parts;
}

// -- secrets --------------------------------------------------------------------------------

const SECRET_WORDS = new Set(["token", "secret", "password", "passwd", "credential", "credentials", "auth", "apikey", "bearer"]);

// The server masks secrets in the snapshot already (as `***`); this is a second net, so a
// value under a secret-looking key is never shown even if one slipped through.
export function looksSecret(key) {
  const name = String(key)
    .replace(/^-+/, "")
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .toLowerCase()
    .replace(/-/g, "_");
  const words = name.split(/[^a-z0-9]+/);
  return (
    words.some((w) => SECRET_WORDS.has(w)) ||
    name === "key" ||
    name.endsWith("_key") ||
    name.includes("access_key") ||
    name.includes("api_key") ||
    name.includes("webhook_url")
  );
}

export function maskSecrets(value) {
  if (Array.isArray(value)) return value.map(maskSecrets);
  if (value && typeof value === "object") {
    const out = {};
    for (const [key, inner] of Object.entries(value)) {
      const masked = looksSecret(key) && inner !== null && inner !== "" && inner !== "***";
      out[key] = masked ? "••••" : maskSecrets(inner);
    }
    return out;
  }
  return value;
}
