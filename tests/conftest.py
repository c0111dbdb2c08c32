from __future__ import annotations

import os

# Before anything imports config: tests run as a development deployment (the
# built-in queue secret is allowed). Never the machine's Redis: fixtures set URLs.
os.environ["INFERQ_ENVIRONMENT"] = "development"

from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import stack
from tests.support.stack import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of our own on a free port, for the whole session."""
    port = stack.free_port()
    data_dir = tmp_path_factory.mktemp("redis")
    proc = stack.start_redis(port, data_dir, log=data_dir / "redis.log")
    try:
        yield RedisServer(port, proc)
    finally:
        stack.stop(proc)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository of real artifacts (tests/support/artifacts.py); copy it to change it."""
    from tests.support.artifacts import build_repository

    return build_repository(tmp_path_factory.mktemp("models"))
