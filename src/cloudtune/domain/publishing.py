"""Where a job's outputs are published besides its output folder: a Hugging Face Hub repository
and an external S3-compatible bucket. The secrets (a Hub token, a bucket's keys) sit here only in
memory: at rest they are sealed with the job's secrets, and what is shown or stored in the clear
is `public()`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class HubTarget:
    repo_id: str  # "owner/name"
    private: bool = True
    token: str | None = None

    def public(self) -> dict[str, Any]:
        return {"repo_id": self.repo_id, "private": self.private}


@dataclass(frozen=True, slots=True)
class S3Target:
    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None  # None: AWS itself
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "region": self.region,
            "endpoint_url": self.endpoint_url,
        }

    @property
    def has_keys(self) -> bool:
        return bool(self.access_key_id and self.secret_access_key)


@dataclass(frozen=True, slots=True)
class PublishSettings:
    hub: HubTarget | None = None
    s3: S3Target | None = None

    @property
    def empty(self) -> bool:
        return self.hub is None and self.s3 is None

    def secrets(self) -> list[tuple[tuple[str | int, ...], Any]]:
        """The secrets with where they sit, rooted at `publish` (never `config` or
        `dataloader`, so they are never put back into a trainer's config)."""
        found: list[tuple[tuple[str | int, ...], Any]] = []
        if self.hub is not None and self.hub.token:
            found.append((("publish", "hub", "token"), self.hub.token))
        if self.s3 is not None:
            if self.s3.access_key_id:
                found.append((("publish", "s3", "access_key_id"), self.s3.access_key_id))
            if self.s3.secret_access_key:
                found.append((("publish", "s3", "secret_access_key"), self.s3.secret_access_key))
        return found

    def with_secrets(self, secrets: list[tuple[tuple[str | int, ...], Any]]) -> PublishSettings:
        """These settings with the secrets `secrets()` gave (as sealed with a job) put back."""
        found = {path[1:]: value for path, value in secrets if path and path[0] == "publish"}
        hub, s3 = self.hub, self.s3
        if hub is not None and ("hub", "token") in found:
            hub = replace(hub, token=str(found["hub", "token"]))
        if s3 is not None:
            s3 = replace(
                s3,
                access_key_id=_text(found.get(("s3", "access_key_id"))) or s3.access_key_id,
                secret_access_key=_text(found.get(("s3", "secret_access_key")))
                or s3.secret_access_key,
            )
        return PublishSettings(hub=hub, s3=s3)


def is_publish_secret(path: tuple[str | int, ...]) -> bool:
    return bool(path) and path[0] == "publish"


def hub_from_public(data: dict[str, Any]) -> HubTarget:
    return HubTarget(repo_id=str(data["repo_id"]), private=bool(data.get("private", True)))


def s3_from_public(data: dict[str, Any]) -> S3Target:
    return S3Target(
        bucket=str(data["bucket"]),
        prefix=str(data.get("prefix") or ""),
        region=_text(data.get("region")),
        endpoint_url=_text(data.get("endpoint_url")),
    )


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
