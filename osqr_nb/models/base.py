"""The seam between agents and model providers: one async method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]   # JSON schema of the arguments


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_reason: str = "end_turn"   # end_turn | tool_use | max_tokens
    usage: Usage = field(default_factory=Usage)


class ModelClient(Protocol):
    """A chat model that can call tools.

    `messages` are provider-neutral dicts: {"role": "user"|"assistant"|"tool",
    "content": str, "tool_calls": [ToolCall...] (assistant), "tool_call_id": str (tool)}.
    """

    name: str   # shown in widgets and events

    async def complete(self, system: str, messages: list[dict[str, Any]],
                       tools: list[ToolSpec]) -> Reply: ...
