"""Logging to stderr and to a file in the data directory. Log lines carry ids and reasons, never values.

The log directory is 0700 and every log file, rotated ones too, 0600. The server's access log keeps the path of
each request but never its query string, where a careless client may have put a token.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
from pathlib import Path

from vault.files import private_dir

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
ACCESS_LOGGER = "uvicorn.access"


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose files are created readable by their owner only."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)  # a file left by an older version keeps its mode otherwise
        return io.TextIOWrapper(io.FileIO(fd, "a"), encoding=self.encoding, errors=self.errors)


class NoQueryString(logging.Filter):
    """Cuts the query string from uvicorn's access lines ('%s - "%s %s HTTP/%s" %d': the third argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def configure(level: str, log_dir: Path) -> None:
    private_dir(log_dir)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        if getattr(handler, "_vault", False):
            root.removeHandler(handler)
            handler.close()
    file_handler = PrivateRotatingFileHandler(
        log_dir / "vault.log", maxBytes=20_000_000, backupCount=5, encoding="utf-8"
    )
    stream_handler = logging.StreamHandler()
    for handler in (file_handler, stream_handler):
        handler.setFormatter(logging.Formatter(FORMAT))
        setattr(handler, "_vault", True)  # noqa: B010 -- marks our handlers so configure() can be re-run
        root.addHandler(handler)
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, NoQueryString) for f in access.filters):
        access.addFilter(NoQueryString())
