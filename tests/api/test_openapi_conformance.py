"""The whole OpenAPI schema, fuzzed with schemathesis against the real app on a loopback server,
once as the local admin (no users) and once as an `stk_` key scoped to two permissions.

Every answer must be below 500, carry a status its route documents and match the schema
documented for that status. Random requests rarely get past validation, so a list of chosen
requests (valid ones on seeded jobs, a config and a dataset; odd paths and tokens that were once
a 500) checks the success answers and those inputs too. Examples are bounded and derandomised: a
run is repeatable and takes a minute or two. A submit that gets through starts /bin/false
instead of a trainer, and nothing leaves the machine (Replicate's URL is a loopback port nothing
listens on).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from cloudtune.api.app import create_app
from cloudtune.cli.server import UVICORN_OPTIONS
from cloudtune.domain.jobs import JobStatus, JobType, Progress, utcnow
from cloudtune.settings import LocalProviderSettings, Settings
from cloudtune.store.db import Database
from tests.conftest import free_port
from tests.factories import create_job, job_body, make_dataset

# Per operation and mode; raise it locally to search harder.
MAX_EXAMPLES = int(os.environ.get("CLOUDTUNE_TEST_FUZZ_EXAMPLES", "25"))
REQUEST_TIMEOUT = 20.0
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
KEY_SCOPES = ["job.submit", "job.view.own"]
# With no users, these can create the first user and so end no-users mode for every later case:
# they run against a server of their own.
ENDS_LOCAL_MODE = {"POST /api/auth/setup/first-admin", "POST /api/users"}

# /openapi.json is `app.openapi()`; the schema does not depend on settings or state.
schema = schemathesis.openapi.from_dict(create_app(Settings(home=Path("/nonexistent"))).openapi())

bounded = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@dataclass
class LiveServer:
    base_url: str
    server: uvicorn.Server
    thread: threading.Thread
    data: Path
    headers: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)

    @property
    def app(self) -> Any:
        return self.server.config.app

    @property
    def db(self) -> Database:
        return self.app.state.ctx.db  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_server(root: Path) -> LiveServer:
    """The app with its lifespan on a loopback port; datasets may be read under `root/data`."""
    home, data = root / "home", root / "data"
    data.mkdir(parents=True)
    port = free_port()
    config = Settings(
        home=home,
        database_url=f"sqlite:///{root / 'cloudtune.db'}",
        host="127.0.0.1",
        port=port,
        data_roots=[str(data)],
        replicate_base_url="http://127.0.0.1:1/v1",  # nothing listens there
        replicate_api_token=None,
        replicate_timeout_seconds=2.0,
        # A submit that gets through starts this instead of a trainer: the job fails at once.
        local=LocalProviderSettings(python="/bin/false"),
        default_provider="local",
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            **UVICORN_OPTIONS,  # as `cloudtune server` runs it
        )
    )
    thread = threading.Thread(target=server.run, name="openapi-conformance-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", server, thread, data)


def seed_jobs(live: LiveServer, *, owner: str | None, other: str | None = None) -> None:
    """Jobs in several states, one with every optional field filled, so the job answers are
    checked with values and not only nulls."""
    now = utcnow()
    started, ended = now - timedelta(minutes=10), now - timedelta(minutes=1)
    db = live.db
    live.jobs = {
        "queued": create_job(db, user_id=owner, status=JobStatus.QUEUED, queued_at=now).job_id,
        "done": create_job(
            db,
            user_id=owner,
            status=JobStatus.COMPLETED,
            config_name="demo",
            tracker_run_name="run-1",
            queued_at=started,
            started_at=started,
            completed_at=ended,
            hardware_type="CPU",
            hardware_profile="local",
            price_per_hour_micros=1_500_000,
            estimated_cost_micros=250_000,
            max_cost_micros=5_000_000,
            progress=Progress(
                step=5, total_steps=5, loss=0.25, lr=1e-4, epoch=1.0, updated_at=ended
            ),
            output_url="/tmp/outputs/run-1",
            outputs=[{"name": "lora.safetensors", "bytes": 1024}],
            metadata={"model_family": "reference"},
            config_snapshot={"config": {"--model_family": "reference"}, "dataloader_config": []},
        ).job_id,
        "failed": create_job(
            db, user_id=owner, status=JobStatus.FAILED, error_message="boom", completed_at=ended
        ).job_id,
        "cloud": create_job(
            db,
            user_id=owner,
            job_type=JobType.CLOUD,
            provider="replicate",
            status=JobStatus.COMPLETED,
            provider_ref="p-123",
            completed_at=ended,
        ).job_id,
    }
    if other is not None:
        live.jobs["other"] = create_job(db, user_id=other, status=JobStatus.COMPLETED).job_id


@pytest.fixture(scope="module")
def local_admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("local-admin"))
    seed_jobs(live, owner=None)
    yield live
    live.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Callable[[], LiveServer]]:
    """A server started on first use, for cases that must not share state."""
    started: list[LiveServer] = []

    def get() -> LiveServer:
        if not started:
            started.append(start_server(tmp_path / "own"))
        return started[0]

    yield get
    for live in started:
        live.stop()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """An admin (made through the API), another user, and `headers` with a key of the admin's
    scoped to KEY_SCOPES."""
    live = start_server(tmp_path_factory.mktemp("scoped-key"))
    with httpx.Client(base_url=live.base_url, timeout=30) as http:
        admin = http.post(
            "/api/auth/setup/first-admin",
            json={"email": "admin@example.com", "username": "admin", "password": "admin-pass-1"},
        )
        assert admin.status_code == 200, admin.text
        session = {"Authorization": f"Bearer {admin.json()['token']}"}
        other = http.post(
            "/api/users",
            headers=session,
            json={
                "email": "other@example.com",
                "username": "other",
                "password": "other-pass-1",
                "role": "researcher",
            },
        )
        assert other.status_code == 201, other.text
        key = http.post(
            "/api/cloud/auth/api-keys",
            headers=session,
            json={"name": "conformance", "scoped_permissions": KEY_SCOPES},
        )
        assert key.status_code == 200, key.text
    seed_jobs(live, owner=admin.json()["user"]["id"], other=other.json()["id"])
    live.headers = {"Authorization": f"Bearer {key.json()['key']}"}
    yield live
    live.stop()


def test_served_schema_is_the_one_fuzzed(local_admin_server: LiveServer) -> None:
    served = httpx.get(f"{local_admin_server.base_url}/openapi.json", timeout=30)
    assert served.json() == schema.raw_schema


def test_a_wrong_method_is_a_405_that_names_the_allowed_ones(
    local_admin_server: LiveServer,
) -> None:
    answer = httpx.request("TRACE", f"{local_admin_server.base_url}/health", timeout=30)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET"
    assert answer.json()["code"] == "method_not_allowed"


# -- what the schema declares ---------------------------------------------------------------

# Every operation can answer these: the Host and Origin checks and the body limits run before
# routing (cloudtune.api.errors.GUARD_STATUSES).
GUARDS = {400, 403, 408, 413}
# Each operation's own error statuses, beyond GUARDS: exactly these, so an answer an operation
# cannot give is not documented either.
OWN_ERRORS: dict[str, set[int]] = {
    "GET /health": set(),
    "GET /health/live": set(),
    "GET /health/ready": set(),
    "GET /api/cloud/health": set(),
    "GET /api/auth/check": {401},
    "GET /api/auth/setup/status": set(),
    "POST /api/auth/setup/first-admin": {401, 409, 422, 429},
    "POST /api/auth/login": {401, 422, 429},
    "POST /api/auth/logout": {401},
    "GET /api/auth/me": {401},
    "GET /api/users": {401},
    "POST /api/users": {401, 409, 422},
    "PATCH /api/users/{user_id}": {401, 404, 409, 422},
    "DELETE /api/users/{user_id}": {401, 404, 409},
    "POST /api/cloud/auth/api-keys": {401, 422},
    "GET /api/cloud/auth/api-keys": {401, 422},
    "DELETE /api/cloud/auth/api-keys/{key_id}": {401, 404},
    "POST /api/auth/api-keys": {401, 422},
    "GET /api/auth/api-keys": {401, 422},
    "DELETE /api/auth/api-keys/{key_id}": {401, 404},
    "POST /api/cloud/jobs/submit": {401, 402, 404, 422, 502, 503},
    "POST /api/cloud/jobs/preview": {401, 404, 422},
    "GET /api/cloud/jobs": {401},
    "POST /api/cloud/jobs/sync": {401, 422, 502, 503},
    "GET /api/cloud/jobs/{job_id}": {401, 404},
    "DELETE /api/cloud/jobs/{job_id}": {401, 404, 409},
    "GET /api/cloud/jobs/{job_id}/logs": {401, 404, 422},
    "GET /api/cloud/jobs/{job_id}/logs/stream": {401, 404},
    "GET /api/cloud/jobs/{job_id}/events": {401, 404},
    "GET /api/cloud/jobs/{job_id}/inline-progress": {401, 404},
    "GET /api/cloud/available-configs": {401},
    "GET /api/cloud/pre-submit-check": {401, 404, 422},
    "POST /api/cloud/jobs/{job_id}/cancel": {401, 404, 409, 502, 503},
    "GET /api/configs": {401},
    "POST /api/configs": {401, 409, 422},
    "GET /api/configs/{name}": {401, 404},
    "PUT /api/configs/{name}": {401, 409, 422},
    "DELETE /api/configs/{name}": {401, 404},
    "GET /api/cloud/providers": {401},
    "GET /api/cloud/providers/{provider}": {401},
    "PUT /api/cloud/providers/{provider}": {401, 422},
    "GET /api/cloud/providers/{provider}/validate": {401, 502, 503},
    "GET /api/cloud/providers/replicate/billing": {401},
    "GET /api/cloud/providers/replicate/versions": {401, 502, 503},
    "PUT /api/cloud/providers/{provider}/token": {401, 422},
    "DELETE /api/cloud/providers/{provider}/token": {401},
    "GET /api/cloud/providers/{provider}/config": {401},
    "PUT /api/cloud/providers/{provider}/config": {401, 422},
    "POST /api/webhooks/replicate": {401, 502, 503},
    "GET /api/cloud/hardware": {401},
    "GET /api/cloud/metrics/cost-limit": {401},
    "PUT /api/cloud/metrics/cost-limit": {401, 422},
    "GET /api/metrics": {401, 422},
    "GET /api/cloud/metrics": {401, 422},
    "GET /api/cloud/cost-limit/status": {401},
    "GET /api/metrics/cost-limit/status": {401},
    "GET /api/cloud/hardware-options": {401},
    "GET /api/cloud/cost-estimate": {401, 404},
    "POST /api/cloud/cost-estimate": {401, 404, 422},
    "POST /api/webhooks/trainer/{job_id}": {401, 404},
    "GET /api/cloud/data-consent/setting": {401},
    "PUT /api/cloud/data-consent/setting": {401, 422},
    "GET /api/cloud/publishing": {401},
    "PUT /api/cloud/publishing": {401, 422},
    "GET /api/cloud/jobs/{job_id}/publish": {401, 404},
    "POST /api/cloud/jobs/{job_id}/publish/retry": {401, 404, 409},
    "GET /api/cloud/jobs/{job_id}/outputs": {401, 404},
    "POST /api/cloud/jobs/{job_id}/outputs/retry": {401, 404, 409},
    "GET /api/cloud/jobs/{job_id}/outputs/{path}": {401, 404, 416},
    "POST /api/cloud/storage/credentials": {401, 422},
    "GET /api/cloud/storage/credentials": {401},
    "DELETE /api/cloud/storage/credentials/{access_key_id}": {401, 404},
}
# Operations that take no caller credentials (their own token or signature, or none).
NO_CALLER = {
    "GET /health",
    "GET /health/live",
    "GET /health/ready",
    "GET /api/cloud/health",
    "GET /api/auth/setup/status",
    "POST /api/auth/setup/first-admin",
    "POST /api/auth/login",
    "POST /api/webhooks/replicate",
    "POST /api/webhooks/trainer/{job_id}",
}


def operations() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in schema.raw_schema["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def test_each_operation_documents_exactly_the_errors_it_can_answer() -> None:
    documented = {
        label: {int(code) for code in operation["responses"] if int(code) >= 400}
        for label, operation in operations()
    }
    assert documented == {label: GUARDS | own for label, own in OWN_ERRORS.items()}


def test_every_error_answer_is_documented_as_the_envelope() -> None:
    envelope = {"$ref": "#/components/schemas/ErrorResponse"}
    for label, operation in operations():
        for code, answer in operation["responses"].items():
            if int(code) >= 400:
                assert answer["content"]["application/json"]["schema"] == envelope, (label, code)
    assert "HTTPValidationError" not in schema.raw_schema["components"]["schemas"]


def test_operations_that_resolve_a_caller_declare_the_credentials() -> None:
    schemes = schema.raw_schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearerAuth"]["description"],
    }
    assert schemes["apiKeyHeader"]["name"] == "X-API-Key"
    assert schemes["sessionCookie"]["in"] == "cookie"
    for label, operation in operations():
        if label in NO_CALLER:
            assert "security" not in operation, label
        else:
            # Any one of the three, or none at all (no users yet, a loopback caller).
            assert operation["security"] == [
                {"bearerAuth": []},
                {"apiKeyHeader": []},
                {"sessionCookie": []},
                {},
            ], label


# -- chosen requests, in order, with the status each must get -------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    expect: int
    path_parameters: dict[str, str] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    note: str = ""


def job_calls(live: LiveServer, *, admin: bool) -> list[Call]:
    jobs, token = live.jobs, live.app.state.ctx.tokens.job_token
    dataset = make_dataset(live.data / "shapes", 4, size=16)
    preview = job_body(dataset, live.data / "out")
    del preview["config"]["--output_dir"]

    def on(job: str) -> dict[str, str]:
        return {"job_id": jobs[job]}

    calls = [
        Call("GET", "/api/cloud/jobs", 200, query={"limit": 2}),
        Call("GET", "/api/cloud/jobs", 200, query={"status": "completed,failed"}),
        Call("GET", "/api/cloud/jobs/{job_id}", 200, on("done")),
        Call("GET", "/api/cloud/jobs/{job_id}", 200, on("queued")),
        Call("GET", "/api/cloud/jobs/{job_id}/events", 200, on("done")),
        Call("GET", "/api/cloud/jobs/{job_id}/logs", 200, on("done"), {"tail": 5}),
        Call("GET", "/api/cloud/jobs/{job_id}/logs", 200, on("cloud")),
        Call("GET", "/api/cloud/jobs/{job_id}/logs/stream", 200, on("done")),
        Call("POST", "/api/cloud/jobs/preview", 200, query={"provider": "local"}, body=preview),
        Call("POST", "/api/cloud/jobs/submit", 200, body={**preview, "idempotency_key": "k1"}),
        Call("POST", "/api/cloud/jobs/submit", 200, body={**preview, "idempotency_key": "k1"}),
        Call(
            "POST",
            "/api/webhooks/trainer/{job_id}",
            200,
            on("queued"),
            body={"type": "progress", "step": 1, "total_steps": 5, "loss": 0.5},
            headers={"Authorization": f"Bearer {token(jobs['queued'])}"},
        ),
    ]
    calls += [
        Call("POST", "/api/cloud/jobs/preview", 400, body=body, note=note)
        for note, body in odd_paths(preview)
    ]
    calls += [
        # Outside the declared bounds: documented refusals, never a 500 nor an undocumented code.
        Call("GET", "/api/cloud/jobs", 400, query={"offset": -1}),
        Call("GET", "/api/cloud/jobs", 400, query={"limit": 0}),
        Call("GET", "/api/cloud/jobs", 400, query={"limit": 2**64}),
        Call("GET", "/api/cloud/jobs", 400, query={"status": "sleeping"}),
        Call("GET", "/api/cloud/jobs", 400, query={"sync_active": "maybe"}),
        Call("GET", "/api/cloud/jobs/{job_id}/logs", 422, on("done"), {"tail": -1}),
        Call("GET", "/api/cloud/jobs/{job_id}", 404, {"job_id": "no-such-job"}),
        Call("GET", "/api/cloud/jobs/{job_id}", 401, on("done"), headers=BAD_KEY),
        Call("POST", "/api/cloud/jobs/submit", 422, body={"priority": "high"}),
    ]
    if admin:
        calls += [
            Call("POST", "/api/cloud/jobs/{job_id}/cancel", 200, on("queued")),
            Call("POST", "/api/cloud/jobs/{job_id}/cancel", 200, on("queued")),
            Call("DELETE", "/api/cloud/jobs/{job_id}", 200, on("failed")),
            Call("DELETE", "/api/cloud/jobs/{job_id}", 404, on("failed")),
            Call("POST", "/api/cloud/jobs/sync", 200, body={"provider": "local"}),
        ]
    else:
        calls += [
            Call("GET", "/api/cloud/jobs/{job_id}", 404, on("other")),
            Call("POST", "/api/cloud/jobs/{job_id}/cancel", 403, on("queued")),
            Call("DELETE", "/api/cloud/jobs/{job_id}", 403, on("failed")),
            Call("POST", "/api/cloud/jobs/sync", 403),
            Call(
                "POST",
                "/api/auth/login",
                200,
                body={"username": "admin", "password": "admin-pass-1"},
            ),
        ]
    return calls


def odd_paths(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """A valid body with a folder no file may have: each must be a 400, never a 500."""
    for path in ("bad\x00path", "a" * 5000, "~cloudtune-no-such-user/data"):
        dataset = {**body, "dataloader_config": [{**body["dataloader_config"][0]}]}
        dataset["dataloader_config"][0]["instance_data_dir"] = path
        yield f"instance_data_dir {path[:30]!r}", dataset
        yield (
            f"output_dir {path[:30]!r}",
            {**body, "config": {**body["config"], "--output_dir": path}},
        )


BAD_KEY = {"Authorization": "Bearer stk_not-a-key"}
REPLICATE = {"provider": "replicate"}


def admin_calls() -> list[Call]:
    named = {"config": {"--model_family": "reference", "--max_train_steps": 5}}
    return [
        Call("PUT", "/api/configs/{name}", 201, {"name": "demo"}, body=named),
        Call("PUT", "/api/configs/{name}", 200, {"name": "demo"}, body=named),
        Call("POST", "/api/configs", 201, body={"name": "demo-2", **named}),
        Call("GET", "/api/configs", 200),
        Call("GET", "/api/configs/{name}", 200, {"name": "demo"}),
        Call("DELETE", "/api/configs/{name}", 200, {"name": "demo-2"}),
        Call("GET", "/api/cloud/providers/{provider}", 200, {"provider": "local"}),
        Call("GET", "/api/cloud/providers/{provider}", 200, {"provider": "replicate"}),
        # A token travels in an HTTP header: one that cannot was a 500 on every later call.
        Call(
            "PUT",
            "/api/cloud/providers/{provider}/token",
            400,
            REPLICATE,
            body={"token": "r8_\u00e9"},
        ),
        Call(
            "PUT",
            "/api/cloud/providers/{provider}/token",
            400,
            REPLICATE,
            body={"token": "r8_a b"},
        ),
        Call(
            "PUT",
            "/api/cloud/providers/{provider}/token",
            200,
            REPLICATE,
            body={"token": "r8_x\n"},
        ),
        # Gone again: with a token, calls to the (absent) Replicate are retried for a while.
        Call("DELETE", "/api/cloud/providers/{provider}/token", 200, REPLICATE),
        Call(
            "PUT",
            "/api/cloud/metrics/cost-limit",
            200,
            body={"enabled": True, "limit_usd": 10, "period": "daily", "action": "warn"},
        ),
        Call("GET", "/api/cloud/metrics/cost-limit", 200),
        Call("GET", "/api/metrics", 200, query={"days": 7}),
        Call("GET", "/api/metrics", 400, query={"days": 0}),
        Call("GET", "/api/cloud/metrics", 200, query={"days": 7}),
        Call("GET", "/api/cloud/cost-limit/status", 200, query={"provider": "local"}),
        Call("GET", "/api/metrics/cost-limit/status", 200),
        Call("GET", "/api/cloud/hardware-options", 200),
        Call("GET", "/api/cloud/cost-estimate", 200, query={"config_name": "demo"}),
        Call("POST", "/api/cloud/cost-estimate", 200, query={"provider": "local"}, body=[]),
        Call("POST", "/api/cloud/cost-estimate", 400, body={"colour": "red"}),
        Call("PUT", "/api/cloud/metrics/cost-limit", 422, body=[1]),
        Call("PUT", "/api/cloud/metrics/cost-limit", 400, body={"period": "hourly"}),
        Call("PUT", "/api/cloud/data-consent/setting", 200, body={"consent": "ask"}),
        Call("PUT", "/api/cloud/data-consent/setting", 400, body={"consent": "maybe"}),
        Call("PUT", "/api/cloud/data-consent/setting", 200, body={"consent": "allow"}),
        Call("GET", "/api/cloud/data-consent/setting", 200),
        Call("POST", "/api/cloud/auth/api-keys", 200, body={"name": "k", "expires_days": 1}),
        Call("GET", "/api/cloud/auth/api-keys", 200),
    ]


def run_calls(live: LiveServer, calls: list[Call]) -> list[str]:
    """Each call checked like a generated one, plus its expected status; the problems found."""
    problems = []
    for call in calls:
        case = schema[call.path][call.method].Case(
            path_parameters=call.path_parameters or None,
            query=call.query or None,
            headers={**live.headers, **call.headers},
            **({"body": call.body} if call.body is not None else {}),
        )
        label = " ".join(
            str(part)
            for part in (call.method, call.path, call.path_parameters, call.query, call.note)
            if part
        )
        try:
            response = case.call(base_url=live.base_url, timeout=REQUEST_TIMEOUT)
        except Exception as exc:
            problems.append(f"{label}: {exc!r}")
            continue
        answer = f"{response.status_code} {response.text[:300]}"
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as failures:
            titles = ", ".join(getattr(f, "title", type(f).__name__) for f in failures.exceptions)
            problems.append(f"{label}: {titles}: {answer}")
            continue
        if response.status_code != call.expect:
            problems.append(f"{label}: expected {call.expect}, got {answer}")
    return problems


def test_chosen_requests_as_local_admin(local_admin_server: LiveServer) -> None:
    calls = admin_calls() + job_calls(local_admin_server, admin=True)
    problems = run_calls(local_admin_server, calls)
    assert not problems, "\n".join(problems)


def test_chosen_requests_as_scoped_key(keyed_server: LiveServer) -> None:
    problems = run_calls(keyed_server, job_calls(keyed_server, admin=False))
    assert not problems, "\n".join(problems)


# -- generated requests (after the chosen ones: failed logins spend the login budget) ---


@schema.parametrize()
@bounded
def test_fuzz_as_local_admin(
    case: schemathesis.Case,
    local_admin_server: LiveServer,
    own_server: Callable[[], LiveServer],
) -> None:
    live = own_server() if case.operation.label in ENDS_LOCAL_MODE else local_admin_server
    case.call_and_validate(base_url=live.base_url, checks=CHECKS, timeout=REQUEST_TIMEOUT)


@schema.parametrize()
@bounded
def test_fuzz_as_scoped_key(case: schemathesis.Case, keyed_server: LiveServer) -> None:
    case.call_and_validate(
        base_url=keyed_server.base_url,
        headers=keyed_server.headers,
        checks=CHECKS,
        timeout=REQUEST_TIMEOUT,
    )
