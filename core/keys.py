"""Every Redis key and channel inferq uses, in one place, under one namespace."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKeys:
    namespace: str = "inferq"

    def job(self, job_id: str) -> str:
        return f"{self.namespace}:job:{job_id}"

    @property
    def job_prefix(self) -> str:
        return f"{self.namespace}:job:"

    def result(self, cache_key: str) -> str:
        return f"{self.namespace}:result:{cache_key}"

    def computation(self, cache_key: str) -> str:
        """List of job ids attached to one in-flight computation."""
        return f"{self.namespace}:inflight:{cache_key}"

    def queue(self, model: str, version: str) -> str:
        """Sorted set of queued computations of one model version, first to run lowest."""
        return f"{self.namespace}:queue:{model}:{version}"

    @property
    def queues(self) -> str:
        """Set of every model-version queue key that has ever held work."""
        return f"{self.namespace}:queues"

    @property
    def sequence(self) -> str:
        """Counter of enqueued computations: FIFO order within a priority."""
        return f"{self.namespace}:seq"

    @property
    def overlapping_arrivals(self) -> str:
        """Counter of computations enqueued while others were queued or running."""
        return f"{self.namespace}:overlapping"

    def lease(self, holder: str) -> str:
        """A consumer thread's field in `leases`."""
        return f"{self.namespace}:lease:{holder}"

    @property
    def leases(self) -> str:
        """Hash of the batches consumers hold: per lease, the worker id, then queue, score
        and leader per computation, joined by newlines."""
        return f"{self.namespace}:held"

    @property
    def delayed(self) -> str:
        """Sorted set of computations waiting to retry, scored by when they may run."""
        return f"{self.namespace}:delayed"

    @property
    def solo(self) -> str:
        """Set of leader job ids that run alone: their batch ran out of time."""
        return f"{self.namespace}:solo"

    @property
    def queue_prefix(self) -> str:
        return self.queue("", "")[:-1]

    @property
    def computation_prefix(self) -> str:
        return self.computation("")

    def job_index(self, owner: str | None = None, status: str | None = None) -> str:
        """Sorted set of job ids by creation time: all jobs, one owner's, or one status's.

        Kept by the scripts that change jobs (worker/scripts.py `_INDEX`); only the
        statuses in `core.jobs.INDEXED_STATUSES` have a set.
        """
        if status is not None:
            return f"{self.namespace}:jobs:status:{status}"
        if owner:
            return f"{self.namespace}:jobs:owner:{owner}"
        return f"{self.namespace}:jobs:all"

    @property
    def paused(self) -> str:
        """Hash present while an operator has paused intake: who paused it, and when."""
        return f"{self.namespace}:paused"

    def idempotency(self, tenant: str, key_digest: str) -> str:
        """A tenant's Idempotency-Key: the job it created and the request's fingerprint."""
        return f"{self.namespace}:idem:{tenant or '-'}:{key_digest}"

    def rate_limit(self, tenant: str) -> str:
        return f"{self.namespace}:ratelimit:{tenant}"

    @property
    def done_channel(self) -> str:
        return f"{self.namespace}:done"

    @property
    def heartbeats(self) -> str:
        """Sorted set: worker id -> time of its last heartbeat."""
        return f"{self.namespace}:heartbeats"

    @property
    def model_reloads(self) -> str:
        """Counter an operator's POST /models/reload increments: every process reloads."""
        return f"{self.namespace}:models:reloads"

    @property
    def checks(self) -> str:
        """Hash: name@version -> the JSON of its latest check (core/checks.py)."""
        return f"{self.namespace}:models:checks"

    @property
    def check_results(self) -> str:
        """Counter of checks recorded: API processes choose current versions again on a change."""
        return f"{self.namespace}:models:checked"

    def check_claim(self, spec: str) -> str:
        """Held while one consumer checks `spec`, so a deployment checks it once."""
        return f"{self.namespace}:models:checking:{spec}"

    def consumer(self, worker_id: str) -> str:
        """Hash describing one live consumer worker: host, pid, current batch, jobs done."""
        return f"{self.namespace}:consumer:{worker_id}"

    def history(self, bucket: int) -> str:
        """Hash of what every process tallied in one time bucket (core/history.py)."""
        return f"{self.namespace}:history:{bucket}"

    @property
    def stats(self) -> str:
        """Hash of queue statistics, such as the recent service time."""
        return f"{self.namespace}:stats"

    @property
    def queue_tokens(self) -> str:
        """List with one token per queued message: consumers block on it, not on the queue."""
        return f"{self.namespace}:queue-tokens"

    @property
    def huey_name(self) -> str:
        """huey's queue name; huey keeps only [A-Za-z0-9_] of it."""
        return f"{self.namespace}_jobs"
