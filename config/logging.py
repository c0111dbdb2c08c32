"""Logging: readable lines to stderr plus a daily file per process kind, kept N days.

A log line must cost the request or job that writes it next to nothing: every job logs
its lifecycle at INFO, so at a thousand jobs a second the stdlib's per-line work (a
copied record, each line formatted once per handler, a write and a flush per handler)
took a tenth of the API's CPU. Here loggers only put the record on a queue; one thread
per process formats each line once and writes whatever has queued up to stderr and the
day's file in one write each. That thread drains the queue every DRAIN_EVERY_S instead of
waiting on it: a thread waiting on the queue is woken by every record put there (a futex
call, then the GIL handed over and back), which cost a lone client's queued request 0.24
ms of its 1.25 ms p50. So a line reaches its file up to 20 ms after it was logged; a
process that ends normally writes what is left (atexit, and multiprocessing's finalizers
for a huey worker process, which ends in os._exit), one killed by SIGKILL loses at most
its last 20 ms of lines.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import multiprocessing.util
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal, TextIO

from config.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(processName)s[%(process)d] %(name)s: %(message)s"
MOST_PER_WRITE = 1000
DRAIN_EVERY_S = 0.02


class DailyFile:
    """Appends to `<dir>/<kind>-YYYY-MM-DD.log` and deletes files past retention.

    Several processes of one kind share the day's file. They only ever append
    (O_APPEND writes of whole lines), never rename, so unlike
    TimedRotatingFileHandler they cannot rotate each other's files away.
    """

    def __init__(self, directory: str, kind: str, retention_days: int) -> None:
        self.directory = Path(directory)
        self.kind = kind
        self.retention_days = retention_days
        self._day = ""
        self._stream: TextIO | None = None

    def write(self, day: str, text: str) -> None:
        if day != self._day or self._stream is None:
            self._open(day)
        assert self._stream is not None
        self._stream.write(text)
        self._stream.flush()

    def _open(self, day: str) -> None:
        self.close()
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


class LineFormatter(logging.Formatter):
    """FORMAT, with the date and time made once per second rather than once per line."""

    def __init__(self) -> None:
        super().__init__(FORMAT)
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
        return f"{self._stamp},{int(record.msecs):03d}"


class _Enqueue(logging.handlers.QueueHandler):
    """The one handler every logger has: puts the record on the writer's queue."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # Each record reaches this one handler only, so it is not copied: its message
        # (and any traceback, whose frames must not outlive the call) is made final.
        record.message = record.getMessage()
        record.msg, record.args = record.message, None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


class LogWriter:
    """One thread: takes what has queued, formats each line once, writes it out in bulk."""

    def __init__(self, records: queue.SimpleQueue[Any], file: DailyFile) -> None:
        self._records, self._file = records, file
        self._formatter = LineFormatter()
        # Held while a batch of lines is written, and by a thread that forks (see _forking).
        self.writing = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inferq-log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write out every queued record, then end the thread."""
        self._records.put(None)
        self._stopping.set()
        self._thread.join()
        self._file.close()

    def _run(self) -> None:
        taken: list[logging.LogRecord] = []
        while True:
            # Woken by the clock, not by each record: a record put on a queue this thread
            # waits on wakes it (a futex call, then the GIL passed back and forth) for
            # every line, on the path of the job or request that logged it. After a full
            # write it goes on at once: more may be waiting.
            if len(taken) < MOST_PER_WRITE:
                self._stopping.wait(DRAIN_EVERY_S)
            taken = []
            while len(taken) < MOST_PER_WRITE:
                try:
                    record = self._records.get_nowait()
                except queue.Empty:
                    break
                if record is None:  # stop(): what came before it is written, then done
                    self._write(taken)
                    return
                taken.append(record)
            self._write(taken)

    def _write(self, records: list[logging.LogRecord]) -> None:
        if not records:
            return
        lines = [self._formatter.format(record) + "\n" for record in records]
        with self.writing:
            try:
                sys.stderr.write("".join(lines))
                sys.stderr.flush()
                for day, text in _by_day(records, lines):
                    self._file.write(day, text)
            except Exception:  # never let a full disk or closed stream kill the writer
                logging.Handler().handleError(records[0])


def _by_day(records: list[logging.LogRecord], lines: list[str]) -> list[tuple[str, str]]:
    """The lines grouped into runs of one UTC day, in order."""
    groups: list[tuple[str, list[str]]] = []
    for record, line in zip(records, lines, strict=True):
        day = time.strftime("%Y-%m-%d", time.gmtime(record.created))
        if not groups or groups[-1][0] != day:
            groups.append((day, []))
        groups[-1][1].append(line)
    return [(day, "".join(chunk)) for day, chunk in groups]


_writer: LogWriter | None = None
_forking: LogWriter | None = None  # the writer whose lock a fork in progress holds
_fork_hooks = False


def _before_fork() -> None:
    # huey forks a replacement worker from a consumer process whose writer thread may be
    # in the middle of a write, holding the locks of stderr's and the log file's buffers:
    # the child, which has no writer thread, would wait on them for ever (its first log
    # write or the close of the inherited file hung 63 forks in 100 under steady logging).
    # So a fork waits for the write in progress and none starts until it is done.
    global _forking
    _forking = _writer
    if _forking is not None:
        _forking.writing.acquire()


def _after_fork() -> None:
    if _forking is not None:
        _forking.writing.release()


def configure_logging(settings: Settings, kind: Literal["api", "worker"]) -> None:
    """Install the handlers for a process of `kind`."""
    global _writer, _fork_hooks
    stop_logging()
    if not _fork_hooks:
        os.register_at_fork(
            before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork
        )
        _fork_hooks = True
    # FORMAT names neither the source line nor the thread: skip looking them up for
    # every record (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    records: queue.SimpleQueue[Any] = queue.SimpleQueue()
    _writer = LogWriter(records, DailyFile(settings.log_dir, kind, settings.log_retention_days))
    _writer.start()
    enqueue = _Enqueue(records)
    _install(logging.getLogger(), enqueue, settings.log_level)
    # uvicorn sets INFO on its own loggers; INFERQ_LOG_LEVEL governs them too.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "huey.consumer"):
        _install(logging.getLogger(name), enqueue, settings.log_level)
    # huey logs a line before and after every task; inferq's own job lines say more,
    # so those two are kept for DEBUG only.
    huey_level = "DEBUG" if settings.log_level == "DEBUG" else "WARNING"
    _install(logging.getLogger("huey"), enqueue, max(settings.log_level, huey_level, key=_rank))
    atexit.register(stop_logging)
    # A huey worker process ends in os._exit, which skips atexit; multiprocessing runs
    # its finalizers first.
    multiprocessing.util.Finalize(None, stop_logging, exitpriority=-100)


def stop_logging() -> None:
    """Write out every queued record and stop the writer thread."""
    global _writer
    if _writer is not None:
        _writer.stop()
        _writer = None


def _install(logger: logging.Logger, handler: logging.Handler, level: str) -> None:
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = logger.name == "root"


def _rank(level: str) -> int:
    return logging.getLevelNamesMapping()[level]
