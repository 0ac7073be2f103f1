"""An async client of a Ray cluster's Jobs REST API (served by its dashboard).

Every call has a timeout; every call is retried with backoff on connection errors and 5xx,
because every one is safe to repeat: a submit carries our job id as Ray's `submission_id`, so
Ray itself refuses to start a second job under it ("already exists"), which `submit` reports as
`SubmissionExists` for the caller to check.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_after_delay

from cloudtune.providers.breaker import CircuitBreaker

_RETRY_STATUSES = frozenset({500, 502, 503, 504})
# Ray answers a refused request with a Python traceback: its last line says why.
_MAX_DETAIL = 500
BREAKER_THRESHOLD = 3
BREAKER_SECONDS = 30.0
# An answer read whole at most (a job's log is the largest Ray sends); more is refused.
MAX_ANSWER_BYTES = 64 * 1024**2
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b[^:]*: ")


class RayError(Exception):
    def __init__(
        self,
        status: int | None,
        detail: str,
        *,
        request: str,
        too_large: bool = False,
        paused: bool = False,
    ) -> None:
        super().__init__(f"{request} {status or 'no answer'}: {detail}")
        self.status = status
        self.detail = detail
        self.request = request
        self.too_large = too_large
        self.paused = paused  # never sent: the breaker is open

    @property
    def retryable(self) -> bool:
        # A 5xx from a submit that says the id is taken is an answer, not an outage; one too
        # large to read will be as large again.
        return (
            (self.status is None or self.status in _RETRY_STATUSES)
            and not _exists(self)
            and not self.too_large
            and not self.paused
        )


class SubmissionExists(RayError):
    """Ray already has a job under this submission id (a retried submit)."""


class RayJobsClient:
    def __init__(
        self,
        address: str,
        headers: dict[str, str],
        *,
        timeout: float = 30.0,
        attempts: int = 5,
        max_retry_seconds: float = 60.0,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=address.rstrip("/") + "/",
            headers={"User-Agent": "cloudtune", **headers},
            timeout=httpx.Timeout(timeout, connect=10.0),
            follow_redirects=False,
        )
        self._attempts = attempts
        self._max_retry_seconds = max_retry_seconds
        # A cluster that stops answering (or hangs) would hold every poll for the whole retry
        # budget, job after job, and the reconciler asks them one at a time: after a few
        # unanswered calls in a row, calls fail fast until a trial one is answered.
        self._breaker = CircuitBreaker(threshold=BREAKER_THRESHOLD, cooldown=BREAKER_SECONDS)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def version(self, *, once: bool = False) -> dict[str, Any]:
        return _object(await self._call("GET", "api/version", attempts=1 if once else None))

    async def nodes(self) -> list[dict[str, Any]]:
        found: Any = _object(await self._call("GET", "api/v0/nodes?limit=10000", attempts=1))
        # `{"data": {"result": {"result": [...]}}}`; any other shape lists no nodes.
        for key in ("data", "result", "result"):
            found = found.get(key) if isinstance(found, dict) else None
        return (
            [node for node in found if isinstance(node, dict)] if isinstance(found, list) else []
        )

    async def package_exists(self, uri: str) -> bool:
        try:
            await self._call("GET", f"api/packages/{_package_path(uri)}")
        except RayError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def upload_package(self, uri: str, data: bytes) -> None:
        await self._call("PUT", f"api/packages/{_package_path(uri)}", content=data)

    async def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return _object(await self._call("POST", "api/jobs/", json=body))
        except RayError as exc:
            if _exists(exc):
                raise SubmissionExists(exc.status, exc.detail, request=exc.request) from None
            raise

    async def job(self, submission_id: str) -> dict[str, Any] | None:
        """The job's details, or None when the cluster does not know it."""
        try:
            return _object(await self._call("GET", f"api/jobs/{_id(submission_id)}"))
        except RayError as exc:
            if exc.status == 404:
                return None
            raise

    async def jobs(self) -> list[dict[str, Any]]:
        answer = await self._call("GET", "api/jobs/")
        return [job for job in answer if isinstance(job, dict)] if isinstance(answer, list) else []

    async def logs(self, submission_id: str) -> str | None:
        try:
            answer = _object(await self._call("GET", f"api/jobs/{_id(submission_id)}/logs"))
        except RayError as exc:
            if exc.status == 404:
                return None
            if exc.too_large:
                # Not a failed poll: the job's status must still be read.
                return f"(the job's log on the cluster is {exc.detail[len('the answer is ') :]})\n"
            raise
        logs = answer.get("logs")
        return logs if isinstance(logs, str) else ""

    async def stop(self, submission_id: str) -> None:
        """Stop the job; one Ray no longer knows is left alone."""
        try:
            await self._call("POST", f"api/jobs/{_id(submission_id)}/stop")
        except RayError as exc:
            if exc.status != 404:
                raise

    async def delete(self, submission_id: str) -> None:
        try:
            await self._call("DELETE", f"api/jobs/{_id(submission_id)}")
        except RayError as exc:
            if exc.status != 404:
                raise

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        attempts: int | None = None,
    ) -> Any:
        request = f"{method} {path.split('?')[0]}"
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, RayError) and e.retryable),
            stop=stop_after_attempt(attempts or self._attempts)
            | stop_after_delay(self._max_retry_seconds),
            wait=_wait,
            reraise=True,
        )

        async def send() -> httpx.Response:
            outgoing = self._http.build_request(method, path, json=json, content=content)
            response = await self._http.send(outgoing, stream=True)
            try:
                return await _bounded(response, request)
            finally:
                await response.aclose()

        last: RayError | None = None
        async for attempt in retrying:
            with attempt:
                if not self._breaker.allow():
                    if last is not None:
                        # Paused during this call's retries: its own last error says why.
                        raise RayError(
                            last.status,
                            last.detail,
                            request=request,
                            too_large=last.too_large,
                            paused=True,
                        )
                    raise RayError(
                        503,
                        "the cluster keeps not answering; calls paused for "
                        f"{self._breaker.retry_in():.0f}s",
                        request=request,
                        paused=True,
                    )
                try:
                    answer = await _answer(send, request)
                except RayError as exc:
                    last = exc
                    if (exc.status is None or exc.status >= 500) and not _exists(exc):
                        self._breaker.record_failure()
                    else:
                        self._breaker.record_success()
                    raise
                self._breaker.record_success()
                return answer
        raise AssertionError("unreachable")


