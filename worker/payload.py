"""What travels through a model queue for one computation: plain text, never a pickle."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Computation:
    """One model input and the Redis keys its jobs and shared result live under.

    Its queue member is the four fields joined by newlines; the computation key comes
    first so Lua can cut it off. Canonical JSON never holds a raw newline.
    """

    key: str
    leader: str
    result_key: str
    input_json: str

    def member(self) -> str:
        return f"{self.key}\n{self.leader}\n{self.result_key}\n{self.input_json}"

    @classmethod
    def from_member(cls, member: bytes | str) -> Computation:
        text = member.decode() if isinstance(member, bytes) else member
        key, leader, result_key, input_json = text.split("\n", 3)
        return cls(key, leader, result_key, input_json)
