"""Domain errors. Each carries a stable `code` and a human `detail`; none knows about HTTP.

    CloudtuneError
     ├── InvalidInputError          bad config, dataset, filter, provider or model family
     ├── AuthenticationError        no or bad credentials
     ├── PermissionDeniedError      the caller lacks a permission
     ├── NotFoundError              unknown job or config
     ├── ConflictError              the operation does not fit the current state
     ├── PayloadTooLargeError       a package over the provider's limit
     ├── CostLimitExceededError     a submit that a `block` spending limit refuses
     ├── RateLimitedError           too many attempts; carries retry_after_seconds
     └── ProviderError              the provider failed or answered nonsense
          └── ProviderUnavailableError  the provider cannot be used right now

`cloudtune.api.errors` maps each branch to one HTTP status.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class CloudtuneError(Exception):
    code = "error"

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra


class InvalidInputError(CloudtuneError):
    code = "invalid_input"


class AuthenticationError(CloudtuneError):
    code = "authentication_required"


class PermissionDeniedError(CloudtuneError):
    code = "permission_denied"


class NotFoundError(CloudtuneError):
    code = "not_found"


class ConflictError(CloudtuneError):
    code = "conflict"


class PayloadTooLargeError(CloudtuneError):
    code = "payload_too_large"


class CostLimitExceededError(CloudtuneError):
    code = "cost_limit_exceeded"


class RateLimitedError(CloudtuneError):
    code = "rate_limited"


class ProviderError(CloudtuneError):
    code = "provider_error"


class ProviderUnavailableError(ProviderError):
    code = "provider_unavailable"


class UnconfirmedSubmitError(ProviderError):
    """The provider may or may not have started the job: its answer was lost and it could not
    be looked up. The job must stay findable, not be failed (it may be running and billing)."""

    code = "provider_create_unconfirmed"


def job_not_found(job_id: str) -> NotFoundError:
    return NotFoundError(f"Job not found: {job_id}", code="job_not_found", job_id=job_id)


def unknown_fields_error(
    names: Iterable[str], *, accepted: Iterable[str] = ()
) -> InvalidInputError:
    """A request's fields this server does not act on: refused by name (400), never dropped,
    or whoever sent them would believe they counted. The names come from the request, so at
    most 20 are shown, each cut to 64 characters and made printable."""
    shown = [
        name[:64].encode("utf-8", "backslashreplace").decode("utf-8") for name in sorted(names)
    ][:20]
    message = f"unknown field(s) {', '.join(f'`{n}`' for n in shown)}: this server does not "
    message += "act on them; send the request without them"
    if accepted := sorted(accepted):
        message += f" (accepted: {', '.join(accepted)})"
    return InvalidInputError(message, code="unsupported_field", fields=shown)
