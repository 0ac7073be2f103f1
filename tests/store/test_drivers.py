"""A PostgreSQL URL without the postgres extra is one clear error at start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cloudtune.store.drivers import MissingDriverError, require_driver

URL = "postgresql+psycopg://admin:hunter2@127.0.0.1:1/db"


def test_installed_drivers_pass() -> None:
    require_driver(URL)
    require_driver("sqlite:///x.db")


def test_without_psycopg_the_server_says_which_extra_to_install() -> None:
    # `None` in sys.modules makes `import psycopg` fail as it does where it is not installed.
    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from cloudtune.store.db import Database\n"
        f"Database({URL!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("cloudtune.store.drivers.MissingDriverError")
    assert "pip install 'cloudtune[postgres]'" in last
    assert "hunter2" not in done.stderr


def test_another_backend_names_its_driver_not_the_url() -> None:
    with pytest.raises(MissingDriverError) as missing:
        require_driver("mysql://admin:hunter2@127.0.0.1/db")
    assert "mysqldb" in str(missing.value) and "hunter2" not in str(missing.value)
