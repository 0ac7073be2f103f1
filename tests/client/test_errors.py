"""The SDK's exceptions: one class for every error code the server can answer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloudtune.client import errors

SOURCE = Path(__file__).resolve().parents[2] / "src" / "cloudtune"
# Codes the HTTP edge and the error handlers answer, named in variables rather than `code=`.
EDGE_CODES = {
    "validation_error",
    "http_error",
    "not_found",
    "method_not_allowed",
    "internal_error",
    "range_not_satisfiable",
    "request_timeout",
    "payload_too_large",
    "host_not_allowed",
    "cross_origin_refused",
}


def server_codes() -> set[str]:
    found = set(EDGE_CODES)
    pattern = re.compile(r'\bcode\s*=\s*"([a-z_]+)"')
    for path in SOURCE.rglob("*.py"):
        if SOURCE / "client" in path.parents or SOURCE / "services" / "storage" in path.parents:
            continue  # the SDK itself; the S3 endpoint answers S3's XML errors, not the envelope
        found.update(pattern.findall(path.read_text()))
    return found - {"error"}


def test_every_code_the_server_answers_has_its_class() -> None:
    codes = server_codes()
    assert len(codes) > 60  # the scan itself works
    missing = sorted(code for code in codes if code not in errors.BY_CODE)
    assert missing == [], f"add a class to cloudtune/client/errors.py for: {missing}"


@pytest.mark.parametrize(
    ("status", "code", "expected", "kind"),
    [
        (404, "job_not_found", errors.JobNotFound, errors.NotFound),
        (402, "cost_limit_exceeded", errors.CostLimitExceeded, errors.CostLimitExceeded),
        (403, "upload_refused", errors.UploadRefused, errors.PermissionDenied),
        (
            502,
            "provider_create_unconfirmed",
            errors.ProviderCreateUnconfirmed,
            errors.ProviderFailed,
        ),
        (404, "a_code_from_a_newer_server", errors.NotFound, errors.NotFound),
        (418, "a_code_from_a_newer_server", errors.APIError, errors.APIError),
        (504, "gateway", errors.InternalError, errors.APIError),
    ],
)
def test_an_answer_raises_its_codes_class(
    status: int, code: str, expected: type[errors.APIError], kind: type[errors.APIError]
) -> None:
    body = {"success": False, "code": code, "detail": "why", "error": "why"}
    raised = errors.error_for(status, body)
    assert type(raised) is expected and isinstance(raised, kind)
    assert (raised.status, raised.code, raised.message) == (status, code, "why")


def test_an_answer_that_is_not_the_envelope_still_says_something() -> None:
    raised = errors.error_for(502, "<html>Bad Gateway</html>")
    assert isinstance(raised, errors.ProviderFailed)
    assert raised.message == "the server answered HTTP 502"
