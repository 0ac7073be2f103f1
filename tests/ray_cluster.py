"""A throwaway single-node Ray head for the test run, its Jobs REST API on a loopback port, every
one of its ports chosen free, stopped after. Set CLOUDTUNE_TEST_RAY_ADDRESS to use a head you run.

`ray stop` is never used: it stops every Ray process on the machine, other people's clusters
included. This head is stopped by its own processes only: the `ray start --block` process group,
its descendants, and anything whose command line or environment names this head's temp dir or
GCS address (job drivers run in sessions of their own, out of the group)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

HOST = "127.0.0.1"
NUM_CPUS = 4
START_TIMEOUT_SECONDS = 90.0
# Workers take their ports from this band; bind(0) hands out ports from the kernel's ephemeral
# range (32768 and up), so the head's other ports can never land inside the workers' range.
WORKER_PORT_BAND = (20000, 32000)
WORKER_PORT_COUNT = 200
# The default object store takes 30 % of RAM in /dev/shm; test jobs pass no large objects.
OBJECT_STORE_BYTES = 256 * 1024 * 1024
LOG_TAIL_FILES = (
    "ray-start.log",
    "gcs_server.out",
    "gcs_server.err",
    "raylet.out",
    "raylet.err",
    "dashboard.log",
    "dashboard.err",
    "dashboard_agent.log",
)


class RayHead:
    def __init__(self) -> None:
        # Ray's unix socket paths live under the temp dir and must stay under ~107 characters.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ctray-", dir="/tmp"))
        (
            self.gcs_port,
            self.dashboard_port,
            self.client_server_port,
            self.agent_listen_port,
            self.agent_grpc_port,
            self.node_manager_port,
            self.object_manager_port,
            self.metrics_export_port,
            self.runtime_env_agent_port,
        ) = _free_ports(9)
        self.min_worker_port, self.max_worker_port = _free_port_range(WORKER_PORT_COUNT)
        self.pid: int | None = None
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"http://{HOST}:{self.dashboard_port}"

    @property
    def _gcs_pattern(self) -> re.Pattern[str]:
        # Ray swaps a loopback node IP for the machine's own address, so match any host.
        return re.compile(rf"(?:\d{{1,3}}\.){{3}}\d{{1,3}}:{self.gcs_port}(?!\d)")

    def to_json(self) -> dict[str, Any]:
        """What another process needs to find, and stop, this head."""
        return {
            "address": self.address,
            "pid": self.pid,
            "temp_dir": str(self.temp_dir),
            "gcs_port": self.gcs_port,
            "dashboard_port": self.dashboard_port,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RayHead:
        head = cls.__new__(cls)
        head.temp_dir = Path(data["temp_dir"])
        head.gcs_port = int(data["gcs_port"])
        head.dashboard_port = int(data["dashboard_port"])
        head.pid = data["pid"]
        head.startup_seconds = None
        head._process = None
        return head

    def start(self) -> None:
        began = time.monotonic()
        command = [
            str(Path(sys.executable).parent / "ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address",
            HOST,
            "--port",
            str(self.gcs_port),
            "--dashboard-host",
            HOST,
            "--dashboard-port",
            str(self.dashboard_port),
            "--include-dashboard",
            "true",
            "--ray-client-server-port",
            str(self.client_server_port),
            "--dashboard-agent-listen-port",
            str(self.agent_listen_port),
            "--dashboard-agent-grpc-port",
            str(self.agent_grpc_port),
            "--node-manager-port",
            str(self.node_manager_port),
            "--object-manager-port",
            str(self.object_manager_port),
            "--metrics-export-port",
            str(self.metrics_export_port),
            "--runtime-env-agent-port",
            str(self.runtime_env_agent_port),
            "--min-worker-port",
            str(self.min_worker_port),
            "--max-worker-port",
            str(self.max_worker_port),
            "--temp-dir",
            str(self.temp_dir),
            "--num-cpus",
            str(NUM_CPUS),
            "--object-store-memory",
            str(OBJECT_STORE_BYTES),
            "--disable-usage-stats",
        ]
        with open(self.temp_dir / "ray-start.log", "wb") as log:
            # Its own session, so stop() can signal the whole group without touching pytest.
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_ray_env(),
                cwd=self.temp_dir,
                start_new_session=True,
            )
        self.pid = self._process.pid
        try:
            self._wait_ready(began + START_TIMEOUT_SECONDS)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stops this head's processes, all of them, and removes its temp dir. Raises if any of
        them survives SIGKILL."""
        try:
            victims = self.processes()
            # The launcher stops the processes it started, in order, in about 3 s; workers and
            # job drivers sit in process groups of their own and keep raylet and GCS waiting
            # (20 s and more) unless they get their SIGTERM too. A SIGTERM to the launcher's
            # whole group at once also stalls GCS and raylet for 10 s.
            launcher_alive = any(p.pid == self.pid for p in victims)
            if not launcher_alive:
                self._signal_group(signal.SIGTERM)
            for proc in victims:
                if proc.pid == self.pid or _pgid(proc.pid) != self.pid:
                    with contextlib.suppress(psutil.Error):
                        proc.terminate()
            alive = _wait_gone(victims, timeout=10)
            self._signal_group(signal.SIGKILL)
            # A second look: workers and drivers may have been spawned while the first went.
            for proc in {*alive, *self.processes()}:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            if self._process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=5)
            survivors = _wait_gone(self.processes(), timeout=5)
            if survivors:
                raise RuntimeError(f"Ray test cluster processes survived SIGKILL: {survivors}")
        finally:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def processes(self) -> list[psutil.Process]:
        """This head's live processes: the launcher's descendants and its process group, plus any
        process that names the temp dir or GCS address in its command line or environment."""
        found: dict[int, psutil.Process] = {}
        if self.pid is not None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(self.pid)
                if _is_live(root):
                    found[root.pid] = root
                    found.update((p.pid, p) for p in root.children(recursive=True))
        temp_dir = str(self.temp_dir)
        for proc in psutil.process_iter(["cmdline"]):
            if proc.pid == os.getpid() or proc.pid in found or not _is_live(proc):
                continue
            if self._owns(proc, temp_dir):
                found[proc.pid] = proc
        return list(found.values())

    def rss_bytes(self) -> int:
        total = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def log_tail(self, lines: int = 15) -> str:
        parts = []
        for path in _log_files(self.temp_dir):
            with contextlib.suppress(OSError):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path}\n" + "\n".join(tail))
        return "\n".join(parts) or f"(no logs under {self.temp_dir})"

    def _owns(self, proc: psutil.Process, temp_dir: str) -> bool:
        gcs = self._gcs_pattern
        cmdline = proc.info.get("cmdline") or []
        if any(temp_dir in arg or gcs.search(arg) for arg in cmdline):
            return True
        # Ray renames its workers (`ray::IDLE`), which hides their arguments; the group and the
        # environment Ray gives drivers and workers still tell.
        if self.pid is not None and _pgid(proc.pid) == self.pid:
            return True
        with contextlib.suppress(psutil.Error):
            environ = proc.environ()
            return any(temp_dir in v or gcs.search(v) for v in environ.values())
        return False

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def _wait_ready(self, deadline: float) -> None:
        last_error = "no answer yet"
        with httpx.Client(base_url=self.address, timeout=5) as http:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    last_error = f"`ray start` exited with {self._process.returncode}"
                    break
                try:
                    http.get("/api/version").raise_for_status()
                    nodes = http.get("/api/v0/nodes")
                    nodes.raise_for_status()
                    if any(n.get("state") == "ALIVE" for n in _node_list(nodes.json())):
                        return
                    last_error = f"no ALIVE node in {nodes.text[:500]}"
                except (httpx.HTTPError, ValueError) as exc:
                    last_error = repr(exc)
                time.sleep(0.25)
        raise RuntimeError(
            f"the Ray test head at {self.address} was not ready ({last_error}); its logs:\n"
            + self.log_tail()
        )


