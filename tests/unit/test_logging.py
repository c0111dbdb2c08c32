"""INFERQ_LOG_LEVEL governs what reaches the log files, third-party loggers included."""

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from config import Settings
from config.logging import configure_logging, stop_logging

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
