"""Messages between tasks, and the Mediator that routes them.

Agents never call each other. When a task finishes, its output becomes one
`Message` per dependent; each waiting agent gets its messages injected into its
conversation before it starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import networkx as nx


@dataclass
class Message:
    from_task: str
    to_task: str
    type: str = "task_output"
    payload: dict[str, Any] = field(default_factory=dict)   # files_created, decisions, context

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self, title: str | None = None, update: bool = False) -> str:
        """The text an agent reads (an `update` arrives while it works)."""
        p = self.payload
        stage = "partial, still working" if self.type == "partial" else "final"
        head = f"## Update from {title or self.from_task} ({self.from_task}, {stage})" if update \
            else f"### From {title or self.from_task} ({self.from_task}{', partial' if self.type == 'partial' else ''})"
        lines = [head]
        if p.get("files_created"):
            lines.append("Files created: " + ", ".join(p["files_created"]))
        if p.get("files_modified"):
            lines.append("Files modified: " + ", ".join(p["files_modified"]))
        if p.get("summary"):
            lines.append("Summary: " + p["summary"])
        for decision in p.get("decisions") or []:
            lines.append("Decisions: " + decision)
        if p.get("context"):
            lines.append("Context: " + p["context"])
        return "\n".join(lines)


class Mediator:
    """Decides who receives a finished task's output, and keeps every inbox."""

    def __init__(self, graph: nx.DiGraph) -> None:
        self.graph = graph
        self.messages: list[Message] = []

    def route(self, from_task: str, payload: dict[str, Any], type: str = "task_output") -> list[Message]:
        """One message for each task that depends on `from_task`."""
        return [Message(from_task, to, type, payload) for to in self.graph.successors(from_task)]

    def deliver(self, message: Message) -> None:
        self.messages.append(message)

    def inbox(self, task_id: str) -> list[Message]:
        return [m for m in self.messages if m.to_task == task_id]
