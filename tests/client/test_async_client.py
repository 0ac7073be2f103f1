"""The asyncio client follows a running job: its log lines arrive while it trains, its status
changes come through the same stream, and a cancel ends it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudtune.client import AsyncClient, errors
from tests.e2e.test_server import ServerProcess
from tests.factories import job_body, make_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.trainer]


async def test_logs_stream_while_the_job_runs_and_a_cancel_ends_it(
    server: ServerProcess, tmp_path: Path
) -> None:
    body = job_body(make_dataset(tmp_path / "data", 4, size=32), tmp_path / "out", steps=100000)
    async with AsyncClient(server.url) as client:
        submitted = await client.submit(body, provider="local")
        lines: list[str] = []
        statuses: list[str] = []
        async for event in client.stream_logs(submitted.job_id):
            if event.event is None:
                lines.append(event.data)
                if len(lines) == 3:  # it is training: stop it from here
                    assert (await client.get_job(submitted.job_id)).status == "running"
                    assert await client.cancel_job(submitted.job_id) in ("cancelled", "running")
            elif event.event == "status":
                statuses.append(event.data)
        assert statuses[-1] == "cancelled"
        assert len(lines) >= 3
        job = await client.wait(submitted.job_id, interval=0.1)
        assert job.status == "cancelled"
        with pytest.raises(errors.JobNotFound):
            await client.get_job("no-such-job")
        with pytest.raises(errors.JobNotFound):
            async for _ in client.stream_logs("no-such-job"):
                pass
