"""The `publish` JSON (on a submit, and as the saved defaults), checked field by field: bounded
strings, a Hub repository id as the Hub names them, bucket names by the S3 rules, http(s)
endpoints without credentials in them. Unknown fields are refused by name. Messages never
repeat a secret's value."""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from cloudtune.domain.publishing import HubTarget, PublishSettings, S3Target
from cloudtune.errors import InvalidInputError, unknown_fields_error

HUB_FIELDS = frozenset({"repo_id", "private", "token"})
S3_FIELDS = frozenset(
    {"endpoint_url", "bucket", "prefix", "region", "access_key_id", "secret_access_key"}
)
TARGETS = frozenset({"hub", "s3"})

# One part of a Hub repository id: letters, digits, `-`, `_`, `.`, starting and ending with a
# letter or digit, at most 96 characters; `--` and `..` are refused by the Hub.
_REPO_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z0-9-]{1,32}")
# Tokens and keys: printable ASCII without spaces.
_SECRET = re.compile(r"[\x21-\x7e]+")
MAX_PREFIX = 512
MAX_URL = 2048
MAX_TOKEN = 512


def parse_publish(raw: Any, where: str = "publish") -> PublishSettings:
    """The settings a `publish` object names; a target without its secret is returned as such
    (the token or keys may come from the saved defaults or the environment)."""
    obj = _object(raw, where)
    _refuse_unknown(obj, TARGETS, where)
    hub = obj.get("hub")
    s3 = obj.get("s3")
    return PublishSettings(
        hub=parse_hub(hub, f"{where}.hub") if hub is not None else None,
        s3=parse_s3(s3, f"{where}.s3") if s3 is not None else None,
    )


def parse_hub(raw: Any, where: str) -> HubTarget:
    obj = _object(raw, where)
    _refuse_unknown(obj, HUB_FIELDS, where)
    repo_id = obj.get("repo_id")
    if not isinstance(repo_id, str) or not valid_repo_id(repo_id):
        raise _invalid(
            f"{where}.repo_id",
            "must be a Hub repository id `owner/name` (letters, digits, `-`, `_`, `.`; each "
            "part at most 96 characters, starting and ending with a letter or digit)",
        )
    private = obj.get("private", True)
    if not isinstance(private, bool):
        raise _invalid(f"{where}.private", "must be true or false")
    token = _secret(obj.get("token"), f"{where}.token", MAX_TOKEN)
    return HubTarget(repo_id=repo_id, private=private, token=token)


def parse_s3(raw: Any, where: str) -> S3Target:
    obj = _object(raw, where)
    _refuse_unknown(obj, S3_FIELDS, where)
    bucket = obj.get("bucket")
    if not isinstance(bucket, str) or not valid_bucket(bucket):
        raise _invalid(
            f"{where}.bucket",
            "must be an S3 bucket name: 3-63 lowercase letters, digits, `.` and `-`, starting "
            "and ending with a letter or digit, not an IP address",
        )
    region = obj.get("region")
    if region is not None and (not isinstance(region, str) or not _REGION.fullmatch(region)):
        raise _invalid(f"{where}.region", "must be a region name such as `us-east-1`")
    return S3Target(
        bucket=bucket,
        prefix=_prefix(obj.get("prefix"), f"{where}.prefix"),
        region=region,
        endpoint_url=_endpoint(obj.get("endpoint_url"), f"{where}.endpoint_url"),
        access_key_id=_secret(obj.get("access_key_id"), f"{where}.access_key_id", 128),
        secret_access_key=_secret(obj.get("secret_access_key"), f"{where}.secret_access_key", 256),
    )


def valid_repo_id(repo_id: str) -> bool:
    owner, slash, name = repo_id.partition("/")
    return (
        bool(slash)
        and all(_REPO_PART.fullmatch(part) for part in (owner, name))
        and "--" not in repo_id
        and ".." not in repo_id
        and not name.endswith(".git")
    )


def valid_bucket(bucket: str) -> bool:
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or ".-" in bucket or "-." in bucket:
        return False
    if bucket.startswith(("xn--", "sthree-")) or bucket.endswith(("-s3alias", "--ol-s3")):
        return False
    try:
        ipaddress.IPv4Address(bucket)
    except ValueError:
        return True
    return False


def _object(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _invalid(where, "must be an object")
    return raw


def _refuse_unknown(obj: dict[str, Any], known: frozenset[str], where: str) -> None:
    unknown = [str(key) for key in obj if key not in known]
    if unknown:
        raise unknown_fields_error([f"{where}.{name}" for name in unknown], accepted=known)


def _secret(value: Any, where: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= limit or not _SECRET.fullmatch(value):
        # The value is not repeated: it may be a real secret sent in the wrong shape.
        raise _invalid(where, f"must be 1-{limit} printable characters without spaces")
    return value


def _prefix(value: Any, where: str) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > MAX_PREFIX:
        raise _invalid(where, f"must be text of at most {MAX_PREFIX} characters")
    # Slashes at either end are dropped: `/team/` and `team` are one prefix.
    parts = value.strip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise _invalid(where, "must be a relative key prefix without empty, `.` or `..` parts")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise _invalid(where, "must not hold control characters")
    return "/".join(parts)


def _endpoint(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_URL:
        raise _invalid(where, f"must be a URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # a bad port raises here
    except ValueError:
        raise _invalid(where, "must be an http or https URL") from None
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid(where, "must be an http or https URL with a host")
    if parts.username is not None or parts.password is not None:
        raise _invalid(where, "must not carry credentials; send the keys as their own fields")
    if parts.query or parts.fragment:
        raise _invalid(where, "must not have a query or a fragment")
    return value.rstrip("/")


def _invalid(field: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"`{field}` {message}", code="invalid_publish", field=field)
