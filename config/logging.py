"""Logging: readable lines to stderr plus a daily file per process kind, kept N days."""

from __future__ import annotations

import logging
import logging.config
import time
from pathlib import Path
from typing import Any, Literal

from config.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(processName)s[%(process)d] %(name)s: %(message)s"


class DailyFileHandler(logging.Handler):
    """Appends to `<dir>/<kind>-YYYY-MM-DD.log` and deletes files past retention.

    Several processes of one kind share the day's file. They only ever append
    (O_APPEND writes of whole lines), never rename, so unlike
    TimedRotatingFileHandler they cannot rotate each other's files away.
    """

    def __init__(self, directory: str, kind: str, retention_days: int) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.kind = kind
        self.retention_days = retention_days
        self._day = ""
        self._stream: Any = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            day = time.strftime("%Y-%m-%d", time.gmtime(record.created))
            if day != self._day:
                self._open(day)
            self._stream.write(self.format(record) + "\n")
            self._stream.flush()
        except Exception:
            self.handleError(record)

    def _open(self, day: str) -> None:
        if self._stream is not None:
            self._stream.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._stream = open(self.directory / f"{self.kind}-{day}.log", "a", encoding="utf-8")  # noqa: SIM115
        self._day = day
        self._delete_old()

    def _delete_old(self) -> None:
        cutoff = time.time() - self.retention_days * 86_400
        for path in self.directory.glob(f"{self.kind}-*.log"):
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        super().close()


def configure_logging(settings: Settings, kind: Literal["api", "worker"]) -> None:
    """Install the handlers for a process of `kind`."""
    handlers = ["stderr", "file"]
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": FORMAT}},
            "handlers": {
                "stderr": {"class": "logging.StreamHandler", "formatter": "plain"},
                "file": {
                    "()": DailyFileHandler,
                    "directory": settings.log_dir,
                    "kind": kind,
                    "retention_days": settings.log_retention_days,
                    "formatter": "plain",
                },
            },
            "root": {"level": settings.log_level, "handlers": handlers},
            "loggers": {
                # uvicorn and huey set INFO on their own loggers (huey: a line before and
                # after every task); INFERQ_LOG_LEVEL governs them too.
                name: {"handlers": handlers, "propagate": False, "level": settings.log_level}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "huey")
            },
        }
    )
