"""The SDK's asyncio client (httpx): the same methods as `Client`, awaited. Every method is
one call of `calls` carried out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

from cloudtune.client import calls, datasets, downloads, models
from cloudtune.client.errors import ServerUnreachable
from cloudtune.client.settings import ClientSettings

T = TypeVar("T")


class AsyncClient:
    """`Client()` reads the server and credentials as the CLI does (flags aside:
    `CLOUDTUNE_URL`, `CLOUDTUNE_API_KEY`, the file `cloudtune login` writes); or name them."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = ClientSettings.resolve(url=url, api_key=api_key)
        self._http = httpx.AsyncClient(
            base_url=self.settings.url,
            headers=self.settings.headers(),
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def run(self, call: calls.Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method,
                call.path,
                params=call.params,
                json=call.body if call.content is None else None,
                content=call.content,
                headers=dict(call.headers),
            )
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach {self.settings.url}: {exc}") from None
        return call.read(calls.read_answer(response.status_code, response.text))

    # -- jobs -------------------------------------------------------------------------------

    async def submit(
        self,
        body: Mapping[str, Any],
        *,
        provider: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.SubmitResult:
        return await self.run(calls.submit(body, provider, idempotency_key))

    async def preview(
        self, body: Mapping[str, Any], *, provider: str | None = None
    ) -> models.Preview:
        return await self.run(calls.preview(body, provider))

    async def list_jobs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        provider: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> models.JobPage:
        return await self.run(calls.list_jobs(status, provider, limit, offset))

    async def get_job(self, job_id: str) -> models.Job:
        return await self.run(calls.get_job(job_id))

    async def cancel_job(self, job_id: str) -> str:
        return await self.run(calls.cancel_job(job_id))

    async def delete_job(self, job_id: str) -> None:
        await self.run(calls.delete_job(job_id))

    async def logs(self, job_id: str, *, tail: int | None = None) -> str:
        return await self.run(calls.job_logs(job_id, tail))

    async def events(self, job_id: str) -> list[models.JobEvent]:
        return await self.run(calls.job_events(job_id))

    async def outputs(self, job_id: str) -> models.Outputs:
        return await self.run(calls.job_outputs(job_id))

    async def download(
        self,
        item: models.OutputFile,
        folder: Path,
        *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Path:
        """As `Client.download`: inside `folder`, resumed with Range, checked by SHA-256."""
        url = downloads.own_path(item.url)
        target = downloads.destination(folder, item.path)
        partial = target.with_name(target.name + downloads.PARTIAL)
        done = downloads.partial_size(partial, item.size)
        headers = {"Range": f"bytes={done}-"} if done else {}
        try:
            async with self._http.stream("GET", url, headers=headers, timeout=None) as answer:
                if answer.status_code >= 400:
                    text = (await answer.aread()).decode(errors="replace")
                    calls.read_answer(answer.status_code, text)
                if answer.status_code != 206:
                    done = 0  # the server sent the whole file
                with downloads.open_partial(partial, append=bool(done)) as out:
                    async for chunk in answer.aiter_bytes(downloads.CHUNK):
                        out.write(chunk)
                        if on_bytes is not None:
                            on_bytes(len(chunk))
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"the download of {item.path} broke: {exc}") from None
        return downloads.finish(partial, target, item.sha256)

    async def push_dataset(
        self,
        name: str,
        folder: Path,
        *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> list[str]:
        """As `Client.push_dataset`: the folder's files as the dataset `name`."""
        prefix = (await self.me()).storage_prefix
        written = []
        for relative, path in datasets.files_of(folder):
            key = f"{prefix}{name}/{relative}"
            await self.run(datasets.put_object(key, datasets.read_async(path, on_bytes)))
            written.append(key)
        return written

    async def list_datasets(self) -> list[str]:
        """The names of your uploaded datasets."""
        prefix = (await self.me()).storage_prefix
        names: list[str] = []
        token: str | None = None
        while True:
            page = await self.run(datasets.list_page(prefix, token))
            names += page.names
            if page.next_token is None:
                return names
            token = page.next_token

    async def stream_logs(self, job_id: str) -> AsyncIterator[calls.LogEvent]:
        """The job's log as it is written, then its status changes, ending with `done`."""
        parser = calls.EventParser()
        path = calls.logs_stream_path(job_id)
        try:
            async with self._http.stream("GET", path, timeout=None) as answer:
                if answer.status_code >= 400:
                    calls.read_answer(answer.status_code, (await answer.aread()).decode())
                async for line in answer.aiter_lines():
                    for event in parser.feed(line):
                        yield event
                        if event.event == "done" and event.data == "stream_end":
                            return
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"the log stream broke: {exc}") from None

    async def wait(
        self,
        job_id: str,
        *,
        interval: float = 2.0,
        timeout: float | None = None,
        on_update: Callable[[models.Job], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> models.Job:
        """Poll until the job is completed, failed or cancelled; TimeoutError after `timeout`
        seconds of `clock`."""
        deadline = None if timeout is None else clock() + timeout
        while True:
            job = await self.get_job(job_id)
            if on_update is not None:
                on_update(job)
            if job.is_terminal:
                return job
            if deadline is not None and clock() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.status}")
            await sleep(interval)

    # -- configs ----------------------------------------------------------------------------

    async def list_configs(self) -> list[models.ConfigSummary]:
        return await self.run(calls.list_configs())

    async def get_config(self, name: str) -> models.Config:
        return await self.run(calls.get_config(name))

    async def save_config(
        self,
        name: str,
        config: Mapping[str, Any],
        dataloader: list[Any] | None = None,
        *,
        description: str | None = None,
    ) -> models.Config:
        return await self.run(calls.save_config(name, config, dataloader, description))

    async def delete_config(self, name: str) -> None:
        await self.run(calls.delete_config(name))

    # -- keys, cost limit, providers, users, auth --------------------------------------------

    async def create_key(
        self,
        name: str,
        *,
        expires_days: int | None = None,
        permissions: Iterable[str] | None = None,
    ) -> models.NewApiKey:
        return await self.run(calls.create_key(name, expires_days, permissions))

    async def list_keys(self) -> list[models.ApiKey]:
        return await self.run(calls.list_keys())

    async def revoke_key(self, key_id: str) -> None:
        await self.run(calls.revoke_key(key_id))

    async def cost_limit(self) -> models.CostLimit:
        return await self.run(calls.get_cost_limit())

    async def set_cost_limit(self, **changes: Any) -> models.CostLimit:
        return await self.run(calls.set_cost_limit(changes))

    async def providers(self) -> list[models.Provider]:
        return await self.run(calls.list_providers())

    async def validate_provider(self, provider: str = "replicate") -> models.AccountCheck:
        return await self.run(calls.validate_provider(provider))

    async def set_provider_token(
        self, token: str, provider: str = "replicate"
    ) -> models.TokenState:
        return await self.run(calls.set_provider_token(provider, token))

    async def set_provider_settings(self, provider: str, **changes: Any) -> dict[str, Any]:
        """Change a provider's settings; its settings as saved (secrets left out)."""
        return await self.run(calls.set_provider_settings(provider, changes))

    async def change_user(self, user_id: str, **changes: Any) -> models.User:
        """role=, display_name=, is_active=."""
        return await self.run(calls.change_user(user_id, changes))

    async def disable_user(self, user_id: str) -> models.User:
        return await self.run(calls.disable_user(user_id))

    async def users(self) -> list[models.User]:
        return await self.run(calls.list_users())

    async def create_user(
        self, username: str, email: str, password: str, role: str = "researcher"
    ) -> models.User:
        return await self.run(calls.create_user(username, email, password, role))

    async def me(self) -> models.Me:
        return await self.run(calls.me())

    async def login(self, username: str, password: str) -> models.Login:
        """Sign in; later calls of this client carry the session."""
        done = await self.run(calls.login(username, password))
        self._http.headers["Authorization"] = f"Bearer {done.token}"
        return done

    async def logout(self) -> None:
        await self.run(calls.logout())
        self._http.headers.pop("Authorization", None)
