"""One settings object for the whole server, read from `CLOUDTUNE_*` environment variables.

Paths under the home folder are properties, derived when read, so tests can point one root
(`CLOUDTUNE_HOME`) somewhere else and everything follows.
"""

from __future__ import annotations

import json
import os
import socket
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Lists from the environment are written as people write PATH-like variables:
# `CLOUDTUNE_DATA_ROOTS=/data/a,/data/b` (commas or the OS path separator), or a JSON array.
CommaList = Annotated[list[str] | None, NoDecode]


class LocalProviderSettings(BaseModel):
    max_concurrent_jobs: int | None = Field(
        default=None,
        ge=1,
        description="Trainer processes run at once; default one per visible GPU, or 1 without.",
    )
    cancel_grace_seconds: float = Field(
        default=10.0, ge=0, description="Time between SIGTERM and SIGKILL when a job is cancelled."
    )
    poll_interval_seconds: float = Field(
        default=0.25, gt=0, description="How often trainer processes are checked."
    )
    python: str | None = Field(
        default=None, description="Python interpreter for trainer processes (default: this one)."
    )


class TrainerSettings(BaseModel):
    cpu_max_resolution: int = Field(
        default=64, ge=8, description="Images are trained at most at this size without a GPU."
    )


class HardwareSettings(BaseModel):
    h100_per_hour_usd: Decimal = Field(
        default=Decimal("5.49"), ge=0, description="One H100 on Replicate ($0.001525/s)."
    )
    l40s_per_hour_usd: Decimal = Field(
        default=Decimal("3.51"), ge=0, description="One L40S on Replicate ($0.000975/s)."
    )
    local_per_hour_usd: Decimal = Field(
        default=Decimal("0"), ge=0, description="What an hour of this machine costs you."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CLOUDTUNE_", env_nested_delimiter="__", extra="ignore"
    )

    home: Path = Field(
        default_factory=lambda: Path.home() / ".cloudtune",
        description="State folder: database, configs, runs, outputs.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is a SQLite file in the home folder."
    )
    host: str = Field(default="127.0.0.1", description="Address the server binds.")
    port: int = Field(default=8001, ge=1, le=65535, description="Port the server binds.")
    public_url: str | None = Field(
        default=None,
        description="Base URL trainers and providers use to reach this server "
        "(default: http://<host>:<port>, with 127.0.0.1 for a wildcard bind).",
    )
    reconcile_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often active jobs are checked with their provider."
    )
    reconcile_backoff_max_seconds: float = Field(
        default=60.0, gt=0, description="Longest wait between polls of a quiet remote job."
    )
    reconcile_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a replica's claim on polling a remote job lasts without renewal "
        "(renewed every pass); a stopped replica's remote jobs are taken over after it.",
    )
    replica_id: str | None = Field(
        default=None,
        description="This server's name among replicas sharing one database (default "
        "<hostname>:<home>); local jobs belong to the replica that started them.",
    )
    idempotency_ttl_hours: float = Field(default=24.0, gt=0)
    response_cache_ttl_seconds: float = Field(
        default=1.0,
        ge=0,
        description="Longest time a rendered job list or job is served again (0: never); any "
        "write in this process ends it sooner.",
    )
    log_level: str = Field(default="info")
    default_provider: str = Field(
        default="replicate",
        min_length=1,
        description="Provider of a submit or preview that names none (?provider=): replicate, "
        "as the reference server's scripts expect.",
    )
    replicate_base_url: str = Field(
        default="https://api.replicate.com/v1", description="Replicate API root."
    )
    replicate_api_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("REPLICATE_API_TOKEN", "CLOUDTUNE_REPLICATE_API_TOKEN"),
        description="Replicate token; one saved through the API takes precedence.",
    )
    replicate_timeout_seconds: float = Field(default=30.0, gt=0)
    replicate_output_hosts: Annotated[list[str], NoDecode] = Field(
        default=["replicate.delivery"],
        description="Where a Replicate output link may be fetched from (with the Replicate "
        "token): a host name (https, the host and its subdomains) or an origin "
        "`scheme://host:port` (exactly it); never the API's origin unless listed.",
    )
    ray_address: str | None = Field(
        default=None,
        description="The Ray cluster's dashboard address (`http://head:8265`), where its Jobs "
        "API answers; an address saved through PUT /api/cloud/providers/ray takes precedence.",
    )
    ray_token: SecretStr | None = Field(
        default=None,
        description="A token the Ray dashboard's address wants (sent as a bearer token, or in "
        "the header the ray provider's `auth_header` setting names); one saved through the "
        "API takes precedence.",
    )
    ray_timeout_seconds: float = Field(default=30.0, gt=0)
    secrets_key: SecretStr | None = Field(
        default=None,
        description="Fernet key for secrets at rest (default: a key file in the home folder).",
    )
    # -- security (docs/security.md) --------------------------------------------------------
    data_roots: CommaList = Field(
        default=None,
        description="Folders datasets and local model files may be read from. Default: the OS "
        "user's home folder with no users; <home>/datasets once users exist.",
    )
    output_root: Path | None = Field(
        default=None,
        description="Folder job outputs are written under (default <home>/outputs); a "
        "non-admin writes only under <output_root>/<username>/.",
    )
    max_dataset_files: int = Field(
        default=200_000, ge=1, description="A dataset with more files than this is refused."
    )
    allowed_hosts: CommaList = Field(
        default=None,
        description="Host header values the server answers (default: the bind address, "
        "localhost, 127.0.0.1 and ::1); '*' allows any.",
    )
    trusted_proxies: CommaList = Field(
        default=None,
        description="Addresses (or CIDR networks) whose X-Forwarded-For / X-Forwarded-Proto "
        "headers are believed; none by default.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that may read GET /metrics without a user (for a scraper).",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body of a JSON route."
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest time a client may take to send a request body.",
    )
    storage_max_object_bytes: int = Field(
        default=50 * 1024**3,
        ge=1,
        description="Largest object of the built-in S3 endpoint (a multipart upload's total "
        "too); uploads stream to disk, so this bounds disk, not memory.",
    )
    storage_max_part_bytes: int = Field(
        default=5 * 1024**3,
        ge=5 * 1024**2,
        description="Largest single PUT or multipart part of the built-in S3 endpoint, as S3.",
    )
    storage_idle_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="An upload to the built-in S3 endpoint that sends no byte this long is "
        "dropped (its temp file removed).",
    )
    json_max_depth: int = Field(
        default=64, ge=4, le=256, description="Deepest nesting accepted in a config document."
    )
    hardware: HardwareSettings = Field(default_factory=HardwareSettings)
    local: LocalProviderSettings = Field(default_factory=LocalProviderSettings)
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)

    @field_validator("replicate_output_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        # Commas only: an origin holds colons, which the path-like lists split on.
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("data_roots", "allowed_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        separators = text.replace(os.pathsep, ",") if os.pathsep != "," else text
        return [part.strip() for part in separators.split(",") if part.strip()]

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'cloudtune.db'}"

    @property
    def replica(self) -> str:
        """Who this server is to the other replicas: its host and its home folder, since
        local jobs live in both (their processes and their run folders)."""
        return self.replica_id or f"{socket.gethostname()}:{self.home.resolve()}"

    @property
    def configs_dir(self) -> Path:
        return self.home / "configs"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def packages_dir(self) -> Path:
        return self.home / "packages"

    @property
    def outputs_dir(self) -> Path:
        return self.output_root or self.home / "outputs"

    @property
    def storage_dir(self) -> Path:
        """The built-in S3 endpoint's buckets, one folder each."""
        return self.home / "cloud_outputs"

    @property
    def datasets_dir(self) -> Path:
        """Default data root once users exist."""
        return self.home / "datasets"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def ensure_folders(self) -> None:
        """The home folder holds the database, keys and run secrets: only its owner may enter."""
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        for folder in (self.configs_dir, self.runs_dir, self.outputs_dir, self.datasets_dir):
            folder.mkdir(parents=True, exist_ok=True)


@lru_cache
def get_settings() -> Settings:
    return Settings()
