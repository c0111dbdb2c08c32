"""A batch's failures stay with the inputs that cause them."""

import json
from typing import Any

from pydantic import BaseModel

from core.predict import predict_batch


class Item(BaseModel):
    n: int


class Picky:
    name = "picky"
    version = "1"
    batchable = True
    deterministic = True
    input_schema = Item

    def __init__(self, drop_one: bool = False) -> None:
        self.calls: list[int] = []
        self.drop_one = drop_one

    def load(self) -> None:
        pass

    def predict(self, inputs: list[Any]) -> list[Any]:
        self.calls.append(len(inputs))
        if any(item.n < 0 for item in inputs):
            raise ValueError("negative")
        outputs = [{"double": item.n * 2} for item in inputs]
        return outputs[:-1] if self.drop_one else outputs


def _inputs(*values: int) -> list[str]:
    return [json.dumps({"n": v}) for v in values]


def test_a_good_batch_is_one_call_with_outputs_in_order() -> None:
    model = Picky()
    outcomes = predict_batch(model, _inputs(1, 2, 3))
    assert model.calls == [3]
    assert [json.loads(o.result_json) for o in outcomes] == [{"double": d} for d in (2, 4, 6)]


def test_a_raising_batch_is_rerun_one_by_one_so_only_the_bad_input_fails() -> None:
    model = Picky()
    outcomes = predict_batch(model, _inputs(1, -1, 3))
    assert model.calls == [3, 1, 1, 1]
    assert [o.is_ok for o in outcomes] == [True, False, True]
    assert outcomes[1].error is not None and outcomes[1].error.code == "model_error"
    assert "negative" in outcomes[1].error.message


def test_a_wrong_number_of_outputs_fails_the_whole_batch_clearly() -> None:
    outcomes = predict_batch(Picky(drop_one=True), _inputs(1, 2, 3))
    assert all(o.error is not None and o.error.code == "model_output_mismatch" for o in outcomes)
    assert outcomes[0].error is not None and "2 outputs for 3 inputs" in outcomes[0].error.message


def test_an_input_that_no_longer_validates_fails_alone() -> None:
    model = Picky()
    outcomes = predict_batch(model, [*_inputs(1), '{"n": "x"}', *_inputs(3)])
    assert model.calls == [2]
    assert [o.is_ok for o in outcomes] == [True, False, True]
