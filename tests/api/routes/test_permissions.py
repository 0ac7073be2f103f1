"""The permission matrix: every job route, for each role and for keys scoped to each single
permission, answers 200/401/403/404 as the rules say, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudtune.domain.jobs import JobStatus
from cloudtune.domain.principal import ALL_PERMISSIONS, ROLE_PERMISSIONS
from cloudtune.settings import Settings
from tests.api.routes.test_auth import add_user, bearer, setup_admin
from tests.factories import create_job, job_body, make_dataset

JOB_PERMISSIONS = sorted(p for p in ALL_PERMISSIONS if p.startswith("job."))


def visible(perms: frozenset[str], own: bool) -> int:
    if "job.view.all" in perms or (own and "job.view.own" in perms):
        return 200
    return 403 if own else 404


def acting(perms: frozenset[str], own: bool, action: str) -> int:
    seen = visible(perms, own)
    if seen != 200:
        return seen
    if f"job.{action}.all" in perms or (own and f"job.{action}.own" in perms):
        return 200
    return 403


async def check_principal(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    perms: frozenset[str],
    owner_id: str | None,
    other_id: str,
    body: dict[str, Any],
) -> list[str]:
    """Returns the mismatches as readable lines."""
    db = client.app.state.ctx.db  # type: ignore[attr-defined]
    jobs = {
        (own, state): create_job(
            db,
            user_id=owner_id if own else other_id,
            status=JobStatus.QUEUED if state == "active" else JobStatus.COMPLETED,
        ).job_id
        for own in (True, False)
        for state in ("active", "done")
    }
    expected: list[tuple[str, str, int]] = [
        ("POST", "/api/cloud/jobs/submit", 200 if "job.submit" in perms else 403),
        ("GET", "/api/cloud/jobs", 200 if perms & {"job.view.own", "job.view.all"} else 403),
    ]
    for own in (True, False):
        for state in ("active", "done"):
            job_id = jobs[(own, state)]
            # "/": a trailing slash is the same path (the edge drops it), seen the same way.
            for suffix in ("", "/", "/logs", "/events", "/inline-progress"):
                expected.append(("GET", f"/api/cloud/jobs/{job_id}{suffix}", visible(perms, own)))
        expected.append(
            (
                "POST",
                f"/api/cloud/jobs/{jobs[(own, 'active')]}/cancel",
                acting(perms, own, "cancel"),
            )
        )
        expected.append(
            ("DELETE", f"/api/cloud/jobs/{jobs[(own, 'done')]}", acting(perms, own, "delete"))
        )
    wrong = []
    for method, path, status in expected:
        json = body if path.endswith("/submit") else None
        response = await client.request(method, path, headers=headers, json=json)
        if response.status_code != status:
            wrong.append(f"{method} {path}: expected {status}, got {response.status_code}")
    stream_path = f"/api/cloud/jobs/{jobs[(False, 'active')]}/logs/stream"
    async with client.stream("GET", stream_path, headers=headers) as response:
        if response.status_code != visible(perms, False):
            wrong.append(f"GET {stream_path}: got {response.status_code}")
    return wrong


@pytest.mark.trainer
async def test_permission_matrix(client: httpx.AsyncClient, settings: Settings) -> None:
    # With users, datasets are read from the data roots (default <home>/datasets) and a
    # relative output folder lands in the caller's own outputs.
    dataset = make_dataset(settings.datasets_dir / "shapes", 2, size=16)
    body = job_body(dataset, Path("out"), steps=1)
    admin = await setup_admin(client)
    me = (await client.get("/api/auth/me", headers=bearer(admin))).json()
    other = await add_user(client, admin, "olga", "researcher")
    other_id = (await client.get("/api/auth/me", headers=bearer(other))).json()["id"]

    principals: list[tuple[str, dict[str, str], frozenset[str], str | None]] = []
    for role in ROLE_PERMISSIONS:
        token = admin if role == "admin" else await add_user(client, admin, f"{role}1", role)
        user_id = (await client.get("/api/auth/me", headers=bearer(token))).json()["id"]
        principals.append((f"role {role}", bearer(token), ROLE_PERMISSIONS[role], user_id))
    for permission in JOB_PERMISSIONS:
        created = await client.post(
            "/api/cloud/auth/api-keys",
            json={"name": permission, "scoped_permissions": [permission]},
            headers=bearer(admin),
        )
        key = created.json()["key"]
        principals.append(
            (f"key {permission}", {"X-API-Key": key}, frozenset({permission}), me["id"])
        )

    failures = []
    for name, headers, perms, owner_id in principals:
        for line in await check_principal(client, headers, perms, owner_id, other_id, body):
            failures.append(f"{name}: {line}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer stk_wrong"}])
async def test_every_job_route_needs_valid_credentials_once_users_exist(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await setup_admin(client)
    routes = [
        ("POST", "/api/cloud/jobs/submit"),
        ("POST", "/api/cloud/jobs/preview"),
        ("GET", "/api/cloud/jobs"),
        ("POST", "/api/cloud/jobs/sync"),
        ("GET", "/api/cloud/jobs/x"),
        ("GET", "/api/cloud/jobs/x/logs"),
        ("GET", "/api/cloud/jobs/x/logs/stream"),
        ("GET", "/api/cloud/jobs/x/events"),
        ("POST", "/api/cloud/jobs/x/cancel"),
        ("DELETE", "/api/cloud/jobs/x"),
        ("GET", "/api/configs"),
        ("PUT", "/api/configs/x"),
        ("GET", "/api/auth/me"),
        ("GET", "/api/cloud/auth/api-keys"),
        ("GET", "/api/users"),
        # The compatibility layer's paths (docs/api.md), as strict as ours.
        ("GET", "/api/cloud/jobs/x/inline-progress"),
        ("GET", "/api/cloud/jobs/"),
        ("GET", "/api/configs/"),
        ("GET", "/api/auth/api-keys"),
        ("GET", "/api/auth/check"),
        ("GET", "/api/cloud/available-configs"),
        ("GET", "/api/cloud/pre-submit-check"),
        ("GET", "/api/cloud/metrics"),
        ("GET", "/api/cloud/cost-limit/status"),
        ("GET", "/api/metrics/cost-limit/status"),
        ("GET", "/api/cloud/hardware-options"),
        ("GET", "/api/cloud/cost-estimate"),
        ("POST", "/api/cloud/cost-estimate"),
        ("GET", "/api/cloud/providers/replicate/config"),
        ("PUT", "/api/cloud/providers/replicate/config"),
    ]
    for method, path in routes:
        json = {"config": {"a": 1}} if method in ("POST", "PUT") else None
        response = await client.request(method, path, headers=headers, json=json)
        assert response.status_code == 401, f"{method} {path}: {response.status_code}"
