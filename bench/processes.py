"""The vault's server as real processes, for the fault and load harnesses: start N workers, kill them all at once.

Two ways to start: "serve" runs `vault serve --workers N` itself (cold: every restart imports everything again);
"fork" forks N workers from a zygote that imported the code once, each running vault.serving.run_worker, the very
function `vault serve --workers N` runs in each of its workers (its own SO_REUSEPORT socket, its own app, the same
leader election for maintenance). Every process of a server is in a process group the harness kills at once.

    python bench/processes.py worker        # one worker, settings from VAULT_* (what Server starts N times)
    python bench/processes.py zygote LOG    # import once, fork a worker per line on stdin (Server's "fork" start)
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx2 as httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _is_helper(pid: int) -> bool:
    """multiprocessing's resource tracker, which `vault serve --workers N` starts beside its workers."""
    try:
        return b"resource_tracker" in (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False


def server_env(data: Path, port: int, database_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a server on loopback `port` with its data in `data` (and the database given, if any)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    env.update(VAULT_DATA_DIR=str(data), VAULT_PORT=str(port), VAULT_HOST="127.0.0.1", VAULT_LOG_LEVEL="WARNING")
    if database_url:
        env["VAULT_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def vault_settings_env(env: dict[str, str]) -> dict[str, str]:
    """The VAULT_* part of a server environment, for opening the same vault in this process."""
    return {k: v for k, v in env.items() if k.startswith("VAULT_")}


@functools.cache
def serve_has_workers() -> bool:
    """Whether this checkout's `vault serve` starts several workers itself."""
    shown = subprocess.run(
        [sys.executable, "-m", "vault.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=server_env(Path("/nonexistent"), 0),
        check=False,
    )
    return "--workers" in shown.stdout


START_MODES = ("fork", "serve")


class Zygote:
    """A process that has imported the server's code once and forks fresh workers on demand.

    Each forked worker is a new process in its own process group that builds the vault and its app from scratch, as a
    cold start would; only the Python imports are shared, which saves many seconds per restart on a busy machine.
    The zygote itself never opens the database.
    """

    def __init__(self, env: dict[str, str], log: Path | None) -> None:
        argv = [sys.executable, str(Path(__file__).resolve()), "zygote", str(log or os.devnull)]
        self.process = subprocess.Popen(
            argv, env=env, cwd=PROJECT_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
        )

    def fork(self) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(b"fork\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the zygote exited")
        return int(line)

    def close(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        self.process.wait(timeout=10)


class Server:
    """N worker processes serving one vault on one port; `kill()` is a power cut for all of them.

    start="serve": `vault serve` (with `--workers N` when this checkout has it, else N cold `bench/processes.py
    worker` processes); start="fork": N workers forked from a zygote (see Zygote), the quick restart.
    """

    def __init__(self, env: dict[str, str], workers: int = 1, log: Path | None = None, start: str = "fork") -> None:
        self.env = env
        self.workers = workers
        self.port = int(env["VAULT_PORT"])
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.mode = start
        self.zygote = Zygote(env, log) if start == "fork" else None
        self.pgids: list[int] = []
        self.popens: list[subprocess.Popen[bytes]] = []

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 -- the child keeps it
        try:
            return subprocess.Popen(
                argv, env=self.env, cwd=PROJECT_ROOT, stdout=out, stderr=out, start_new_session=True
            )
        finally:
            if self.log and not isinstance(out, int):
                out.close()

    def describe(self) -> str:
        if self.mode == "fork":
            return f"{self.workers} worker(s) forked from a zygote, each its own SO_REUSEPORT socket"
        if serve_has_workers() or self.workers == 1:
            return f"vault serve --workers {self.workers}" if self.workers > 1 else "vault serve"
        return f"{self.workers} worker process(es), each its own SO_REUSEPORT socket"

    def start(self, timeout: float = 120.0) -> None:
        if self.zygote is not None:
            self.popens = []
            self.pgids = [self.zygote.fork() for _ in range(self.workers)]
        else:
            if serve_has_workers() or self.workers == 1:
                argv = [sys.executable, "-m", "vault.cli", "serve"]
                self.popens = [self._spawn(argv + (["--workers", str(self.workers)] if self.workers > 1 else []))]
            else:
                worker = [sys.executable, str(Path(__file__).resolve()), "worker"]
                self.popens = [self._spawn(worker) for _ in range(self.workers)]
            self.pgids = [p.pid for p in self.popens]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.worker_pids()) < len(self.pgids):
                self.kill()
                raise RuntimeError(f"the server exited while starting (see {self.log or 'its output'})")
            if self._ready():
                return
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the server did not answer /readyz within {timeout:.0f} s")

    def _ready(self) -> bool:
        """Every worker listens (one SO_REUSEPORT socket each, or one shared) and /readyz answers 200."""
        if self._listeners() < self.workers:
            return False
        try:
            with httpx.Client(timeout=2) as client:
                return all(client.get(f"{self.base}/readyz").status_code == 200 for _ in range(self.workers))
        except httpx.TransportError:
            return False

    def _listeners(self) -> int:
        """Listening TCP sockets on our port (the kernel's table: each SO_REUSEPORT worker has its own)."""
        port = f":{self.port:04X}"
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            count += sum(1 for line in lines if line.split()[1].endswith(port) and line.split()[3] == "0A")
        return count

    def pids(self) -> list[int]:
        """Every live process of this server (supervisor and workers)."""
        groups = set(self.pgids)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) in groups:  # fields[2] is the process group
                found.append(int(entry.name))
        return sorted(found)

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: those without children of their own in the group."""
        pids = self.pids()
        parents = set()
        for pid in pids:
            try:
                parents.add(int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1]))
            except OSError:
                continue
        return [p for p in pids if p not in parents and not _is_helper(p)]

    def rss(self) -> dict[int, int]:
        """Resident set size in bytes of each worker process."""
        sizes = {}
        for pid in self.worker_pids():
            try:
                for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes[pid] = int(line.split()[1]) * 1024
            except OSError:
                continue
        return sizes

    def kill(self) -> None:
        """SIGKILL to every process of the server at once: no shutdown, no last checkpoint."""
        for pgid in self.pgids:
            with suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        for p in self.popens:
            p.wait()
        self._wait_gone()

    def stop(self) -> None:
        """An orderly stop (SIGTERM), falling back to kill after 30 s."""
        for pgid in self.pgids:
            with suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.kill()

    def close(self) -> None:
        """Kill whatever still runs and end the zygote."""
        self.kill()
        if self.zygote is not None:
            self.zygote.close()

    def _wait_gone(self) -> None:
        # workers of `vault serve` are the supervisor's children: wait until the kernel has reaped them all
        for _ in range(200):
            if not self.pids():
                return
            time.sleep(0.05)


@contextmanager
def postgres_database(admin_url: str = DEFAULT_POSTGRES) -> Iterator[str]:
    """A throw-away PostgreSQL database in the server `admin_url` names, dropped afterwards; yields its URL."""
    admin = make_url(admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"vault_bench_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@contextmanager
def throwaway_database(kind: str, postgres_url: str = DEFAULT_POSTGRES) -> Iterator[str | None]:
    """None for SQLite (the data directory's file), else a throw-away PostgreSQL database's URL."""
    if kind == "sqlite":
        yield None
    else:
        with postgres_database(postgres_url) as url:
            yield url


def worker() -> None:
    """One worker, exactly as `vault serve --workers N` runs each of its N (settings from VAULT_*)."""
    sys.path.insert(0, str(PROJECT_ROOT))
    from vault.config import load_settings
    from vault.serving import run_worker

    settings = load_settings()
    run_worker(settings.host, settings.port, settings.log_level)


def zygote(log: str) -> None:
    """Import the server's code, then fork one worker per line read from stdin, printing each one's pid."""
    sys.path.insert(0, str(PROJECT_ROOT))
    import uvicorn  # noqa: F401 -- imported here so each forked worker has it already

    import vault.serving
    import vault.web.app  # noqa: F401

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps killed workers
    for _ in sys.stdin:
        pid = os.fork()
        if pid == 0:
            os.setpgid(0, 0)
            out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.close(0)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                worker()
            finally:
                os._exit(0)
        with suppress(OSError):  # both sides set the group, so it is set before the pid is handed out
            os.setpgid(pid, pid)
        sys.stdout.write(f"{pid}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker()
    elif sys.argv[1:2] == ["zygote"]:
        zygote(sys.argv[2])
    else:
        sys.exit(__doc__)
