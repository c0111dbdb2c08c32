"""The one Settings class: every knob, read from INFERQ_* variables or `.env`."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PositiveFloat = Annotated[float, Field(gt=0)]
DEVELOPMENT_SECRET = "inferq-development-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFERQ_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = Field(
        "production", description="development allows the built-in queue secret"
    )
    redis_url: str = "redis://127.0.0.1:6379/0"
    namespace: str = Field("inferq", description="prefix of every Redis key and channel")
    redis_max_connections: int = Field(32, ge=2, description="async pool size per API process")
    redis_timeout_s: PositiveFloat = 5.0

    default_model: str = "iris"
    model_dir: str | None = Field(
        None, description="a model repository: <name>/<version>/model.toml (README: Models)"
    )
    model_reload_s: PositiveFloat = Field(
        5.0, description="how often every process looks for changes in INFERQ_MODEL_DIR"
    )
    model_check_minutes: int = Field(
        10, ge=1, le=59, description="how often consumers check models on their reference data"
    )
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="extra models, comma-separated module:Class paths"
    )
    burn_iterations_per_ms: int = Field(0, ge=0, description="0 calibrates once per machine")

    batch_max_size: int | None = Field(
        None, ge=1, description="cap on inputs per model call, every model; 1 turns batching off"
    )
    batch_max_wait_ms: float | None = Field(
        None, ge=0, le=1_000, description="longest a partial batch is held; unset: the model's"
    )

    job_ttl_s: int = Field(86_400, gt=0)
    result_cache_ttl_s: int = Field(3_600, ge=0, description="shared Redis tier; 0 disables")
    local_cache_size: int = Field(10_000, ge=0, description="LRU entries per API process")

    wait_timeout_default_s: PositiveFloat = 30.0
    wait_timeout_max_s: PositiveFloat = 300.0
    poll_retry_after_s: int = Field(1, ge=1, description="Retry-After on 202 answers")

    direct_workers: int = Field(2, ge=1, description="model processes per API process")
    direct_shedding: bool = Field(True, description="refuse /predict past direct_max_pending")
    direct_max_pending: int = Field(8, ge=1, description="/predict running plus waiting")
    queue_max_depth: int = Field(1_000, ge=1, description="queued jobs ahead of a new one")
    default_deadline_s: float | None = Field(
        None, gt=0, description="submit-to-result budget of jobs that state none; unset: none"
    )
    cancel_on_disconnect: bool = Field(
        True, description="cancel a queued job whose POST /jobs?wait=true client left"
    )
    lifo_after_s: float = Field(
        1.0,
        ge=0,
        description="serve newest first once the oldest queued job waited this long; "
        "0: always FIFO",
    )
    model_timeout_s: PositiveFloat = Field(
        60.0, description="longest a model call may run before its process is killed"
    )
    retries: int = Field(2, ge=0, description="retries of a job whose model failed transiently")
    retry_delay_s: float = Field(1.0, ge=0, description="first retry delay; doubles each time")

    metrics_dir: str = Field(
        ".run/metrics", description="root of the servers' prometheus multiprocess directories"
    )
    consumer_metrics_port: int | None = Field(
        None, ge=1, le=65_535, description="a consumer serves its own /metrics here; unset: off"
    )
    consumer_metrics_host: str = Field("127.0.0.1", description="address of that port")

    queue_secret: SecretStr = Field(
        SecretStr(DEVELOPMENT_SECRET), description="HMAC key that signs queue messages"
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="comma-separated; empty: no authentication"
    )
    operator_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="comma-separated; may list every tenant's jobs"
    )
    metrics_require_key: bool = False
    rate_limit_per_s: float = Field(0, ge=0, description="per API key; 0: no limit")
    rate_limit_burst: int = Field(20, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1_024)
    max_attempts: int = Field(3, ge=1, description="runs of a job before it fails worker_lost")
    consumer_max_delay_s: PositiveFloat = Field(
        1.0, description="cap on huey's back-off after queue errors (its -m)"
    )

    heartbeat_interval_s: PositiveFloat = 2.0
    heartbeat_ttl_s: PositiveFloat = 10.0

    log_dir: str = "logs"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_retention_days: int = Field(7, ge=1)

    @field_validator("models", "api_keys", "operator_keys", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("models")
    @classmethod
    def _check_paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not re.fullmatch(r"[\w.]+:\w+", path):
                raise ValueError(f"{path!r} is not a module:ClassName path")
        return paths

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", value):
            raise ValueError("namespace takes letters, digits, '_' and '-' only")
        return value

    @model_validator(mode="after")
    def _check_relations(self) -> Self:
        if self.wait_timeout_default_s > self.wait_timeout_max_s:
            raise ValueError("wait_timeout_default_s exceeds wait_timeout_max_s")
        if self.heartbeat_ttl_s <= self.heartbeat_interval_s:
            raise ValueError("heartbeat_ttl_s must exceed heartbeat_interval_s")
        secret = self.queue_secret.get_secret_value()
        if self.environment != "development" and secret == DEVELOPMENT_SECRET:
            raise ValueError(
                "INFERQ_QUEUE_SECRET is the built-in development secret: set a secret of "
                "your own, or INFERQ_ENVIRONMENT=development on a development machine"
            )
        if len(secret) < 16:
            raise ValueError("queue_secret must be at least 16 characters")
        return self


@lru_cache
def get_settings() -> Settings:
    """Settings of this process, read once."""
    return Settings()
