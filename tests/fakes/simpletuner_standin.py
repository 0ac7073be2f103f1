"""A stand-in for SimpleTuner 4.10's trainer (`python -m simpletuner.train`) that speaks its
documented contract (../shared/reference/simpletuner-trainer-contract.md) without a GPU.

It reads what SimpleTuner reads, as strictly as it does, and fails loudly otherwise: the json
config backend from `SIMPLETUNER_CONFIG_BACKEND`/`CONFIG_BACKEND`, `CONFIG_PATH`, a flat config
whose unknown keys abort the run, the five required keys, `num_train_epochs` 0 with
`max_train_steps`, `{env:NAME}` placeholders, `data_backend_config` as a path to a non-empty
JSON array, `webhook_config` (raw entries with `callback_url`, `auth_token` sent as
`X-API-Key`), and the Hub token from `HF_TOKEN`/`HUGGING_FACE_HUB_TOKEN` when `push_to_hub`.
It posts `lifecycle.stage`, one `training.status` per step, `training.validation` with a
base64 PNG, `training.checkpoint`, and `training_complete`; writes the LoRA weights, README.md,
simpletuner_config.json, `validation_images/` and `checkpoint-N/` into output_dir; checkpoints
when the `SIMPLETUNER_ACCELERATE_SIGNAL_FILE` counter goes up; exits 0 after SIGINT (posting
`interrupted`), dies on SIGTERM, and exits 1 after an exception.

Its own knobs are command-line options, which the real trainer ignores with a json config:
`--step-seconds S` (time per step) and `--fail-at-step N` (raise there).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import struct
import sys
import time
import traceback
import urllib.error
import urllib.request
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KNOWN_KEYS = frozenset(
    {
        "model_family", "model_type", "model_flavour", "pretrained_model_name_or_path",
        "optimizer", "output_dir", "data_backend_config", "learning_rate", "max_train_steps",
        "num_train_epochs", "train_batch_size", "resolution", "resolution_type", "lora_rank",
        "lora_alpha", "lora_type", "seed", "checkpoint_step_interval", "checkpoints_total_limit",
        "validation_step_interval", "validation_prompt", "validation_resolution",
        "push_to_hub", "hub_model_id", "push_checkpoints_to_hub", "webhook_config", "report_to",
        "mixed_precision", "resume_from_checkpoint", "tracker_project_name", "lr_scheduler",
        "gradient_accumulation_steps", "lr_warmup_steps", "base_model_precision",
        "model_card_private",
    }
)  # fmt: skip
REQUIRED = ("model_family", "model_type", "optimizer", "output_dir", "data_backend_config")
FAMILIES = frozenset({"flux", "sdxl", "sd3", "pixart_sigma", "kolors", "sana", "ltxvideo", "wan"})
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class ConfigError(Exception):
    pass


def load_config() -> dict[str, Any]:
    backend = (
        os.environ.get("SIMPLETUNER_CONFIG_BACKEND")
        or os.environ.get("CONFIG_BACKEND")
        or os.environ.get("CONFIG_TYPE")
    )
    if backend != "json":
        raise ConfigError(f"this stand-in reads only the json config backend, not {backend!r}")
    override = os.environ.get("CONFIG_PATH")
    if not override:
        raise ConfigError("CONFIG_PATH is not set (no ./config/config.json either)")
    path = Path(override)
    if path.is_dir():
        path = path / "config.json"
    elif not path.suffix:
        path = path.with_suffix(".json")
    if not path.is_absolute() or not path.is_file():
        raise ConfigError(f"JSON configuration file not found: {path}")
    raw = json.loads(path.read_text())
    if not isinstance(raw, dict):
        raise ConfigError("config.json must hold a JSON object")
    config: dict[str, Any] = {}
    for key, value in raw.items():
        name = key[2:] if key.startswith("--") else key
        if name in config:
            raise ConfigError(f"config sets --{name} twice")
        if isinstance(value, str):
            value = re.sub(r"\{env:([^{}]+)\}", lambda m: os.environ.get(m.group(1), ""), value)
        config[name] = value
    unknown = sorted(set(config) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            "Could not parse command line arguments: unrecognized arguments: "
            + " ".join(f"--{k}" for k in unknown)
        )
    missing = [k for k in REQUIRED if config.get(k) in (None, "")]
    if missing:
        raise ConfigError("the following arguments are required: --" + ", --".join(missing))
    if config["model_family"] not in FAMILIES:
        raise ConfigError(f"invalid choice for --model_family: {config['model_family']!r}")
    if config["model_type"] not in ("lora", "full"):
        raise ConfigError(f"invalid choice for --model_type: {config['model_type']!r}")
    steps = int(config.get("max_train_steps") or 0)
    if steps > 0 and int(config.get("num_train_epochs", 1)) != 0:
        raise ConfigError("When using --max_train_steps, --num_train_epochs must be 0")
    if not Path(config["output_dir"]).is_absolute():
        raise ConfigError("output_dir must be absolute here (relative paths follow the cwd)")
    return config


def load_datasets(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, str) or value.lstrip().startswith(("[", "{")):
        raise ConfigError("data_backend_config must be a file path, not inline JSON")
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"data_backend_config {path} does not exist")
    datasets = json.loads(path.read_text())
    if not isinstance(datasets, list) or not datasets:
        raise ConfigError("the data backend config must be a non-empty JSON array")
    for entry in datasets:
        if not isinstance(entry, dict) or "id" not in entry or "type" not in entry:
            raise ConfigError(f"dataset entry without id and type: {entry!r}")
        if entry["type"] == "local" and entry.get("dataset_type", "image") == "image":
            folder = Path(str(entry.get("instance_data_dir", "")))
            if not folder.is_dir() or not any(folder.glob("*.png")):
                raise ConfigError(f"no images found in instance_data_dir {folder}")
    return datasets


def load_webhooks(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text if text.startswith(("[", "{")) else Path(text).read_text())
    entries = [value] if isinstance(value, dict) else value
    for entry in entries:
        kind = entry.get("webhook_type")
        if kind == "raw" and not entry.get("callback_url"):
            raise ConfigError("a raw webhook needs callback_url")
        if kind == "discord" and not entry.get("webhook_url"):
            raise ConfigError("a discord webhook needs webhook_url")
        if kind not in ("raw", "discord"):
            raise ConfigError(f"unknown webhook_type {kind!r}")
        if entry.get("log_level", "info") not in LEVELS:
            raise ConfigError(f"invalid webhook log_level {entry.get('log_level')!r}")
        if "{env:" in str(entry.get("auth_token", "")):
            raise ConfigError("auth_token holds an unexpanded placeholder")
    return [e for e in entries if e.get("webhook_type") == "raw"]


class Webhooks:
    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self.job_id = os.environ.get("SIMPLETUNER_JOB_ID")

    def send(self, payload: dict[str, Any], severity: str = "info") -> None:
        body = {
            **payload,
            "job_id": self.job_id,
            "severity": severity,
            "timestamp": datetime.now(UTC).isoformat(),
        }
        for entry in self.entries:
            if LEVELS[severity] < LEVELS[entry.get("log_level", "info")]:
                continue
            headers = {"Content-Type": "application/json"}
            if entry.get("auth_token"):
                headers["X-API-Key"] = str(entry["auth_token"])
            request = urllib.request.Request(  # noqa: S310 - the configured callback
                entry["callback_url"], data=json.dumps(body).encode(), headers=headers
            )
            try:
                with urllib.request.urlopen(request, timeout=5):  # noqa: S310
                    pass
            except (urllib.error.URLError, OSError) as exc:  # logged and dropped, no retry
                print(f"webhook post failed: {exc}", flush=True)

    def stage(self, key: str, status: str, **extra: Any) -> None:
        stage = {"key": key, "label": key.replace("_", " "), "status": status, **extra}
        self.send({"type": "lifecycle.stage", "stage": stage, "message": f"{key} {status}"})


def png(size: int, colour: tuple[int, int, int]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + bytes(colour) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def safetensors(step: int) -> bytes:
    header = json.dumps({"__metadata__": {"format": "pt", "step": str(step)}}).encode()
    return struct.pack("<Q", len(header)) + header


def save_checkpoint(out: Path, step: int, loss: float, hooks: Webhooks) -> None:
    hooks.stage("checkpoint_save", "running")
    folder = out / f"checkpoint-{step}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pytorch_lora_weights.safetensors").write_bytes(safetensors(step))
    (folder / "checkpoint_manifest.json").write_text(json.dumps({"global_step": step}))
    (folder / "training_state.json").write_text(json.dumps({"global_step": step, "loss": loss}))
    print(f"saved checkpoint {folder.name}", flush=True)
    hooks.stage("checkpoint_save", "completed")
    hooks.send(
        {
            "type": "training.checkpoint",
            "checkpoint": {"path": str(folder), "label": folder.name, "is_final": False},
        }
    )


def train(config: dict[str, Any], hooks: Webhooks, options: argparse.Namespace) -> None:
    out = Path(config["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    hooks.stage("init_data_backend", "running")
    datasets = load_datasets(config["data_backend_config"])
    hooks.stage("init_data_backend", "completed")
    if config.get("push_to_hub"):
        token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
        if not token:
            raise ValueError("No Hugging Face token: set HF_TOKEN or HUGGING_FACE_HUB_TOKEN")
        both = os.environ.get("HF_TOKEN") == os.environ.get("HUGGING_FACE_HUB_TOKEN") == token
        digest = hashlib.sha256(token.encode()).hexdigest()[:12]
        print(f"hub token from the environment (both names: {both}, sha256 {digest})")
    steps = int(config["max_train_steps"])
    lr = float(config.get("learning_rate", 4e-07))
    resolution = int(config.get("resolution", 1024))
    validate_every = int(config.get("validation_step_interval", 100))
    checkpoint_every = int(config.get("checkpoint_step_interval", 500))
    print(
        f"stand-in SimpleTuner: {config['model_family']} {config['model_type']}, "
        f"{len(datasets)} dataset(s), {steps} steps, job {hooks.job_id}",
        flush=True,
    )
    hooks.send(
        {
            "type": "training.status",
            "title": "Training started",
            "message": f"{steps} steps of {config['model_family']}",
            "data": {"status": "starting", "total_num_steps": steps},
        }
    )
    signal_file = Path(os.environ.get("SIMPLETUNER_ACCELERATE_SIGNAL_FILE", "/nonexistent"))
    seen_mtime, checkpoints_asked = 0.0, 0
    started = time.monotonic()
    loss = 1.0
    for step in range(1, steps + 1):
        time.sleep(options.step_seconds)
        if step == options.fail_at_step:
            raise RuntimeError(f"CUDA out of memory at step {step} (stand-in failure)")
        loss = round(1.0 / (1 + 0.1 * step), 6)
        try:
            mtime = signal_file.stat().st_mtime
        except OSError:
            mtime = seen_mtime
        if mtime != seen_mtime:
            seen_mtime = mtime
            asked = int(json.loads(signal_file.read_text()).get("manual_checkpoint", 0))
            if asked > checkpoints_asked:
                checkpoints_asked = asked
                save_checkpoint(out, step, loss, hooks)
        elapsed = time.monotonic() - started
        eta = elapsed / step * (steps - step)
        metrics = {"loss": loss, "learning_rate": lr, "epoch": 1, "grad_norm": 0.5}
        hooks.send(
            {
                "type": "training.status",
                "title": f"Step {step}",
                "data": {
                    "status": "running",
                    "global_step": step,
                    "global_resume_step": 0,
                    "first_epoch": 1,
                    "current_epoch": 1,
                    "lr": lr,
                    "total_num_steps": steps,
                    "steps_remaining_at_start": steps,
                    "final_epoch": 1,
                },
                "progress": {
                    "current": step,
                    "total": steps,
                    "percent": round(100 * step / steps, 2),
                    "eta_seconds": round(eta, 2),
                    "metrics": metrics,
                },
            }
        )
        print(f"step {step}/{steps} loss {loss}", flush=True)
        if validate_every and step % validate_every == 0:
            hooks.stage("validation", "running")
            image = png(8, (step * 20 % 256, 90, 160))
            folder = out / "validation_images"
            folder.mkdir(exist_ok=True)
            (folder / f"step_{step}_validation_0_{resolution}x{resolution}.png").write_bytes(image)
            hooks.send(
                {
                    "type": "training.validation",
                    "message": f"validation at step {step}",
                    "images": [base64.b64encode(image).decode()],
                }
            )
            hooks.stage("validation", "completed")
        if checkpoint_every and step % checkpoint_every == 0:
            save_checkpoint(out, step, loss, hooks)
    hooks.stage("model_save", "running")
    (out / "pytorch_lora_weights.safetensors").write_bytes(safetensors(steps))
    (out / "README.md").write_text(f"# {config.get('hub_model_id') or 'LoRA'}\n")
    public = {k: v for k, v in config.items() if k != "webhook_config"}
    (out / "simpletuner_config.json").write_text(json.dumps(public, indent=2))
    hooks.stage("model_save", "completed")
    final = {"loss": loss, "learning_rate": lr, "epoch": 1}
    hooks.stage("training_complete", "completed", progress={"percent": 100, "metrics": final})
    print("training complete", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--step-seconds", type=float, default=0.02)
    parser.add_argument("--fail-at-step", type=int, default=0)
    options = parser.parse_args()
    try:
        config = load_config()
        hooks = Webhooks(load_webhooks(config.get("webhook_config")))
    except (ConfigError, ValueError, OSError) as exc:
        # Before the webhook is configured: only stderr and the exit code tell.
        print(f"stand-in SimpleTuner: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        train(config, hooks, options)
    except KeyboardInterrupt:
        print("training interrupted (SIGINT)", flush=True)
        hooks.send({"type": "training.status", "status": "interrupted"})
        return 0
    except Exception as exc:
        hooks.send(
            {
                "type": "error",
                "title": "Training failed",
                "message": str(exc),
                "traceback": traceback.format_exc(),
            },
            severity="error",
        )
        hooks.send({"type": "training.status", "status": "failed"}, severity="error")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
