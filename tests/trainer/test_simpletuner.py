"""The SimpleTuner adapter, against a stand-in that speaks SimpleTuner 4.10's trainer contract
(tests/fakes/simpletuner_standin.py), run through the same code path as the real one:
`CLOUDTUNE_SIMPLETUNER_COMMAND` only replaces `python -m simpletuner.train`."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from cloudtune.domain.training import build_spec
from cloudtune.errors import InvalidInputError
from cloudtune.providers.local.provider import LocalProvider
from cloudtune.settings import Settings
from cloudtune.trainer.simpletuner import COMMAND_ENV, install
from cloudtune.trainer.simpletuner.config import write_trainer_files
from cloudtune.trainer.simpletuner.run import child_environment
from tests.e2e.test_server import ServerProcess
from tests.factories import make_dataset

STANDIN = Path(__file__).resolve().parents[1] / "fakes" / "simpletuner_standin.py"
HUB_TOKEN = "hf_standin_secret_0123456789"
PYTHON = "/opt/simpletuner/bin/python"


def standin(*options: str) -> str:
    return shlex.join([sys.executable, str(STANDIN), *options])


def flux_body(dataset: Path, output: Path, steps: int, **config: Any) -> dict[str, Any]:
    return {
        "config": {
            "--model_family": "flux",
            "--model_type": "lora",
            "--pretrained_model_name_or_path": "black-forest-labs/FLUX.1-dev",
            "--output_dir": str(output),
            "--max_train_steps": steps,
            "--learning_rate": 1e-4,
            "--train_batch_size": 1,
            "--resolution": 512,
            "--lora_rank": 4,
            "--validation_step_interval": 2,
            **config,
        },
        "dataloader_config": [
            {
                "id": "shapes",
                "type": "local",
                "dataset_type": "image",
                "instance_data_dir": str(dataset),
                "caption_strategy": "textfile",
                "resolution": 512,
                "resolution_type": "pixel",
            }
        ],
    }


# -- without a trainer process --------------------------------------------------------------


def test_the_files_it_reads_hold_absolute_paths_and_no_secret(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    body = flux_body(tmp_path / "data", tmp_path / "out", 10)
    body["config"]["--webhook_config"] = {"webhook_type": "raw", "callback_url": "http://x/"}
    (run_dir / "config.json").write_text(json.dumps(body["config"]))
    (run_dir / "multidatabackend.json").write_text(json.dumps(body["dataloader_config"]))
    secrets = [[["config", "--webhook_config", "auth_token"], "their-own-token"]]
    env = {
        "CLOUDTUNE_WEBHOOK_URL": "http://127.0.0.1:1/api/webhooks/trainer/j1",
        "CLOUDTUNE_WEBHOOK_TOKEN": "job-token",
        "CLOUDTUNE_JOB_SECRETS": json.dumps(secrets),
    }
    files = write_trainer_files(run_dir, env)

    written = files.config_path.read_text()
    assert "job-token" not in written and "their-own-token" not in written
    config = json.loads(written)
    assert config["output_dir"] == str(tmp_path / "out")
    assert config["data_backend_config"] == str((run_dir / "multidatabackend.json").resolve())
    assert config["num_train_epochs"] == 0 and config["optimizer"] == "adamw_bf16"
    assert "--model_family" not in config and config["model_family"] == "flux"
    assert files.defaults_filled == ("optimizer",)
    hooks = json.loads(config["webhook_config"])  # inline JSON: a string SimpleTuner expands
    placeholder = "{env:" + next(iter(files.env)) + "}"
    assert hooks == [
        {
            "webhook_type": "raw",
            "callback_url": "http://x/",
            "auth_token": placeholder,
        },
        {
            "webhook_type": "raw",
            "callback_url": env["CLOUDTUNE_WEBHOOK_URL"],
            "log_level": "info",
            "auth_token": "{env:CLOUDTUNE_WEBHOOK_TOKEN}",
        },
    ]
    assert list(files.env.values()) == ["their-own-token"]
    assert files.config_path.stat().st_mode & 0o077 == 0


def test_its_environment_selects_that_config_and_carries_the_hub_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    body = flux_body(tmp_path / "data", tmp_path / "out", 10)
    (run_dir / "config.json").write_text(json.dumps(body["config"]))
    (run_dir / "multidatabackend.json").write_text(json.dumps(body["dataloader_config"]))
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    monkeypatch.setenv("CLOUDTUNE_JOB_ID", "j1")
    monkeypatch.setenv("CLOUDTUNE_JOB_SECRETS", "[]")
    monkeypatch.setenv("ENV", "other")
    env = child_environment(write_trainer_files(run_dir, {}))
    assert env["CONFIG_BACKEND"] == env["SIMPLETUNER_CONFIG_BACKEND"] == "json"
    assert env["CONFIG_PATH"] == str((run_dir / "simpletuner" / "config.json").resolve())
    assert env["SIMPLETUNER_JOB_ID"] == "j1"
    assert env["HF_TOKEN"] == env["HUGGING_FACE_HUB_TOKEN"] == HUB_TOKEN
    assert "ENV" not in env and "CLOUDTUNE_JOB_SECRETS" not in env
    assert json.loads(Path(env["SIMPLETUNER_ACCELERATE_SIGNAL_FILE"]).read_text()) == {
        "manual_checkpoint": 0,
        "manual_validation": 0,
    }


@pytest.fixture
def provider(tmp_path: Path) -> LocalProvider:
    settings = Settings(home=tmp_path / "home")
    settings.ensure_folders()
    return LocalProvider(settings)


def test_without_simpletuner_a_submit_is_refused_saying_what_to_install(
    provider: LocalProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(COMMAND_ENV, raising=False)
    monkeypatch.setattr(install.importlib.util, "find_spec", lambda name: None)
    spec = build_spec(**_spec_args(tmp_path))
    with pytest.raises(InvalidInputError) as caught:
        provider.check(spec)
    assert caught.value.code == "unsupported_model_family"
    message = str(caught.value)
    assert "model_family 'flux' is trained by SimpleTuner, which is not installed" in message
    assert "pip install 'simpletuner[cuda]'" in message and COMMAND_ENV in message

    monkeypatch.setenv(COMMAND_ENV, "/nowhere/simpletuner-train --x")
    with pytest.raises(InvalidInputError) as caught:
        provider.check(spec)
    assert "its program '/nowhere/simpletuner-train' is not found" in str(caught.value)

    monkeypatch.setenv(COMMAND_ENV, standin())
    provider.check(spec)


def test_configs_it_cannot_be_given_are_refused_at_submit(
    provider: LocalProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(COMMAND_ENV, standin())
    args = _spec_args(tmp_path)
    cases = [
        ({"--data_backend_config": "/elsewhere.json"}, "written from the job's dataloader"),
        ({"--num_train_epochs": 2}, "num_train_epochs 0 when max_train_steps"),
        ({"--webhook_config": "/a/file.json"}, "webhook_config must be"),
        ({"--wandb_api_key": "k"}, "config 'wandb_api_key' holds a secret"),
    ]
    for extra, wanted in cases:
        with pytest.raises(InvalidInputError) as caught:
            provider.check(build_spec({**args["config"], **extra}, args["dataloader"]))
        assert caught.value.code == "invalid_config" and wanted in str(caught.value)
    secret_dataset = [{**args["dataloader"][0], "aws_secret_access_key": "s"}]
    with pytest.raises(InvalidInputError) as caught:
        provider.check(build_spec(args["config"], secret_dataset))
    assert "dataset 0 'aws_secret_access_key' holds a secret" in str(caught.value)
    # The Hub token is fine: it travels as HF_TOKEN.
    provider.check(build_spec({**args["config"], "--hub_token": HUB_TOKEN}, args["dataloader"]))


def _spec_args(tmp_path: Path) -> dict[str, Any]:
    body = flux_body(tmp_path / "data", tmp_path / "out", 5)
    return {"config": body["config"], "dataloader": body["dataloader_config"]}


# -- through a real server, its local provider and the stand-in trainer -----------------------


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "dataset", 3, size=16)


@pytest.fixture
def start_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    servers: list[ServerProcess] = []

    def start(*options: str) -> ServerProcess:
        monkeypatch.setenv(COMMAND_ENV, standin(*options))
        server = ServerProcess(tmp_path / "home", f"sqlite:///{tmp_path / 'test.db'}")
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _submit(server: ServerProcess, body: dict[str, Any]) -> str:
    response = server.post("/api/cloud/jobs/submit?provider=local", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["job_id"])


@pytest.mark.trainer
def test_a_flux_job_completes_with_progress_outputs_and_the_token_only_in_the_environment(
    start_server: Any, dataset: Path, tmp_path: Path
) -> None:
    server = start_server()
    output = tmp_path / "output"
    body = flux_body(
        dataset, output, 6, **{"--push_to_hub": True, "--hub_model_id": "me/flux-lora"}
    )
    body["config"]["--hub_token"] = HUB_TOKEN
    job_id = _submit(server, body)
    job = server.wait(job_id, {"completed", "failed", "cancelled"}, timeout=120)

    logs = server.get(f"/api/cloud/jobs/{job_id}/logs").json()["logs"]
    assert job["status"] == "completed", (job["error_message"], logs)
    # Progress came from the stand-in's own `training.status` webhook posts.
    assert job["progress"]["step"] == 6 and job["progress"]["total_steps"] == 6
    assert job["progress"]["loss"] == pytest.approx(1 / 1.6) and job["progress"]["lr"] == 1e-4
    assert job["outputs"] == [
        str(output / "pytorch_lora_weights.safetensors"),
        str(output / "README.md"),
        str(output / "simpletuner_config.json"),
        *(str(output / f"validation_images/step_{s}_validation_0_512x512.png") for s in (2, 4, 6)),
    ]
    assert "webhook post failed" not in logs
    digest = hashlib.sha256(HUB_TOKEN.encode()).hexdigest()[:12]
    assert f"hub token from the environment (both names: True, sha256 {digest})" in logs
    run_dir = tmp_path / "home" / "runs" / job_id
    for path in [*run_dir.rglob("*"), *output.rglob("*")]:
        if path.is_file():
            assert HUB_TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.trainer
def test_a_cancelled_job_checkpoints_then_ends_cancelled(
    start_server: Any, dataset: Path, tmp_path: Path
) -> None:
    server = start_server("--step-seconds", "0.2")
    output = tmp_path / "output"
    job_id = _submit(server, flux_body(dataset, output, 100000))
    deadline = time.monotonic() + 60
    while ((job := server.job(job_id))["progress"]["step"] or 0) < 2:
        assert time.monotonic() < deadline, f"no progress: {job}"
        time.sleep(0.1)
    trainer = psutil.Process(int(job["metadata"]["pid"]))
    simpletuner = trainer.children()[0]
    assert os.getpgid(simpletuner.pid) == simpletuner.pid, "it must run in its own group"

    assert server.post(f"/api/cloud/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    trainer.wait(timeout=30)  # not our child: psutil cannot tell its exit code
    assert not simpletuner.is_running()
    run_dir = tmp_path / "home" / "runs" / job_id
    assert json.loads((run_dir / "result.json").read_text())["status"] == "cancelled"
    log = (run_dir / "train.log").read_text()
    assert "training interrupted (SIGINT)" in log, log
    checkpoints = list(output.glob("checkpoint-*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / "training_state.json").is_file()
    assert f"cancel: checkpoint {checkpoints[0].name} saved" in log
    assert "exited with code 0" in log
    assert server.job(job_id)["status"] == "cancelled"


@pytest.mark.trainer
def test_a_trainer_that_exits_non_zero_fails_the_job_with_its_error(
    start_server: Any, dataset: Path, tmp_path: Path
) -> None:
    server = start_server("--fail-at-step", "3")
    job_id = _submit(server, flux_body(dataset, tmp_path / "output", 10))
    job = server.wait(job_id, {"completed", "failed", "cancelled"}, timeout=120)
    assert job["status"] == "failed"
    assert job["error_message"].startswith(
        "RuntimeError: SimpleTuner's trainer exited with code 1"
    )
    assert "CUDA out of memory at step 3" in job["error_message"]
    assert job["progress"]["step"] == 2


@pytest.mark.trainer
def test_simpletuner_dies_with_a_launcher_killed_after_the_grace(
    start_server: Any, dataset: Path, tmp_path: Path
) -> None:
    """Its own process group keeps the provider's signals from it; the provider's last
    resort, SIGKILL to the launcher's group, must still end it."""
    server = start_server("--step-seconds", "0.2")
    job_id = _submit(server, flux_body(dataset, tmp_path / "output", 100000))
    deadline = time.monotonic() + 60
    while ((job := server.job(job_id))["progress"]["step"] or 0) < 1:
        assert time.monotonic() < deadline, f"no progress: {job}"
        time.sleep(0.1)
    trainer = psutil.Process(int(job["metadata"]["pid"]))
    simpletuner = trainer.children()[0]
    os.killpg(trainer.pid, signal.SIGKILL)
    simpletuner.wait(timeout=30)
    assert not simpletuner.is_running()
    assert server.wait(job_id, {"failed"}, timeout=60)["status"] == "failed"


@pytest.mark.parametrize(
    ("devices", "expected"),
    [
        (None, [PYTHON, "-m", "simpletuner.train"]),
        ("0", [PYTHON, "-m", "simpletuner.train"]),
        (
            "0,1,2,3",
            [
                PYTHON,
                "-m",
                "accelerate.commands.launch",
                "--multi_gpu",
                "--num_processes=4",
                "--mixed_precision=bf16",
                "-m",
                "simpletuner.train",
            ],
        ),
    ],
)
def test_several_visible_gpus_launch_one_process_each(
    devices: str | None, expected: list[str]
) -> None:
    env = {} if devices is None else {"CUDA_VISIBLE_DEVICES": devices}
    assert install.trainer_command(env, PYTHON) == expected
    # An operator's own command is run as it is, whatever the GPUs.
    assert install.trainer_command({**env, COMMAND_ENV: "/opt/st/run --x"}, PYTHON) == [
        "/opt/st/run",
        "--x",
    ]
