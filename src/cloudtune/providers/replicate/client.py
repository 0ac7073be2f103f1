"""An async client of Replicate's HTTP API (reference/replicate-api.md).

Every call has a timeout. Safe calls (GET, and cancel, which is idempotent) are retried with
exponential backoff and jitter on 429 (honouring Retry-After), 5xx and connection errors. A
create is never re-sent blindly: an uncertain failure is reported as `UncertainCreateError`, and
the caller looks the prediction up by the tag it put in the input.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from cloudtune.providers.breaker import CircuitBreaker

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
# The webhook secret is fetched while a webhook waits (before its body is read): a short wait.
SECRET_TIMEOUT = 10.0
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class ReplicateError(Exception):
    """`request` is the method and URL that failed (the token rides in a header, never here)."""

    def __init__(
        self,
        status: int | None,
        detail: str,
        retry_after: float | None = None,
        *,
        request: str | None = None,
    ) -> None:
        super().__init__(f"{request + ' ' if request else ''}{status or 'no answer'}: {detail}")
        self.status = status
        self.detail = detail
        self.retry_after = retry_after
        self.request = request

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in _RETRY_STATUSES


class UncertainCreateError(ReplicateError):
    """The create request failed in a way that does not tell whether it was applied."""


class IncompleteListingError(Exception):
    """The list of predictions ended before its last page: one not seen may still exist.
    Not a ReplicateError: every request answered; the listing chose to stop."""


class BreakerOpenError(ReplicateError):
    """Calls are paused; retrying now would only wait for the same answer."""

    @property
    def retryable(self) -> bool:
        return False


def api_root(base_url: str) -> str:
    """`<root>/v1/` for a base URL given with or without a trailing `/v1` or `/`."""
    root = base_url.strip().rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    return root + "/v1/"


class ReplicateClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        breaker: CircuitBreaker | None = None,
        attempts: int = 8,
        max_retry_seconds: float = 90.0,
        upload_timeout: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._root = api_root(base_url)
        self._http = httpx.AsyncClient(
            base_url=self._root,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "cloudtune"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
            follow_redirects=False,
        )
        self._breaker = breaker or CircuitBreaker()
        self._timeout = timeout
        self._attempts = attempts
        self._upload_timeout = upload_timeout
        self._max_retry_seconds = max_retry_seconds

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- endpoints ------------------------------------------------------------------------

    async def account(self, *, once: bool = False) -> dict[str, Any]:
        """`once`: one attempt, no retries (a check made while a user waits for an answer)."""
        url = self._url("account")
        answer = await self._with_retries(
            lambda: self._http.get(url), f"GET {url}", attempts=1 if once else None
        )
        return _object(answer, f"GET {url}")

    async def hardware(self) -> list[dict[str, Any]]:
        answer = await self._safe("GET", "hardware")  # a bare array, not a page
        return (
            [item for item in answer if isinstance(item, dict)] if isinstance(answer, list) else []
        )

    async def default_webhook_secret(self) -> str:
        """One attempt, with a short timeout, and left out of the breaker's count: webhooks
        (which anyone can send) decide when this call is made, so retrying it or letting its
        failures pause everyone's calls would hand both to anonymous callers. The provider
        remembers a failure for a while instead (`ReplicateProvider.webhook_secret`)."""
        url = self._url("webhooks/default/secret")
        request = f"GET {url}"
        if self._breaker.is_open:  # read only: taking the half-open trial is for counted calls
            raise BreakerOpenError(
                503, f"Replicate keeps failing; calls paused for {self._breaker.retry_in():.0f}s"
            )
        try:
            response = await self._http.get(
                url, timeout=httpx.Timeout(min(SECRET_TIMEOUT, self._timeout))
            )
        except httpx.HTTPError as exc:
            raise ReplicateError(None, type(exc).__name__, request=request) from exc
        try:
            answer = self._result(response, request, count=False)
        except ValueError:  # a 2xx that is not JSON
            answer = None
        key = answer.get("key") if isinstance(answer, dict) else None
        if not isinstance(key, str) or not key:
            raise ReplicateError(response.status_code, "the answer has no key", request=request)
        return key

    async def latest_version(self, model: str) -> str:
        path = f"models/{model}/versions"
        results = (await self._safe_object("GET", path)).get("results") or []
        if not results:
            raise ReplicateError(
                404,
                f"No versions available for model {model}",
                request=f"GET {self._url(path)}",
            )
        return str(results[0]["id"])

    async def versions(self, model: str) -> list[dict[str, Any]]:
        page = await self._safe_object("GET", f"models/{model}/versions")
        return list(page.get("results") or [])

    async def get_prediction(self, prediction_id: str) -> dict[str, Any]:
        return await self._safe_object("GET", f"predictions/{prediction_id}")

    async def cancel_prediction(self, prediction_id: str) -> dict[str, Any] | None:
        """Idempotent; a prediction Replicate no longer knows counts as cancelled."""
        try:
            return await self._safe_object("POST", f"predictions/{prediction_id}/cancel")
        except ReplicateError as exc:
            if exc.status == 404:
                return None
            raise

    async def predictions(
        self, *, max_pages: int = 3, created_after: datetime | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Recent predictions, newest first, following the `next` cursor; `created_after`
        asks Replicate for those created since then only. Raises IncompleteListingError after
        the last item read when a page is left unread (past `max_pages`, or behind a cursor to
        another host), so that a caller never takes "not listed" for "does not exist"."""
        url: str | None = "predictions"
        if created_after is not None:
            when = created_after.astimezone(UTC).isoformat().replace("+00:00", "Z")
            url = "predictions?" + urlencode({"created_after": when})
        for _ in range(max_pages):
            if url is None:
                return
            page = await self._safe_object("GET", url)
            for item in page.get("results") or []:
                yield item
            url = page.get("next")
            if url is not None and not self._url(url).startswith(self._root):
                # A cursor elsewhere would get our token.
                raise IncompleteListingError("the next page is on another host; not followed")
        if url is not None:
            raise IncompleteListingError(f"more than {max_pages} pages; the rest not read")

    async def upload_file(self, path: Path, *, filename: str, content_type: str) -> dict[str, Any]:
        """Retried like a safe call: a second upload only leaves an unused file behind."""
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise ReplicateError(413, f"file of {size} bytes is over the {MAX_UPLOAD_BYTES} limit")

        url = self._url("files")

        async def send() -> httpx.Response:
            with open(path, "rb") as content:
                return await self._http.post(
                    url,
                    files={"content": (filename, content, content_type)},
                    timeout=httpx.Timeout(self._upload_timeout, connect=10.0),
                )

        return _object(await self._with_retries(send, f"POST {url}"), f"POST {url}")

    async def create_prediction(self, body: dict[str, Any]) -> dict[str, Any]:
        """One create. A 429 (not applied) is waited out and sent again; a failure that may have
        been applied raises UncertainCreateError and is never re-sent here."""
        url = self._url("predictions")
        request = f"POST {url}"
        for attempt in range(self._attempts):
            self._gate()
            try:
                response = await self._http.post(url, json=body)
            except (httpx.TimeoutException, httpx.NetworkError) as exc:
                self._breaker.record_failure()
                raise UncertainCreateError(
                    None, f"{type(exc).__name__} during create", request=request
                ) from exc
            if response.status_code >= 500:
                self._breaker.record_failure()
                raise UncertainCreateError(
                    response.status_code, _detail(response), request=request
                )
            if response.status_code == 429 and attempt + 1 < self._attempts:
                self._breaker.record_failure()
                await asyncio.sleep(_retry_after(response) or _backoff(attempt + 1))
                continue
            return _object(self._result(response, request), request)
        raise AssertionError("unreachable")

    # -- plumbing -------------------------------------------------------------------------

    def _gate(self) -> None:
        if not self._breaker.allow():
            raise BreakerOpenError(
                503, f"Replicate keeps failing; calls paused for {self._breaker.retry_in():.0f}s"
            )

    def _url(self, path: str) -> str:
        """The absolute URL of an API path (a `next` cursor is absolute already)."""
        return str(self._http.base_url.join(path))

    async def _safe(self, method: str, path: str) -> Any:
        url = self._url(path)
        return await self._with_retries(lambda: self._http.request(method, url), f"{method} {url}")

    async def _safe_object(self, method: str, path: str) -> dict[str, Any]:
        return _object(await self._safe(method, path), f"{method} {self._url(path)}")

    async def _with_retries(
        self,
        send: Callable[[], Awaitable[httpx.Response]],
        request: str,
        *,
        attempts: int | None = None,
    ) -> Any:
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, ReplicateError) and e.retryable),
            stop=stop_after_attempt(attempts or self._attempts)
            | stop_after_delay(self._max_retry_seconds),
            wait=_wait,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                self._gate()
                try:
                    response = await send()
                except httpx.HTTPError as exc:
                    self._breaker.record_failure()
                    raise ReplicateError(None, type(exc).__name__, request=request) from exc
                return self._result(response, request)
        raise AssertionError("unreachable")

    def _result(self, response: httpx.Response, request: str, *, count: bool = True) -> Any:
        """The answer's JSON, or ReplicateError; `count` reports the outcome to the breaker."""
        if response.status_code >= 400:
            if count and response.status_code in _RETRY_STATUSES:
                self._breaker.record_failure()
            elif count:
                self._breaker.record_success()  # the API answered; the request was wrong
            raise ReplicateError(
                response.status_code,
                _detail(response),
                _retry_after(response),
                request=request,
            )
        if count:
            self._breaker.record_success()
        if response.status_code == 204 or not response.content:
            return {}
        return response.json()


def _wait(retry_state: Any) -> float:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(exc, ReplicateError) and exc.retry_after is not None:
        return min(exc.retry_after, 30.0)
    return _backoff(retry_state.attempt_number)


def _backoff(attempt: int) -> float:
    base = min(10.0, 0.25 * 2.0 ** (attempt - 1))
    return base * (0.5 + random.random())  # noqa: S311 - jitter, not security


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value and value.strip().isdigit():
        return float(value)
    return None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:300]
    return str(body)[:300]


def _object(answer: Any, request: str) -> dict[str, Any]:
    """A JSON object answer, or ReplicateError: every endpoint we call answers with one."""
    if not isinstance(answer, dict):
        raise ReplicateError(None, "the answer is not a JSON object", request=request)
    return answer
