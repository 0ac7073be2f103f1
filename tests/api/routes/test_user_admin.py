"""An admin changes roles and disables accounts; the last admin and one's own account are
kept; a disabled account's sessions, API keys and storage keys stop at once."""

from __future__ import annotations

import httpx
import pytest
from botocore.exceptions import ClientError

from cloudtune.domain.jobs import JobStatus
from cloudtune.store.db import Database
from tests.api.routes.test_auth import add_user, bearer, setup_admin
from tests.api.routes.test_jobs import assert_envelope
from tests.api.routes.test_storage import error_code, make_key, off_loop, s3_client
from tests.factories import create_job


async def _id_of(client: httpx.AsyncClient, admin: str, username: str) -> str:
    users = (await client.get("/api/users", headers=bearer(admin))).json()
    return str(next(u["id"] for u in users if u["username"] == username))


async def test_a_role_change_counts_on_the_next_request(client: httpx.AsyncClient) -> None:
    admin = await setup_admin(client)
    researcher = await add_user(client, admin, "rita", "researcher")
    rita = await _id_of(client, admin, "rita")
    assert (
        "job.submit"
        in (await client.get("/api/auth/me", headers=bearer(researcher))).json()["permissions"]
    )

    changed = await client.patch(
        f"/api/users/{rita}",
        json={"role": "viewer", "display_name": "Rita"},
        headers=bearer(admin),
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["role"], changed.json()["display_name"]) == ("viewer", "Rita")
    me = (await client.get("/api/auth/me", headers=bearer(researcher))).json()
    assert me["role"] == "viewer" and "job.submit" not in me["permissions"]

    refused = await client.patch(
        f"/api/users/{rita}", json={"role": "wizard"}, headers=bearer(admin)
    )
    assert_envelope(refused, 400, "invalid_role")
    unknown = await client.patch(
        f"/api/users/{rita}", json={"shoe_size": 9}, headers=bearer(admin)
    )
    assert_envelope(unknown, 400, "unsupported_field")
    missing = await client.patch(
        "/api/users/nobody", json={"role": "viewer"}, headers=bearer(admin)
    )
    assert_envelope(missing, 404, "user_not_found")
    # Only who manages users may.
    by_viewer = await client.patch(
        f"/api/users/{rita}", json={"role": "admin"}, headers=bearer(researcher)
    )
    assert_envelope(by_viewer, 403, "permission_denied")


async def test_disabling_ends_every_access_and_keeps_the_admins(
    client: httpx.AsyncClient,
) -> None:
    admin = await setup_admin(client)
    admin_id = (await client.get("/api/auth/me", headers=bearer(admin))).json()["id"]
    session = await add_user(client, admin, "dave", "researcher")
    dave = await _id_of(client, admin, "dave")
    key = await client.post(
        "/api/cloud/auth/api-keys", json={"name": "ci"}, headers=bearer(session)
    )
    assert key.status_code == 200, key.text
    storage = await client.post(
        "/api/cloud/storage/credentials", json={"bucket": "datasets"}, headers=bearer(session)
    )
    assert storage.status_code == 200, storage.text

    gone = await client.delete(f"/api/users/{dave}", headers=bearer(admin))
    assert gone.status_code == 200 and gone.json()["is_active"] is False
    for credential in (session, key.json()["key"]):
        assert (await client.get("/api/cloud/jobs", headers=bearer(credential))).status_code == 401
    login = await client.post(
        "/api/auth/login", json={"username": "dave", "password": "password-dave"}
    )
    assert login.status_code == 401
    keys = (await client.get("/api/cloud/storage/credentials", headers=bearer(admin))).json()
    listed = keys if isinstance(keys, list) else keys["credentials"]
    mine = [k for k in listed if k["access_key_id"] == storage.json()["access_key_id"]]
    assert mine and mine[0]["revoked_at"] is not None

    # Back again: signs in; the old keys stay revoked.
    back = await client.patch(
        f"/api/users/{dave}", json={"is_active": True}, headers=bearer(admin)
    )
    assert back.status_code == 200 and back.json()["is_active"] is True
    again = await client.post(
        "/api/auth/login", json={"username": "dave", "password": "password-dave"}
    )
    assert again.status_code == 200
    client.cookies.clear()
    assert (
        await client.get("/api/cloud/jobs", headers=bearer(key.json()["key"]))
    ).status_code == 401

    own = await client.delete(f"/api/users/{admin_id}", headers=bearer(admin))
    assert_envelope(own, 409, "last_admin")
    demote = await client.patch(
        f"/api/users/{admin_id}", json={"role": "lead"}, headers=bearer(admin)
    )
    assert_envelope(demote, 409, "last_admin")
    second = await add_user(client, admin, "ada", "admin")
    del second
    ada = await _id_of(client, admin, "ada")
    assert_envelope(
        await client.delete(f"/api/users/{admin_id}", headers=bearer(admin)), 409, "own_account"
    )
    assert (await client.delete(f"/api/users/{ada}", headers=bearer(admin))).status_code == 200


