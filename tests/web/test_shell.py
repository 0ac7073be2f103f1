"""The UI's shell: its headers, the jobs list from empty to live rows, sign-in and sign-out."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from cloudtune.web import SECURITY_HEADERS
from tests.factories import job_body, make_dataset
from tests.web.conftest import ADMIN, UiServer, screenshot


def test_every_ui_answer_carries_the_security_headers(ui: UiServer) -> None:
    for path in ("/", "/jobs", "/jobs/abc", "/settings", "/ui/app.js", "/ui/app.css"):
        answer = ui.api("GET", path)
        assert answer.status_code == 200, path
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers[name] == value, (path, name)
        assert "unsafe-inline" not in answer.headers["content-security-policy"]
    assert ui.api("GET", "/ui/app.js").headers["content-type"].startswith("text/javascript")
    assert ui.api("GET", "/ui/../pyproject.toml").status_code == 404
    assert ui.api("GET", "/ui/%2e%2e/__init__.py").status_code == 404


def test_an_empty_server_tells_a_newcomer_what_to_do(ui: UiServer) -> None:
    page = ui.new_page()
    page.goto("/")
    expect(page.get_by_role("heading", name="No jobs yet")).to_be_visible()
    expect(page.get_by_role("link", name="Settings").first).to_be_visible()
    expect(page.get_by_role("button", name="Train in Cloud")).to_be_visible()
    screenshot(page, "jobs-empty")


@pytest.mark.trainer
def test_the_job_list_follows_a_local_job_live(ui: UiServer, tmp_path: Path) -> None:
    body = job_body(make_dataset(tmp_path / "data", 4, size=32), tmp_path / "out", steps=40)
    page = ui.new_page()
    page.goto("/jobs")
    expect(page.get_by_role("heading", name="No jobs yet")).to_be_visible()
    submitted = ui.api("POST", "/api/cloud/jobs/submit?provider=local", json=body)
    assert submitted.status_code == 200, submitted.text
    job_id = submitted.json()["job_id"]

    row = page.locator(f'tr[data-job-id="{job_id}"]')
    expect(row).to_be_visible()  # appears with no reload
    expect(row).to_have_attribute("data-status", "completed", timeout=120_000)
    expect(row.locator("progress")).to_have_attribute("value", "40")
    expect(row.get_by_text("40/40")).to_be_visible()
    screenshot(page, "jobs-list")

    page.locator("#filter-status").select_option("failed")
    expect(page).to_have_url(f"{ui.url}/jobs?status=failed")
    expect(page.get_by_text("No job matches these filters.")).to_be_visible()
    page.go_back()
    expect(row).to_be_visible()
    row.get_by_role("link").click()
    expect(page).to_have_url(f"{ui.url}/jobs/{job_id}")


def test_sign_in_and_out_in_multi_user_mode(ui: UiServer) -> None:
    ui.create_admin()
    page = ui.new_page()
    page.goto("/jobs")
    expect(page).to_have_url(f"{ui.url}/login?next=%2Fjobs")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "login")
    page.get_by_label("Username").fill(ADMIN["username"])
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    page.get_by_label("Password").fill(ADMIN["password"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{ui.url}/jobs")
    expect(page.locator("#whoami")).to_have_text("admin (admin)")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{ui.url}/login")
    page.goto("/settings")
    expect(page).to_have_url(f"{ui.url}/login?next=%2Fsettings")
