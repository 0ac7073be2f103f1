"""Every main page, and the Train in Cloud dialog, at laptop and phone width: each form control
has a label, each button and link a name, each image its alt text, one h1 per page; and the
keyboard reaches the main actions."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from cloudtune.domain.jobs import JobStatus, JobType
from cloudtune.store.db import Database
from tests.factories import create_job, job_body, make_dataset
from tests.web.conftest import UiServer

# The problems of the page as it stands, by the accessible-name rules a screen reader uses.
PROBLEMS = """() => {
  const problems = [];
  const named = (el) => {
    if (el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")) return true;
    if (el.labels && el.labels.length) return true;
    return false;
  };
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden" || el.closest("[hidden]")) continue;
    const what = `${el.tagName.toLowerCase()}#${el.id}[name=${el.name}]`;
    if (!named(el)) problems.push(`unlabelled ${what}`);
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (el.closest("[hidden]")) continue;
    const text = (el.getAttribute("aria-label") || el.textContent || el.title || "").trim();
    if (!text) problems.push(`nameless ${el.tagName.toLowerCase()} ${el.outerHTML.slice(0, 80)}`);
  }
  for (const img of document.querySelectorAll("img")) {
    if (!img.hasAttribute("alt")) problems.push(`img without alt: ${img.src}`);
  }
  const h1 = [...document.querySelectorAll("main h1, dialog h1")].length;
  if (h1 !== 1) problems.push(`${h1} h1 elements`);
  if (!document.documentElement.lang) problems.push("no lang on html");
  return problems;
}"""


def check(page: Page, where: str) -> None:
    expect(page.locator("main")).to_have_attribute("aria-busy", "false")
    problems = page.evaluate(PROBLEMS)
    assert problems == [], f"{where}: {problems}"


@pytest.mark.parametrize("width", [1280, 390])
def test_every_page_names_its_controls(ui: UiServer, tmp_path: Path, width: int) -> None:
    body = job_body(make_dataset(tmp_path / "data", 2, size=32), tmp_path / "out")
    saved = ui.api("POST", "/api/configs", json={"name": "shapes", **body})
    assert saved.status_code == 201, saved.text
    db = Database(ui.server.database_url)
    job = create_job(db, status=JobStatus.FAILED, job_type=JobType.LOCAL, provider="local")
    db.dispose()

    page = ui.new_page(width=width, dark=width < 500)
    for path in ("/jobs", f"/jobs/{job.job_id}", "/configs", "/configs/shapes", "/settings"):
        page.goto(path)
        check(page, path)
    page.goto("/jobs")
    page.get_by_role("button", name="Train in Cloud").click()
    dialog = page.get_by_role("dialog", name="Train in Cloud")
    expect(dialog).to_be_visible()
    assert page.evaluate(PROBLEMS.replace("h1 !== 1", "h1 > 1")) == []


def test_the_keyboard_reaches_the_main_actions(ui: UiServer) -> None:
    page = ui.new_page()
    page.goto("/jobs")
    expect(page.get_by_role("heading", name="No jobs yet")).to_be_visible()
    reached = []
    for _ in range(15):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("() => document.activeElement.textContent.trim()"))
    assert "Skip to content" in reached[0]
    assert "Train in Cloud" in reached
    page.keyboard.press("Shift+Tab")
    focused = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert focused != "none"  # focus is visible
