"""The Settings page: API keys shown once and revoked, the cost limit, Replicate's token
against a fake Replicate, and the sections a viewer does not get."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.fakes.replicate import FakeReplicate, running_fake
from tests.web.conftest import ADMIN, UiServer, screenshot

VIEWER = {"username": "vera", "email": "vera@example.com", "password": "viewer pass 1234"}


def sign_in(ui: UiServer, page: Page, username: str, password: str) -> None:
    page.goto("/login?next=%2Fsettings")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{ui.url}/settings")
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()


@pytest.fixture
def fake_replicate(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeReplicate]:
    with running_fake() as fake:
        monkeypatch.setenv("CLOUDTUNE_REPLICATE_BASE_URL", fake.base_url)
        monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
        yield fake


@pytest.fixture
def replicate_ui(fake_replicate: FakeReplicate, request: pytest.FixtureRequest) -> UiServer:
    """The `ui` server, started only once the fake's address is in the environment."""
    server: UiServer = request.getfixturevalue("ui")
    return server


def test_an_api_key_is_shown_once_works_and_is_revoked(ui: UiServer) -> None:
    ui.create_admin()
    page = ui.new_page()
    sign_in(ui, page, ADMIN["username"], ADMIN["password"])

    keys = page.locator("#settings-api-keys")
    keys.get_by_label("Name").fill("ci script")
    keys.get_by_label("Expires after (days)").fill("30")
    keys.get_by_label("job.view.own").check()
    keys.get_by_label("config.view").check()
    keys.get_by_role("button", name="Create key").click()

    secret = page.locator(".secret-once")
    expect(secret).to_be_visible()
    expect(page.get_by_text("it will not be shown again")).to_be_visible()
    key = secret.inner_text().strip()
    assert key.startswith("stk_")
    page.get_by_role("button", name="Copy").click()  # the clipboard, or a selection to copy

    row = page.locator("#api-keys-table tbody tr", has_text="ci script")
    expect(row).to_contain_text(key[:8])
    expect(row).to_contain_text("job.view.own")
    expect(row).to_contain_text("config.view")
    expect(row).to_contain_text("active")

    # The key acts with exactly its two scopes.
    bearer = {"Authorization": f"Bearer {key}"}
    assert ui.api("GET", "/api/cloud/jobs", headers=bearer).status_code == 200
    me = ui.api("GET", "/api/auth/me", headers=bearer).json()
    assert sorted(me["permissions"]) == ["config.view", "job.view.own"]

    page.reload()
    expect(row).to_be_visible()
    expect(page.locator(".secret-once")).to_have_count(0)
    assert key not in page.content()

    row.get_by_role("button", name="Revoke").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Revoke “ci script”?")
    dialog.get_by_role("button", name="Revoke key").click()
    expect(row).to_contain_text("revoked")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
    assert ui.api("GET", "/api/cloud/jobs", headers=bearer).status_code == 401


def test_a_cost_limit_that_blocks_is_saved_through_the_api(ui: UiServer) -> None:
    page = ui.new_page()
    page.goto("/settings")
    cost = page.locator("#settings-cost")
    expect(cost.locator("#cost-spent")).to_contain_text("$0.00 spent this month")
    expect(cost).to_contain_text("No limit is enforced.")

    cost.get_by_label("Limit (USD)").fill("-3")
    cost.get_by_role("button", name="Save cost limit").click()
    expect(page.locator("#cost-amount-error")).to_contain_text("from 0 to 1,000,000")

    cost.get_by_label("Limit (USD)").fill("125.50")
    cost.get_by_label("Period").select_option("weekly")
    cost.get_by_label("When reached").select_option("block")
    cost.get_by_label("Enforce this limit").check()
    cost.get_by_role("button", name="Save cost limit").click()
    expect(cost.locator("#cost-spent")).to_contain_text("$0.00 spent this week")
    expect(cost).to_contain_text("$125.50 left of $125.50.")

    limit = ui.api("GET", "/api/cloud/metrics/cost-limit").json()
    assert limit["limit_usd"] == 125.5
    assert (limit["period"], limit["action"], limit["enabled"]) == ("weekly", "block", True)
    assert limit["spent_usd"] == 0.0

    page.reload()
    expect(cost.get_by_label("When reached")).to_have_value("block")
    expect(cost.get_by_label("Period")).to_have_value("weekly")
    expect(cost.get_by_label("Limit (USD)")).to_have_value("125.5")
    expect(cost.get_by_label("Enforce this limit")).to_be_checked()


