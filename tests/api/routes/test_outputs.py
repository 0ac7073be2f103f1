"""A Replicate job's outputs come home before it completes (against the fake Replicate, whose
file links expire soon after success), and the outputs endpoints list and serve any job's
files with Range; on both databases."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudtune.providers.replicate import outputs as replicate_outputs
from cloudtune.settings import Settings
from tests.api.routes.test_replicate import point_webhooks_at, wait_terminal
from tests.factories import job_body, make_dataset
from tests.fakes.replicate import FakeReplicate, running_fake, settings_for

WEIGHTS = "pytorch_lora_weights.safetensors"


@pytest.fixture
def fake() -> Iterator[FakeReplicate]:
    with running_fake(run_for=0.5) as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, database_url: str, fake: FakeReplicate) -> Settings:
    # The datasets stay readable once users exist (the visibility tests add some).
    return settings_for(fake, tmp_path / "home", database_url, data_roots=[str(tmp_path)])


@pytest.fixture
def body(tmp_path: Path) -> dict[str, Any]:
    data = make_dataset(tmp_path / "dataset", 2, size=32)
    spec = job_body(data, tmp_path / "output", steps=10)
    spec["config"]["--model_family"] = "flux"
    return spec


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # The backoff between tries is not what these tests are about.
    monkeypatch.setattr(replicate_outputs, "WAIT_SECONDS", 0.0)


async def submit(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    await point_webhooks_at(client)
    response = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["job_id"])


def served(fake: FakeReplicate, job_id: str) -> dict[str, bytes]:
    (prediction,) = fake.predictions_for(job_id)
    return prediction.files


class TestHomecoming:
    async def test_the_weights_are_home_byte_identical_before_the_job_completes(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
    ) -> None:
        job_id = await submit(client, body)
        job = await wait_terminal(client, job_id)
        assert job["status"] == "completed" and job["delivery_error"] is None
        files = served(fake, job_id)
        folder = Path(job["output_url"])
        assert folder.parts[-2:] == ("local", job_id)
        for name, data in files.items():
            assert (folder / name).read_bytes() == data
        assert sorted(Path(p).name for p in job["outputs"]) == sorted(files)
        listing = (await client.get(f"/api/cloud/jobs/{job_id}/outputs")).json()
        by_path = {f["path"]: f for f in listing["files"]}
        assert set(by_path) == set(files)
        weights = by_path[WEIGHTS]
        assert weights["size"] == len(files[WEIGHTS])
        assert weights["sha256"] == hashlib.sha256(files[WEIGHTS]).hexdigest()
        assert listing["delivery"]["status"] == "done" and listing["delivery_error"] is None
        # The links are gone once they expire: only a download made in time could get them.
        fake.expire_outputs()
        late = httpx.get(
            fake.output_links(fake.predictions_for(job_id)[0])[0],
            headers={"Authorization": f"Bearer {fake.token}"},
        )
        assert late.status_code == 404
        events = (await client.get(f"/api/cloud/jobs/{job_id}/events")).json()
        (done,) = [e for e in events["events"] if e["to_status"] == "completed"]
        assert done["message"] == "replicate: outputs home"

    async def test_a_broken_connection_resumes_with_range(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
    ) -> None:
        fake.cut_next_download_after = 1024 * 1024
        job_id = await submit(client, body)
        job = await wait_terminal(client, job_id)
        assert job["status"] == "completed" and job["delivery_error"] is None
        weights = served(fake, job_id)[WEIGHTS]
        assert (Path(job["output_url"]) / WEIGHTS).read_bytes() == weights
        asked = [rng for path, rng in fake.downloads if path.endswith(WEIGHTS)]
        assert asked[0] is None and asked[1] == f"bytes={1024 * 1024}-"
        assert len(asked) == 2  # resumed, not started over

    async def test_a_failed_download_completes_the_job_with_the_error_and_a_retry_fetches(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
    ) -> None:
        job_id = await submit(client, body)
        # Every link of this job's prediction answers 503 until the fake serves again.
        prediction = await _prediction_of(client, fake, job_id)
        for link in _links(fake, prediction):
            fake.fail_paths[link] = (503, "unavailable")
        job = await wait_terminal(client, job_id)
        assert job["status"] == "completed"
        assert WEIGHTS in job["delivery_error"] and "HTTP 503" in job["delivery_error"]
        assert "delivery_error" not in job["metadata"]
        listing = (await client.get(f"/api/cloud/jobs/{job_id}/outputs")).json()
        assert listing["delivery"]["status"] == "failed" and listing["files"] == []
        assert listing["delivery_error"] == job["delivery_error"]

        fake.fail_paths.clear()
        retried = await client.post(f"/api/cloud/jobs/{job_id}/outputs/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["delivery"]["status"] in ("pending", "running", "done")
        listing = await _wait_delivery(client, job_id)
        assert listing["delivery"]["status"] == "done", listing
        job = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["job"]
        assert job["delivery_error"] is None
        files = served(fake, job_id)
        assert (Path(job["output_url"]) / WEIGHTS).read_bytes() == files[WEIGHTS]
        again = await client.post(f"/api/cloud/jobs/{job_id}/outputs/retry")
        assert again.status_code == 409 and again.json()["code"] == "delivery_done"

    async def test_a_retry_after_the_links_expired_fails_visibly(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
    ) -> None:
        job_id = await submit(client, body)
        prediction = await _prediction_of(client, fake, job_id)
        for link in _links(fake, prediction):
            fake.fail_paths[link] = (503, "unavailable")
        job = await wait_terminal(client, job_id)
        assert job["delivery_error"]
        fake.fail_paths.clear()
        fake.expire_outputs()
        retried = await client.post(f"/api/cloud/jobs/{job_id}/outputs/retry")
        assert retried.status_code == 200
        listing = await _wait_delivery(client, job_id)
        assert listing["delivery"]["status"] == "failed"
        assert (
            "HTTP 404" in listing["delivery_error"] and "may be gone" in listing["delivery_error"]
        )
        job = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["job"]
        assert job["status"] == "completed" and job["delivery_error"] == listing["delivery_error"]


class TestOutputsEndpoints:
    async def test_range_requests(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
    ) -> None:
        job_id = await submit(client, body)
        await wait_terminal(client, job_id)
        data = served(fake, job_id)[WEIGHTS]
        url = f"/api/cloud/jobs/{job_id}/outputs/{WEIGHTS}"
        whole = await client.get(url)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["accept-ranges"] == "bytes" and whole.headers["etag"]
        assert whole.headers["last-modified"]
        part = await client.get(url, headers={"Range": "bytes=10-99"})
        assert part.status_code == 206 and part.content == data[10:100]
        assert part.headers["content-range"] == f"bytes 10-99/{len(data)}"
        tail = await client.get(url, headers={"Range": "bytes=-5"})
        assert tail.status_code == 206 and tail.content == data[-5:]
        past = await client.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert past.status_code == 416 and past.json()["code"] == "range_not_satisfiable"
        assert past.headers["content-range"] == f"bytes */{len(data)}"

    async def test_paths_stay_inside_the_job_folder(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any], tmp_path: Path
    ) -> None:
        job_id = await submit(client, body)
        job = await wait_terminal(client, job_id)
        folder = Path(job["output_url"])
        secret = tmp_path / "secret.txt"
        secret.write_text("not an output")
        (folder / "link.txt").symlink_to(secret)
        base = f"/api/cloud/jobs/{job_id}/outputs"
        for raw in (
            "..%2F..%2Fsecret.txt",
            "a%2F..%2F..%2Fx",
            "%2Fetc%2Fpasswd",
            "x%00y",
            "link.txt",
        ):
            answer = await client.get(f"{base}/{raw}")
            assert answer.status_code == 400, (raw, answer.text)
            assert answer.json()["code"] == "invalid_path"
        missing = await client.get(f"{base}/nothing.bin")
        assert missing.status_code == 404 and missing.json()["code"] == "output_not_found"
        listing = (await client.get(base)).json()
        assert "link.txt" not in {f["path"] for f in listing["files"]}
        unknown = await client.get("/api/cloud/jobs/no-such-job/outputs")
        assert unknown.status_code == 404

    async def test_a_local_jobs_files_are_listed_too(
        self, client: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        # A job whose output folder already holds files (as a local trainer leaves them).
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        folder = ctx.settings.outputs_dir / "local" / "run-1"
        (folder / "checkpoint-10").mkdir(parents=True)
        (folder / "checkpoint-10" / "model.safetensors").write_bytes(b"w" * 100)
        (folder / ".half.bin.cloudtune-part").write_bytes(b"partial")
        job_id = _insert_local_job(ctx, str(folder))
        listing = (await client.get(f"/api/cloud/jobs/{job_id}/outputs")).json()
        assert listing["delivery"] is None
        (entry,) = listing["files"]
        assert entry["path"] == "checkpoint-10/model.safetensors" and entry["size"] == 100
        assert entry["sha256"] is None
        got = await client.get(entry["url"])
        assert got.status_code == 200 and got.content == b"w" * 100
        refused = await client.post(f"/api/cloud/jobs/{job_id}/outputs/retry")
        assert refused.status_code == 409 and refused.json()["code"] == "no_outputs_delivery"

    async def test_a_file_is_served_as_a_sandboxed_download(
        self, client: httpx.AsyncClient
    ) -> None:
        # A trainer may write anything, say HTML with a script: it must not run on this origin.
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        folder = ctx.settings.outputs_dir / "local" / "run-html"
        folder.mkdir(parents=True)
        page = b"<html><script>fetch('/api/users', {method: 'POST'})</script></html>"
        (folder / "report.html").write_bytes(page)
        job_id = _insert_local_job(ctx, str(folder))

        got = await client.get(f"/api/cloud/jobs/{job_id}/outputs/report.html")

        assert got.status_code == 200 and got.content == page
        assert got.headers["content-security-policy"] == "sandbox"
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-disposition"].startswith("attachment;")
        part = await client.get(
            f"/api/cloud/jobs/{job_id}/outputs/report.html", headers={"Range": "bytes=0-5"}
        )
        assert part.status_code == 206 and part.headers["content-security-policy"] == "sandbox"


def _insert_local_job(
    ctx: Any, folder: str, *, job_id: str = "local-outputs-1", owner: str | None = None
) -> str:
    from cloudtune.domain.jobs import Job, JobStatus, JobType, utcnow
    from cloudtune.store import jobs as job_store
    from cloudtune.store import users as user_store

    user_id = None
    if owner is not None:
        with ctx.db.read() as session:
            user = user_store.find_user(session, owner)
            assert user is not None
            user_id = user.id
    job = Job(
        job_id=job_id,
        job_type=JobType.LOCAL,
        provider="local",
        status=JobStatus.COMPLETED,
        created_at=utcnow(),
        output_url=folder,
        user_id=user_id,
    )
    with ctx.db.write() as session:
        job_store.insert_job(session, job)
    return job.job_id


async def _prediction_of(client: httpx.AsyncClient, fake: FakeReplicate, job_id: str) -> str:
    job = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["job"]
    return str(job["metadata"]["prediction_id"])


def _links(fake: FakeReplicate, prediction_id: str) -> list[str]:
    names = ("pytorch_lora_weights.safetensors", "sample_0.png", "logs.tar.gz")
    return [f"/delivery/{prediction_id}/{name}" for name in names]


async def _wait_delivery(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """The outputs answer once its delivery ended (the reconciler's passes run it)."""
    reconciler = client.app.state.reconciler  # type: ignore[attr-defined]
    for _ in range(200):
        listing: dict[str, Any] = (await client.get(f"/api/cloud/jobs/{job_id}/outputs")).json()
        if listing["delivery"]["status"] in ("done", "failed"):
            return listing
        await reconciler.outputs.run_pass()
        await reconciler.outputs.idle()
    raise AssertionError("the delivery did not end")


class TestVisibility:
    async def test_someone_elses_outputs_read_as_unknown_and_a_retry_needs_cancel_rights(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
    ) -> None:
        from tests.api.routes.test_auth import add_user, bearer, setup_admin

        admin = await setup_admin(client)
        client.headers.update(bearer(admin))
        del body["config"]["--output_dir"]  # a user's own output folder, by default
        job_id = await submit(client, body)
        job = await wait_terminal(client, job_id)
        assert Path(job["output_url"]).parts[-2:] == ("admin", job_id)
        bob = bearer(await add_user(client, admin, "bob", "researcher"))
        base = f"/api/cloud/jobs/{job_id}/outputs"
        for answer in (
            await client.get(base, headers=bob),
            await client.get(f"{base}/{WEIGHTS}", headers=bob),
            await client.post(f"{base}/retry", headers=bob),
        ):
            assert answer.status_code == 404, answer.text
        mine = await client.get(f"{base}/{WEIGHTS}")
        assert mine.status_code == 200 and mine.content == served(fake, job_id)[WEIGHTS]

    async def test_once_users_exist_only_folders_under_the_output_root_are_served(
        self, client: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        from tests.api.routes.test_auth import bearer, setup_admin

        # A job made before users existed, whose folder was anywhere its OS user owned.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (elsewhere / "id_key").write_text("private")
        job_id = _insert_local_job(client.app.state.ctx, str(elsewhere))  # type: ignore[attr-defined]
        assert (await client.get(f"/api/cloud/jobs/{job_id}/outputs")).json()["files"]
        client.headers.update(bearer(await setup_admin(client)))
        listing = (await client.get(f"/api/cloud/jobs/{job_id}/outputs")).json()
        assert listing["folder"] is None and listing["files"] == []
        refused = await client.get(f"/api/cloud/jobs/{job_id}/outputs/id_key")
        assert refused.status_code == 404

    async def test_a_job_is_served_only_from_its_owners_output_folder(
        self, client: httpx.AsyncClient
    ) -> None:
        from tests.api.routes.test_auth import add_user, bearer, setup_admin

        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        admin = await setup_admin(client)
        olga = bearer(await add_user(client, admin, "olga", "researcher"))
        bob = bearer(await add_user(client, admin, "bob", "researcher"))
        root = ctx.settings.outputs_dir
        bobs = root / "bob" / "run"
        bobs.mkdir(parents=True)
        (bobs / "weights.bin").write_bytes(b"bob's weights")
        (root / "olga").mkdir()
        # A link planted in olga's folder, pointing into bob's.
        (root / "olga" / "run").symlink_to(bobs, target_is_directory=True)
        olgas_job = _insert_local_job(
            ctx, str(root / "olga" / "run"), job_id="olga-link", owner="olga"
        )
        bobs_job = _insert_local_job(ctx, str(bobs), job_id="bob-run", owner="bob")
        shared = root / "team" / "run"
        shared.mkdir(parents=True)
        (shared / "weights.bin").write_bytes(b"admin's weights")
        admins_job = _insert_local_job(ctx, str(shared), job_id="admin-run", owner="admin")

        listing = (await client.get(f"/api/cloud/jobs/{olgas_job}/outputs", headers=olga)).json()
        assert listing["folder"] is None and listing["files"] == []
        refused = await client.get(
            f"/api/cloud/jobs/{olgas_job}/outputs/weights.bin", headers=olga
        )
        assert refused.status_code == 404 and refused.json()["code"] == "output_not_found"
        own = await client.get(f"/api/cloud/jobs/{bobs_job}/outputs/weights.bin", headers=bob)
        assert own.status_code == 200 and own.content == b"bob's weights"
        admins = await client.get(
            f"/api/cloud/jobs/{admins_job}/outputs/weights.bin", headers=bearer(admin)
        )
        assert admins.status_code == 200 and admins.content == b"admin's weights"


class TestLeastPrivilegedKey:
    async def test_a_key_that_may_only_view_its_own_jobs_reads_nothing_outside_their_folder(
        self, client: httpx.AsyncClient
    ) -> None:
        """A key scoped to `job.view.own` of a researcher: its own job's files, and nothing
        outside the output root, the server's home or another user's folder, whatever the
        path or link says (traversal and links out are 400; a folder it may not be served
        is 404, the same answer as a missing file)."""
        from tests.api.routes.test_auth import add_user, bearer, setup_admin

        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        admin = await setup_admin(client)
        bob = bearer(await add_user(client, admin, "bob", "researcher"))
        made = await client.post(
            "/api/cloud/auth/api-keys",
            json={"name": "read-only", "scoped_permissions": ["job.view.own"]},
            headers=bob,
        )
        assert made.status_code == 200, made.text
        key = {"Authorization": f"Bearer {made.json()['key']}"}
        root = ctx.settings.outputs_dir
        run = root / "bob" / "run"
        run.mkdir(parents=True)
        (run / "weights.bin").write_bytes(b"bob's weights")
        secret = ctx.settings.home / "token-signing.key"
        assert secret.is_file()
        (run / "key-link").symlink_to(secret)
        own = _insert_local_job(ctx, str(run), job_id="bob-run", owner="bob")
        in_home = _insert_local_job(ctx, str(ctx.settings.home), job_id="bob-home", owner="bob")

        served = await client.get(f"/api/cloud/jobs/{own}/outputs/weights.bin", headers=key)
        assert served.status_code == 200 and served.content == b"bob's weights"
        # Encoded, so the client sends the dots as they are instead of resolving them itself.
        for path in ("key-link", "%2e%2e/%2e%2e/token-signing.key", "x%2F..%2F..%2Fkey-link"):
            refused = await client.get(f"/api/cloud/jobs/{own}/outputs/{path}", headers=key)
            assert refused.status_code == 400, (path, refused.status_code, refused.text)
            assert refused.json()["code"] == "invalid_path"
            assert secret.read_bytes() not in refused.content
        for job_id in (in_home,):
            hidden = await client.get(
                f"/api/cloud/jobs/{job_id}/outputs/token-signing.key", headers=key
            )
            assert hidden.status_code == 404 and hidden.json()["code"] == "output_not_found"
            listing = (await client.get(f"/api/cloud/jobs/{job_id}/outputs", headers=key)).json()
            assert listing["folder"] is None and listing["files"] == []
