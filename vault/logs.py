"""Logging to stderr and to a file in the data directory. Log lines carry ids and reasons, never values."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure(level: str, log_dir: Path) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        if getattr(handler, "_vault", False):
            root.removeHandler(handler)
            handler.close()
    file_handler = logging.handlers.RotatingFileHandler(
        log_dir / "vault.log", maxBytes=20_000_000, backupCount=5, encoding="utf-8"
    )
    stream_handler = logging.StreamHandler()
    for handler in (file_handler, stream_handler):
        handler.setFormatter(logging.Formatter(FORMAT))
        setattr(handler, "_vault", True)  # noqa: B010 -- marks our handlers so configure() can be re-run
        root.addHandler(handler)
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
