"""The API as requests, shared by the sync and the async client: each function answers what to
send and how to read the answer; the clients only carry it out (so both speak the same API by
construction, and neither can drift from the other)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from cloudtune.client import models
from cloudtune.client.errors import error_for

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content: Any = None  # raw bytes or an iterator of them, instead of a JSON body


def _id(value: str) -> str:
    return quote(value, safe="")


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def read_answer(status: int, text: str) -> Any:
    """The JSON of an answer, or the typed error of a refusal."""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = {"error": text[:500]} if status >= 400 else text
    if status >= 400:
        raise error_for(status, body)
    return body


def _job(body: Any) -> models.Job:
    return models.Job.model_validate(body["job"])


# -- jobs -----------------------------------------------------------------------------------


def submit(
    body: Mapping[str, Any], provider: str | None, idempotency_key: str | None
) -> Call[models.SubmitResult]:
    payload = dict(body)
    if idempotency_key is not None:
        payload["idempotency_key"] = idempotency_key
    return Call(
        "POST",
        "/api/cloud/jobs/submit",
        models.SubmitResult.model_validate,
        params=_params(provider=provider),
        body=payload,
    )


def preview(body: Mapping[str, Any], provider: str | None) -> Call[models.Preview]:
    return Call(
        "POST",
        "/api/cloud/jobs/preview",
        models.Preview.model_validate,
        params=_params(provider=provider),
        body=dict(body),
    )


def list_jobs(
    status: str | Iterable[str] | None, provider: str | None, limit: int, offset: int
) -> Call[models.JobPage]:
    if status is not None and not isinstance(status, str):
        status = ",".join(status)
    return Call(
        "GET",
        "/api/cloud/jobs",
        models.JobPage.model_validate,
        params=_params(status=status, provider=provider, limit=limit, offset=offset),
    )


def get_job(job_id: str) -> Call[models.Job]:
    return Call("GET", f"/api/cloud/jobs/{_id(job_id)}", _job)


def cancel_job(job_id: str) -> Call[str]:
    return Call("POST", f"/api/cloud/jobs/{_id(job_id)}/cancel", lambda b: str(b["status"]))


def delete_job(job_id: str) -> Call[None]:
    return Call("DELETE", f"/api/cloud/jobs/{_id(job_id)}", lambda _b: None)


def job_logs(job_id: str, tail: int | None) -> Call[str]:
    return Call(
        "GET",
        f"/api/cloud/jobs/{_id(job_id)}/logs",
        lambda b: str(b["logs"]),
        params=_params(tail=tail),
    )


def job_events(job_id: str) -> Call[list[models.JobEvent]]:
    return Call(
        "GET",
        f"/api/cloud/jobs/{_id(job_id)}/events",
        lambda b: [models.JobEvent.model_validate(e) for e in b["events"]],
    )


def job_outputs(job_id: str) -> Call[models.Outputs]:
    return Call("GET", f"/api/cloud/jobs/{_id(job_id)}/outputs", models.Outputs.model_validate)


def logs_stream_path(job_id: str) -> str:
    return f"/api/cloud/jobs/{_id(job_id)}/logs/stream"


# -- configs ----------------------------------------------------------------------------------


def list_configs() -> Call[list[models.ConfigSummary]]:
    return Call(
        "GET",
        "/api/configs",
        lambda b: [models.ConfigSummary.model_validate(c) for c in b["configs"]],
    )


def get_config(name: str) -> Call[models.Config]:
    return Call("GET", f"/api/configs/{_id(name)}", models.Config.model_validate)


def save_config(
    name: str, config: Mapping[str, Any], dataloader: list[Any] | None, description: str | None
) -> Call[models.Config]:
    body: dict[str, Any] = {"config": dict(config)}
    if dataloader is not None:
        body["dataloader_config"] = dataloader
    if description is not None:
        body["description"] = description
    return Call("PUT", f"/api/configs/{_id(name)}", models.Config.model_validate, body=body)


def delete_config(name: str) -> Call[None]:
    return Call("DELETE", f"/api/configs/{_id(name)}", lambda _b: None)


# -- API keys, cost limit, providers, users, auth -------------------------------------------


def create_key(
    name: str, expires_days: int | None, permissions: Iterable[str] | None
) -> Call[models.NewApiKey]:
    body: dict[str, Any] = {"name": name}
    if expires_days is not None:
        body["expires_days"] = expires_days
    if permissions is not None:
        body["scoped_permissions"] = list(permissions)
    return Call("POST", "/api/cloud/auth/api-keys", models.NewApiKey.model_validate, body=body)


def list_keys() -> Call[list[models.ApiKey]]:
    return Call(
        "GET",
        "/api/cloud/auth/api-keys",
        lambda b: [models.ApiKey.model_validate(k) for k in b["keys"]],
    )


def revoke_key(key_id: str) -> Call[None]:
    return Call("DELETE", f"/api/cloud/auth/api-keys/{_id(key_id)}", lambda _b: None)


def get_cost_limit() -> Call[models.CostLimit]:
    return Call("GET", "/api/cloud/metrics/cost-limit", models.CostLimit.model_validate)


def set_cost_limit(changes: Mapping[str, Any]) -> Call[models.CostLimit]:
    return Call(
        "PUT",
        "/api/cloud/metrics/cost-limit",
        models.CostLimit.model_validate,
        body=dict(changes),
    )


def list_providers() -> Call[list[models.Provider]]:
    return Call(
        "GET",
        "/api/cloud/providers",
        lambda b: [models.Provider.model_validate(p) for p in b["providers"]],
    )


def validate_provider(provider: str) -> Call[models.AccountCheck]:
    return Call(
        "GET", f"/api/cloud/providers/{_id(provider)}/validate", models.AccountCheck.model_validate
    )


def set_provider_token(provider: str, token: str) -> Call[models.TokenState]:
    return Call(
        "PUT",
        f"/api/cloud/providers/{_id(provider)}/token",
        models.TokenState.model_validate,
        body={"token": token},
    )


def set_provider_settings(provider: str, changes: Mapping[str, Any]) -> Call[dict[str, Any]]:
    return Call(
        "PUT",
        f"/api/cloud/providers/{_id(provider)}",
        lambda b: dict(b.get("config") or {}),
        body=dict(changes),
    )


def list_users() -> Call[list[models.User]]:
    return Call("GET", "/api/users", lambda b: [models.User.model_validate(u) for u in b])


def create_user(username: str, email: str, password: str, role: str) -> Call[models.User]:
    body = {"username": username, "email": email, "password": password, "role": role}
    return Call("POST", "/api/users", models.User.model_validate, body=body)


def change_user(user_id: str, changes: Mapping[str, Any]) -> Call[models.User]:
    return Call(
        "PATCH", f"/api/users/{_id(user_id)}", models.User.model_validate, body=dict(changes)
    )


def disable_user(user_id: str) -> Call[models.User]:
    return Call("DELETE", f"/api/users/{_id(user_id)}", models.User.model_validate)


def me() -> Call[models.Me]:
    return Call("GET", "/api/auth/me", models.Me.model_validate)


def login(username: str, password: str) -> Call[models.Login]:
    body = {"username": username, "password": password}
    return Call("POST", "/api/auth/login", models.Login.model_validate, body=body)


def logout() -> Call[None]:
    return Call("POST", "/api/auth/logout", lambda _b: None, body={})


# -- server-sent events -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One message of a job's log stream: a log line (event None), a status, or `done`."""

    event: str | None
    data: str


class EventParser:
    """Server-sent events from lines as they arrive (the format's own rules: `event:`,
    `data:` lines joined by newlines, a blank line ends a message, `:` lines are comments)."""

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> Iterator[LogEvent]:
        if line == "":
            if self._data:
                yield LogEvent(self._event, "\n".join(self._data))
            self._event, self._data = None, []
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value or None
        elif name == "data":
            self._data.append(value)
