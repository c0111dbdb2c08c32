"""Logging: readable lines to stderr plus a daily file per process kind, kept N days."""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
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


_listener: logging.handlers.QueueListener | None = None


def configure_logging(settings: Settings, kind: Literal["api", "worker"]) -> None:
    """Install the handlers for a process of `kind`.

    Loggers only put records on a queue; one thread per process writes them to
    stderr and the day's file, so no request or job waits for a disk write.
    """
    global _listener
    stop_logging()
    formatter = logging.Formatter(FORMAT)
    outputs: list[logging.Handler] = [
        logging.StreamHandler(),
        DailyFileHandler(settings.log_dir, kind, settings.log_retention_days),
    ]
    for output in outputs:
        output.setFormatter(formatter)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, *outputs)
    _listener.start()
    enqueue = logging.handlers.QueueHandler(records)
    _install(logging.getLogger(), enqueue, settings.log_level)
    # uvicorn sets INFO on its own loggers; INFERQ_LOG_LEVEL governs them too.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "huey.consumer"):
        _install(logging.getLogger(name), enqueue, settings.log_level)
    # huey logs a line before and after every task; inferq's own job lines say more,
    # so those two are kept for DEBUG only.
    huey_level = "DEBUG" if settings.log_level == "DEBUG" else "WARNING"
    _install(logging.getLogger("huey"), enqueue, max(settings.log_level, huey_level, key=_rank))
    atexit.register(stop_logging)


def stop_logging() -> None:
    """Write out every queued record and stop the writer thread."""
    global _listener
    if _listener is not None:
        _listener.stop()
        for output in _listener.handlers:
            output.close()
        _listener = None


def _install(logger: logging.Logger, handler: logging.Handler, level: str) -> None:
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = logger.name == "root"


def _rank(level: str) -> int:
    return logging.getLevelNamesMapping()[level]
