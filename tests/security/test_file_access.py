"""Findings 1-3: paths a user names are confined by the file access policy.

A multi-user server, attacked with an `stk_` key scoped to `job.submit` only (a researcher's):
datasets outside the data roots, the server's own home, other users' output folders and model
files elsewhere on the machine are all refused with one error, `path_not_allowed`, whose text
does not tell whether the path exists. On SQLite and PostgreSQL (the `settings` fixture)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from cloudtune.domain.principal import LOCAL_ADMIN, Principal
from cloudtune.services.file_access import FileAccessPolicy
from cloudtune.services.packaging import package, scan_datasets
from cloudtune.settings import Settings
from tests.api.routes.test_auth import add_user, bearer, setup_admin
from tests.factories import job_body, make_dataset

SUBMIT = "/api/cloud/jobs/submit?provider=local"
PREVIEW_REPLICATE = "/api/cloud/jobs/preview?provider=replicate"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    settings.data_roots = [str(tmp_path / "data")]
    # A preview never calls Replicate; the provider only needs to be configured.
    settings.replicate_api_token = SecretStr("r8_preview_only")
    return settings


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    make_dataset(root / "shapes", 2, size=16)
    return root


async def submit_only_key(client: httpx.AsyncClient, username: str = "mallory") -> str:
    """A researcher's key scoped to job.submit only: the least-privileged credential."""
    admin = await setup_admin(client)
    session = await add_user(client, admin, username, "researcher")
    response = await client.post(
        "/api/cloud/auth/api-keys",
        json={"name": "ci", "scoped_permissions": ["job.submit"]},
        headers=bearer(session),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["key"])


def refused(response: httpx.Response, raw: str) -> str:
    assert response.status_code == 400, response.text
    data = response.json()
    assert data["code"] == "path_not_allowed", data
    return str(data["detail"]).replace(raw, "<path>")


class TestDatasets:
    async def test_outside_the_roots_and_missing_give_one_answer(
        self, client: httpx.AsyncClient, data_root: Path, settings: Settings, tmp_path: Path
    ) -> None:
        key = await submit_only_key(client)
        outside = tmp_path / "elsewhere"
        make_dataset(outside, 2, size=16)
        texts = set()
        for raw in (str(outside), "/etc", "/root/.ssh", "/no/such/folder", "/etc/shadow"):
            body = job_body(Path(raw), Path("out"))
            for url in (PREVIEW_REPLICATE, SUBMIT):
                response = await client.post(url, json=body, headers=bearer(key))
                texts.add(refused(response, raw))
        assert len(texts) == 1  # no answer tells whether a path exists
        listing = await client.get("/api/cloud/jobs", headers=bearer(await setup_token(client)))
        assert listing.json()["total"] == 0

    async def test_the_server_home_is_never_a_dataset(
        self, client: httpx.AsyncClient, data_root: Path, settings: Settings
    ) -> None:
        key = await submit_only_key(client)
        for raw in (str(settings.home), str(settings.runs_dir), str(settings.home.parent)):
            body = job_body(Path(raw), Path("out"))
            response = await client.post(PREVIEW_REPLICATE, json=body, headers=bearer(key))
            refused(response, raw)

    async def test_a_link_into_the_home_is_left_out(
        self, client: httpx.AsyncClient, data_root: Path, settings: Settings
    ) -> None:
        key = await submit_only_key(client)
        dataset = data_root / "shapes"
        (dataset / "db").symlink_to(settings.home / "cloudtune.db")
        (dataset / "state").symlink_to(settings.home)
        body = job_body(dataset, Path("out"))
        response = await client.post(PREVIEW_REPLICATE, json=body, headers=bearer(key))
        assert response.status_code == 200, response.text
        preview = response.json()
        names = [f["path"] for f in preview["first_files"]]
        assert not any("db" in n.split("/")[-1] or "state" in n for n in names)
        excluded = preview["excluded"]
        assert excluded["symlink leaving the dataset"]["examples"] == ["training-images/db"]
        assert excluded["symlinked folder"]["examples"] == ["training-images/state/"]

    async def test_preview_is_bounded(
        self, client: httpx.AsyncClient, data_root: Path, settings: Settings
    ) -> None:
        key = await submit_only_key(client)
        big = data_root / "many"
        make_dataset(big, 1, size=8)
        for i in range(300):
            (big / f"note{i}.txt").write_text("x")
        response = await client.post(
            PREVIEW_REPLICATE, json=job_body(big, Path("out")), headers=bearer(key)
        )
        preview = response.json()
        assert preview["files"] == 302 and len(preview["first_files"]) == 100
        settings.max_dataset_files = 50
        response = await client.post(
            PREVIEW_REPLICATE, json=job_body(big, Path("out")), headers=bearer(key)
        )
        assert response.status_code == 413 and response.json()["code"] == "dataset_too_many_files"


