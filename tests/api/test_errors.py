"""The error envelope: one shape for every refusal, with the message also under `error`, where
scripts written for the reference server read it (`jq .error`)."""

from __future__ import annotations

import httpx


async def test_a_domain_error_carries_its_message_under_error(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/cloud/jobs/nosuchjob")
    assert response.status_code == 404
    body = response.json()
    assert body["success"] is False and body["code"] == "job_not_found"
    assert body["error"] == body["detail"] == "Job not found: nosuchjob"


async def test_a_validation_error_keeps_its_problems_and_sums_them_up(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/cloud/jobs/submit", json={"config": {}, "priority": "first"}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    [problem] = body["detail"]
    assert problem["loc"] == ["body", "priority"]
    assert body["error"] == f"body.priority: {problem['msg']}"


async def test_an_unknown_path_is_the_same_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/cloud/nothing-here")
    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "code": "not_found",
        "detail": "Not Found",
        "error": "Not Found",
    }


async def test_a_message_quoting_a_lone_surrogate_is_still_a_400(
    client: httpx.AsyncClient,
) -> None:
    # "\ud800" in JSON decodes to text no encoder can write; a message quoting it must not
    # turn the refusal into a 500.
    body = '{"config": {"--max_train_steps": 10}, "hardware_profile": "\\ud800"}'
    response = await client.post(
        "/api/cloud/cost-estimate", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert "\\ud800" in response.json()["error"]


async def test_a_long_quoted_value_is_cut_in_the_message(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/cloud/cost-limit/status", params={"provider": "x" * 60_000})
    assert response.status_code == 400, response.text
    assert len(response.text) < 10_000 and response.json()["error"].endswith("…")
