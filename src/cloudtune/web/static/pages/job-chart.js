// The job page's loss chart: an inline SVG line of loss over step, from the job's progress
// events.

import { h, svg } from "../dom.js";

const MAX_POINTS = 1500;

export function lossPoints(events) {
  const byStep = new Map();
  for (const event of events) {
    const data = event.data || {};
    if (event.kind !== "progress" || data.step === null || data.step === undefined) continue;
    const loss = Number(data.loss);
    if (data.loss === null || data.loss === undefined || !Number.isFinite(loss)) continue;
    byStep.set(Number(data.step), loss);
  }
  const points = [...byStep.entries()].sort((a, b) => a[0] - b[0]);
  if (points.length <= MAX_POINTS) return points;
  // A long run reports thousands of times: every k-th point (and the last) draws the same line.
  const every = Math.ceil(points.length / MAX_POINTS);
  return points.filter((_, i) => i % every === 0 || i === points.length - 1);
}

export function lossChart(events, width) {
  const points = lossPoints(events);
  if (!points.length) return h("p.muted.chart-empty", "No loss reported yet.");
  // As wide as its box (within bounds), so the labels keep their size on a phone.
  const W = Math.round(Math.min(900, Math.max(300, width || 640)));
  const H = W < 480 ? 220 : 260;
  const m = { left: 60, right: 16, top: 14, bottom: 42 };
  const steps = points.map((p) => p[0]);
  const losses = points.map((p) => p[1]);
  let [x0, x1] = [Math.min(...steps), Math.max(...steps)];
  let [y0, y1] = [Math.min(...losses), Math.max(...losses)];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  const pad = (y1 - y0 || Math.abs(y1) || 1) * 0.05;
  [y0, y1] = [y0 - pad, y1 + pad];
  const x = (step) => m.left + ((step - x0) / (x1 - x0)) * (W - m.left - m.right);
  const y = (loss) => H - m.bottom - ((loss - y0) / (y1 - y0)) * (H - m.top - m.bottom);
  const fmt = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  const last = points[points.length - 1];
  const titleId = "loss-chart-title";
  const yTicks = [y0 + pad, (y0 + y1) / 2, y1 - pad];
  return svg(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": titleId, id: "loss-chart" },
    svg(
      "title",
      { id: titleId },
      `Loss over ${points.length} reports, steps ${steps[0]} to ${last[0]}: from ${fmt(losses[0])} to ${fmt(last[1])}`,
    ),
    svg("line", { class: "axis", x1: m.left, y1: H - m.bottom, x2: W - m.right, y2: H - m.bottom }),
    svg("line", { class: "axis", x1: m.left, y1: m.top, x2: m.left, y2: H - m.bottom }),
    yTicks.map((v) => svg("text", { x: m.left - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(v))),
    [steps[0], last[0]].map((s) => svg("text", { x: x(s), y: H - m.bottom + 16, "text-anchor": "middle" }, String(s))),
    svg("text", { class: "axis-label", x: (W + m.left) / 2, y: H - 6, "text-anchor": "middle" }, "step"),
    svg("text", { class: "axis-label", x: 14, y: (H - m.bottom) / 2, "text-anchor": "middle", transform: `rotate(-90 14 ${(H - m.bottom) / 2})` }, "loss"),
    svg("polyline", { class: "line", points: points.map(([s, l]) => `${x(s).toFixed(1)},${y(l).toFixed(1)}`).join(" ") }),
    points.length === 1 ? svg("circle", { class: "dot", cx: x(last[0]), cy: y(last[1]), r: 3 }) : null,
  );
}