async def setup_token(client: httpx.AsyncClient) -> str:
    """The admin's session (the admin made by `submit_only_key`)."""
    response = await client.post(
        "/api/auth/login", json={"username": "admin", "password": "correct horse"}
    )
    client.cookies.clear()
    return str(response.json()["token"])


class TestOutputsAndModelFiles:
    @pytest.mark.trainer
    async def test_outputs_land_under_the_callers_own_folder(
        self, client: httpx.AsyncClient, data_root: Path, settings: Settings
    ) -> None:
        key = await submit_only_key(client)
        body = job_body(data_root / "shapes", Path("my-lora"), steps=1)
        body["config"]["--output_dir"] = "my-lora"
        response = await client.post(SUBMIT, json=body, headers=bearer(key))
        assert response.status_code == 200, response.text
        job_id = response.json()["job_id"]
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        job = await ctx.in_thread(_job, ctx, job_id)
        expected = settings.outputs_dir.resolve() / "mallory" / "my-lora"
        assert job.config_snapshot["config"]["--output_dir"] == str(expected)

    async def test_other_users_outputs_and_other_folders_are_refused(
        self, client: httpx.AsyncClient, data_root: Path, settings: Settings, tmp_path: Path
    ) -> None:
        key = await submit_only_key(client)
        victim = settings.outputs_dir / "alice" / "her-lora"
        victim.mkdir(parents=True)
        for raw in (
            str(victim),
            "../alice/her-lora",
            str(tmp_path / "anywhere"),
            str(settings.home),
            str(settings.runs_dir / "x"),
        ):
            body = job_body(data_root / "shapes", Path("x"))
            body["config"]["--output_dir"] = raw
            response = await client.post(SUBMIT, json=body, headers=bearer(key))
            refused(response, raw)
        assert list(victim.iterdir()) == []

    async def test_a_model_file_elsewhere_on_the_machine_is_refused(
        self, client: httpx.AsyncClient, data_root: Path, tmp_path: Path
    ) -> None:
        key = await submit_only_key(client)
        weights = tmp_path / "private" / "model.safetensors"
        weights.parent.mkdir()
        weights.write_bytes(b"\0" * 16)
        for name in ("--pretrained_model_name_or_path", "--init_lora", "--resume_from_checkpoint"):
            body = job_body(data_root / "shapes", Path("x"))
            body["config"][name] = str(weights)
            response = await client.post(SUBMIT, json=body, headers=bearer(key))
            refused(response, str(weights))
        body = job_body(data_root / "shapes", Path("x"))
        body["dataloader_config"][0]["cache_dir_vae"] = str(tmp_path / "cache")
        response = await client.post(SUBMIT, json=body, headers=bearer(key))
        refused(response, str(tmp_path / "cache"))


def _job(ctx: Any, job_id: str) -> Any:
    from cloudtune.store import jobs as job_store

    with ctx.db.read() as session:
        return job_store.get_job(session, job_id)


# -- finding 3: packaging never touches the server's home ----------------------------------


@pytest.fixture
def opened() -> Iterator[list[str]]:
    """Paths opened or listed by this thread's code while the fixture is active (audit hooks
    cannot be removed, so the hook checks a flag)."""
    seen: list[str] = []
    active = [True]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if active[0] and event in ("open", "os.scandir", "os.listdir") and args:
            seen.append(str(args[0]))

    sys.addaudithook(hook)
    yield seen
    active[0] = False


