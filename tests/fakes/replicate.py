"""A fake Replicate API on a real loopback HTTP server, after reference/replicate-api.md:
Bearer/Token auth, files (multipart `content`, 100 MiB limit), predictions that advance
`starting → processing → succeeded|failed|canceled|aborted` over time with growing tqdm logs,
cursor pagination, account, hardware, versions, the default webhook secret, and Standard
Webhooks-signed deliveries (`start`, `logs`, `output`, `completed`, the last one retried).

Faults can be injected: a share of API calls answering 429 (with Retry-After), 500, or slowly;
a share of webhook deliveries dropped; chosen paths always answering an error (`fail_paths`);
the answers of the next creates lost after the prediction was made (`lose_create_answers`),
or the next creates refused before anything was made (`refuse_creates`). The list's `next`
cursor can point to another host (`next_page_base`), as a tampered or misrouted answer would.
Every API request is counted by method and path (`calls`).

A succeeded prediction's `output` lists its files (weights, a sample, a logs archive), each
served from its own loopback link with the token, as the file host does: with Range (206),
an MD5 ETag and a SHA-256 Repr-Digest. The links expire `output_ttl` seconds after success
(404, and the prediction's `output` becomes null with `data_removed`), so a late download fails.
A download can be cut after N bytes once (`cut_next_download_after`), and every download's path
and Range header is recorded (`downloads`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import secrets
import string
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import uvicorn
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from cloudtune.settings import LocalProviderSettings, Settings

MAX_FILE_BYTES = 100 * 1024 * 1024
TERMINAL = {"succeeded", "failed", "canceled", "aborted"}


def _id() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=26))


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: str | None) -> datetime | None:
    return None if not value else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _within(created_at: str, after: datetime | None, before: datetime | None) -> bool:
    created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    return (after is None or created > after) and (before is None or created < before)


def problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": detail, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


@dataclass
class Faults:
    rate: float = 0.0  # share of API calls that fail
    kinds: tuple[str, ...] = ("429", "500", "slow")
    slow_seconds: float = 3.0
    drop_webhooks: float = 0.0  # share of webhook deliveries never sent
    retry_after: int = 1


@dataclass
class FakePrediction:
    id: str
    version: str
    input: dict[str, Any]
    webhook: str | None
    events: list[str]
    created: float
    final_status: str
    status: str = "starting"
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    completed_at: str | None = None
    logs: str = ""
    output: Any = None
    error: str | None = None
    predict_time: float | None = None
    started: float | None = None
    sent: set[str] = field(default_factory=set)
    last_logs_sent: float = 0.0
    # name -> bytes served at its delivery link, and when the links expire (monotonic)
    files: dict[str, bytes] = field(default_factory=dict)
    expires: float | None = None
    data_removed: bool = False

    def to_json(self, base: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "model": self.version.split(":")[0],
            "version": self.version.split(":")[-1],
            "input": self.input,
            "output": self.output,
            "data_removed": self.data_removed,
            "error": self.error,
            "status": self.status,
            "logs": self.logs,
            "source": "api",
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "metrics": {"predict_time": self.predict_time} if self.predict_time else {},
            "urls": {
                "get": f"{base}/predictions/{self.id}",
                "cancel": f"{base}/predictions/{self.id}/cancel",
                "web": f"https://replicate.com/p/{self.id}",
            },
        }
        return data


class FakeReplicate:
    def __init__(
        self,
        *,
        token: str = "r8_fake_token",
        start_after: float = 0.3,
        run_for: float = 1.5,
        final_status: str = "succeeded",
        max_file_bytes: int = MAX_FILE_BYTES,
        output_ttl: float = 10.0,
        weights_bytes: int = 3 * 1024 * 1024 + 17,
    ) -> None:
        self.token = token
        self.start_after = start_after
        self.run_for = run_for
        self.final_status = final_status
        self.max_file_bytes = max_file_bytes
        self.output_ttl = output_ttl
        self.weights_bytes = weights_bytes
        # The next download sends this many bytes of its body, then drops the connection.
        self.cut_next_download_after: int | None = None
        # (path, Range header) of every download request, in order
        self.downloads: list[tuple[str, str | None]] = []
        self.faults = Faults()
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.predictions: dict[str, FakePrediction] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.file_bytes: dict[str, int] = {}
        self.create_calls = 0
        self.webhooks_sent = 0
        self.webhooks_dropped = 0
        self.page_size = 100
        # The base of the list's `next` cursor; None: this server's own.
        self.next_page_base: str | None = None
        # "GET /v1/predictions/<id>" -> requests received (before auth and faults)
        self.calls: Counter[str] = Counter()
        # path -> (status, detail) answered to every request for it
        self.fail_paths: dict[str, tuple[int, str]] = {}
        # The next this many creates make their prediction, then answer 500 (or, with
        # `lost_answer_delay`, answer only after that many seconds: past a client's timeout).
        self.lose_create_answers = 0
        self.lost_answer_delay = 0.0
        # The next this many creates answer 500 before making anything.
        self.refuse_creates = 0
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/v1/account", self.account),
                Route("/v1/hardware", self.hardware),
                Route("/v1/webhooks/default/secret", self.webhook_secret),
                Route("/v1/files", self.create_file, methods=["POST"]),
                Route("/v1/files/{file_id}", self.get_file, methods=["GET", "DELETE"]),
                Route("/v1/models/{owner}/{name}/versions", self.versions),
                Route("/v1/predictions", self.create_prediction, methods=["POST"]),
                Route("/v1/predictions", self.list_predictions, methods=["GET"]),
                Route("/v1/predictions/{pid}", self.get_prediction),
                Route("/v1/predictions/{pid}/cancel", self.cancel_prediction, methods=["POST"]),
                Route("/delivery/{pid}/{name}", self.deliver_file),
            ]
        )

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def file_origin(self) -> str:
        """Where its output links point: the server's `replicate_output_hosts` must name it."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeReplicate:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "fake Replicate did not start"
            time.sleep(0.02)
        return self

    def _serve(self) -> None:
        assert self._server is not None
        asyncio.run(self._main())

    async def _main(self) -> None:
        assert self._server is not None
        ticker = asyncio.create_task(self._tick_forever())
        try:
            await self._server.serve()
        finally:
            ticker.cancel()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- faults and auth ------------------------------------------------------------------

    async def _gate(self, request: Request, *, api: bool = True) -> Response | None:
        """Auth, `fail_paths`, then (for the API, not the file host: another service) the
        random faults."""
        self.calls[f"{request.method} {request.url.path}"] += 1
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme not in ("Bearer", "Token") or value != self.token:
            return problem(401, "Invalid token.")
        if request.url.path in self.fail_paths:
            return problem(*self.fail_paths[request.url.path])
        if api and self.faults.rate and random.random() < self.faults.rate:
            kind = random.choice(self.faults.kinds)
            if kind == "429":
                return JSONResponse(
                    {"detail": "Request was throttled. Your rate limit resets in ~1s."},
                    status_code=429,
                    headers={"Retry-After": str(self.faults.retry_after)},
                )
            if kind == "500":
                return problem(500, "Internal server error")
            await asyncio.sleep(self.faults.slow_seconds)
        return None

    # -- endpoints ------------------------------------------------------------------------

    async def account(self, request: Request) -> Response:
        return await self._gate(request) or JSONResponse(
            {"type": "user", "username": "fake-user", "name": "Fake User", "github_url": None}
        )

    async def hardware(self, request: Request) -> Response:
        return await self._gate(request) or JSONResponse(
            [{"sku": "gpu-l40s", "name": "Nvidia L40S"}, {"sku": "gpu-h100", "name": "H100"}]
        )

    async def webhook_secret(self, request: Request) -> Response:
        return await self._gate(request) or JSONResponse({"key": self.secret})

    async def versions(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused:
            return refused
        owner, name = request.path_params["owner"], request.path_params["name"]
        version = {
            "id": "a" * 64,
            "created_at": _now(),
            "cog_version": "0.9",
            "openapi_schema": {},
        }
        return JSONResponse(
            {"next": None, "previous": None, "results": [version], "model": f"{owner}/{name}"}
        )

    async def create_file(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused:
            return refused
        length = int(request.headers.get("content-length") or 0)
        if length > self.max_file_bytes + 1024 * 1024:
            return problem(413, "Files must be less than 100MB in size")
        form = await request.form(max_part_size=self.max_file_bytes + 1)
        upload = form.get("content")
        if upload is None or isinstance(upload, str):
            return problem(400, "content is required")
        size = 0
        while chunk := await upload.read(1024 * 1024):
            size += len(chunk)
        if size > self.max_file_bytes:
            return problem(413, "Files must be less than 100MB in size")
        file_id = _id()
        record = {
            "id": file_id,
            "name": upload.filename,
            "content_type": upload.content_type or "application/octet-stream",
            "size": size,
            "checksums": {},
            "metadata": {},
            "created_at": _now(),
            "expires_at": _now(),
            "urls": {"get": f"{self.base_url}/files/{file_id}"},
        }
        with self._lock:
            self.files[file_id] = record
        return JSONResponse(record, status_code=201)

    async def get_file(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused:
            return refused
        file_id = request.path_params["file_id"]
        if file_id not in self.files:
            return problem(404, "File not found")
        if request.method == "DELETE":
            self.files.pop(file_id)
            return Response(status_code=204)
        return JSONResponse(self.files[file_id])

    async def create_prediction(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused:
            return refused
        with self._lock:
            refuse = self.refuse_creates > 0
            self.refuse_creates -= int(refuse)
        if refuse:
            return problem(500, "Internal server error")
        body = await request.json()
        extra = set(body) - {"version", "input", "webhook", "webhook_events_filter", "stream"}
        if extra or "version" not in body or "input" not in body:
            return problem(422, f"invalid body: {sorted(extra) or 'version and input required'}")
        prediction = FakePrediction(
            id=_id(),
            version=body["version"],
            input=body["input"],
            webhook=body.get("webhook"),
            events=body.get("webhook_events_filter") or ["output", "completed"],
            created=time.monotonic(),
            final_status=self.final_status,
        )
        with self._lock:
            self.create_calls += 1
            self.predictions[prediction.id] = prediction
            lose = self.lose_create_answers > 0
            self.lose_create_answers -= int(lose)
        if lose and self.lost_answer_delay:
            await asyncio.sleep(self.lost_answer_delay)
        # A fault after the create happened: the caller cannot tell whether it worked.
        if lose or (self.faults.rate and random.random() < self.faults.rate / 3):
            return problem(500, "Internal server error")
        return JSONResponse(prediction.to_json(self.base_url), status_code=201)

    async def list_predictions(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused:
            return refused
        query = request.query_params
        try:
            after_time = _parse_time(query.get("created_after"))
            before_time = _parse_time(query.get("created_before"))
        except ValueError:
            return problem(400, "created_after and created_before take ISO 8601 times")
        cursor = int(query.get("cursor") or 0)
        newest = sorted(self.predictions.values(), key=lambda p: -p.created)
        newest = [p for p in newest if _within(p.created_at, after_time, before_time)]
        page = newest[cursor : cursor + self.page_size]
        after = cursor + self.page_size
        # The cursor keeps the filters, as Replicate's opaque one does.
        kept = {k: v for k, v in query.items() if k != "cursor"}
        return JSONResponse(
            {
                "previous": None,
                "next": f"{self.next_page_base or self.base_url}/predictions?"
                f"{urlencode({**kept, 'cursor': after})}"
                if after < len(newest)
                else None,
                "results": [p.to_json(self.base_url) for p in page],
            }
        )

    async def get_prediction(self, request: Request) -> Response:
        found = await self._prediction(request)
        if isinstance(found, Response):
            return found
        return JSONResponse(found.to_json(self.base_url))

    async def cancel_prediction(self, request: Request) -> Response:
        found = await self._prediction(request)
        if isinstance(found, Response):
            return found
        if found.status not in TERMINAL:
            self._finish(found, "canceled")
        return JSONResponse(found.to_json(self.base_url))

    async def _prediction(self, request: Request) -> FakePrediction | Response:
        refused = await self._gate(request)
        if refused:
            return refused
        prediction = self.predictions.get(request.path_params["pid"])
        if prediction is None:
            return problem(404, "Not found.")
        self._advance(prediction)
        return prediction

    async def deliver_file(self, request: Request) -> Response:
        """An output file, as the file host serves it (token required, Range, expiry)."""
        self.downloads.append((request.url.path, request.headers.get("range")))
        refused = await self._gate(request, api=False)
        if refused:
            return refused
        prediction = self.predictions.get(request.path_params["pid"])
        if prediction is not None:
            self._advance(prediction)
        data = prediction.files.get(request.path_params["name"]) if prediction else None
        if prediction is None or data is None or prediction.data_removed:
            return problem(404, "Not found.")
        size = len(data)
        headers = {
            "ETag": f'"{hashlib.md5(data).hexdigest()}"',
            "Repr-Digest": f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:",
            "Accept-Ranges": "bytes",
        }
        start, status = 0, 200
        wanted = request.headers.get("range", "")
        if wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[len("bytes=") : -1])
            if start >= size:
                return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        body = data[start:]
        headers["Content-Length"] = str(len(body))
        cut, self.cut_next_download_after = self.cut_next_download_after, None

        async def chunks() -> Any:
            step = 64 * 1024
            for offset in range(0, len(body), step):
                if cut is not None and offset >= cut:
                    raise ConnectionResetError("the fake cut this download")
                yield body[offset : offset + min(step, cut - offset if cut else step)]
                await asyncio.sleep(0)

        return StreamingResponse(chunks(), status_code=status, headers=headers)

    def output_links(self, prediction: FakePrediction) -> list[str]:
        return [
            f"http://127.0.0.1:{self.port}/delivery/{prediction.id}/{name}"
            for name in prediction.files
        ]

    def expire_outputs(self) -> None:
        """The file host's links of every prediction run out now (as they do after a while)."""
        for prediction in self.predictions.values():
            if prediction.files:
                prediction.expires = time.monotonic()
                self._advance(prediction)

    # -- time passing ---------------------------------------------------------------------

    def _advance(self, p: FakePrediction) -> None:
        now = time.monotonic()
        if p.expires is not None and now >= p.expires and not p.data_removed:
            p.data_removed, p.output = True, None
        if p.status in TERMINAL:
            return
        if p.status == "starting" and now - p.created >= self.start_after:
            p.status, p.started_at, p.started = "processing", _now(), now
        if p.status == "processing":
            assert p.started is not None
            done = min(1.0, (now - p.started) / max(self.run_for, 1e-6))
            steps = int(done * 100)
            p.logs = "".join(
                f"{s:3d}%|{'#' * (s // 10):10}| {s}/100 [00:01<00:01, 10it/s]\n"
                for s in range(0, steps + 1, 10)
            )
            if done >= 1.0:
                self._finish(p, p.final_status)

    def _finish(self, p: FakePrediction, status: str) -> None:
        p.status = status
        p.completed_at = _now()
        if p.started is not None:
            p.predict_time = round(time.monotonic() - p.started, 3)
        if status == "succeeded":
            rng = random.Random(p.id)
            p.files = {
                "pytorch_lora_weights.safetensors": rng.randbytes(self.weights_bytes),
                "sample_0.png": rng.randbytes(40_000),
                "logs.tar.gz": rng.randbytes(5_000),
            }
            p.output = self.output_links(p)
            p.expires = time.monotonic() + self.output_ttl
            p.logs += "training complete\n"
        elif status == "failed":
            p.error = "CUDA out of memory"

    async def _tick_forever(self) -> None:
        client = httpx.AsyncClient(timeout=5)
        try:
            while True:
                for p in list(self.predictions.values()):
                    before = p.status
                    self._advance(p)
                    await self._deliver(client, p, before)
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def _deliver(self, client: httpx.AsyncClient, p: FakePrediction, before: str) -> None:
        if not p.webhook:
            return
        due: list[str] = []
        if p.status != "starting" and "start" not in p.sent and "start" in p.events:
            due.append("start")
        if p.status == "processing" and "logs" in p.events:
            if time.monotonic() - p.last_logs_sent >= 0.5:
                p.last_logs_sent = time.monotonic()
                due.append("logs")
        if p.status in TERMINAL and "completed" not in p.sent and "completed" in p.events:
            due.append("completed")
        for event in due:
            p.sent.add(event)
            if self.faults.drop_webhooks and random.random() < self.faults.drop_webhooks:
                self.webhooks_dropped += 1
                continue
            asyncio.create_task(self._post(client, p, event))

    async def _post(self, client: httpx.AsyncClient, p: FakePrediction, event: str) -> None:
        body = json.dumps(p.to_json(self.base_url)).encode()
        msg_id = f"msg_{p.id}_{event}_{len(p.logs)}"
        attempts = 4 if event == "completed" else 1  # only the final event is retried
        for attempt in range(attempts):
            timestamp = datetime.now(UTC)
            signature = Webhook(self.secret).sign(msg_id, timestamp, body.decode())
            headers = {
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(timestamp.timestamp())),
                "webhook-signature": signature,
                "content-type": "application/json",
            }
            try:
                response = await client.post(
                    p.webhook,
                    content=body,
                    headers=headers,
                    follow_redirects=False,  # type: ignore[arg-type]
                )
                self.webhooks_sent += 1
                if response.is_success:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2 * 2**attempt)

    # -- helpers for tests ----------------------------------------------------------------

    def predictions_for(self, job_id: str) -> list[FakePrediction]:
        return [p for p in self.predictions.values() if job_id in json.dumps(p.input)]

    def reads_of(self, prediction_id: str) -> int:
        """Requests that read one prediction (its status and its logs come in one GET)."""
        return self.calls[f"GET /v1/predictions/{prediction_id}"]


def main() -> None:
    """Run the fake on its own: `python -m tests.fakes.replicate --port 9100`."""
    import argparse

    parser = argparse.ArgumentParser(description="A fake Replicate API for offline runs.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="r8_fake_token")
    parser.add_argument("--run-for", type=float, default=3.0)
    args = parser.parse_args()
    fake = FakeReplicate(token=args.token, run_for=args.run_for)
    if args.port:
        fake.port = args.port
        asyncio.run(_serve_on(fake, args.port))
    else:
        fake.start()
        print(fake.base_url, flush=True)
        threading.Event().wait()


async def _serve_on(fake: FakeReplicate, port: int) -> None:
    config = uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_level="warning")
    fake._server = uvicorn.Server(config)
    print(fake.base_url, flush=True)
    await fake._main()


if __name__ == "__main__":
    main()


@contextmanager
def running_fake(**options: Any) -> Iterator[FakeReplicate]:
    """A fake Replicate on a loopback port for the length of the block (a test's fixture)."""
    server = FakeReplicate(**options).start()
    try:
        yield server
    finally:
        server.stop()


def settings_for(fake: FakeReplicate, home: Path, database_url: str, **overrides: Any) -> Settings:
    """Server settings that reach this fake through the base URL setting (the production code
    path), with the short intervals the Replicate tests run on."""
    values: dict[str, Any] = {
        "home": home,
        "database_url": database_url,
        "reconcile_interval_seconds": 0.2,
        "reconcile_backoff_max_seconds": 1.0,
        "replicate_base_url": fake.base_url,
        "replicate_output_hosts": [fake.file_origin],
        "replicate_api_token": SecretStr(fake.token),
        "replicate_timeout_seconds": 2.0,
        "local": LocalProviderSettings(poll_interval_seconds=0.05),
    }
    return Settings(**{**values, **overrides})
