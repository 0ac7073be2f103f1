"""The local provider with real trainer processes."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from pathlib import Path

import psutil
import pytest

from cloudtune.domain.jobs import JobStatus
from cloudtune.domain.training import build_spec
from cloudtune.errors import InvalidInputError
from cloudtune.providers.base import JobBundle, NotMine, ProviderHandle, RestoredJob
from cloudtune.providers.local import processes
from cloudtune.providers.local.provider import LocalProvider
from cloudtune.settings import LocalProviderSettings, Settings
from tests.factories import job_body, make_dataset, make_job


def provider_for(tmp_path: Path, replica_id: str | None = None, **local: object) -> LocalProvider:
    settings = Settings(
        home=tmp_path / "home",
        replica_id=replica_id,
        local=LocalProviderSettings(poll_interval_seconds=0.05, **local),  # type: ignore[arg-type]
    )
    settings.ensure_folders()
    return LocalProvider(settings)


def bundle_for(tmp_path: Path, steps: int) -> JobBundle:
    body = job_body(make_dataset(tmp_path / "data", 4, size=32), tmp_path / "out", steps=steps)
    spec = build_spec(body["config"], body["dataloader_config"])
    # Port 9 on loopback: nothing listens, so progress reports fail fast and training goes on.
    return JobBundle(spec=spec, webhook_url="http://127.0.0.1:9/x", webhook_token="t")


async def wait_for(
    provider: LocalProvider, handle: ProviderHandle, wanted: set[JobStatus], timeout: float = 90
) -> JobStatus:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status = (await provider.status(handle)).status
        if status in wanted:
            return status
        assert loop.time() < deadline, f"still {status}"
        await asyncio.sleep(0.05)


def test_it_refuses_what_it_cannot_train(tmp_path: Path) -> None:
    provider = provider_for(tmp_path)
    with pytest.raises(InvalidInputError) as caught:
        provider.check(build_spec({"model_family": "flux"}, []))
    assert caught.value.code == "unsupported_model_family"
    with pytest.raises(InvalidInputError):
        provider.check(build_spec({"max_train_steps": 3}, []))


@pytest.mark.trainer
async def test_one_job_at_a_time_on_the_cpu_and_cancel_of_a_queued_job(tmp_path: Path) -> None:
    provider = provider_for(tmp_path, max_concurrent_jobs=1)
    await provider.start(lambda: None)
    try:
        bundle = bundle_for(tmp_path, steps=100000)
        first = await provider.submit(make_job(), bundle)
        second = await provider.submit(make_job(), bundle)
        assert await wait_for(provider, first, {JobStatus.RUNNING}) == JobStatus.RUNNING
        queued = await provider.status(second)
        assert queued.status == JobStatus.QUEUED and queued.queue_position == 1
        await provider.cancel(second)
        assert (await provider.status(second)).status == JobStatus.CANCELLED
        for _ in range(600):  # let the trainer get going, so the cancel hits training
            if "step " in await provider.logs(first, tail=5):
                break
            await asyncio.sleep(0.05)
        await provider.cancel(first)
        assert await wait_for(provider, first, {JobStatus.CANCELLED}) == JobStatus.CANCELLED
        assert "training cancelled" in await provider.logs(first, tail=5)
    finally:
        await provider.stop()


@pytest.mark.trainer
async def test_a_trainer_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    stubborn = tmp_path / "stubborn-python"
    stubborn.write_text(
        f"#!{sys.executable}\n"
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ignoring SIGTERM', flush=True)\n"
        "time.sleep(600)\n"
    )
    stubborn.chmod(stubborn.stat().st_mode | stat.S_IEXEC)
    provider = provider_for(tmp_path, python=str(stubborn), cancel_grace_seconds=0.5)
    await provider.start(lambda: None)
    try:
        handle = await provider.submit(make_job(), bundle_for(tmp_path, steps=5))
        await wait_for(provider, handle, {JobStatus.RUNNING})
        pid = (await provider.status(handle)).metadata["pid"]
        await asyncio.sleep(0.3)
        await provider.cancel(handle)
        await asyncio.sleep(0.2)
        assert psutil.pid_exists(pid), "SIGTERM was ignored, so the process must still be there"
        assert await wait_for(provider, handle, {JobStatus.CANCELLED}, timeout=10)
        assert not provider.has_running_processes()
        assert not _alive(pid)
    finally:
        await provider.stop()


@pytest.mark.trainer
async def test_a_crashing_trainer_fails_with_its_error(tmp_path: Path) -> None:
    provider = provider_for(tmp_path)
    await provider.start(lambda: None)
    try:
        bundle = bundle_for(tmp_path, steps=3)
        for path in (tmp_path / "data").glob("*.png"):
            path.write_bytes(b"not an image")
        handle = await provider.submit(make_job(), bundle)
        assert await wait_for(provider, handle, {JobStatus.FAILED, JobStatus.COMPLETED}) == (
            JobStatus.FAILED
        )
        error = (await provider.status(handle)).error_message
        assert error and "UnidentifiedImageError" in error
    finally:
        await provider.stop()


@pytest.mark.trainer
async def test_a_new_provider_re_adopts_a_live_trainer_and_fails_a_dead_one(
    tmp_path: Path,
) -> None:
    first = provider_for(tmp_path)
    await first.start(lambda: None)
    live_job, dead_job = make_job(status=JobStatus.RUNNING), make_job(status=JobStatus.RUNNING)
    bundle = bundle_for(tmp_path, steps=100000)
    live = await first.submit(live_job, bundle)
    await wait_for(first, live, {JobStatus.RUNNING})
    live_pid = (await first.status(live)).metadata["pid"]
    await first.stop()  # the server goes away; its trainer keeps running

    # A job whose trainer died with the server: it left a process record and no result.
    dead_dir = tmp_path / "home" / "runs" / dead_job.job_id
    dead_dir.mkdir(parents=True)
    (dead_dir / "process.json").write_text(
        '{"pid": 999999, "create_time": 1.0, "started_at": "2026-01-01T00:00:00+00:00"}'
    )
    second = provider_for(tmp_path)
    await second.restore(
        [
            RestoredJob(live_job, live, "http://127.0.0.1:9/x", "t"),
            RestoredJob(
                dead_job, ProviderHandle(ref=dead_job.job_id), "http://127.0.0.1:9/x", "t"
            ),
        ]
    )
    await second.start(lambda: None)
    try:
        status = await second.status(live)
        assert status.status == JobStatus.RUNNING and status.metadata["pid"] == live_pid
        dead = await second.status(ProviderHandle(ref=dead_job.job_id))
        assert dead.status == JobStatus.FAILED and "no longer running" in (
            dead.error_message or ""
        )
        await second.cancel(live)
        assert await wait_for(second, live, {JobStatus.CANCELLED}, timeout=20)
        # In this test the first provider is still its parent, so the ended trainer waits as
        # a zombie to be reaped; after a real restart the system reaps it.
        assert not _alive(live_pid)
        os.waitpid(live_pid, 0)
    finally:
        await second.stop()
        if _alive(live_pid):
            os.killpg(live_pid, signal.SIGKILL)


@pytest.mark.trainer
async def test_a_job_another_replica_holds_is_not_judged_nor_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas on one host and home folder (the harshest case: the run folder is there):
    the one that did not start the job answers NotMine, cancels nothing, restores nothing."""
    first = provider_for(tmp_path, replica_id="a")
    await first.start(lambda: None)
    job = make_job(status=JobStatus.RUNNING)
    try:
        handle = await first.submit(job, bundle_for(tmp_path, steps=100000))
        await wait_for(first, handle, {JobStatus.RUNNING})
        pid = (await first.status(handle)).metadata["pid"]
        signals: list[int] = []
        with monkeypatch.context() as patch:
            patch.setattr(
                processes.TrainerProcess, "signal_group", lambda _, sig: signals.append(sig)
            )
            other = provider_for(tmp_path, replica_id="b")
            await other.restore([RestoredJob(job, handle, "http://127.0.0.1:9/x", "t")])
            assert not other.holds(handle) and first.holds(handle)
            assert await other.status(handle) == NotMine(owner="a")
            await other.cancel(handle)
            assert not other.has_running_processes() and signals == []
        assert _alive(pid)
        assert (await first.status(handle)).status == JobStatus.RUNNING
        # An owner's name it does not know; a handle from before owners were recorded is
        # held by the replica whose home has its run folder.
        legacy = ProviderHandle(ref=job.job_id)
        assert other.holds(legacy)
        assert not other.holds(ProviderHandle(ref="elsewhere"))
        await first.cancel(handle)
        assert await wait_for(first, handle, {JobStatus.CANCELLED}) == JobStatus.CANCELLED
    finally:
        await first.stop()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_a_job_that_ended_is_never_queued_again_by_a_restart(tmp_path: Path) -> None:
    """A job cancelled while its replica was down comes back with its cancel request: with no
    trainer left running, it must not wait in line (and start) again."""
    provider = provider_for(tmp_path, replica_id="a")
    job = make_job(status=JobStatus.CANCELLED)
    run_dir = tmp_path / "home" / "runs" / job.job_id
    run_dir.mkdir(parents=True)  # submitted, never started
    handle = ProviderHandle(ref=job.job_id, data={"owner": "a", "run_dir": str(run_dir)})
    await provider.restore([RestoredJob(job, handle, "http://127.0.0.1:9/x", "t")])
    assert (await provider.status(handle)).status.is_terminal
    await provider.cancel(handle)  # nothing to stop
    assert not provider.has_running_processes()