def test_packaging_never_opens_a_file_under_the_home(
    tmp_path: Path, opened: list[str], settings: Settings
) -> None:
    """No users: the OS user's files are allowed, and a dataset folder that holds the home
    (and links into it) still reads nothing of it. Checked below the HTTP layer, with the
    interpreter's own audit events, so that the server's database use does not count."""
    home = settings.home
    home.mkdir(parents=True)
    (home / "cloudtune.db").write_bytes(b"SQLite format 3\0")
    (home / "runs" / "job").mkdir(parents=True)
    (home / "runs" / "job" / "config.json").write_text('{"--hub_token": "hf_x"}')
    dataset = make_dataset(tmp_path / "ds", 2, size=16)
    (dataset / "db").symlink_to(home / "cloudtune.db")
    (dataset / "state").symlink_to(home)
    settings.output_root = tmp_path / "out"
    settings.data_roots = None  # the no-users default: the OS user's own files
    policy = FileAccessPolicy.for_caller(settings, LOCAL_ADMIN)
    # The home's parent as a dataset is refused up front ...
    assert not policy.may_read(home / "cloudtune.db")
    with pytest.raises(Exception) as caught:
        policy.dataset_folder(str(tmp_path), "instance_data_dir")
    assert getattr(caught.value, "code", None) == "path_not_allowed"
    # ... and even scanned directly, the home subtree is skipped without being listed.
    opened.clear()
    scan = scan_datasets(
        [{"id": "all", "instance_data_dir": str(tmp_path)}], policy, max_files=1000
    )
    built = package(scan, tmp_path / "packages")
    assert built.files == 4  # two images, two captions, nothing of the home
    home_real = str(home.resolve())
    assert not [p for p in opened if p.startswith(home_real) or p.startswith(str(home))]


def test_a_scoped_admin_key_is_not_an_admin_for_files(settings: Settings) -> None:
    """Full-admin file rights need every permission; a narrower key of an admin writes only
    under its own folder."""
    settings.data_roots = None
    caller = Principal(user_id="u1", permissions=frozenset({"job.submit"}), name="root-ci")
    policy = FileAccessPolicy.for_caller(settings, caller)
    assert policy.write_roots == (settings.outputs_dir.resolve() / "root-ci",)


class TestProbeFindings:
    async def test_a_local_job_refuses_a_dataset_linking_out(
        self, client: httpx.AsyncClient, data_root: Path, settings: Settings
    ) -> None:
        """A local trainer reads the folder itself, so a link out of it is refused up front
        (a package for a remote provider leaves it out instead)."""
        key = await submit_only_key(client)
        dataset = data_root / "shapes"
        (dataset / "img0.txt").unlink()
        (dataset / "img0.txt").symlink_to(settings.home / "secrets-encryption.key")
        response = await client.post(
            SUBMIT, json=job_body(dataset, Path("x")), headers=bearer(key)
        )
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "symlink_outside_dataset"
        assert str(settings.home) not in response.json()["detail"]

    @pytest.mark.parametrize(
        "raw", ["/tmp/x\u0000/../etc", "a\u0000b", "a" * 300, "b/" * 3000, "x/../../../../etc"]
    )
    @pytest.mark.trainer
    async def test_odd_paths_are_refused_not_500(
        self, client: httpx.AsyncClient, data_root: Path, settings: Settings, raw: str
    ) -> None:
        key = await submit_only_key(client)
        for field in ("dataset", "output_dir", "model", "listed"):
            body = job_body(data_root / "shapes", Path("x"))
            if field == "dataset":
                body["dataloader_config"][0]["instance_data_dir"] = str(data_root / raw)
            elif field == "output_dir":
                body["config"]["--output_dir"] = raw
            elif field == "model":
                body["config"]["--pretrained_model_name_or_path"] = "./" + raw
            else:
                body["config"]["--validation"] = [{"path": "/" + raw}]
            response = await client.post(SUBMIT, json=body, headers=bearer(key))
            if field == "output_dir" and "\u0000" not in raw and ".." not in raw:
                # A long relative name under the caller's own folder: refused by the OS later,
                # but never a 500 here.
                assert response.status_code in (200, 400), response.text
                continue
            assert response.status_code == 400, (field, response.text)
            assert response.json()["code"] == "path_not_allowed", (field, response.text)


def test_the_reference_trainer_skips_links_made_after_submit(tmp_path: Path) -> None:
    """Defence in depth: a link planted in the dataset after the server checked it is not
    followed by the trainer."""
    pytest.importorskip("torch")
    from cloudtune.trainer.reference.data import collect_samples

    dataset = make_dataset(tmp_path / "ds", 2, size=16)
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-CAPTION")
    (dataset / "img0.txt").unlink()
    (dataset / "img0.txt").symlink_to(secret)
    (dataset / "out.png").symlink_to(tmp_path / "elsewhere.png")
    (tmp_path / "elsewhere.png").write_bytes((dataset / "img1.png").read_bytes())
    samples = collect_samples(
        [{"instance_data_dir": str(dataset), "caption_strategy": "textfile"}]
    )
    assert sorted(s.path.name for s in samples) == ["img0.png", "img1.png"]
    assert all("SECRET" not in s.caption for s in samples)