async def _bounded(response: httpx.Response, request: str) -> httpx.Response:
    """The answer read into memory up to MAX_ANSWER_BYTES: a cluster (or whatever answers at
    its address) that sends more is refused, never buffered whole."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise RayError(
                response.status_code,
                f"the answer is over {MAX_ANSWER_BYTES // 1024**2} MiB",
                request=request,
                too_large=True,
            )
    kept = {k: v for k, v in response.headers.items() if k.lower() == "content-type"}
    return httpx.Response(
        response.status_code, headers=kept, content=bytes(body), request=response.request
    )


async def _answer(send: Callable[[], Awaitable[httpx.Response]], request: str) -> Any:
    try:
        response = await send()
    except httpx.HTTPError as exc:
        raise RayError(None, type(exc).__name__, request=request) from exc
    if response.status_code >= 400:
        raise RayError(response.status_code, _detail(response), request=request)
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        raise RayError(response.status_code, "the answer is not JSON", request=request) from None


def _exists(exc: RayError) -> bool:
    return exc.status is not None and 400 <= exc.status < 600 and "already exists" in exc.detail


def _id(submission_id: str) -> str:
    # Our ids are hex; anything else never reaches a path.
    if not submission_id or not all(c.isalnum() or c in "-_" for c in submission_id):
        raise ValueError(f"not a submission id: {submission_id!r}")
    return submission_id


def _package_path(uri: str) -> str:
    """`gcs://_ray_pkg_<hash>.zip` as the packages endpoint's `<protocol>/<name>`."""
    protocol, sep, name = uri.partition("://")
    if not sep or "/" in name or not name:
        raise ValueError(f"not a package URI: {uri!r}")
    return f"{protocol}/{name}"


def _detail(response: httpx.Response) -> str:
    """The exception line of Ray's traceback (`ValueError: Job with ... already exists`),
    else its last line with words in it."""
    lines = [line.strip() for line in response.text.splitlines() if line.strip()]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return line[:_MAX_DETAIL]
    worded = [line for line in lines if any(c.isalpha() for c in line)]
    return (worded[-1] if worded else response.reason_phrase)[:_MAX_DETAIL]


def _object(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise RayError(None, "the answer is not a JSON object", request="")
    return answer


def _wait(retry_state: Any) -> float:
    attempt: int = retry_state.attempt_number
    base = min(8.0, 0.25 * 2.0 ** (attempt - 1))
    return base * (0.5 + random.random())  # noqa: S311 - jitter, not security
