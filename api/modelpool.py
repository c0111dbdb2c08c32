"""The direct path's model processes: spawned children that each serve one batch at a time.

Unlike a ProcessPoolExecutor, a child that runs past its time limit can be killed and
replaced alone: the other children and their requests are not disturbed.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import time
from typing import Any

from core.errors import ModelProcessDiedError, ModelTimeoutError
from worker import inline

log = logging.getLogger(__name__)
# spawn, not fork: forking a process that runs an event loop and threads is unsafe.
_CONTEXT = multiprocessing.get_context("spawn")


class ModelProcess:
    """One child process with the models loaded. Its methods block: call them in a thread."""

    def __init__(
        self, paths: list[str], burn_iterations_per_ms: int, repository: str | None
    ) -> None:
        self._conn, child = _CONTEXT.Pipe()
        self._proc: Any = _CONTEXT.Process(
            target=inline.serve,
            args=(child, paths, burn_iterations_per_ms, repository),
            daemon=True,
        )
        self._proc.start()
        child.close()

    def wait_ready(self) -> None:
        """Block until the child has loaded its models."""
        if self._conn.recv() != inline.READY:
            raise ModelProcessDiedError("a model process did not start")

    def call(self, model: str, input_jsons: list[str], limit_s: float) -> inline.Outcomes:
        """One batch; ModelTimeoutError (and the child killed) past `limit_s` seconds."""
        try:
            self._conn.send((model, input_jsons))
            if not self._conn.poll(limit_s):
                self.kill()
                raise ModelTimeoutError(f"the model call ran past its time limit of {limit_s:g}s")
            reply = self._conn.recv()
        except (EOFError, OSError) as exc:
            self.kill()
            raise ModelProcessDiedError("the model process died; retry") from exc
        if isinstance(reply, Exception):
            raise reply
        outcomes: inline.Outcomes = reply
        return outcomes

    def kill(self) -> None:
        self._proc.kill()
        self._proc.join(5)
        self._conn.close()

    @property
    def is_alive(self) -> bool:
        return bool(self._proc.is_alive())

    def stop(self) -> None:
        """Ask the child to exit (it finishes its current batch first); kill it if it won't."""
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._proc.join(2)
        if self._proc.is_alive():
            self._proc.kill()


def started_process(
    paths: list[str], burn_iterations_per_ms: int, repository: str | None
) -> ModelProcess:
    """A new model process, once its models are loaded (blocks: call it in a thread)."""
    began = time.monotonic()
    process = ModelProcess(paths, burn_iterations_per_ms, repository)
    process.wait_ready()
    log.info("model process ready in %.0f ms", (time.monotonic() - began) * 1000)
    return process
