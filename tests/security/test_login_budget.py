"""Finding 4: login budgets are held by the database and reserved before the password check,
so concurrent guesses cannot outrun them; username and e-mail are one account."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from cloudtune.settings import Settings
from cloudtune.store import users as user_store
from cloudtune.store.db import Database
from cloudtune.store.tables import LoginBudgetModel
from tests.api.routes.test_jobs import assert_envelope
from tests.security.auth_support import (
    ADMIN,
    first_admin,
    freeze_clock,
    password_checks,
    peer,
    running_app,
)

ADDRESSES = [f"10.0.0.{n}" for n in range(1, 5)]
# One account under four spellings: the budget must not care which one is used.
LOGIN_NAMES = ["admin", "admin@example.com", "ADMIN", "Admin@Example.COM"]


async def test_80_concurrent_wrong_passwords_from_4_addresses_get_at_most_5_checks(
    settings: Settings,
) -> None:
    async with running_app(settings) as app:
        frozen = freeze_clock(app)
        await first_admin(app)
        before = password_checks(app)
        clients = [peer(app, address) for address in ADDRESSES]
        try:
            responses = await asyncio.gather(
                *(
                    clients[i % 4].post(
                        "/api/auth/login",
                        json={"username": LOGIN_NAMES[(i // 4) % 4], "password": f"guess-{i}"},
                    )
                    for i in range(80)
                )
            )
        finally:
            for client in clients:
                await client.aclose()
        checks = password_checks(app) - before
        refused = [r for r in responses if r.status_code == 429]
        wrong = [r for r in responses if r.status_code == 401]
        assert checks <= 5, checks
        # No refill (frozen clock): exactly the account's 5 tokens reached argon2.
        assert len(wrong) == checks == 5
        assert len(refused) == 75
        for response in refused:
            assert_envelope(response, 429, "rate_limited")
            assert int(response.headers["Retry-After"]) >= 1
        for response in wrong:
            assert_envelope(response, 401, "invalid_credentials")

        # The right password from a fresh address is refused too: the account is out of tokens,
        # and no password is checked for it.
        async with peer(app, "10.0.0.9") as fresh:
            good = {"username": ADMIN["email"], "password": ADMIN["password"]}
            limited = await fresh.post("/api/auth/login", json=good)
            assert_envelope(limited, 429, "rate_limited")
            assert int(limited.headers["Retry-After"]) == 60  # one token back per minute
            assert password_checks(app) - before == 5
            # A minute later one attempt is back; the owner's success refills the account.
            app.state.ctx.clock = lambda: frozen + timedelta(seconds=60)
            assert (await fresh.post("/api/auth/login", json=good)).status_code == 200
            wrong_again = [
                (await fresh.post("/api/auth/login", json={"username": "admin", "password": "x"}))
                for _ in range(6)
            ]
        assert [r.status_code for r in wrong_again] == [401] * 5 + [429]


async def test_wrong_passwords_are_logged_with_their_address(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """What lets an admin see who keeps an account rate-limited (docs/security.md)."""
    async with running_app(settings) as app:
        await first_admin(app)
        async with peer(app, "10.0.9.9") as client:
            for name in ("admin", "correct-horse-typed-as-a-name"):
                response = await client.post(
                    "/api/auth/login", json={"username": name, "password": "wrong password"}
                )
                assert_envelope(response, 401, "invalid_credentials")
    failed = [r.getMessage() for r in caplog.records if "failed login" in r.getMessage()]
    assert failed == [
        "failed login for admin from 10.0.9.9",
        "failed login for an unknown name from 10.0.9.9",
    ]


async def test_an_address_gets_20_attempts_a_minute_across_accounts(settings: Settings) -> None:
    async with running_app(settings) as app:
        frozen = freeze_clock(app)
        await first_admin(app)
        async with peer(app, "192.0.2.7") as attacker:
            codes = [
                (
                    await attacker.post(
                        "/api/auth/login", json={"username": f"user{i}", "password": "guess"}
                    )
                ).status_code
                for i in range(21)
            ]
            assert codes == [401] * 20 + [429]
            # Another address is not affected; this one refills with time.
            async with peer(app, "192.0.2.8") as other:
                ok = await other.post(
                    "/api/auth/login", json={"username": "admin", "password": ADMIN["password"]}
                )
                assert ok.status_code == 200, ok.text
            app.state.ctx.clock = lambda: frozen + timedelta(seconds=3)
            again = await attacker.post(
                "/api/auth/login", json={"username": "nobody", "password": "guess"}
            )
            assert_envelope(again, 401, "invalid_credentials")


async def test_one_ipv6_host_is_one_address_per_64(settings: Settings) -> None:
    async with running_app(settings) as app:
        freeze_clock(app)
        codes = []
        for i in range(21):
            async with peer(app, f"2001:db8:1:2::{i + 1:x}") as client:
                response = await client.post(
                    "/api/auth/login", json={"username": f"user{i}", "password": "guess"}
                )
                codes.append(response.status_code)
        assert codes == [401] * 20 + [429]


def test_take_login_token_is_a_token_bucket(db: Database) -> None:
    def take(now: float) -> bool:
        with db.write() as session:
            return user_store.take_login_token(session, "k", 3, 0.5, now)

    assert [take(1000.0) for _ in range(4)] == [True, True, True, False]
    assert take(1001.0) is False  # half a token back
    assert take(1002.0) is True  # a whole one (the half spent nothing)
    assert take(1002.0) is False
    assert take(900.0) is False  # a clock that went backwards refills nothing
    with db.read() as session:
        wait = user_store.login_token_wait(session, "k", 3, 0.5, 1002.0)
    assert wait == 2
    assert take(1100.0) and take(1100.0) and take(1100.0) and not take(1100.0)  # capped at 3
    with db.write() as session:
        user_store.refill_login_budget(session, "k")
    assert take(1100.0)
    with db.write() as session:
        user_store.delete_idle_login_budgets(session, 1100.5)
    with db.read() as session:
        assert session.scalars(select(LoginBudgetModel)).all() == []


async def test_concurrent_first_attempts_on_a_new_key_share_one_bucket(db: Database) -> None:
    """The INSERT ... ON CONFLICT path: many first attempts at once still spend one bucket."""

    def take() -> bool:
        with db.write() as session:
            return user_store.take_login_token(session, "fresh", 5, 0.0, 1000.0)

    results = await asyncio.gather(*(asyncio.to_thread(take) for _ in range(30)))
    assert sorted(results) == [False] * 25 + [True] * 5


async def test_proxy_headers_do_not_pick_the_budget(settings: Settings) -> None:
    """X-Forwarded-For from an untrusted peer is ignored: every guess spends the peer's own
    budget."""
    async with running_app(settings) as app:
        freeze_clock(app)
        async with peer(app, "198.51.100.1") as attacker:
            codes = []
            for i in range(21):
                response = await attacker.post(
                    "/api/auth/login",
                    json={"username": f"u{i}", "password": "guess"},
                    headers={"X-Forwarded-For": f"203.0.113.{i}"},
                )
                codes.append(response.status_code)
        assert codes == [401] * 20 + [429]
