"""Property tests: equal validated inputs share one cache key, different ones never do."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from core.cache import cache_key, canonical_json
from core.models.burn import BurnInput

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _reordered(value: Any) -> Any:
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {k: _reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(v) for v in value]
    return value


@given(json_values)
def test_key_order_never_changes_the_key(value: Any) -> None:
    assert canonical_json(value) == canonical_json(_reordered(value))
    assert cache_key("m", "1", canonical_json(value)) == cache_key(
        "m", "1", canonical_json(_reordered(value))
    )


@given(json_values, json_values)
def test_different_values_get_different_keys(a: Any, b: Any) -> None:
    if json.loads(canonical_json(a)) != json.loads(canonical_json(b)):
        assert cache_key("m", "1", canonical_json(a)) != cache_key("m", "1", canonical_json(b))


@given(st.text(max_size=50), st.integers(min_value=0, max_value=10_000))
def test_equal_validated_inputs_share_a_key_whatever_their_wire_form(text: str, work: int) -> None:
    forms = [{"text": text, "work_ms": work}, {"work_ms": float(work), "text": text}]
    keys = {
        cache_key("burn", "1", canonical_json(BurnInput.model_validate(f).model_dump(mode="json")))
        for f in forms
    }
    assert len(keys) == 1


@given(st.text(max_size=30), st.text(max_size=30))
def test_model_and_version_are_part_of_the_key(model: str, version: str) -> None:
    body = canonical_json({"x": 1})
    if (model, version) != ("m", "1"):
        assert cache_key(model, version, body) != cache_key("m", "1", body)