@contextlib.contextmanager
def shared_ray_head(shared_dir: Path) -> Iterator[str]:
    """One head for every process that shares `shared_dir` (pytest-xdist's workers): the first
    to come starts it, the last to leave stops it. Yields the head's dashboard address."""
    lock_path = shared_dir / "ray-head.lock"
    state_path = shared_dir / "ray-head.json"
    with _locked(lock_path):
        state = json.loads(state_path.read_text()) if state_path.exists() else None
        if state is None:
            head = RayHead()
            try:
                head.start()
            except Exception as exc:
                # The other workers fail fast with the same message instead of retrying 90 s.
                state_path.write_text(json.dumps({"error": str(exc), "users": 0}))
                raise
            state = {**head.to_json(), "users": 0}
        if "error" in state:
            raise RuntimeError("the shared Ray test head failed to start: " + state["error"])
        state["users"] += 1
        state_path.write_text(json.dumps(state))
    try:
        yield str(state["address"])
    finally:
        with _locked(lock_path):
            state = json.loads(state_path.read_text())
            state["users"] -= 1
            if state["users"] == 0:
                state_path.unlink()
                RayHead.from_json(state).stop()
            else:
                state_path.write_text(json.dumps(state))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _node_list(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`/api/v0/nodes` wraps the list twice: {"data": {"result": {"result": [...]}}}."""
    result: list[dict[str, Any]] = body["data"]["result"]["result"]
    return result


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still live after `timeout`. A zombie counts as gone: the head's launcher is
    a child of whichever xdist worker started it, which may not be the one stopping it."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in procs if _is_live(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _is_live(proc: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    return False


def _log_files(temp_dir: Path) -> Iterator[Path]:
    logs = temp_dir / "session_latest" / "logs"
    for name in LOG_TAIL_FILES:
        path = temp_dir / name if name == "ray-start.log" else logs / name
        if path.exists():
            yield path


def _ray_env() -> dict[str, str]:
    env = dict(os.environ)
    # Job entrypoints such as `python -c …` must find this venv's Python, which has Ray.
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    # An inherited RAY_ADDRESS would point `ray start` and its drivers at some other cluster.
    env.pop("RAY_ADDRESS", None)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def _free_ports(count: int) -> list[int]:
    # All held open at once, so the kernel cannot hand out the same port twice.
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            # Any address, not loopback: Ray binds some of them on the machine's own address.
            s.bind(("", 0))
        return [int(s.getsockname()[1]) for s in sockets]


def _free_port_range(count: int) -> tuple[int, int]:
    low, high = WORKER_PORT_BAND
    for _ in range(50):
        first = random.randrange(low, high - count)
        if all(_bindable(port) for port in range(first, first + count)):
            return first, first + count - 1
    raise RuntimeError(f"no {count} consecutive free ports between {low} and {high}")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
        return True
