"""The Python SDK: a small typed client of cloudtune's HTTP API (the CLI uses only this)."""

from __future__ import annotations

from typing import Any

import httpx


class ClientError(Exception):
    """An error answer from the server, with its code and detail."""

    def __init__(self, status: int, code: str, detail: Any) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class Client:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8001",
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit(self, body: dict[str, Any], *, provider: str = "local") -> dict[str, Any]:
        return self._call(
            "POST", "/api/cloud/jobs/submit", params={"provider": provider}, json=body
        )

    def list_jobs(
        self, *, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return self._call("GET", "/api/cloud/jobs", params=params)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/cloud/jobs/{job_id}")["job"]  # type: ignore[no-any-return]

    def logs(self, job_id: str, *, tail: int | None = None) -> str:
        params = {"tail": tail} if tail is not None else None
        return self._call("GET", f"/api/cloud/jobs/{job_id}/logs", params=params)["logs"]  # type: ignore[no-any-return]

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/cloud/jobs/{job_id}/cancel")

    def delete(self, job_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/api/cloud/jobs/{job_id}")

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._http.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text}
        if response.status_code >= 400:
            raise ClientError(
                response.status_code, str(body.get("code", "error")), body.get("detail")
            )
        return body  # type: ignore[no-any-return]
