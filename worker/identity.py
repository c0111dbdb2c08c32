"""How a consumer worker names itself in heartbeats, leases and job records."""

from __future__ import annotations

import os
import socket
import threading


def worker_identity() -> str:
    """This consumer worker process, as its heartbeat, leases and job records name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_field() -> str:
    """The consumer thread that takes and runs a batch (huey may run worker threads)."""
    return f"{worker_identity()}/{threading.get_ident()}"
