"""The environment a local trainer process starts with: an allowlist of the server's own
variables (so `REPLICATE_API_TOKEN`, database URLs and other secrets of the server never reach
a job), plus the job's own secrets.

A job's secrets reach its trainer only here, never through a file: every secret in
`CLOUDTUNE_JOB_SECRETS` (JSON: `[[path, value], ...]`, where path says where it sat in the
config, see `domain.training.merge_secrets`), and the well-known ones also under the names
their libraries read (`HF_TOKEN` for a hub token, `AWS_*` for S3 keys). The job's own key to
the built-in S3 endpoint comes as `CLOUDTUNE_STORAGE_*` (not `AWS_*`: those stay the job's keys
to the operator's S3).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cloudtune.domain.training import arg_name

_ALLOWED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TERM",
        "TZ",
        "TMPDIR",
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        "HF_HOME",
        "HF_ENDPOINT",
        "HF_HUB_OFFLINE",
        "HF_HUB_CACHE",
        "TRANSFORMERS_CACHE",
        "XDG_CACHE_HOME",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "CUDA_HOME",
        "CUDA_PATH",
    }
)
_ALLOWED_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "NCCL_", "TORCH_", "OPENBLAS_", "PYTORCH_")

# Config keys whose value a library reads from a well-known variable.
_WELL_KNOWN = {
    "hub_token": "HF_TOKEN",
    "huggingface_token": "HF_TOKEN",
    "hf_token": "HF_TOKEN",
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "AWS_SESSION_TOKEN",
}


def trainer_environment(
    server_env: Mapping[str, str], secrets: Sequence[tuple[tuple[str | int, ...], Any]]
) -> dict[str, str]:
    env = {
        name: value
        for name, value in server_env.items()
        if name in _ALLOWED or name.startswith(_ALLOWED_PREFIXES)
    }
    if secrets:
        env["CLOUDTUNE_JOB_SECRETS"] = json.dumps([[list(p), v] for p, v in secrets])
        for path, value in secrets:
            variable = _WELL_KNOWN.get(arg_name(str(path[-1])).lower())
            if variable and isinstance(value, str):
                env.setdefault(variable, value)
    return env
