from __future__ import annotations

from datetime import timedelta

import pytest

from cloudtune.domain.jobs import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATUSES,
    JobStatus,
    Progress,
    can_transition,
    utcnow,
)
from tests.factories import make_job


class TestTransitionTable:
    def test_every_status_has_a_row(self) -> None:
        assert set(ALLOWED_TRANSITIONS) == set(JobStatus)

    @pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
    def test_terminal_statuses_go_nowhere(self, terminal: JobStatus) -> None:
        assert all(not can_transition(terminal, s) for s in JobStatus)

    def test_late_running_after_cancel_is_refused(self) -> None:
        assert not can_transition(JobStatus.CANCELLED, JobStatus.RUNNING)

    @pytest.mark.parametrize(
        ("current", "new"),
        [
            ("pending", "uploading"),
            ("pending", "queued"),
            ("uploading", "queued"),
            ("queued", "running"),
            ("running", "completed"),
            ("running", "failed"),
            ("running", "cancelled"),
            ("queued", "cancelled"),
        ],
    )
    def test_forward_moves_are_allowed(self, current: str, new: str) -> None:
        assert can_transition(JobStatus(current), JobStatus(new))

    @pytest.mark.parametrize(
        ("current", "new"),
        [
            ("running", "queued"),
            ("running", "pending"),
            ("queued", "uploading"),
            ("queued", "pending"),
        ],
    )
    def test_backward_moves_are_refused(self, current: str, new: str) -> None:
        assert not can_transition(JobStatus(current), JobStatus(new))

    def test_exactly_the_active_statuses_can_still_move(self) -> None:
        movable = {s for s in JobStatus if any(can_transition(s, t) for t in JobStatus)}
        assert movable == {s for s in JobStatus if s.is_active}


class TestJob:
    def test_duration_freezes_at_completion(self) -> None:
        start = utcnow() - timedelta(hours=2)
        job = make_job(started_at=start, completed_at=start + timedelta(minutes=90))
        assert job.duration_seconds() == 5400.0

    def test_cost_is_price_times_billed_seconds_in_micros(self) -> None:
        start = utcnow() - timedelta(hours=3)
        job = make_job(
            started_at=start,
            completed_at=start + timedelta(minutes=90),
            price_per_hour_micros=2_000_000,
        )
        assert job.billed_cost_micros() == 3_000_000

    def test_progress_percent(self) -> None:
        assert Progress(step=15, total_steps=30).percent == 50.0
        assert Progress(step=None, total_steps=30).percent is None
        assert Progress.from_dict(Progress(step=3, total_steps=4).to_dict()).step == 3
