"""The SDK's blocking client (httpx). Every method is one call of `calls` carried out."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

from cloudtune.client import calls, datasets, downloads, models
from cloudtune.client.errors import ServerUnreachable
from cloudtune.client.settings import ClientSettings

T = TypeVar("T")


class Client:
    """`Client()` reads the server and credentials as the CLI does (flags aside:
    `CLOUDTUNE_URL`, `CLOUDTUNE_API_KEY`, the file `cloudtune login` writes); or name them."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = ClientSettings.resolve(url=url, api_key=api_key)
        self._http = httpx.Client(
            base_url=self.settings.url,
            headers=self.settings.headers(),
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def run(self, call: calls.Call[T]) -> T:
        try:
            response = self._http.request(
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

    def submit(
        self,
        body: Mapping[str, Any],
        *,
        provider: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.SubmitResult:
        return self.run(calls.submit(body, provider, idempotency_key))

    def preview(self, body: Mapping[str, Any], *, provider: str | None = None) -> models.Preview:
        return self.run(calls.preview(body, provider))

    def list_jobs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        provider: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> models.JobPage:
        return self.run(calls.list_jobs(status, provider, limit, offset))

    def get_job(self, job_id: str) -> models.Job:
        return self.run(calls.get_job(job_id))

    def cancel_job(self, job_id: str) -> str:
        return self.run(calls.cancel_job(job_id))

    def delete_job(self, job_id: str) -> None:
        self.run(calls.delete_job(job_id))

    def logs(self, job_id: str, *, tail: int | None = None) -> str:
        return self.run(calls.job_logs(job_id, tail))

    def events(self, job_id: str) -> list[models.JobEvent]:
        return self.run(calls.job_events(job_id))

    def outputs(self, job_id: str) -> models.Outputs:
        return self.run(calls.job_outputs(job_id))

    def download(
        self,
        item: models.OutputFile,
        folder: Path,
        *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Path:
        """One output file into `folder` (at its relative path, which must stay inside);
        a partial file from a broken download is resumed with a Range request, and the result
        is checked against the server's SHA-256 where it knows one."""
        url = downloads.own_path(item.url)
        target = downloads.destination(folder, item.path)
        partial = target.with_name(target.name + downloads.PARTIAL)
        done = downloads.partial_size(partial, item.size)
        headers = {"Range": f"bytes={done}-"} if done else {}
        try:
            with self._http.stream("GET", url, headers=headers, timeout=None) as answer:
                if answer.status_code >= 400:
                    calls.read_answer(answer.status_code, answer.read().decode(errors="replace"))
                if answer.status_code != 206:
                    done = 0  # the server sent the whole file
                with downloads.open_partial(partial, append=bool(done)) as out:
                    for chunk in answer.iter_bytes(downloads.CHUNK):
                        out.write(chunk)
                        if on_bytes is not None:
                            on_bytes(len(chunk))
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"the download of {item.path} broke: {exc}") from None
        return downloads.finish(partial, target, item.sha256)

    def push_dataset(
        self,
        name: str,
        folder: Path,
        *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Upload a folder's files into the `datasets` bucket under your prefix, as the
        dataset `name` (a dataloader then names `"dataset": name`); the keys written."""
        prefix = self.me().storage_prefix
        written = []
        for relative, path in datasets.files_of(folder):
            key = f"{prefix}{name}/{relative}"
            with open(path, "rb") as body:
                self.run(datasets.put_object(key, datasets.counted(body, on_bytes)))
            written.append(key)
        return written

    def list_datasets(self) -> list[str]:
        """The names of your uploaded datasets."""
        prefix = self.me().storage_prefix
        names: list[str] = []
        token: str | None = None
        while True:
            page = self.run(datasets.list_page(prefix, token))
            names += page.names
            if page.next_token is None:
                return names
            token = page.next_token

    def stream_logs(self, job_id: str) -> Iterator[calls.LogEvent]:
        """The job's log as it is written, then its status changes, ending with `done`."""
        parser = calls.EventParser()
        try:
            with self._http.stream("GET", calls.logs_stream_path(job_id), timeout=None) as answer:
                if answer.status_code >= 400:
                    calls.read_answer(answer.status_code, answer.read().decode())
                for line in answer.iter_lines():
                    for event in parser.feed(line):
                        yield event
                        if event.event == "done" and event.data == "stream_end":
                            return
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"the log stream broke: {exc}") from None

    def wait(
        self,
        job_id: str,
        *,
        interval: float = 2.0,
        timeout: float | None = None,
        on_update: Callable[[models.Job], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> models.Job:
        """Poll until the job is completed, failed or cancelled; TimeoutError after `timeout`
        seconds of `clock`."""
        deadline = None if timeout is None else clock() + timeout
        while True:
            job = self.get_job(job_id)
            if on_update is not None:
                on_update(job)
            if job.is_terminal:
                return job
            if deadline is not None and clock() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.status}")
            sleep(interval)

    # -- configs ----------------------------------------------------------------------------

    def list_configs(self) -> list[models.ConfigSummary]:
        return self.run(calls.list_configs())

    def get_config(self, name: str) -> models.Config:
        return self.run(calls.get_config(name))

    def save_config(
        self,
        name: str,
        config: Mapping[str, Any],
        dataloader: list[Any] | None = None,
        *,
        description: str | None = None,
    ) -> models.Config:
        return self.run(calls.save_config(name, config, dataloader, description))

    def delete_config(self, name: str) -> None:
        self.run(calls.delete_config(name))

    # -- keys, cost limit, providers, users, auth --------------------------------------------

    def create_key(
        self,
        name: str,
        *,
        expires_days: int | None = None,
        permissions: Iterable[str] | None = None,
    ) -> models.NewApiKey:
        return self.run(calls.create_key(name, expires_days, permissions))

    def list_keys(self) -> list[models.ApiKey]:
        return self.run(calls.list_keys())

    def revoke_key(self, key_id: str) -> None:
        self.run(calls.revoke_key(key_id))

    def cost_limit(self) -> models.CostLimit:
        return self.run(calls.get_cost_limit())

    def set_cost_limit(self, **changes: Any) -> models.CostLimit:
        return self.run(calls.set_cost_limit(changes))

    def providers(self) -> list[models.Provider]:
        return self.run(calls.list_providers())

    def validate_provider(self, provider: str = "replicate") -> models.AccountCheck:
        return self.run(calls.validate_provider(provider))

    def set_provider_token(self, token: str, provider: str = "replicate") -> models.TokenState:
        return self.run(calls.set_provider_token(provider, token))

    def set_provider_settings(self, provider: str, **changes: Any) -> dict[str, Any]:
        """Change a provider's settings; its settings as saved (secrets left out)."""
        return self.run(calls.set_provider_settings(provider, changes))

    def change_user(self, user_id: str, **changes: Any) -> models.User:
        """role=, display_name=, is_active=."""
        return self.run(calls.change_user(user_id, changes))

    def disable_user(self, user_id: str) -> models.User:
        return self.run(calls.disable_user(user_id))

    def users(self) -> list[models.User]:
        return self.run(calls.list_users())

    def create_user(
        self, username: str, email: str, password: str, role: str = "researcher"
    ) -> models.User:
        return self.run(calls.create_user(username, email, password, role))

    def me(self) -> models.Me:
        return self.run(calls.me())

    def login(self, username: str, password: str) -> models.Login:
        """Sign in; later calls of this client carry the session."""
        done = self.run(calls.login(username, password))
        self._http.headers["Authorization"] = f"Bearer {done.token}"
        return done

    def logout(self) -> None:
        self.run(calls.logout())
        self._http.headers.pop("Authorization", None)
