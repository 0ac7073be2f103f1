"""A throwaway PostgreSQL 15 cluster for the test run: initdb into a temp folder, start it on
a free loopback port, drop it after. Set CLOUDTUNE_TEST_POSTGRES_URL to use a server you run."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")


class PostgresCluster:
    def __init__(self) -> None:
        self.bin = _find_bin()
        self.root = Path(tempfile.mkdtemp(prefix="cloudtune-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            [
                f"{self.bin}/initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories= "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        self._run(
            [
                f"{self.bin}/pg_ctl",
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.root / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not start; see " + str(self.root / "server.log"))

    def stop(self) -> None:
        try:
            self._run([f"{self.bin}/pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, command: list[str]) -> None:
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd="/tmp")


def _find_bin() -> str:
    for candidate in PG_BIN_CANDIDATES:
        if Path(candidate, "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return str(Path(found).parent)
    raise RuntimeError(
        "PostgreSQL's initdb was not found; install PostgreSQL 15 or set "
        "CLOUDTUNE_TEST_POSTGRES_URL to a server the tests may create databases on"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