async def test_a_storage_key_never_outlives_its_owners_rights(client: httpx.AsyncClient) -> None:
    """Keys are checked against the owner's role as it is now: a demoted admin's bucket-wide
    key and a researcher-turned-viewer's writing key both narrow at once."""
    admin = await setup_admin(client)
    second = await add_user(client, admin, "adele", "admin")
    rita_session = await add_user(client, admin, "rita", "researcher")
    wide = await make_key(client, bearer(second))  # an admin's: the whole bucket
    assert wide["prefix"] == ""
    own = await make_key(client, bearer(rita_session))
    s3_wide, s3_own = s3_client(client, wide), s3_client(client, own)
    await off_loop(lambda: s3_wide.put_object(Bucket="outputs", Key="rita/a.txt", Body=b"a"))
    await off_loop(lambda: s3_own.put_object(Bucket="outputs", Key="rita/b.txt", Body=b"b"))

    adele = await _id_of(client, admin, "adele")
    rita = await _id_of(client, admin, "rita")
    for user_id in (adele, rita):
        changed = await client.patch(
            f"/api/users/{user_id}", json={"role": "viewer"}, headers=bearer(admin)
        )
        assert changed.status_code == 200, changed.text
    with pytest.raises(ClientError) as demoted:
        await off_loop(lambda: s3_wide.get_object(Bucket="outputs", Key="rita/a.txt"))
    assert error_code(demoted) == "AccessDenied"
    # The viewer still reads under its own prefix, and writes no more.
    read = await off_loop(
        lambda: s3_own.get_object(Bucket="outputs", Key="rita/b.txt")["Body"].read()
    )
    assert read == b"b"
    with pytest.raises(ClientError) as viewer:
        await off_loop(lambda: s3_own.put_object(Bucket="outputs", Key="rita/c.txt", Body=b"c"))
    assert error_code(viewer) == "AccessDenied"


async def test_a_disabled_accounts_running_job_is_cancelled_and_its_token_refused(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin = await setup_admin(client)
    await add_user(client, admin, "dave", "researcher")
    dave = await _id_of(client, admin, "dave")
    # A job the provider does not know yet (no reference): cancelled here alone.
    job = create_job(
        db, status=JobStatus.RUNNING, user_id=dave, provider="replicate", provider_ref=None
    )
    others = create_job(db, status=JobStatus.RUNNING, provider="replicate", provider_ref=None)
    token = client.app.state.ctx.tokens.job_token(job.job_id)  # type: ignore[attr-defined]
    url = f"/api/cloud/storage/outputs/dave/{job.job_id}/u.txt"
    before = await client.put(url, content=b"x", headers={"X-Upload-Token": token})
    assert before.status_code == 200, before.text

    assert (await client.delete(f"/api/users/{dave}", headers=bearer(admin))).status_code == 200
    after = await client.put(url, content=b"x", headers={"X-Upload-Token": token})
    assert after.status_code == 401
    jobs = (await client.get("/api/cloud/jobs", headers=bearer(admin))).json()["jobs"]
    statuses = {j["job_id"]: j["status"] for j in jobs}
    assert statuses == {job.job_id: "cancelled", others.job_id: "running"}
