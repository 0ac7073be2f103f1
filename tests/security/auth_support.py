"""The app in process, reached from chosen peer addresses (the ASGI `client`), for the auth
regression tests; and the few calls they share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import httpx
from fastapi import FastAPI

from cloudtune.api.app import create_app
from cloudtune.settings import Settings

ADMIN = {"email": "admin@example.com", "username": "admin", "password": "correct horse"}


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan run (database, context, reconciler), as a server has it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def peer(app: FastAPI, host: str) -> httpx.AsyncClient:
    """A client whose requests reach `app` from the peer address `host`."""
    transport = httpx.ASGITransport(app=app, client=(host, 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8001", timeout=120)


def freeze_clock(app: FastAPI) -> datetime:
    """Stop the server's clock (login budgets refill with it), so a slow run refills nothing."""
    frozen: datetime = app.state.ctx.clock()
    app.state.ctx.clock = lambda: frozen
    return frozen


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def first_admin(app: FastAPI) -> str:
    """Create the first admin from loopback; its session token."""
    async with peer(app, "127.0.0.1") as local:
        response = await local.post("/api/auth/setup/first-admin", json=ADMIN)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


async def add_user(app: FastAPI, admin: str, username: str, role: str) -> str:
    """A user with `role`, logged in from a loopback peer; its session token."""
    password = "password-" + username
    body = {"email": f"{username}@example.com", "username": username, "password": password}
    async with peer(app, "127.0.0.1") as local:
        created = await local.post("/api/users", json=body | {"role": role}, headers=bearer(admin))
        assert created.status_code == 201, created.text
        login = await local.post(
            "/api/auth/login", json={"username": username, "password": password}
        )
    assert login.status_code == 200, login.text
    return str(login.json()["token"])


def password_checks(app: FastAPI) -> float:
    value = app.state.metrics.registry.get_sample_value("cloudtune_password_checks_total")
    return float(value or 0.0)
