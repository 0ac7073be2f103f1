"""The ray provider's routes against hostile input: settings that would break every later read
are refused, only admins change them, and a cluster path that climbs with `..` is resolved by
this server's file policy (and refused there) instead of being handed to the nodes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cloudtune.settings import Settings
from tests.api.routes.test_auth import add_user, bearer, setup_admin
from tests.factories import job_body, make_dataset

pytestmark = pytest.mark.ray

RAY = "/api/cloud/providers/ray"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    settings.ray_address = "http://127.0.0.1:9"  # nothing listens: no job may reach it
    settings.data_roots = [str(tmp_path / "data")]
    return settings


async def test_settings_that_would_break_every_read_are_refused(
    client: httpx.AsyncClient,
) -> None:
    admin = bearer(await setup_admin(client))
    for raw in (b'{"price_per_hour_usd": 1e400}', b'{"entrypoint_memory_gib": NaN}'):
        saved = await client.put(
            RAY, content=raw, headers={**admin, "Content-Type": "application/json"}
        )
        assert saved.status_code == 400, saved.text
    for change in ({"auth_header": "Content-Length"}, {"address": "http://head:99999"}):
        assert (await client.put(RAY, json=change, headers=admin)).status_code == 400
    assert (await client.get(RAY, headers=admin)).status_code == 200
    assert (await client.get("/api/cloud/providers", headers=admin)).status_code == 200


async def test_only_an_admin_changes_or_checks_the_cluster(client: httpx.AsyncClient) -> None:
    admin = await setup_admin(client)
    for role in ("researcher", "viewer"):
        who = bearer(await add_user(client, admin, f"a{role}", role))
        assert (await client.put(RAY, json={"python": "x"}, headers=who)).status_code == 403
        assert (await client.get(f"{RAY}/validate", headers=who)).status_code == 403
        token = await client.put(f"{RAY}/token", json={"token": "t"}, headers=who)
        assert token.status_code == 403
        assert (await client.delete(f"{RAY}/token", headers=who)).status_code == 403


async def test_a_cluster_path_that_climbs_is_this_servers_to_refuse(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    admin = await setup_admin(client)
    cluster = tmp_path / "cluster"
    (cluster / "x").mkdir(parents=True)
    (cluster / "link").symlink_to(tmp_path / "home")
    saved = await client.put(
        RAY, json={"cluster_data_roots": [str(cluster)]}, headers=bearer(admin)
    )
    assert saved.status_code == 200, saved.text
    alice = bearer(await add_user(client, admin, "alice", "researcher"))
    make_dataset(tmp_path / "data" / "ds", 2, size=16)
    for path in (f"{cluster}/link/../x", f"{cluster}/../home", f"{cluster}2/x"):
        body = job_body(tmp_path / "data" / "ds", tmp_path / "unused", steps=1)
        body["config"].pop("--output_dir")
        body["dataloader_config"][0]["instance_data_dir"] = path
        sent = await client.post("/api/cloud/jobs/submit?provider=ray", json=body, headers=alice)
        assert sent.status_code == 400, sent.text
        assert sent.json()["code"] == "path_not_allowed"
