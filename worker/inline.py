"""Model execution in the direct path's model processes (one `serve` loop per process).

Each process loads the models once, says so, then answers one batch per message on
its pipe. The API process kills and replaces a process whose call runs past its time
limit (`api.modelpool`).
"""

from __future__ import annotations

import signal
from multiprocessing.connection import Connection

from core import predict
from worker.models import build_models

Outcomes = list[tuple[str, dict[str, str] | None]]
READY = "ready"


def serve(
    conn: Connection, paths: list[str], burn_iterations_per_ms: int, repository: str | None
) -> None:
    """Load the models, then run each (`name@version`, input JSONs) message received."""
    # Ctrl-C reaches the whole process group: the API shuts its children down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    models = build_models(paths, burn_iterations_per_ms, repository)
    models.load_all()
    conn.send(READY)
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the API process is gone
            return
        if message is None:
            return
        model_name, input_jsons = message
        try:
            outcomes = predict.predict_batch(models.get(model_name), input_jsons)
            reply: object = [
                (o.result_json, o.error.model_dump() if o.error else None) for o in outcomes
            ]
        except Exception as exc:  # inferq's own failure, not the model's: report it
            reply = exc
        conn.send(reply)
