"""A stub of the Hugging Face Hub's HTTP API on a real loopback server: what huggingface_hub's
`create_repo` and `create_commit`/`upload_folder` call, after the Hub's documented API.

- `POST /api/repos/create` `{name, organization, visibility|private, type}`: 200 `{url}`, 409 when
  the repository exists (huggingface_hub's `exist_ok` reads 409 as "already there").
- `POST /api/validate-yaml` `{content, repoType}` (a README's metadata, checked before a commit):
  no errors.
- `POST /api/{type}s/{owner}/{name}/preupload/{revision}` `{files: [{path, sample, size}]}`:
  each file's upload mode, `regular` (its content comes base64 in the commit) or `lfs` from
  `lfs_from_bytes` up.
- `POST /{owner}/{name}.git/info/lfs/objects/batch` (Git LFS batch API, basic transfer): an
  upload and a verify action per object not stored yet; `PUT` of the bytes to the upload href
  (checked against the sha256 oid), `POST` to the verify href.
- `POST /api/{type}s/{owner}/{name}/commit/{revision}` (NDJSON: a `header` line, then `file`
  lines with base64 content and `lfsFile` lines by oid): the files become the repository's.

Every call needs `Authorization: Bearer <one of tokens>` (401 otherwise; 403 for a repository
of another owner than the token's user). `fail_status` makes repository creation answer that
status (a Hub outage or refusal); requests are counted by method and path (`calls`)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Repo:
    repo_id: str
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


class FakeHub:
    def __init__(
        self, *, tokens: dict[str, str] | None = None, lfs_from_bytes: int | None = None
    ) -> None:
        # token -> user name
        self.tokens = tokens if tokens is not None else {"hf_stubtoken0123456789": "me"}
        self.lfs_from_bytes = lfs_from_bytes
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.fail_status: int | None = None
        self.calls: Counter[str] = Counter()
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[
                Route("/api/repos/create", self._create, methods=["POST"]),
                Route("/api/validate-yaml", self._validate_yaml, methods=["POST"]),
                Route(
                    "/api/{kind}/{owner}/{name}/preupload/{revision}",
                    self._preupload,
                    methods=["POST"],
                ),
                Route(
                    "/api/{kind}/{owner}/{name}/commit/{revision}", self._commit, methods=["POST"]
                ),
                Route("/{owner}/{name}.git/info/lfs/objects/batch", self._batch, methods=["POST"]),
                Route("/lfs/upload/{oid}", self._lfs_upload, methods=["PUT"]),
                Route("/lfs/verify/{oid}", self._lfs_verify, methods=["POST"]),
            ]
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- auth ----------------------------------------------------------------------------

    def _user(self, request: Request) -> str | None:
        self.calls[f"{request.method} {request.url.path}"] += 1
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        return self.tokens.get(token)

    def _repo_for(self, request: Request, user: str | None) -> Repo | Response:
        if user is None:
            return _error(401, "Invalid credentials in Authorization header")
        repo_id = f"{request.path_params['owner']}/{request.path_params['name']}"
        if request.path_params.get("kind", "models") != "models":
            return _error(404, "only model repositories here")
        repo = self.repos.get(repo_id)
        if repo is None:
            return _error(404, f"Repository not found: {repo_id}")
        if request.path_params["owner"] != user:
            return _error(403, "You don't have the rights to write to this repository")
        return repo

    # -- routes --------------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        user = self._user(request)
        if user is None:
            return _error(401, "Invalid credentials in Authorization header")
        if self.fail_status is not None:
            return _error(self.fail_status, "the stub was told to fail")
        body = await request.json()
        owner = body.get("organization") or user
        if owner != user:
            return _error(403, "You don't have the rights to create a repository there")
        repo_id = f"{owner}/{body['name']}"
        url = f"{self.url}/{repo_id}"
        if repo_id in self.repos:
            return JSONResponse({"error": "You already created this model repo", "url": url}, 409)
        private = body.get("visibility", "private" if body.get("private") else "public")
        self.repos[repo_id] = Repo(repo_id, private == "private")
        return JSONResponse({"url": url, "name": repo_id, "id": repo_id})

    async def _validate_yaml(self, request: Request) -> Response:
        # What create_commit asks of a README.md before it is sent; the stub finds no fault.
        if self._user(request) is None:
            return _error(401, "Invalid credentials in Authorization header")
        return JSONResponse({"errors": [], "warnings": []})

    async def _preupload(self, request: Request) -> Response:
        found = self._repo_for(request, self._user(request))
        if isinstance(found, Response):
            return found
        body = await request.json()
        files = []
        for item in body["files"]:
            lfs = self.lfs_from_bytes is not None and int(item["size"]) >= self.lfs_from_bytes
            files.append(
                {
                    "path": item["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                }
            )
        return JSONResponse({"files": files, "commitOid": "0" * 40})

    async def _batch(self, request: Request) -> Response:
        found = self._repo_for(request, self._user(request))
        if isinstance(found, Response):
            return found
        body = await request.json()
        assert body["operation"] == "upload" and "basic" in body["transfers"]
        objects = []
        for obj in body["objects"]:
            oid, size = obj["oid"], obj["size"]
            entry: dict[str, Any] = {"oid": oid, "size": size}
            if oid not in self.lfs_objects:
                entry["actions"] = {
                    "upload": {"href": f"{self.url}/lfs/upload/{oid}"},
                    "verify": {"href": f"{self.url}/lfs/verify/{oid}"},
                }
            objects.append(entry)
        return JSONResponse({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    async def _lfs_upload(self, request: Request) -> Response:
        self.calls[f"PUT {request.url.path}"] += 1
        oid = request.path_params["oid"]
        data = await request.body()
        if hashlib.sha256(data).hexdigest() != oid:
            return _error(400, "the content does not match its oid")
        self.lfs_objects[oid] = data
        return Response(status_code=200)

    async def _lfs_verify(self, request: Request) -> Response:
        self.calls[f"POST {request.url.path}"] += 1
        oid = request.path_params["oid"]
        return JSONResponse({}) if oid in self.lfs_objects else _error(404, "no such object")

    async def _commit(self, request: Request) -> Response:
        found = self._repo_for(request, self._user(request))
        if isinstance(found, Response):
            return found
        staged: dict[str, bytes] = {}
        summary = ""
        for line in (await request.body()).decode().splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            key, value = entry["key"], entry["value"]
            if key == "header":
                summary = value.get("summary", "")
            elif key == "file":
                assert value.get("encoding") == "base64"
                staged[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                data = self.lfs_objects.get(value["oid"])
                if data is None:
                    return _error(400, f"LFS object {value['oid']} was never uploaded")
                staged[value["path"]] = data
            else:
                return _error(400, f"the stub does not take `{key}` lines")
        found.files.update(staged)
        found.commits.append(summary)
        oid = hashlib.sha1(repr(sorted(found.files)).encode()).hexdigest()
        return JSONResponse(
            {
                "commitUrl": f"{self.url}/{found.repo_id}/commit/{oid}",
                "commitOid": oid,
                "pullRequestUrl": None,
            }
        )

    # -- server --------------------------------------------------------------------------

    def start(self) -> FakeHub:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the Hub stub did not start"
            time.sleep(0.02)
        return self

    async def _serve(self) -> None:
        assert self._server is not None
        await self._server.serve()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


@contextmanager
def running_hub(**options: Any) -> Iterator[FakeHub]:
    hub = FakeHub(**options).start()
    try:
        yield hub
    finally:
        hub.stop()
