import pytest
from pydantic import ValidationError

from config import Settings


def test_defaults_are_sane() -> None:
    settings = Settings(_env_file=None)
    assert settings.job_ttl_s == 86_400 and settings.namespace == "inferq"
    assert settings.api_keys == [] and settings.max_body_bytes == 1_048_576


def test_production_refuses_the_built_in_queue_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERQ_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="INFERQ_QUEUE_SECRET"):
        Settings(_env_file=None)
    monkeypatch.setenv("INFERQ_QUEUE_SECRET", "a-long-random-production-secret")
    assert Settings(_env_file=None).environment == "production"


def test_api_keys_split_and_stay_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERQ_API_KEYS", "alpha-key, beta-key")
    settings = Settings(_env_file=None)
    assert [k.get_secret_value() for k in settings.api_keys] == ["alpha-key", "beta-key"]
    assert "alpha-key" not in repr(settings)


def test_models_setting_splits_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERQ_MODELS", "pkg.mod:A, other.mod:B")
    assert Settings(_env_file=None).models == ["pkg.mod:A", "other.mod:B"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INFERQ_LOCAL_CACHE_SIZE", "-1"),
        ("INFERQ_JOB_TTL_S", "0"),
        ("INFERQ_MODELS", "not a path"),
        ("INFERQ_NAMESPACE", "bad:name"),
        ("INFERQ_WAIT_TIMEOUT_DEFAULT_S", "500"),
        ("INFERQ_HEARTBEAT_TTL_S", "1"),
        ("INFERQ_ENVIRONMENT", "staging"),
        ("INFERQ_QUEUE_SECRET", "short"),
        ("INFERQ_MAX_BODY_BYTES", "10"),
    ],
)
def test_nonsense_is_refused_at_startup(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)
