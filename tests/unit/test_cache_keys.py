from core.cache import cache_key, canonical_json


def test_key_ignores_key_order_and_whitespace() -> None:
    a = canonical_json({"b": 1, "a": [1.5, "x"]})
    b = canonical_json({"a": [1.5, "x"], "b": 1})
    assert a == b == '{"a":[1.5,"x"],"b":1}'
    assert cache_key("m", "1", a) == cache_key("m", "1", b)


def test_key_separates_models_versions_and_inputs() -> None:
    text = canonical_json({"x": 1})
    keys = {
        cache_key("m", "1", text),
        cache_key("m", "2", text),
        cache_key("n", "1", text),
        cache_key("m", "1", canonical_json({"x": 2})),
        cache_key("m", "1", canonical_json({"x": "1"})),
    }
    assert len(keys) == 5


def test_key_names_its_model_and_version() -> None:
    assert cache_key("burn", "3", "{}").startswith("burn:3:")
