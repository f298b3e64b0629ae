"""`vault serve --workers N`: N worker processes that share nothing but the database.

Each worker binds the port itself with SO_REUSEPORT, so the kernel spreads connections between them and no
listening socket is handed from a parent to its children. A socket inherited that way loses TCP_NODELAY on every
accepted connection (asyncio sets it only when the socket's protocol is IPPROTO_TCP, and a socket rebuilt from a
file descriptor reports 0), which costs each keep-alive request about 40 ms of delayed ACK. Here the socket is
created with IPPROTO_TCP, so its accepted connections get TCP_NODELAY as a single uvicorn process's do.

The parent only supervises: it restarts a worker that dies and stops them all on SIGINT or SIGTERM. Which worker
runs maintenance is decided in the database (vault.leadership), not here.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from typing import Any

log = logging.getLogger("vault.serving")
RESTART_PAUSE_SECONDS = 1.0


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP listening socket that other processes may bind too (SO_REUSEPORT), with TCP as its protocol."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def uvicorn_options(log_level: str) -> dict[str, Any]:
    return {
        "app": "server:app",
        "log_level": log_level.lower(),
        "proxy_headers": False,  # a forwarded address is trusted only through VAULT_TRUSTED_PROXIES
        "server_header": False,
    }


def run_worker(host: str, port: int, log_level: str) -> None:
    """One worker: its own socket on the shared port, its own event loop, thread pool and connection pool."""
    from vault import memory

    memory.one_heap()  # before any thread of the worker allocates
    import uvicorn

    from vault.config import PROJECT_ROOT

    # server.py sits at the project root, which a console script has not on sys.path (uvicorn.Config has no app_dir)
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    sock = listening_socket(host, port)
    config = uvicorn.Config(**uvicorn_options(log_level))
    uvicorn.Server(config).run(sockets=[sock])


def serve(host: str, port: int, workers: int, log_level: str) -> int:
    """Run `workers` worker processes until SIGINT or SIGTERM; restart any that dies meanwhile."""
    if workers == 1:
        run_worker(host, port, log_level)
        return 0
    listening_socket(host, port).close()  # fail here, once, if the port is taken
    spawn = multiprocessing.get_context("spawn")  # a clean interpreter per worker: no inherited locks or pools
    stopping = False

    def start() -> BaseProcess:
        process = spawn.Process(target=run_worker, args=(host, port, log_level), daemon=False)
        process.start()
        return process

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    procs = [start() for _ in range(workers)]
    try:
        while not stopping:
            time.sleep(0.2)
            for i, process in enumerate(procs):
                if not process.is_alive() and not stopping:
                    log.warning("worker %s exited with %s; starting another", process.pid, process.exitcode)
                    time.sleep(RESTART_PAUSE_SECONDS)
                    procs[i] = start()
    finally:
        for process in procs:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in procs:
            process.join(30)
            if process.is_alive():
                process.kill()
    return 0
