"""How a consumer worker names itself in heartbeats, leases and job records."""

from __future__ import annotations

import os
import socket
import threading


def worker_identity(pid: int | None = None) -> str:
    """This (or that) consumer worker process, as heartbeats, leases and job records name it."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def claim_field() -> str:
    """The consumer thread that takes and runs a batch (huey may run worker threads)."""
    return f"{worker_identity()}/{threading.get_ident()}"
