"""Scripts written for the reference server keep working: every request recorded from it
(../shared/reference/simpletuner-responses/) is replayed against a real server process, and every
key its answer has at the top level and in each job, config, provider, key, user and metrics item
must be in ours with the same JSON type, unless docs/api.md names the difference as deliberate.

A recorded failure (an error status, or 200 with `success: false`) may be a success here (we serve
more, or refuse less) and then its shape is checked as the success it stands for; a failure here
must be a failure there too, answered in our envelope with the message under `error`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_server import ServerProcess
from tests.factories import make_dataset
from tests.fakes.replicate import FakeReplicate

pytestmark = [pytest.mark.e2e, pytest.mark.trainer]

SHARED = Path(__file__).resolve().parents[3] / "shared"
RECORDINGS = SHARED / "reference" / "simpletuner-responses"
API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"

# Recordings not replayed, each with why: they ask for that machine's state or for parts of the
# reference server outside its cloud API.
SKIPPED = {
    "a-defaults": "the reference server's own web UI settings (/api/webui), not its cloud API",
    "a-queue-submit": "the reference server's local training queue (/api/queue), not its cloud "
    "API; local jobs are submitted here with ?provider=local",
    "a-queue-submit2": "as a-queue-submit",
}

# The replay's order: the state each recording was made in (no users first, then the first admin
# and a session), each name once. A recording missing from here fails the test.
NO_USERS = """
health check me setup-status cfg-list-empty
validate versions billing prov-list prov-cfg-Apath prov-cfg-Bpath prov-local
prov-put-bad prov-put-Apath prov-put-Apath-get prov-put-Bpath
tok-Astyle-empty tok-Astyle-badfmt tok-Bstyle-badfmt tok-set validate-tok versions-tok billing-tok
prov-list-tok hw
cl-_api_cloud_cost-limit_status cl-_api_metrics_cost-limit_status cl-_api_cloud_metrics_cost-limit
cl-put cl-A-after
cfg-create-bad cfg-create-badjson cfg-create-badname cfg-badfamily cfg-del
cfg-create-A cfg-create cfg-create-dup cfg-create-noslash-A
cfg-get-missing cfg-get cfg-get2 cfg-put cfg-put-A-new
cfg-list cfg-list-slash cfg-list-noslash cfg-list2 cfg-del-missing cfg-del-z2
sub-badjson sub-badtype sub-badprov sub-empty sub-empty-repl sub-missing-config
sub-missing-config-repl sub-local-inline sub-default-provider-name sub-replicate-name anon-sub
A-cl-warn A-cl-status A-cl-block
list limit1 list-badtype list-limit0 list-limit1000 list-provider list-status-bogus
list-status-multi list-status-running list-sync
get-A-local get-A-run inline-A logs-A-cloud logs-A-local logs-A-queued
unk-get unk-cancel unk-delete unk-logs unk-stream
metrics metrics-days metrics-baddays cloud-metrics
sync sync-nobody
cancel-A cancel2-A cancel-done-A get-cancelled-A del-active-A del-A del-again-A
key-create-bad key-expires1000 key-create-badscope key-create-Apath key-create-Bpath
key-list-Apath key-del-missing
wh-empty wh-empty-auth wh-status
tok-del tok-del2 tok-del3 validate-after
""".split()
WITH_USERS = """
first-admin first-admin2 setup-status2 me-final mu-configs mu-sub mu-sub-replay mu-list
mu-metrics logout
""".split()

# Where the items are compared key by key (elsewhere only the type of a value is): `[]` is
# each item of a list, compared against every recorded item.
ITEMS = {
    "[]",
    "job",
    "jobs[]",
    "configs[]",
    "metadata",
    "providers[]",
    "providers[].hardware_profiles[]",
    "cost_by_day[]",
    "key_info",
    "user",
    "hardware[]",
}

# Keys of the reference's answers we leave out or type differently on purpose, as `where.key`;
# docs/api.md names each (its last part, in backticks).
_SECRET = "a job's upload token is a secret: job JSON never carries one"
_IDS = "ids are opaque strings here, integers there"
_ORGS = "no organisations, teams or per-resource rules here"
_LEVELS = "one role per user here, not a list of levels"
_TEMPLATES = "no config templates or tags here"
DIFFERENCES: dict[str, str] = {
    "jobs[].upload_token": _SECRET,
    "job.upload_token": _SECRET,
    "id": _IDS,
    "[].id": _IDS,
    "key_info.id": _IDS,
    "user.id": _IDS,
    "avatar_url": "no avatars here",
    "user.avatar_url": "no avatars here",
    "email_verified": "no e-mail verification here",
    "user.email_verified": "no e-mail verification here",
    "levels": _LEVELS,
    "user.levels": _LEVELS,
    "user.resource_rules": _ORGS,
    "user.org_id": _ORGS,
    "user.organization": _ORGS,
    "user.teams": _ORGS,
    "metadata.tags": _TEMPLATES,
    "metadata.is_template": _TEMPLATES,
    "metadata.parent_template": _TEMPLATES,
    "configs[].tags": _TEMPLATES,
    "configs[].is_template": _TEMPLATES,
    "configs[].parent_template": _TEMPLATES,
}
# Requests the reference answers 200 and we refuse on purpose; docs/api.md names each path.
REFUSED_ON_PURPOSE = {
    "versions": "without a token there is nothing to list: 400 missing_token, not 200",
    "list-status-bogus": "an unknown status filter is 400, not an empty list",
    "key-create-badscope": "a key scoped to a permission that does not exist is 400",
}


@dataclass
class Recording:
    name: str
    method: str
    path: str
    body: str | None
    status: int
    answer: Any

    @classmethod
    def load(cls, name: str) -> Recording:
        raw = json.loads((RECORDINGS / f"{name}.json").read_text())
        method, path, body = raw["req"]
        return cls(name, method, path, body, raw["status"], raw["body"])

    @property
    def failed(self) -> bool:
        answer = self.answer
        return self.status >= 300 or (isinstance(answer, dict) and answer.get("success") is False)


@dataclass
class Replay:
    server: ServerProcess
    fake: FakeReplicate
    data: Path
    ids: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def substitute(self, text: str) -> str:
        for recorded, ours in self.ids.items():
            text = text.replace(recorded, ours)
        text = text.replace("r8_dummy0000000000000000000000000000000", self.fake.token)
        text = text.replace("/data/", f"{self.data}/")
        return text.replace("~/output/", f"{self.data}/output/")

    def send(self, recording: Recording) -> httpx.Response:
        body = self.substitute(recording.body) if recording.body is not None else None
        headers = dict(self.headers)
        if body is not None:
            headers["content-type"] = "application/json"
        return httpx.request(
            recording.method,
            self.server.url + self.substitute(recording.path),
            content=body,
            headers=headers,
            timeout=30,
        )

    def check(self, recording: Recording) -> httpx.Response:
        response = self.send(recording)
        where = f"{recording.name} ({recording.method} {recording.path} -> {response.status_code})"
        ours = _json(response)
        if response.status_code >= 300:
            if not recording.failed and recording.name not in REFUSED_ON_PURPOSE:
                self.problems.append(f"{where}: fails here, answered {recording.status} there")
            if not (isinstance(ours, dict) and isinstance(ours.get("error"), str)):
                self.problems.append(f"{where}: no `error` message in {ours!r}"[:300])
            return response
        if recording.failed and recording.status >= 300:
            return response  # we serve or allow what it refused: its error body is no shape
        self.problems.extend(f"{where}: {p}" for p in compare(recording.answer, ours, ""))
        return response


def _json(response: httpx.Response) -> Any:
    if not response.headers.get("content-type", "").startswith("application/json"):
        return response.text
    return response.json()


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def compare(recorded: Any, ours: Any, where: str) -> Iterator[str]:
    """What ours lacks of the recorded answer's keys, or has with another JSON type. Null on
    either side matches any type: it says a value is absent now, not what it would be."""
    if recorded is None or ours is None or where in DIFFERENCES:
        return
    if _kind(recorded) != _kind(ours):
        yield f"{where or 'the answer'} is {_kind(ours)} here, {_kind(recorded)} there"
        return
    if isinstance(recorded, list):
        if f"{where}[]" in ITEMS:
            for ours_item in ours:
                for item in recorded:
                    yield from compare(item, ours_item, f"{where}[]")
        return
    if not isinstance(recorded, dict) or (where and where not in ITEMS):
        return
    for key, value in recorded.items():
        path = f"{where}.{key}" if where else key
        if key not in ours:
            if path not in DIFFERENCES:
                yield f"{path} is missing"
        else:
            yield from compare(value, ours[key], path)


def test_every_recording_has_a_place() -> None:
    recorded = {p.stem for p in RECORDINGS.glob("*.json")}
    placed = NO_USERS + WITH_USERS
    assert len(placed) == len(set(placed)), "a recording placed twice"
    assert recorded - set(placed) - set(SKIPPED) == set()
    assert set(placed) - recorded == set()


def test_deliberate_differences_are_documented() -> None:
    doc = API_DOC.read_text()
    for path in DIFFERENCES:
        assert f"`{path.split('.')[-1].lstrip('[]')}`" in doc, path
    for name in REFUSED_ON_PURPOSE:
        recording = Recording.load(name)
        spellings = (recording.path, recording.path.split("?")[0])
        assert any(f"`{recording.method} {p}`" in doc for p in spellings), recording.path


@pytest.fixture
def replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Replay]:
    fake = FakeReplicate(run_for=600).start()
    data = tmp_path / "data"
    make_dataset(data / "datasets" / "shapes", 4, size=32)
    (data / "output").mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    for name, value in {
        "CLOUDTUNE_REPLICATE_BASE_URL": fake.base_url,
        "CLOUDTUNE_REPLICATE_OUTPUT_HOSTS": fake.file_origin,
        "CLOUDTUNE_DATA_ROOTS": str(data),
        "CLOUDTUNE_OUTPUT_ROOT": str(data),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    server = ServerProcess(home, f"sqlite:///{home / 'cloudtune.db'}")
    server.start()
    try:
        yield Replay(server, fake, data)
    finally:
        server.stop()
        fake.stop()


def test_recorded_requests_get_answers_of_the_same_shape(replay: Replay) -> None:
    for name in NO_USERS:
        if name == "list":
            _make_jobs(replay)
        if name == "cfg-del-z2":  # a config the recording machine had
            made = replay.server.post("/api/configs", json={"name": "z2", "config": {"a": 1}})
            assert made.status_code == 201, made.text
        replay.check(Recording.load(name))
    for name in WITH_USERS:
        response = replay.check(Recording.load(name))
        if name == "first-admin":
            replay.headers = {"authorization": f"Bearer {response.json()['token']}"}
    problems = list(dict.fromkeys(replay.problems))
    assert not problems, "\n".join(problems)


def _make_jobs(replay: Replay) -> None:
    """Jobs standing for the recording's: two active (980ad9e7, a641711d), one running
    (c0ffee00-1111…), one finished (deadbeef, c0ffee00-2222…)."""
    body = {"config_name_to_load": "shapes"}
    made = []
    for _ in range(3):
        answer = replay.server.post(
            "/api/cloud/jobs/submit?provider=replicate", json=body, headers=replay.headers
        )
        assert answer.status_code == 200, answer.text
        made.append(answer.json()["job_id"])
    done = replay.server.post(
        "/api/cloud/jobs/submit?provider=replicate", json=body, headers=replay.headers
    ).json()["job_id"]
    replay.ids.update(
        {
            "980ad9e7": made[0],
            "a641711d": made[1],
            "c0ffee00-1111-4222-8333-444455556666": made[2],
            "c0ffee00-2222-4222-8333-444455556666": done,
            "deadbeef": done,
        }
    )
