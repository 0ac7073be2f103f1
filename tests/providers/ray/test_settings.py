"""The ray provider's settings and the packages a job takes to the cluster (no cluster)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from cloudtune.domain.principal import LOCAL_ADMIN
from cloudtune.domain.training import TrainingSpec
from cloudtune.errors import InvalidInputError
from cloudtune.providers.ray import packages
from cloudtune.providers.ray.client import RayError, _detail
from cloudtune.providers.ray.provider import RayProvider
from cloudtune.providers.ray.settings import RaySettings
from cloudtune.services import providers
from cloudtune.settings import Settings
from cloudtune.store.db import Database
from tests.factories import make_context
from tests.providers.ray.test_provider import SavedSettings


@pytest.mark.parametrize(
    "change",
    [
        {"address": "ftp://head:8265"},
        {"address": "http://user:pw@head:8265"},
        {"address": "http://head:8265/?x=1"},
        {"auth_header": "X Bad"},
        {"accelerator_type": "A100; rm -rf"},
        {"pip": ["--index-url=http://evil/"]},
        {"pip": ["torch\nsecond"]},
        {"python": "python\n-c"},
        {"cluster_data_roots": ["relative/path"]},
        {"cluster_data_roots": ["/"]},
        {"env_vars": {"CLOUDTUNE_STORAGE_SECRET_ACCESS_KEY": "x"}},
        {"env_vars": {"BAD-NAME": "x"}},
        {"env_vars": {"HF_TOKEN": "hf_x"}},
        {"env_vars": {"WANDB_API_KEY": "x"}},
        {"env_vars": {"HTTPS_PROXY": "http://user:pw@proxy:3128"}},
        {"entrypoint_num_gpus": -1},
        {"colour": "red"},
    ],
)
def test_a_bad_setting_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RaySettings.model_validate(change)


def test_good_settings_are_kept_normalised() -> None:
    own = RaySettings.model_validate(
        {
            "address": " http://head:8265/ ",
            "pip": ["torch==2.13.0", "boto3>=1.34", "numpy; python_version >= '3.11'"],
            "cluster_data_roots": ["/mnt/data/"],
            "env_vars": {"HF_HOME": "/mnt/cache/hf"},
            "accelerator_type": "A100",
        }
    )
    assert own.address == "http://head:8265"
    assert own.cluster_data_roots == ["/mnt/data"]


@pytest.mark.parametrize(
    ("path", "seen"),
    [
        ("/mnt/data", True),
        ("/mnt/data/shapes", True),
        ("/mnt/data/../etc", False),
        ("/mnt/database", False),
        ("mnt/data/x", False),
        ("/other", False),
    ],
)
def test_only_paths_under_a_cluster_root_are_the_nodes(path: str, seen: bool) -> None:
    assert RaySettings(cluster_data_roots=["/mnt/data"]).sees(path) is seen


def test_packages_are_named_by_their_content() -> None:
    one = packages.job_folder({"--a": 1}, [], {"job_id": "j"})
    again = packages.job_folder({"--a": 1}, [], {"job_id": "j"})
    other = packages.job_folder({"--a": 2}, [], {"job_id": "j"})
    assert one == again and packages.package_uri(one) == packages.package_uri(again)
    assert packages.package_uri(one) != packages.package_uri(other)
    assert packages.package_uri(one).startswith("gcs://_ray_pkg_")
    with zipfile.ZipFile(io.BytesIO(one)) as zf:
        assert json.loads(zf.read("cloudtune-job.json")) == {"job_id": "j"}


def test_the_shipped_package_is_cloudtune_without_its_web_files() -> None:
    with zipfile.ZipFile(io.BytesIO(packages.cloudtune_module())) as zf:
        names = zf.namelist()
    assert "cloudtune/trainer/remote.py" in names and "cloudtune/__init__.py" in names
    assert all(name.startswith("cloudtune/") for name in names)
    assert not [n for n in names if "/web/static/" in n or n.endswith(".pyc")]


def test_a_ray_refusal_reads_as_its_exception_line() -> None:
    import httpx

    text = (
        "Traceback (most recent call last):\n  File 'x', line 1\n"
        "ValueError: Job with submission_id abc already exists. Please use another.\n.\n"
    )
    detail = _detail(httpx.Response(500, text=text))
    assert detail.startswith("ValueError: Job with submission_id abc already exists")
    assert not RayError(500, detail, request="POST api/jobs/").retryable
    assert RayError(503, "busy", request="GET api/version").retryable


@pytest.mark.parametrize(("address", "configured"), [(None, False), ("http://head:8265", True)])
def test_the_provider_list_says_whether_ray_has_an_address(
    tmp_path: Path, db: Database, address: str | None, configured: bool
) -> None:
    settings = Settings(home=tmp_path / "home", ray_address=address)
    ctx = make_context(settings, db, providers=["ray"])
    (ray,) = providers.list_providers(ctx, LOCAL_ADMIN)
    assert ray.name == "ray" and ray.configured is configured


@pytest.mark.parametrize(
    ("config", "dataloader", "allowed"),
    [
        ({"--pretrained_model_name_or_path": "black-forest-labs/FLUX.1-dev"}, [], True),
        ({"--pretrained_model_name_or_path": "/mnt/data/models/base"}, [], True),
        ({"--pretrained_model_name_or_path": "/etc/passwd"}, [], False),
        ({"--cache_dir": "~/.cache"}, [], False),
        ({"--cache_dir": "cache"}, [], True),  # inside the job's folder on the node
        ({}, [{"id": "a", "type": "local", "instance_data_dir": "/mnt/data/a"}], True),
        (
            {},
            [
                {
                    "id": "a",
                    "type": "local",
                    "instance_data_dir": "/mnt/data/a",
                    "cache_dir_vae": "/var/lib",
                }
            ],
            False,
        ),
        ({}, [{"id": "a", "type": "aws", "cache_dir": "../../escape"}], False),
    ],
)
def test_paths_on_the_nodes_stay_under_the_cluster_roots(
    config: dict[str, object], dataloader: list[dict[str, object]], allowed: bool
) -> None:
    own = RaySettings(cluster_data_roots=["/mnt/data"])
    provider = RayProvider(Settings(ray_address="http://head:8265"), SavedSettings(own))
    spec = TrainingSpec(config={"--model_family": "flux", **config}, dataloader=dataloader)
    if allowed:
        provider.check(spec)
    else:
        with pytest.raises(InvalidInputError) as refused:
            provider.check(spec)
        assert refused.value.code == "path_not_allowed"
