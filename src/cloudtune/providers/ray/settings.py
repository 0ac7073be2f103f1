"""The ray provider's own settings, saved through `PUT /api/cloud/providers/ray`.

Where the cluster is, what each job asks it for (Ray schedules the entrypoint onto a node with
those resources free) and the environment the trainer runs in there. The address may also come
from the server's environment (`CLOUDTUNE_RAY_ADDRESS`); a saved one wins. Unknown fields are
refused (`extra="forbid"`)."""

from __future__ import annotations

import posixpath
import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cloudtune.domain.training import looks_secret

# Ray accelerator types are upper-case names with digits and underscores (`A100`, `H100`,
# `NVIDIA_L4`); a job asks for one as the custom resource `accelerator_type:<name>`.
_ACCELERATOR = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
# Headers that frame or route the request: the token in one would break every call (or make
# one request read as two to a proxy in front of the cluster).
_FRAMING_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)
# A pip requirement line: no option (`-e`, `--index-url`) and no line break, which would let a
# setting smuggle pip arguments.
_REQUIREMENT = re.compile(r"^[A-Za-z0-9][^\s;]*(\s*;\s*[^\n\r]+)?$")
MAX_PIP_PACKAGES = 64
MAX_ENV_VARS = 64
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# The job's own variables: set per job by the provider, never by a setting.
_JOB_VARIABLES = ("CLOUDTUNE_STORAGE_", "CLOUDTUNE_WEBHOOK_", "CLOUDTUNE_JOB_", "CLOUDTUNE_RUN_")


