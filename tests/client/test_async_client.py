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


async def test_a_dataset_pushed_and_outputs_fetched_without_blocking(
    server: ServerProcess, tmp_path: Path
) -> None:
    data = make_dataset(tmp_path / "data", 4, size=32)
    async with AsyncClient(server.url) as client:
        sent: list[int] = []
        keys = await client.push_dataset("shapes", data, on_bytes=sent.append)
        assert len(keys) == 8 and sum(sent) == sum(p.stat().st_size for p in data.iterdir())
        assert await client.list_datasets() == ["shapes"]
        body = job_body(data, tmp_path / "out", steps=4)
        loader = body["dataloader_config"][0]
        del loader["instance_data_dir"]
        loader["dataset"] = "shapes"
        job = await client.wait((await client.submit(body, provider="local")).job_id, interval=0.2)
        assert job.status == "completed"
        listing = await client.outputs(job.job_id)
        for item in listing.files:
            written = await client.download(item, tmp_path / "fetched")
            assert written.read_bytes() == (tmp_path / "out" / item.path).read_bytes()
        assert {f.path for f in listing.files} >= {"pytorch_lora_weights.safetensors"}
