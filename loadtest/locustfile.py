"""inferq load scenarios, one user class per path, in closed-loop steps or open-loop arrivals.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000 QueuedWaitUser

Scenarios: DirectUser (POST /predict), QueuedWaitUser (POST /jobs?wait=true),
QueuedPollUser (POST /jobs, then GET /jobs/{id} until finished; its
submit-to-result time is a stats row of its own). The *Arrivals classes send
the same requests at a fixed arrival rate without waiting for answers (open
loop). Knobs come from INFERQ_LT_* variables (loadtest/config.py); every
request's outcome is also written to INFERQ_LT_RECORD for the runner's report.
"""

from __future__ import annotations

import csv
import itertools
import random
import time
from collections.abc import Callable
from typing import Any

import gevent
from locust import FastHttpUser, LoadTestShape, constant, events, task

from loadtest.config import LoadConfig
from loadtest.inputs import InputStream
from loadtest.outcomes import Outcome, classify

cfg = LoadConfig.from_env()
POLL_INTERVAL_S = 0.05
MAX_BACKOFF_S = 10.0
_user_ids = itertools.count()
_records: list[tuple[float, int, str, Outcome, float]] = []
_started = {"at": time.time()}


@events.test_start.add_listener
def _on_start(**_: Any) -> None:
    _started["at"] = time.time()


@events.quitting.add_listener
def _on_quit(**_: Any) -> None:
    with open(cfg.record, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["t", "step", "scenario", "outcome", "latency_ms"])
        writer.writerows(_records)


def _step(at: float) -> int:
    return int((at - _started["at"]) // cfg.step_s)


def _record(scenario: str, outcome: Outcome, began_wall: float, began: float) -> None:
    step = _step(began_wall)
    if step < len(cfg.levels):  # requests sent while draining belong to no step
        latency_ms = (time.perf_counter() - began) * 1000
        _records.append((round(began_wall, 4), step, scenario, outcome, round(latency_ms, 3)))


def _job_status(response: Any) -> str | None:
    try:
        status: str | None = response.json().get("status")
        return status
    except Exception:
        return None


def direct(user: InferqUser) -> None:
    began_wall, began = time.time(), time.perf_counter()
    body = user.inputs.next()
    body.pop("priority", None)
    with user.client.post("/predict", json=body, name="direct", catch_response=True) as r:
        outcome = classify(r.status_code, None, _error(r))
        _settle(r, outcome, user)
    _record("direct", outcome, began_wall, began)


def queued_wait(user: InferqUser) -> None:
    began_wall, began = time.time(), time.perf_counter()
    # The server gives up waiting just before the client would: a 202 then counts as a timeout.
    path = f"/jobs?wait=true&timeout={max(0.05, cfg.timeout_s - 0.1):.2f}"
    with user.client.post(
        path, json=user.inputs.next(), name="queued-wait", catch_response=True
    ) as r:
        outcome = classify(
            r.status_code, _job_status(r) if r.status_code == 200 else None, _error(r)
        )
        _settle(r, outcome, user)
    _record("queued-wait", outcome, began_wall, began)


def queued_poll(user: InferqUser) -> None:
    began_wall, began = time.time(), time.perf_counter()
    deadline = began + cfg.timeout_s
    with user.client.post(
        "/jobs", json=user.inputs.next(), name="queued-poll submit", catch_response=True
    ) as r:
        submitted = r.status_code == 202
        outcome = "ok" if submitted else classify(r.status_code, _job_status(r), _error(r))
        _settle(r, outcome, user)
        job_id = r.json()["id"] if submitted else None
    while job_id is not None:
        if time.perf_counter() >= deadline:
            outcome = "timeout"
            break
        gevent.sleep(min(POLL_INTERVAL_S, deadline - time.perf_counter()))
        with user.client.get(
            f"/jobs/{job_id}", name="queued-poll GET /jobs/{id}", catch_response=True
        ) as g:
            if g.status_code == 202:
                g.success()
                continue
            outcome = classify(g.status_code, _job_status(g), _error(g))
            _settle(g, outcome, user)
            break
    events.request.fire(
        request_type="JOB",
        name="queued-poll submit-to-result",
        response_time=(time.perf_counter() - began) * 1000,
        response_length=0,
        exception=None if outcome == "ok" else Exception(outcome),
        context={},
    )
    _record("queued-poll", outcome, began_wall, began)


def _error(response: Any) -> BaseException | None:
    """The transport error, if the request got no HTTP answer (status 0)."""
    if response.status_code:
        return None
    error: BaseException | None = response.request_meta.get("exception")
    return error


def _settle(response: Any, outcome: Outcome, user: InferqUser) -> None:
    if outcome == "ok":
        response.success()
    else:
        response.failure(outcome)
    if outcome == "refused" and cfg.honor_retry_after:
        user.backoff_s = retry_after_s(response.headers.get("Retry-After"))


def retry_after_s(header: str | None) -> float:
    """Seconds to wait after a 503: its Retry-After (delta-seconds), 1 s if absent or
    unreadable, at most MAX_BACKOFF_S."""
    try:
        seconds = float(header) if header is not None else 1.0
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_BACKOFF_S)


class InferqUser(FastHttpUser):
    abstract = True
    network_timeout = cfg.timeout_s
    connection_timeout = cfg.timeout_s
    concurrency = 1000  # open-loop users share one client among many requests in flight
    backoff_s = 0.0  # set after a refusal (cfg.honor_retry_after)

    def wait_time(self) -> float:
        """Closed loop: the next request follows the answer at once, or after the
        Retry-After of a 503, as a well-behaved client would."""
        backoff, self.backoff_s = self.backoff_s, 0.0
        return backoff

    def on_start(self) -> None:
        user_id = next(_user_ids)
        self.inputs = InputStream(
            cfg.seed * 100_003 + user_id, cfg.model, cfg.work_ms, cfg.cached_share, cfg.work_sigma
        )
        self.arrivals = random.Random(cfg.seed * 7_919 + user_id)


class DirectUser(InferqUser):
    @task
    def predict(self) -> None:
        direct(self)


class QueuedWaitUser(InferqUser):
    @task
    def submit_and_wait(self) -> None:
        queued_wait(self)


class QueuedPollUser(InferqUser):
    @task
    def submit_and_poll(self) -> None:
        queued_poll(self)


class _Arrivals(InferqUser):
    """One user sends Poisson arrivals at the step's rate, never waiting for answers."""

    abstract = True
    scenario: Callable[[InferqUser], None]
    wait_time = constant(0)  # arrivals keep their rate; they never back off

    @task
    def arrive(self) -> None:
        step = _step(time.time())
        if step >= len(cfg.levels):
            gevent.sleep(0.1)  # draining: answers still in flight are recorded
            return
        gevent.spawn(type(self).scenario, self)
        gevent.sleep(self.arrivals.expovariate(cfg.levels[step]))


class DirectArrivals(_Arrivals):
    scenario = staticmethod(direct)


class QueuedWaitArrivals(_Arrivals):
    scenario = staticmethod(queued_wait)


class QueuedPollArrivals(_Arrivals):
    scenario = staticmethod(queued_poll)


class StepShape(LoadTestShape):
    """Closed loop: cfg.users users per step. Open loop: one arrival user, cfg.rates per step.

    After the last step the open loop drains for one client timeout, so answers to
    requests sent in the last step are still recorded.
    """

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        step = int(elapsed // cfg.step_s)
        if cfg.mode == "open":
            return (1, 1) if elapsed < cfg.duration_s + cfg.timeout_s + 0.5 else None
        if step >= len(cfg.levels):
            return None
        users = int(cfg.levels[step])
        return users, users
