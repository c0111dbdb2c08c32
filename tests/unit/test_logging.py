"""INFERQ_LOG_LEVEL governs what reaches the log files, third-party loggers included."""

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import config.logging
from config import Settings
from config.logging import DailyFile, LogWriter, configure_logging, stop_logging

THIRD_PARTY = ("huey", "huey.consumer", "uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    touched = [logging.getLogger(name) for name in ("", *THIRD_PARTY)]
    saved = [(lg, lg.level, lg.handlers[:], lg.propagate) for lg in touched]
    yield
    for logger, level, handlers, propagate in saved:
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate = propagate


def _file_lines_after_logging(tmp_path: Path, level: str) -> str:
    settings = Settings(_env_file=None, log_dir=str(tmp_path), log_level=level)
    logging.getLogger("huey").setLevel(logging.INFO)  # as huey_consumer leaves it
    configure_logging(settings, "worker")
    logging.getLogger("huey").info("Executing inferq.run_computation")
    logging.getLogger("uvicorn.access").info('"POST /jobs HTTP/1.1" 202')
    logging.getLogger("huey").warning("a huey warning")
    logging.getLogger("worker.runner").info("job abc running")
    stop_logging()  # writes out what is still queued
    return "".join(path.read_text() for path in tmp_path.glob("worker-*.log"))


@pytest.mark.usefixtures("restore_logging")
def test_warning_level_silences_per_task_and_access_lines(tmp_path: Path) -> None:
    logged = _file_lines_after_logging(tmp_path, "WARNING")
    assert "a huey warning" in logged
    assert "Executing" not in logged and "POST /jobs" not in logged
    assert "job abc running" not in logged


@pytest.mark.usefixtures("restore_logging")
def test_info_level_keeps_job_and_access_lines_but_not_hueys_per_task_lines(
    tmp_path: Path,
) -> None:
    logged = _file_lines_after_logging(tmp_path, "INFO")
    assert "POST /jobs" in logged and "job abc running" in logged
    assert "Executing" not in logged and "a huey warning" in logged


@pytest.mark.usefixtures("restore_logging")
def test_debug_level_keeps_hueys_per_task_lines(tmp_path: Path) -> None:
    assert "Executing" in _file_lines_after_logging(tmp_path, "DEBUG")


@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")
def test_a_process_forked_while_lines_are_written_can_log_and_exit(
    tmp_path: Path, restore_logging: None
) -> None:
    """huey forks each replacement worker from a consumer whose writer may be mid-write."""
    settings = Settings(_env_file=None, log_dir=str(tmp_path))
    configure_logging(settings, "worker")
    done = threading.Event()

    def chatter() -> None:
        while not done.is_set():
            logging.getLogger("chatty").info("a line of %s", "x" * 200)

    thread = threading.Thread(target=chatter)
    thread.start()
    hung = None
    try:
        for fork in range(1, 31):
            pid = os.fork()
            if pid == 0:  # the new worker: its startup hook configures logging, then logs
                configure_logging(settings, "worker")
                logging.getLogger("worker.tasks").info("worker ready")
                stop_logging()
                os._exit(0)
            if not _exited(pid, within_s=10):  # a deadline for a hang, not a speed
                hung = fork
                break
    finally:
        done.set()
        thread.join()
        stop_logging()
    assert hung is None, f"fork {hung} of 30 never finished logging"
    assert "worker ready" in "".join(path.read_text() for path in tmp_path.glob("worker-*.log"))


def _exited(pid: int, within_s: float) -> bool:
    """Whether child `pid` exited within `within_s`; if not, it is killed."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return True
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return False


def _log_and_return(settings: Settings) -> None:
    configure_logging(settings, "worker")
    logging.getLogger("worker.tasks").info("last words")


@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")
@pytest.mark.usefixtures("restore_logging")
def test_a_worker_process_that_ends_writes_its_last_lines(tmp_path: Path) -> None:
    """The writer drains on a clock; a huey worker process ends in os._exit, not atexit."""
    settings = Settings(_env_file=None, log_dir=str(tmp_path))
    process = multiprocessing.get_context("fork").Process(target=_log_and_return, args=(settings,))
    process.start()
    process.join(30)
    assert process.exitcode == 0
    assert "last words" in "".join(path.read_text() for path in tmp_path.glob("worker-*.log"))


class _CountedWaits(threading.Event):
    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return True


def test_the_writer_works_through_a_backlog_without_waiting_between_full_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config.logging, "MOST_PER_WRITE", 10)
    records: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
    for n in range(35):
        records.put(logging.makeLogRecord({"msg": f"line {n}", "levelname": "INFO"}))
    records.put(None)
    writer = LogWriter(records, DailyFile(str(tmp_path), "worker", 1))
    writer._stopping = clock = _CountedWaits()
    writer.start()
    writer.stop()  # after the None queued above: joins the thread, closes the file
    written = "".join(path.read_text() for path in tmp_path.glob("worker-*.log"))
    assert [f"line {n}" in written for n in range(35)] == [True] * 35
    assert clock.waits == 1  # one wait for the clock, then three full writes and the rest
