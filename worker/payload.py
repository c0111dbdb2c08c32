"""What travels through the queue for one computation: plain data only."""

from __future__ import annotations

from typing import TypedDict


class ComputationPayload(TypedDict):
    leader: str
    rank: int
    model: str
    model_version: str
    computation: str
    result_key: str
    input_json: str
