"""Finding 10 (numbers): integer query parameters and money have declared bounds, so a value a
64-bit column cannot hold, or 1e300 dollars, is a 400/422 and never a 500. On both databases:
the job list's offset reaches the database."""

from __future__ import annotations

import httpx
import pytest

from tests.api.routes.test_jobs import assert_envelope
from tests.factories import create_job

INT64_MAX = 2**63 - 1
# Values past every bound: just over 64 bits, far over, far under, and too long to be a number.
OUT_OF_RANGE = [str(2**63), str(2**64), str(10**30), str(-(2**63) - 1), "9" * 5000]
COST_LIMIT = "/api/cloud/metrics/cost-limit"


class TestIntegerQueries:
    @pytest.mark.parametrize("value", OUT_OF_RANGE + ["-1"])
    async def test_job_list_offset_past_64_bits_is_a_400(
        self, client: httpx.AsyncClient, value: str
    ) -> None:
        response = await client.get("/api/cloud/jobs", params={"offset": value})
        assert_envelope(response, 400, "invalid_filter")

    async def test_the_largest_declared_offset_is_answered(
        self, client: httpx.AsyncClient
    ) -> None:
        create_job(client.app.state.ctx.db)  # type: ignore[attr-defined]
        response = await client.get("/api/cloud/jobs", params={"offset": INT64_MAX})
        assert response.status_code == 200, response.text
        assert response.json()["jobs"] == [] and response.json()["total"] == 1

    @pytest.mark.parametrize("value", OUT_OF_RANGE + ["0", "501"])
    async def test_job_list_limit_outside_1_to_500_is_a_400(
        self, client: httpx.AsyncClient, value: str
    ) -> None:
        response = await client.get("/api/cloud/jobs", params={"limit": value})
        assert_envelope(response, 400, "invalid_filter")

    @pytest.mark.parametrize("value", OUT_OF_RANGE + ["0", "366"])
    async def test_metrics_days_outside_1_to_365_is_refused(
        self, client: httpx.AsyncClient, value: str
    ) -> None:
        response = await client.get("/api/metrics", params={"days": value})
        assert response.status_code in (400, 422), response.text

    async def test_log_tail_of_any_size_is_never_a_500(self, client: httpx.AsyncClient) -> None:
        job = create_job(client.app.state.ctx.db)  # type: ignore[attr-defined]
        for value in OUT_OF_RANGE:
            response = await client.get(
                f"/api/cloud/jobs/{job.job_id}/logs", params={"tail": value}
            )
            assert response.status_code < 500, (value, response.text)

    async def test_declared_bounds_are_in_the_schema(self, client: httpx.AsyncClient) -> None:
        paths = (await client.get("/openapi.json")).json()["paths"]
        listed = {p["name"]: p["schema"] for p in paths["/api/cloud/jobs"]["get"]["parameters"]}
        assert listed["offset"]["minimum"] == 0 and listed["offset"]["maximum"] == INT64_MAX
        assert listed["limit"]["minimum"] == 1 and listed["limit"]["maximum"] == 500
        metrics = {p["name"]: p["schema"] for p in paths["/api/metrics"]["get"]["parameters"]}
        assert metrics["days"]["minimum"] == 1 and metrics["days"]["maximum"] == 365


class TestMoney:
    @pytest.mark.parametrize(
        "limit_usd",
        [1e300, -1, 1_000_000.01, "NaN", "Infinity", "-0.5", "1e999999", True, [], {}, "ten"],
    )
    async def test_cost_limit_out_of_bounds_is_a_400(
        self, client: httpx.AsyncClient, limit_usd: object
    ) -> None:
        response = await client.put(COST_LIMIT, json={"enabled": True, "limit_usd": limit_usd})
        assert_envelope(response, 400, "invalid_setting")
        assert (await client.get(COST_LIMIT)).json()["limit_usd"] == 0

    @pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
    async def test_cost_limit_non_finite_json_is_refused(
        self, client: httpx.AsyncClient, literal: bytes
    ) -> None:
        body = b'{"enabled": true, "limit_usd": ' + literal + b"}"
        response = await client.put(
            COST_LIMIT, content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code in (400, 422), response.text

    @pytest.mark.parametrize("limit_usd", [0, 0.002, 1_000_000, "12.50"])
    async def test_cost_limit_within_bounds_is_kept(
        self, client: httpx.AsyncClient, limit_usd: object
    ) -> None:
        response = await client.put(COST_LIMIT, json={"enabled": True, "limit_usd": limit_usd})
        assert response.status_code == 200, response.text
        assert response.json()["limit_usd"] == float(limit_usd)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "literal", [b"1e300", b"NaN", b"Infinity", b"-1", b"0", b"1000000.5", b'"lots"']
    )
    async def test_submit_max_cost_out_of_bounds_is_a_422(
        self, client: httpx.AsyncClient, literal: bytes
    ) -> None:
        body = b'{"config": {"--model_family": "reference"}, "max_cost_usd": ' + literal + b"}"
        response = await client.post(
            "/api/cloud/jobs/submit?provider=local",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert_envelope(response, 422, "validation_error")
        assert (await client.get("/api/cloud/jobs")).json()["total"] == 0
