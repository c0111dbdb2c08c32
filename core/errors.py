"""One error hierarchy; api/ maps each class to an HTTP status in one place."""


class InferqError(Exception):
    """Base of every error inferq raises on purpose; `code` is stable wire format."""

    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownModelError(InferqError):
    code = "unknown_model"


class InvalidInputError(InferqError):
    code = "invalid_input"

    def __init__(self, message: str, fields: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.fields = fields


class JobNotFoundError(InferqError):
    code = "job_not_found"


class JobNotCancelableError(InferqError):
    code = "job_not_cancelable"


class ModelError(InferqError):
    """A model raised (or answered wrongly) while predicting; its job ends `failed`."""

    code = "model_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code or self.code


class TransientModelError(InferqError):
    """Raise from `predict` for a failure worth retrying (a flaky downstream service)."""

    code = "model_error"


class IdempotencyKeyReusedError(InferqError):
    """The Idempotency-Key was used before for a different request."""

    code = "idempotency_key_reused"


class ModelTimeoutError(InferqError):
    """A model call ran past its time limit; the process running it was killed."""

    code = "timeout"


class ModelProcessDiedError(InferqError):
    code = "model_process_died"


class ModelLoadError(InferqError):
    code = "model_load_error"


class RetryLaterError(InferqError):
    """Refused for now; the client may retry after `retry_after_s` seconds."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)


class OverloadedError(RetryLaterError):
    """Refused at admission: the service is past what it can serve in time."""

    code = "overloaded"


class QueueFullError(OverloadedError):
    code = "queue_full"


class DeadlineUnmeetableError(OverloadedError):
    code = "deadline_unmeetable"


class DirectPathBusyError(OverloadedError):
    code = "shed"


class DeadlineExceededError(OverloadedError):
    """A /predict request that could no longer finish within its deadline when its turn came."""

    code = "deadline_exceeded"


class ClientLeftError(InferqError):
    """The client closed the connection before its request was served (nobody reads this)."""

    code = "client_left"


class IntakePausedError(OverloadedError):
    code = "paused"


class ModelVersionNotLoadedError(RetryLaterError):
    """A job pinned to a model version that no live consumer has loaded."""

    code = "model_version_not_loaded"


class UnauthorizedError(InferqError):
    code = "unauthorized"


class ForbiddenError(InferqError):
    code = "forbidden"


class RateLimitedError(RetryLaterError):
    code = "rate_limited"
