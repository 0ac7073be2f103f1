"""`cloudtune users` and the refusal to serve a non-loopback address without an admin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from cloudtune.store.db import Database
from cloudtune.store.tables import UserModel


def cloudtune(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudtune.cli.main", *args],
        env={**os.environ, "CLOUDTUNE_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_create_admin_and_add_users(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = cloudtune(
        home,
        "users",
        "create-admin",
        "--username",
        "root1",
        "--email",
        "r@example.com",
        "--password",
        "long enough",
    )
    assert made.returncode == 0, made.stderr
    added = cloudtune(
        home,
        "users",
        "add",
        "--username",
        "rita",
        "--email",
        "rita@example.com",
        "--role",
        "lead",
        "--password",
        "long enough",
    )
    assert added.returncode == 0, added.stderr
    bad = cloudtune(
        home,
        "users",
        "add",
        "--username",
        "x1x",
        "--email",
        "x@example.com",
        "--role",
        "overlord",
        "--password",
        "long enough",
    )
    assert bad.returncode == 1 and "unknown role" in bad.stderr
    db = Database(f"sqlite:///{home / 'cloudtune.db'}")
    with db.read() as session:
        users = {u.username: u for u in session.scalars(select(UserModel))}
    db.dispose()
    assert users["root1"].role == "admin" and users["rita"].role == "lead"
    assert "long enough" not in users["rita"].password_hash
    assert users["rita"].password_hash.startswith("$argon2")


def test_a_network_bind_without_an_admin_is_refused(tmp_path: Path) -> None:
    result = cloudtune(tmp_path / "home", "server", "--host", "0.0.0.0", "--port", "8999")
    assert result.returncode != 0
    assert "cloudtune users create-admin" in result.stdout + result.stderr