@pytest.mark.trainer
async def test_a_live_trainer_of_an_ended_job_is_re_adopted_and_stopped_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its cancel was taken by another replica while this one was down: the trainer (here a
    process standing in for one) is watched again, and a cancel asked again while it stops
    does not signal it again (that would put the SIGKILL off by another grace)."""
    provider = provider_for(tmp_path, replica_id="a", cancel_grace_seconds=30.0)
    job = make_job(status=JobStatus.CANCELLED)
    run_dir = tmp_path / "home" / "runs" / job.job_id
    run_dir.mkdir(parents=True)
    trainer = processes.start(
        [sys.executable, "-c", "import time; time.sleep(600)"], run_dir=run_dir, env={}
    )
    signals: list[int] = []
    send = processes.TrainerProcess.signal_group

    def recorded(process: processes.TrainerProcess, sig: int) -> None:
        signals.append(sig)
        send(process, sig)

    monkeypatch.setattr(processes.TrainerProcess, "signal_group", recorded)
    handle = ProviderHandle(ref=job.job_id, data={"owner": "a", "run_dir": str(run_dir)})
    await provider.restore([RestoredJob(job, handle, "http://127.0.0.1:9/x", "t")])
    await provider.start(lambda: None)
    try:
        running = await provider.status(handle)
        assert running.status == JobStatus.RUNNING and running.metadata["pid"] == trainer.pid
        await provider.cancel(handle)
        await provider.cancel(handle)
        assert signals == [signal.SIGTERM]
        assert await wait_for(provider, handle, {JobStatus.CANCELLED}, timeout=20)
    finally:
        await provider.stop()
        if trainer.popen is not None:
            trainer.popen.kill()
            trainer.popen.wait()
