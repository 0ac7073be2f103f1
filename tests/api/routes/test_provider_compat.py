"""Providers in the shapes scripts written for the reference server read, on both databases:
the list's fields, validate, tokens, versions, billing and `/api/cloud/providers/{p}/config`,
against the fake Replicate (reached through the base-URL setting)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudtune.settings import HardwareSettings, Settings
from tests.api.routes.test_auth import bearer, setup_admin
from tests.api.routes.test_jobs import assert_envelope
from tests.conftest import free_port
from tests.fakes.replicate import FakeReplicate, running_fake, settings_for

TOKEN = "/api/cloud/providers/replicate/token"
CONFIG = "/api/cloud/providers/replicate/config"


@pytest.fixture
def fake() -> Iterator[FakeReplicate]:
    with running_fake() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, database_url: str, fake: FakeReplicate) -> Settings:
    # Prices of our own, so that every price shown is seen to come from the settings.
    hardware = HardwareSettings(h100_per_hour_usd=Decimal("7.2"), l40s_per_hour_usd=Decimal("3.6"))
    return settings_for(fake, tmp_path / "home", database_url, hardware=hardware)


def without_token(client: httpx.AsyncClient) -> None:
    client.app.state.ctx.settings.replicate_api_token = None  # type: ignore[attr-defined]


async def test_the_list_describes_each_provider_and_prices_its_profiles(
    client: httpx.AsyncClient,
) -> None:
    found = (await client.get("/api/cloud/providers")).json()["providers"]
    by_id = {p["id"]: p for p in found}
    replicate, local = by_id["replicate"], by_id["local"]
    assert replicate["name"] == "replicate" and replicate["available"] is True
    assert replicate["job_type"] == "cloud" and "reason" not in replicate
    assert replicate["configured"] is True and replicate["coming_soon"] is False
    assert replicate["description"]
    assert replicate["hardware_profile"] == "h100" and replicate["hardware"] == "H100 (80GB)"
    assert replicate["cost_per_hour"] == 7.2
    assert replicate["model"] == "simpletuner/advanced-trainer-h100"
    assert replicate["version"] is None
    profiles = {p["id"]: p for p in replicate["hardware_profiles"]}
    assert len(profiles) == 8
    assert profiles["l40s-x2"] == {
        "id": "l40s-x2",
        "model": "simpletuner/advanced-trainer-l40s-x2",
        "label": "2x L40S",
        "hardware_type": "2x L40S",
        "cost_per_hour": 7.2,
        "cost_per_second": 0.002,
    }
    assert profiles["h100"]["cost_per_second"] == 0.002
    assert local["configured"] is True and local["coming_soon"] is False
    assert local["model"] is None and local["version"] is None and local["description"]
    assert local["hardware_profile"] == local["hardware_profiles"][0]["id"]
    assert local["cost_per_hour"] == 0.0

    # The default profile, model and version follow the saved settings; no token: not
    # configured.
    saved = await client.put(
        CONFIG, json={"hardware_profile": "L40S_x4", "version": "v1", "model": "me/trainer"}
    )
    assert saved.status_code == 200, saved.text
    without_token(client)
    replicate = {
        p["id"]: p for p in (await client.get("/api/cloud/providers")).json()["providers"]
    }["replicate"]
    assert replicate["configured"] is False
    assert replicate["hardware_profile"] == "l40s-x4" and replicate["hardware"] == "4x L40S (48GB)"
    assert replicate["cost_per_hour"] == 14.4
    assert replicate["model"] == "me/trainer-l40s-x4" and replicate["version"] == "v1"


async def test_validate_says_no_with_200_and_yes_with_the_account(
    client: httpx.AsyncClient, fake: FakeReplicate
) -> None:
    path = "/api/cloud/providers/replicate/validate"
    valid = await client.get(path)
    assert valid.status_code == 200, valid.text
    assert valid.json() == {
        "success": True,
        "valid": True,
        "detail": "Replicate account fake-user",
        "user_info": {
            "username": "fake-user",
            "name": "Fake User",
            "github_url": None,
            "token_source": "environment",
        },
        "error": None,
    }
    await client.put(TOKEN, json={"token": fake.token})
    assert (await client.get(path)).json()["user_info"]["token_source"] == "saved"

    await client.put(TOKEN, json={"token": "r8_refused"})
    refused = await client.get(path)
    assert refused.status_code == 200
    body = refused.json()
    assert body["valid"] is False and body["user_info"] is None and body["success"] is False
    assert "refused" in body["error"] and body["error"] == body["detail"]

    await client.delete(TOKEN)
    without_token(client)
    missing = await client.get(path)
    assert missing.status_code == 200
    assert missing.json()["valid"] is False and "REPLICATE_API_TOKEN" in missing.json()["error"]


async def test_validate_is_502_only_when_replicate_cannot_answer(
    client: httpx.AsyncClient, fake: FakeReplicate
) -> None:
    fake.fail_paths["/v1/account"] = (404, "The requested resource could not be found.")
    response = await client.get("/api/cloud/providers/replicate/validate")
    assert_envelope(response, 502)
    assert fake.token not in response.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"api_token": "abc"}, "Invalid token format. Replicate tokens start with 'r8_'"),
        ({"token": "abc"}, "Invalid token format. Replicate tokens start with 'r8_'"),
        ({"api_token": ""}, "Token cannot be empty"),
        ({"token": "   "}, "Token cannot be empty"),
        ({"token": None}, 'send {"token": "r8_..."}'),
        ({"token": "r8_a", "api_token": "r8_b"}, "token and api_token differ; send one"),
        ({"token": "r8_a", "note": "x"}, "unknown field 'note'"),
    ],
)
async def test_a_token_that_is_no_replicate_token_is_refused_and_nothing_saved(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    without_token(client)
    refused = await client.put(TOKEN, json=body)
    assert_envelope(refused, 400, "invalid_token")
    assert refused.json()["error"].startswith(message)
    settings = (await client.get("/api/cloud/providers/replicate")).json()
    assert settings["token_configured"] is False


async def test_a_saved_token_is_checked_once_and_the_answer_says_how_it_went(
    client: httpx.AsyncClient, fake: FakeReplicate
) -> None:
    without_token(client)
    good = await client.put(TOKEN, json={"api_token": f"  {fake.token}\n"})
    assert good.status_code == 200, good.text
    assert good.json() == {
        "success": True,
        "token_configured": True,
        "file_path": None,
        "error": None,
    }
    assert fake.calls["GET /v1/account"] == 1
    bad = (await client.put(TOKEN, json={"token": "r8_not_the_fakes"})).json()
    assert bad["success"] is True and bad["token_configured"] is True
    assert bad["error"].startswith("Token saved but validation failed")
    assert "r8_not_the_fakes" not in str(bad)

    gone = await client.delete(TOKEN)
    assert gone.status_code == 200
    assert gone.json() == {
        "success": True,
        "token_configured": False,
        "file_path": None,
        "error": None,
    }


async def test_a_token_saved_while_replicate_is_unreachable_is_kept_with_a_note(
    client: httpx.AsyncClient, fake: FakeReplicate
) -> None:
    without_token(client)
    # Nothing listens there: the one check fails at once (no retries while the user waits).
    client.app.state.ctx.settings.replicate_base_url = f"http://127.0.0.1:{free_port()}/v1"  # type: ignore[attr-defined]
    saved = await client.put(TOKEN, json={"token": "r8_unreachable_check"})
    assert saved.status_code == 200, saved.text
    assert saved.json()["token_configured"] is True
    assert saved.json()["error"].startswith("Token saved but Replicate could not be reached")
    assert "r8_unreachable_check" not in saved.text
    assert fake.calls["GET /v1/account"] == 0


async def test_versions_and_billing_in_both_shapes(
    client: httpx.AsyncClient, fake: FakeReplicate
) -> None:
    versions = (await client.get("/api/cloud/providers/replicate/versions")).json()
    assert versions["current_version"] is None and versions["error"] is None
    first = versions["versions"][0]
    assert first["model_id"] == "simpletuner/advanced-trainer-h100"
    assert first["full_version"] == f"simpletuner/advanced-trainer-h100:{first['id']}"
    await client.put("/api/cloud/providers/replicate", json={"version": "pinned-1"})
    pinned = (await client.get("/api/cloud/providers/replicate/versions")).json()
    assert pinned["current_version"] == "pinned-1"

    billing = (await client.get("/api/cloud/providers/replicate/billing")).json()
    assert billing["balance"] is None and billing["balance_usd"] is None
    assert billing["balance_available"] is False and "balance" in billing["balance_note"]
    assert billing["default_hardware"] == "gpu-h100"
    assert set(billing["hardware"]) == {
        "gpu-h100",
        "gpu-h100-2x",
        "gpu-h100-4x",
        "gpu-h100-8x",
        "gpu-l40s",
        "gpu-2x-l40s",
        "gpu-4x-l40s",
        "gpu-8x-l40s",
    }
    assert billing["hardware"]["gpu-h100"] == {"name": "H100 (80GB)", "cost_per_second": 0.002}
    assert billing["hardware"]["gpu-2x-l40s"]["name"] == "2x L40S (48GB)"
    assert len(billing["profiles"]) == 8

    # Without a token versions cannot be asked for: an honest 400, not a 200 with an error.
    without_token(client)
    assert_envelope(
        await client.get("/api/cloud/providers/replicate/versions"), 400, "missing_token"
    )


async def test_the_config_path_reads_and_writes_settings_and_the_one_cost_limit(
    client: httpx.AsyncClient,
) -> None:
    initial = (await client.get(CONFIG)).json()
    assert initial["provider"] == "replicate" and initial["token_configured"] is True
    assert initial["config"]["hardware_profile"] == "h100"
    assert initial["config"]["cost_limit_enabled"] is False
    # The reference server's own request (prov-put-Apath).
    body = {
        "webhook_url": "https://hooks.example.com",
        "cost_limit_enabled": True,
        "cost_limit_amount": 50,
        "cost_limit_period": "weekly",
        "cost_limit_action": "block",
        "hardware_profile": "l40s",
    }
    saved = await client.put(CONFIG, json=body)
    assert saved.status_code == 200, saved.text
    config = (await client.get(CONFIG)).json()["config"]
    assert {k: config[k] for k in body} == {**body, "cost_limit_amount": 50.0}
    assert config["default_hardware_profile"] == "l40s"
    assert saved.json()["config"] == config and saved.json()["success"] is True
    limit = (await client.get("/api/cloud/metrics/cost-limit")).json()
    assert (limit["enabled"], limit["limit_usd"], limit["period"], limit["action"]) == (
        True,
        50.0,
        "weekly",
        "block",
    )
    native = (await client.get("/api/cloud/providers/replicate")).json()["config"]
    assert native["webhook_url"] == "https://hooks.example.com"

    # Our own cost-limit path changes what the config path shows, and null changes nothing.
    await client.put("/api/cloud/metrics/cost-limit", json={"limit_usd": 12.5, "period": "daily"})
    again = await client.put(CONFIG, json={"cost_limit_amount": None, "hardware_profile": ""})
    config = again.json()["config"]
    assert config["cost_limit_amount"] == 12.5 and config["cost_limit_period"] == "daily"
    assert config["hardware_profile"] is None  # "" clears it: the default (h100) again
    providers = (await client.get("/api/cloud/providers")).json()["providers"]
    assert {p["id"]: p for p in providers}["replicate"]["hardware_profile"] == "h100"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"webhook_url": "ftp://nope"}, "URL must use http or https scheme"),
        ({"webhook_url": "https://"}, "URL must have a host"),
        ({"hardware_profile": "a100"}, "Invalid Replicate hardware profile"),
        ({"cost_limit_amount": -1}, "cost_limit_amount must be a number from 0"),
        ({"cost_limit_period": "hourly"}, "cost_limit_period must be daily, weekly or monthly"),
        ({"cost_limit_action": "stop"}, "cost_limit_action must be warn or block"),
        ({"cost_limit_enabled": "yes"}, "cost_limit_enabled must be true or false"),
        ({"version_override": "v2"}, "unknown setting 'version_override'"),
        ({"hardware_profile": "l40s", "default_hardware_profile": "h100"}, "differ"),
    ],
)
async def test_a_refused_config_field_saves_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    before = (await client.get(CONFIG)).json()
    # A valid change beside the refused one is not saved either.
    refused = await client.put(CONFIG, json={"model": "me/other", "cost_limit_amount": 9, **body})
    assert_envelope(refused, 400, "invalid_setting")
    assert message in refused.json()["error"]
    assert (await client.get(CONFIG)).json() == before


async def test_the_config_path_needs_the_same_permissions(client: httpx.AsyncClient) -> None:
    admin = await setup_admin(client)
    keys = {}
    for scope in ("provider.manage", "job.submit"):
        created = await client.post(
            "/api/cloud/auth/api-keys",
            json={"name": scope, "scoped_permissions": [scope]},
            headers=bearer(admin),
        )
        keys[scope] = {"X-API-Key": created.json()["key"]}
    assert (await client.get(CONFIG)).status_code == 401
    assert (await client.put(CONFIG, json={"model": "me/x"})).status_code == 401
    assert_envelope(await client.get(CONFIG, headers=keys["job.submit"]), 403)
    assert_envelope(
        await client.put(CONFIG, json={"model": "me/x"}, headers=keys["job.submit"]), 403
    )
    manager = keys["provider.manage"]
    changed = await client.put(CONFIG, json={"model": "me/x"}, headers=manager)
    assert changed.status_code == 200, changed.text
    # The limit is not shown to a caller who may not read it.
    assert changed.json()["config"]["cost_limit_amount"] is None
    # The limit's fields need cost.manage too, and then nothing of the request is saved.
    refused = await client.put(
        CONFIG, json={"model": "me/y", "cost_limit_enabled": True}, headers=manager
    )
    assert_envelope(refused, 403)
    config = (await client.get(CONFIG, headers=bearer(admin))).json()["config"]
    assert config["model"] == "me/x" and config["cost_limit_enabled"] is False


async def test_settings_beside_config_are_refused_not_dropped(client: httpx.AsyncClient) -> None:
    for path in (CONFIG, "/api/cloud/providers/replicate"):
        body = {"config": {"model": "owner/m"}, "cost_limit_amount": 5, "webhook_url": "https://x"}
        refused = await client.put(path, json=body)
        assert refused.status_code == 400, (path, refused.text)
        assert refused.json()["code"] == "unsupported_field"
        assert "cost_limit_amount" in refused.json()["error"]
        saved = (await client.get(CONFIG)).json()["config"]
        assert saved["model"] != "owner/m" and saved["cost_limit_amount"] != 5
        # What a GET answered, sent back as it was, is accepted.
        echoed = await client.put(path, json={**(await client.get(path)).json()})
        assert echoed.status_code == 200, (path, echoed.text)


async def test_a_setting_that_cannot_be_encoded_is_refused_and_nothing_breaks(
    client: httpx.AsyncClient,
) -> None:
    for path in (CONFIG, "/api/cloud/providers/replicate"):
        refused = await client.put(
            path, content='{"model": "\\ud800"}', headers={"content-type": "application/json"}
        )
        assert refused.status_code == 400, (path, refused.text)
    assert (await client.get("/api/cloud/providers")).status_code == 200
    assert (await client.get(CONFIG)).json()["config"]["model"] != "\ud800"
