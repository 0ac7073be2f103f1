"""The OpenAPI schema as served: FastAPI's, with what it cannot know put right.

- FastAPI documents a 422 in its own shape on every operation with a parameter, even a plain
  string in the path that cannot fail validation. Ours are in the error envelope, declared by
  each route that can answer one (`route_errors(422)`); FastAPI's guesses are dropped.
- The credentials: a bearer token (an `stk_` API key or a session token), the `X-API-Key`
  header, or the session cookie, on every operation that resolves a caller. Each is one
  alternative, and so is none at all: with no users, a loopback caller needs no credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from cloudtune.api.deps import SESSION_COOKIE, get_caller, require_metrics_reader

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`stk_…`) or the token of a login session.",
    },
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "sessionCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "Set by login; a state change also needs the X-CSRF-Token header.",
    },
}
_CALLER_SECURITY: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]
_CALLER_SECURITY.append({})
# Routes that resolve their caller in their own body rather than by a dependency (the job
# reads' fast path; logout ends whatever session it is given).
RESOLVE_CALLER_THEMSELVES = frozenset(
    {("GET", "/api/cloud/jobs"), ("GET", "/api/cloud/jobs/{job_id}"), ("POST", "/api/auth/logout")}
)
_CALLER_DEPENDENCIES: tuple[Callable[..., Any], ...] = (get_caller, require_metrics_reader)


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            _drop_generic_validation_errors(schema)
            _declare_security(app, schema)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _drop_generic_validation_errors(schema: dict[str, Any]) -> None:
    generic = "#/components/schemas/HTTPValidationError"
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            answer = operation.get("responses", {}).get("422", {})
            ref = answer.get("content", {}).get("application/json", {}).get("schema", {})
            if ref.get("$ref") == generic:
                del operation["responses"]["422"]
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)


def _declare_security(app: FastAPI, schema: dict[str, Any]) -> None:
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for route in _api_routes(app.routes):
        if not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            if (method, route.path_format) in RESOLVE_CALLER_THEMSELVES or _needs_caller(
                route.dependant
            ):
                operation["security"] = _CALLER_SECURITY


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    # FastAPI keeps an included router as one entry that holds the router's own routes (their
    # paths already carry the router's prefix; the app adds none).
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif isinstance(included := getattr(route, "original_router", None), APIRouter):
            yield from _api_routes(included.routes)


def _needs_caller(dependant: Dependant) -> bool:
    return any(
        sub.call in _CALLER_DEPENDENCIES or _needs_caller(sub) for sub in dependant.dependencies
    )
