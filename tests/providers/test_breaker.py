"""The circuit breaker's states on an injected clock: closed, open, half-open, closed again."""

from __future__ import annotations

from cloudtune.providers.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tripped(clock: Clock, *, cooldown: float = 30.0) -> CircuitBreaker:
    breaker = CircuitBreaker(threshold=3, window=10, cooldown=cooldown, clock=clock)
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    return breaker


def test_failures_in_a_row_open_it_and_calls_fail_fast() -> None:
    clock = Clock()
    breaker = tripped(clock)
    assert breaker.is_open and not breaker.allow()
    clock.now += 10
    assert breaker.retry_in() == 20.0 and not breaker.allow()


def test_a_success_between_failures_keeps_it_closed() -> None:
    breaker = CircuitBreaker(threshold=3, window=10, clock=Clock())
    for outcome in (False, False, True, False, False, True):
        assert breaker.allow()
        breaker.record_success() if outcome else breaker.record_failure()
    assert not breaker.is_open


def test_a_mostly_failing_window_opens_it_without_a_run_of_failures() -> None:
    breaker = CircuitBreaker(threshold=100, window=5, failure_share=0.8, clock=Clock())
    for outcome in (False, False, True, False, False):
        breaker.record_success() if outcome else breaker.record_failure()
    assert breaker.is_open


def test_after_the_cooldown_exactly_one_trial_goes_through() -> None:
    clock = Clock()
    breaker = tripped(clock)
    clock.now += 30
    assert not breaker.is_open
    assert breaker.allow()  # the trial
    assert not breaker.allow() and not breaker.allow()  # others still fail fast
    assert breaker.retry_in() == 0.0


def test_a_successful_trial_closes_it() -> None:
    clock = Clock()
    breaker = tripped(clock)
    clock.now += 30
    assert breaker.allow()
    breaker.record_success()
    assert all(breaker.allow() for _ in range(5))


def test_a_failed_trial_opens_it_for_another_full_cooldown() -> None:
    clock = Clock()
    breaker = tripped(clock)
    clock.now += 30
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.is_open and breaker.retry_in() == 30.0
    clock.now += 29.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()
