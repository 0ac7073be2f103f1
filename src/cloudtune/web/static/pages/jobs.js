// The Cloud tab: every job, local and cloud, newest first, with filters kept in the address
// and rows that follow the jobs live (polled while the tab is visible).

import { get } from "../api.js";
import { navigate } from "../app.js";
import { ACTIVE, STATUSES, badge, clear, duration, errorBox, h, money, progressOf, when } from "../dom.js";

const PAGE_SIZE = 50;
const POLL_MS = 2000;

function runName(job) {
  return job.tracker_run_name || job.config_name || job.job_id.slice(0, 12);
}

function costCell(job) {
  const live = job.cost_usd;
  const estimate = job.estimated_cost_usd;
  const text = live !== null && live !== undefined ? money(live) : "—";
  const title = estimate !== null && estimate !== undefined ? `estimated ${money(estimate)}` : "no estimate";
  return h("td.num", { title }, text, h("div.muted.hint", estimate !== null && estimate !== undefined ? `est. ${money(estimate)}` : ""));
}

function row(job) {
  return h(
    "tr",
    { dataset: { jobId: job.job_id, status: job.status } },
    h("td", badge(job.status)),
    h("td", h("a", { href: `/jobs/${encodeURIComponent(job.job_id)}` }, runName(job))),
    h("td.hide-narrow", job.provider),
    h("td", progressOf(job)),
    costCell(job),
    h("td.num.hide-narrow", duration(job.duration_seconds)),
    h("td.hide-narrow", h("time", { datetime: job.created_at || "" }, when(job.created_at))),
  );
}

function emptyState(filtered, canSubmit) {
  if (filtered) {
    return h("div.empty.panel", h("p", "No job matches these filters."), h("a", { href: "/jobs" }, "Show all jobs"));
  }
  return h(
    "div.empty.panel",
    h("h2", "No jobs yet"),
    h(
      "ol",
      h("li", h("a", { href: "/settings" }, "Settings"), ": save and validate your provider's token (not needed for this machine)."),
      h("li", h("a", { href: "/configs" }, "Configure"), ": make a training config with your dataset."),
      h("li", canSubmit ? "Train in Cloud: pick the config, check the upload summary, submit." : "Ask an admin for the right to submit jobs."),
    ),
  );
}

function filterBar(params, providers, onChange) {
  const status = h(
    "select",
    { id: "filter-status", name: "status" },
    h("option", { value: "" }, "any status"),
    STATUSES.map((s) => h("option", { value: s, selected: params.get("status") === s }, s)),
  );
  const provider = h(
    "select",
    { id: "filter-provider", name: "provider" },
    h("option", { value: "" }, "any provider"),
    providers.map((p) => h("option", { value: p, selected: params.get("provider") === p }, p)),
  );
  for (const select of [status, provider]) select.addEventListener("change", () => onChange(status.value, provider.value));
  return h(
    "div.filters",
    { role: "search" },
    h("div", h("label", { for: "filter-status" }, "Status"), status),
    h("div", h("label", { for: "filter-provider" }, "Provider"), provider),
  );
}

export async function render(main, session) {
  const params = new URLSearchParams(location.search);
  const offset = Math.max(0, Number(params.get("offset")) || 0);
  const canSubmit = session.can("job.submit");
  // Asked at once with the first page of jobs, not before it.
  const providersAsked = get("/api/cloud/providers").then(
    (listed) => (listed.providers || []).map((p) => p.id),
    () => ["local", "replicate"], // the filter keeps the known names
  );

  const trainButton = canSubmit
    ? h("button.primary", { type: "button", id: "train-in-cloud", onclick: () => openTrain() }, "Train in Cloud")
    : null;
  async function openTrain() {
    const { openTrainDialog } = await import("./train.js");
    openTrainDialog(session);
  }

  const body = h("tbody");
  const table = h(
    "div.table-wrap",
    h(
      "table",
      { id: "jobs-table", "aria-label": "Jobs" },
      h(
        "thead",
        h(
          "tr",
          h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col" }, "Run"),
          h("th.hide-narrow", { scope: "col" }, "Provider"),
          h("th", { scope: "col" }, "Progress"),
          h("th.num", { scope: "col" }, "Cost"),
          h("th.num.hide-narrow", { scope: "col" }, "Duration"),
          h("th.hide-narrow", { scope: "col" }, "Created"),
        ),
      ),
      body,
    ),
  );
  const pager = h("nav.actions", { "aria-label": "Pages" });
  const status = h("p.muted", { id: "jobs-summary" });
  const errorSlot = h("div");
  const content = h("div");

  const query = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(offset) });
  for (const key of ["status", "provider"]) if (params.get(key)) query.set(key, params.get(key));
  const filtered = Boolean(params.get("status") || params.get("provider"));
  let timer = null;
  let stopped = false;

  const firstPage = refresh();
  const providers = await providersAsked;
  main.append(
    h("div.page-head", h("h1", "Jobs"), h("span.spacer"), trainButton),
    filterBar(params, providers, (s, p) => {
      const next = new URLSearchParams();
      if (s) next.set("status", s);
      if (p) next.set("provider", p);
      navigate(`/jobs${next.toString() ? `?${next}` : ""}`);
    }),
    errorSlot,
    content,
  );

  function showPager(total) {
    clear(pager);
    const link = (label, to) => {
      const next = new URLSearchParams(params);
      next.set("offset", String(to));
      return h("a.button", { href: `/jobs?${next}` }, label);
    };
    if (offset > 0) pager.append(link("Newer", Math.max(0, offset - PAGE_SIZE)));
    if (offset + PAGE_SIZE < total) pager.append(link("Older", offset + PAGE_SIZE));
    status.textContent = total ? `${offset + 1}–${Math.min(total, offset + PAGE_SIZE)} of ${total}` : "";
  }

  async function refresh() {
    try {
      const page = await get(`/api/cloud/jobs?${query}`);
      clear(errorSlot);
      if (!page.jobs.length) {
        clear(content).append(emptyState(filtered, canSubmit));
      } else {
        if (!content.contains(table)) clear(content).append(table, h("div.page-head", status, h("span.spacer"), pager));
        const rows = page.jobs.map(row);
        body.replaceChildren(...rows);
        showPager(page.total);
      }
      return page.jobs.some((job) => ACTIVE.has(job.status));
    } catch (error) {
      clear(errorSlot).append(errorBox(error));
      return true;
    }
  }

  async function poll() {
    if (stopped) return;
    if (document.visibilityState === "visible") await refresh();
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }

  await firstPage;
  timer = setTimeout(poll, POLL_MS);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
