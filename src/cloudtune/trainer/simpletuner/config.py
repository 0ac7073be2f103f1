"""The files SimpleTuner's trainer reads, written from the run folder the provider prepared.

SimpleTuner reads one flat JSON config (`CONFIG_PATH`) whose `data_backend_config` names the
dataloader file, and aborts on a key it does not know; so its config holds the job's own keys
plus only what this adapter must set: `output_dir` and `data_backend_config` as absolute paths,
`webhook_config` (the job's callback, as inline JSON), and the few defaults the contract calls
risky when left out. Secrets never go in: the webhook token is a `{env:NAME}` placeholder that
SimpleTuner expands from its environment, and the Hub token travels as `HF_TOKEN`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudtune.domain.training import arg_name, looks_secret

FOLDER = "simpletuner"
WEBHOOK_TOKEN_ENV = "CLOUDTUNE_WEBHOOK_TOKEN"
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
# Config keys whose value the trainer gets by environment (HF_TOKEN, see
# providers/local/environment.py); SimpleTuner has no config key for a Hub token.
ENV_SECRETS = frozenset({"hub_token", "hf_token", "huggingface_token"})
# The contract's risky defaults (4e-07 learning rate, ...), set when the job leaves them out.
DEFAULTS: dict[str, Any] = {"model_type": "lora", "optimizer": "adamw_bf16", "learning_rate": 1e-4}


@dataclass(frozen=True, slots=True)
class TrainerFiles:
    config_path: Path
    dataloader_path: Path
    signal_file: Path
    output_dir: Path
    model_type: str
    # Values the config refers to by `{env:NAME}` (secrets of the job's own webhooks).
    env: dict[str, str] = field(default_factory=dict)
    defaults_filled: tuple[str, ...] = ()


def config_problems(config: Mapping[str, Any], dataloader: list[Any]) -> list[str]:
    """Why SimpleTuner cannot be given this config (checked at submit, so a job is refused
    rather than failing minutes later). `config` has its secrets still in it."""
    problems: list[str] = []
    args = {arg_name(str(k)): v for k, v in config.items()}
    if not dataloader:
        problems.append("SimpleTuner needs at least one dataset in dataloader_config")
    if "data_backend_config" in args:
        problems.append(
            "data_backend_config is written from the job's dataloader_config; leave it out"
        )
    steps, epochs = args.get("max_train_steps"), args.get("num_train_epochs")
    if isinstance(steps, int) and steps > 0 and isinstance(epochs, int) and epochs > 0:
        problems.append("SimpleTuner needs num_train_epochs 0 when max_train_steps is set")
    try:
        _webhook_entries(args.get("webhook_config"))
    except ValueError as exc:
        problems.append(str(exc))
    for key, value in args.items():
        if key in ("webhook_config", *ENV_SECRETS):
            continue
        problems.extend(_secret_problems(f"config '{key}'", key, value))
    for index, entry in enumerate(dataloader):
        if isinstance(entry, dict):
            for key, value in entry.items():
                problems.extend(_secret_problems(f"dataset {index} '{key}'", key, value))
    return problems


def _secret_problems(where: str, key: str, value: Any) -> list[str]:
    if looks_secret(key, value) and value not in (None, "") and not isinstance(value, bool):
        return [
            f"{where} holds a secret, which SimpleTuner would read from a file; cloudtune never "
            "writes secrets to files, so pass it through the environment SimpleTuner reads "
            "instead (HF_TOKEN for the Hub: set hub_token)"
        ]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _secret_problems(f"{where}.{k}", str(k), v)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _secret_problems(f"{where}[{i}]", key, v)]
    return []


def _webhook_entries(value: Any) -> list[Any]:
    """The job's own webhook_config as a list (SimpleTuner takes a dict, a list or inline
    JSON; a file path is refused, as the adapter must add the job's callback to it)."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("webhook_config must be a list, an object or inline JSON") from None
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(e, dict) for e in value):
        return value
    raise ValueError("webhook_config must be a list of objects or one object")


def write_trainer_files(run_dir: Path, env: Mapping[str, str]) -> TrainerFiles:
    stored = json.loads((run_dir / "config.json").read_text())
    args: dict[str, Any] = {arg_name(str(k)): v for k, v in stored.items()}
    dataloader_path = run_dir / "multidatabackend.json"
    dataloader = json.loads(dataloader_path.read_text())
    problems = config_problems(args, dataloader)
    if problems:
        raise ValueError("; ".join(problems))

    secret_env, webhooks = _webhooks_with_placeholders(args.pop("webhook_config", None), env)
    callback = env.get("CLOUDTUNE_WEBHOOK_URL")
    if callback:
        webhooks.append(
            {
                "webhook_type": "raw",
                "callback_url": callback,
                "log_level": "info",  # progress events are info; a higher level drops them
                "auth_token": "{env:" + WEBHOOK_TOKEN_ENV + "}",
            }
        )
    if webhooks:
        # Inline JSON, a plain string value: the form whose `{env:...}` is surely expanded.
        args["webhook_config"] = json.dumps(webhooks)

    output = Path(str(args.get("output_dir") or run_dir / "output")).expanduser()
    output_dir = output if output.is_absolute() else run_dir / output
    args["output_dir"] = str(output_dir)
    args["data_backend_config"] = str(dataloader_path.resolve())
    filled = tuple(k for k in DEFAULTS if args.get(k) is None)
    for key in filled:
        args[key] = DEFAULTS[key]
    steps = args.get("max_train_steps")
    if isinstance(steps, int) and steps > 0 and args.get("num_train_epochs") is None:
        args["num_train_epochs"] = 0  # its default of 1 with max_train_steps aborts the run

    folder = run_dir / FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    config_path = folder / "config.json"
    _write_private(config_path, json.dumps(args, indent=2))
    signal_file = folder / "signal.json"
    _write_private(signal_file, json.dumps({"manual_checkpoint": 0, "manual_validation": 0}))
    return TrainerFiles(
        config_path=config_path.resolve(),
        dataloader_path=dataloader_path.resolve(),
        signal_file=signal_file.resolve(),
        output_dir=output_dir,
        model_type=str(args["model_type"]),
        env=secret_env,
        defaults_filled=filled,
    )


def _webhooks_with_placeholders(
    value: Any, env: Mapping[str, str]
) -> tuple[dict[str, str], list[Any]]:
    """The job's own webhooks with the secrets the provider kept out of config.json put back
    as `{env:NAME}` placeholders, and those variables' values."""
    if isinstance(value, str):
        value = json.loads(value)
    secret_env: dict[str, str] = {}
    secrets = json.loads(env.get("CLOUDTUNE_JOB_SECRETS") or "[]")
    for index, (path, secret) in enumerate(secrets):
        if len(path) < 3 or path[0] != "config" or arg_name(str(path[1])) != "webhook_config":
            continue
        node = value
        for step in path[2:-1]:
            node = node[step]
        name = f"CLOUDTUNE_WEBHOOK_SECRET_{index}"
        node[path[-1]] = "{env:" + name + "}"
        secret_env[name] = str(secret)
    return secret_env, list(_webhook_entries(value))


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