def test_a_replicate_token_is_saved_validated_and_never_shown(
    replicate_ui: UiServer, fake_replicate: FakeReplicate
) -> None:
    ui = replicate_ui
    page = ui.new_page()
    page.goto("/settings")
    providers = page.locator("#settings-providers")
    replicate = providers.locator('[data-provider="replicate"]')
    expect(replicate).to_contain_text("not configured")
    expect(replicate).to_contain_text("No token saved")
    token = replicate.get_by_label("Replicate API token")
    expect(token).to_have_attribute("type", "password")
    expect(token).to_have_value("")

    # A malformed token is refused beside the field, and nothing is saved.
    token.fill("not-a-token")
    replicate.get_by_role("button", name="Save token").click()
    expect(page.locator("#replicate-token-error")).to_contain_text("r8_")
    expect(token).to_have_attribute("aria-invalid", "true")

    # A well-formed token the fake refuses: saved, and the check says why.
    bad = "r8_wrong_token_123"
    token.fill(bad)
    replicate.get_by_role("button", name="Save token").click()
    expect(page.locator("#replicate-token-error")).to_contain_text("validation failed")
    expect(replicate).to_contain_text("A token is saved")
    replicate.get_by_role("button", name="Validate").click()
    expect(page.locator("#replicate-token-error")).not_to_be_empty()
    expect(replicate.locator("#replicate-account-ok")).to_have_count(0)

    token.fill(fake_replicate.token)
    replicate.get_by_role("button", name="Save token").click()
    expect(replicate).to_contain_text("Token saved and accepted by Replicate.")
    expect(replicate).to_contain_text("ready")
    replicate.get_by_role("button", name="Validate").click()
    expect(replicate.locator("#replicate-account-ok")).to_contain_text("fake-user")
    expect(token).to_have_value("")
    page.reload()
    expect(replicate).to_contain_text("A token is saved")
    expect(token).to_have_value("")
    html = page.content()
    assert fake_replicate.token not in html and bad not in html

    # Webhook settings: a bad address is named beside its field; a good one is saved.
    replicate.get_by_label("Webhook URL").fill("ftp://example.com")
    replicate.get_by_role("button", name="Save webhook settings").click()
    expect(page.locator("#replicate-webhook-url-error")).to_contain_text("http or https")
    replicate.get_by_label("Webhook URL").fill("https://tune.example.com")
    replicate.get_by_label("Allowed webhook sources").fill("203.0.113.7\nnot an ip")
    replicate.get_by_role("button", name="Save webhook settings").click()
    expect(page.locator("#replicate-webhook-ips-error")).to_contain_text("'not an ip'")
    expect(page.locator("#replicate-webhook-url-error")).to_be_empty()
    replicate.get_by_label("Allowed webhook sources").fill("203.0.113.7\n\n198.51.100.0/24\n")
    replicate.get_by_role("button", name="Save webhook settings").click()
    expect(page.get_by_text("Webhook settings saved")).to_be_visible()
    config = ui.api("GET", "/api/cloud/providers/replicate").json()["config"]
    assert config["webhook_url"] == "https://tune.example.com"
    assert config["webhook_allowed_ips"] == ["203.0.113.7", "198.51.100.0/24"]


def test_an_admin_adds_a_viewer_who_sees_only_its_own_sections(ui: UiServer) -> None:
    ui.create_admin()
    page = ui.new_page()
    sign_in(ui, page, ADMIN["username"], ADMIN["password"])
    for name in ("Providers", "Hardware and prices", "Cost limit", "API keys", "Users"):
        expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()

    users = page.locator("#settings-users")
    form = users.locator("#add-user-form")
    form.get_by_label("Username").fill(VIEWER["username"])
    form.get_by_label("Email").fill(VIEWER["email"])
    form.get_by_label("Password").fill(VIEWER["password"])
    form.get_by_label("Role").select_option("viewer")
    form.get_by_role("button", name="Add user").click()
    row = users.locator(f'tr[data-username="{VIEWER["username"]}"]')
    expect(row).to_contain_text("viewer")
    expect(users.locator('tr[data-username="admin"]')).to_contain_text("(you)")
    login = ui.api("POST", "/api/auth/login", json={k: ADMIN[k] for k in ("username", "password")})
    bearer = {"Authorization": f"Bearer {login.json()['token']}"}
    listed = ui.api("GET", "/api/users", headers=bearer).json()
    assert {u["username"]: u["role"] for u in listed} == {"admin": "admin", "vera": "viewer"}

    # A role changes in place; disabling asks first, and the account cannot sign in until
    # it is enabled again.
    name = VIEWER["username"]
    row.get_by_label(f"Role of {name}").select_option("researcher")
    expect(page.get_by_text(f"{name} is now researcher")).to_be_visible()
    row.get_by_label(f"Role of {name}").select_option("viewer")
    expect(page.get_by_text(f"{name} is now viewer")).to_be_visible()
    row.get_by_role("button", name=f"Disable {name}").click()
    page.get_by_role("dialog").get_by_role("button", name="Disable user").click()
    expect(row).to_contain_text("(disabled)")
    viewer_login = {k: VIEWER[k] for k in ("username", "password")}
    assert ui.api("POST", "/api/auth/login", json=viewer_login).status_code == 401
    row.get_by_role("button", name=f"Enable {name}").click()
    expect(row).not_to_contain_text("(disabled)")
    assert ui.api("POST", "/api/auth/login", json=viewer_login).status_code == 200
    screenshot(page, "settings")

    phone = ui.new_page(width=390, dark=True)
    sign_in(ui, phone, ADMIN["username"], ADMIN["password"])
    expect(phone.locator("#users-table")).to_be_visible()
    screenshot(phone, "settings-phone-dark")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{ui.url}/login")
    sign_in(ui, page, VIEWER["username"], VIEWER["password"])
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    expect(page.get_by_role("heading", name="Hardware and prices")).to_be_visible()
    for name in ("Providers", "Cost limit", "Users"):
        expect(page.get_by_role("heading", name=name, exact=True)).to_have_count(0)
    # The viewer may scope a key only to what it holds itself.
    scopes = page.locator('#api-key-form input[name="scope"]')
    expect(scopes).to_have_count(4)
    expect(page.get_by_label("provider.manage")).to_have_count(0)
