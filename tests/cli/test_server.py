"""`cloudtune server` refuses to start with one line and exit status 1, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_postgres_url_without_its_driver_is_one_line(tmp_path: Path) -> None:
    # `None` in sys.modules makes `import psycopg` fail as it does where it is not installed.
    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from cloudtune.cli.main import app\n"
        "app(['server', '--port', '8999'])\n"
    )
    env = {
        **os.environ,
        "CLOUDTUNE_HOME": str(tmp_path / "home"),
        "CLOUDTUNE_DATABASE_URL": "postgresql+psycopg://admin:hunter2@127.0.0.1:1/db",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr + done.stdout
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "pip install 'cloudtune[postgres]'" in line