class RaySettings(BaseModel):
    # No inf or NaN: a price of 1e400 (inf in JSON) saved would fail every later read.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    address: str | None = Field(
        default=None,
        description="The dashboard address (`http://head:8265`) of the cluster's Jobs API; "
        "none: CLOUDTUNE_RAY_ADDRESS.",
    )
    auth_header: str = Field(
        default="Authorization",
        description="Header the provider token is sent in: `Authorization` sends "
        "`Bearer <token>`, any other header the token as it is.",
    )
    entrypoint_num_gpus: float = Field(
        default=1.0, ge=0, le=64, description="GPUs each job's trainer reserves."
    )
    entrypoint_num_cpus: float = Field(
        default=1.0, ge=0, le=512, description="CPUs each job's trainer reserves."
    )
    entrypoint_memory_gib: float | None = Field(
        default=None, gt=0, le=4096, description="Memory each job's trainer reserves, GiB."
    )
    accelerator_type: str | None = Field(
        default=None,
        description="Run only on nodes with this accelerator (Ray's name: `A100`, `H100`, "
        "`L4`...); none: any node with free GPUs.",
    )
    pip: list[str] = Field(
        default_factory=list,
        description="Packages Ray installs for the job (a runtime env `pip` list), e.g. "
        "`torch`, `safetensors`, `pillow`, `boto3` for the reference trainer.",
    )
    conda: str | None = Field(
        default=None, description="An existing conda environment on the nodes to run in."
    )
    image_uri: str | None = Field(
        default=None, description="A container image the job runs in (Ray's `image_uri`)."
    )
    python: str = Field(
        default="python",
        description="The Python command on the nodes that runs the trainer.",
    )
    ship_package: bool = Field(
        default=True,
        description="Send this server's cloudtune package with each job (a runtime env "
        "`py_modules` entry), so the nodes need only its dependencies; off: the nodes' "
        "environment must have cloudtune installed.",
    )
    cluster_data_roots: list[str] = Field(
        default_factory=list,
        description="Folders every node sees (a shared file system, e.g. `/mnt/datasets`): a "
        "dataset whose `instance_data_dir` is under one is read there as it is, never "
        "packaged or sent from this server.",
    )
    env_vars: dict[str, str] = Field(
        default_factory=dict,
        description="Environment for the trainer on the nodes (`HF_HOME`, `NCCL_*`, "
        "`CLOUDTUNE_SIMPLETUNER_COMMAND`...). Shown to whoever reads these settings and the "
        "cluster's dashboard: never a secret.",
    )
    price_per_hour_usd: float = Field(
        default=0.0,
        ge=0,
        le=1_000_000,
        description="What an hour of one job on the cluster costs, for estimates and limits.",
    )
    gpu_label: str | None = Field(
        default=None, description="How the cluster's GPUs are shown (e.g. `A100 (80GB)`)."
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - reading it checks it: a port such as 99999 or 80x raises
        except ValueError:
            raise ValueError("the Ray address is not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the Ray address is the dashboard's http(s)://host:port")
        if not value.isascii() or any(c.isspace() for c in value):
            # Saved, it would fail every later call to the cluster rather than here.
            raise ValueError("the Ray address is ASCII without spaces (punycode for IDN hosts)")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("the Ray address has no query, fragment or credentials in it")
        return value

    @field_validator("auth_header")
    @classmethod
    def _auth_header(cls, value: str) -> str:
        if not _HEADER.match(value):
            raise ValueError("auth_header is a header name (letters, digits, -)")
        if value.lower() in _FRAMING_HEADERS:
            raise ValueError(f"auth_header {value!r} frames the request; name another header")
        return value

    @field_validator("accelerator_type")
    @classmethod
    def _accelerator(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not _ACCELERATOR.match(value.strip()):
            raise ValueError("accelerator_type is a Ray accelerator name such as A100")
        return value.strip()

    @field_validator("pip")
    @classmethod
    def _pip(cls, values: list[str]) -> list[str]:
        if len(values) > MAX_PIP_PACKAGES:
            raise ValueError(f"at most {MAX_PIP_PACKAGES} pip packages")
        for value in values:
            # An option after a marker (`torch; python_version>"3" --hash=...`) is still
            # read by pip as the line's option.
            options = any(word.startswith("-") for word in value.split())
            if len(value) > 200 or not _REQUIREMENT.match(value) or options:
                raise ValueError(f"{value[:80]!r} is not a plain pip requirement")
        return values

    @field_validator("python", "conda", "image_uri", "gpu_label")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 300 or any(c in value for c in "\r\n\0")):
            raise ValueError("must be one line of at most 300 characters")
        return value

    @field_validator("cluster_data_roots")
    @classmethod
    def _roots(cls, values: list[str]) -> list[str]:
        if len(values) > 32:
            raise ValueError("at most 32 cluster data roots")
        roots = []
        for value in values:
            # normpath keeps a leading `//`, which no normalised path would then start with.
            root = "/" + posixpath.normpath(value).lstrip("/")
            if not value.startswith("/") or root == "/" or any(c in value for c in "\r\n\0"):
                raise ValueError(f"{value[:80]!r} is not an absolute folder other than /")
            roots.append(root)
        return roots

    @field_validator("env_vars")
    @classmethod
    def _env(cls, values: dict[str, str]) -> dict[str, str]:
        if len(values) > MAX_ENV_VARS:
            raise ValueError(f"at most {MAX_ENV_VARS} environment variables")
        for name, value in values.items():
            if not _ENV_NAME.match(name) or name.upper().startswith(_JOB_VARIABLES):
                raise ValueError(f"{name[:80]!r} is not a variable a setting may set")
            if len(value) > 1000 or "\0" in value:
                raise ValueError(f"{name}: at most 1000 characters, no NUL")
            if looks_secret(name, value):
                # Settings are shown to admins and the dashboard shows a job's environment:
                # a secret here would be in plain sight (and plaintext in the database).
                raise ValueError(f"{name} looks like a secret: env_vars are never secret")
        return values

    def sees(self, path: str) -> bool:
        """Whether `path` is in a folder every node sees. A path with `..` is not: on the nodes
        it climbs from wherever a link in it leads, not from where normpath says."""
        if not path.startswith("/") or "\0" in path or ".." in path.split("/"):
            return False
        normal = posixpath.normpath(path)
        roots = self.cluster_data_roots
        return any(normal == root or normal.startswith(root + "/") for root in roots)
