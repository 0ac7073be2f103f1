"""A job's publish state is part of its JSON, in the list and the detail alike."""

from __future__ import annotations

import httpx

from cloudtune.domain.deliveries import DeliveryKind
from cloudtune.domain.jobs import JobStatus, utcnow
from cloudtune.store import deliveries
from tests.factories import create_job


async def test_the_list_and_the_detail_show_where_a_job_publishes(
    client: httpx.AsyncClient,
) -> None:
    db = client.app.state.ctx.db  # type: ignore[attr-defined]
    quiet = create_job(db, status=JobStatus.COMPLETED)
    job = create_job(db, status=JobStatus.COMPLETED)
    now = utcnow()
    with db.write() as session:
        deliveries.plan(session, job.job_id, DeliveryKind.HUB, at=now, settings={"repo_id": "a/b"})
        deliveries.take(session, [DeliveryKind.HUB], now=now, claim_for=now - now)
        deliveries.finish(session, job.job_id, DeliveryKind.HUB, at=now, error="401 Unauthorized")
    listed = (await client.get("/api/cloud/jobs")).json()["jobs"]
    by_id = {item["job_id"]: item for item in listed}
    assert by_id[quiet.job_id]["publish"] is None and by_id[quiet.job_id]["publish_error"] is None
    for shown in (
        by_id[job.job_id],
        (await client.get(f"/api/cloud/jobs/{job.job_id}")).json()["job"],
    ):
        assert shown["publish"]["hub"]["status"] == "failed"
        assert shown["publish"]["hub"]["repo_id"] == "a/b"
        assert "401 Unauthorized" in shown["publish_error"]
