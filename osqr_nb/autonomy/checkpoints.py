"""Checkpoints: questions to the person that an agent awaits without blocking the kernel.

A checkpoint is an awaitable resolved by a click or by `resolve(label)` from
code. Only the waiting agent pauses; the kernel and every other agent go on.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

LET_ME_THINK = "Let me think"


class Checkpoint:
    def __init__(self, id: str, run_id: str, task_id: str, question: str, options: list[str],
                 *, proposed: str | None = None, confidence: float | None = None,
                 category: str = "general", task_title: str | None = None,
                 created_at: float | None = None,
                 record: Callable[["Checkpoint", str, str], None] | None = None) -> None:
        self.id = id
        self.run_id = run_id
        self.task_id = task_id
        self.task_title = task_title or task_id
        self.question = question
        self.choices = list(options)
        self.proposed = proposed
        self.confidence = confidence
        self.category = category
        self.created_at = created_at or time.time()
        self.answer: str | None = None
        self.decided_by: str | None = None
        self.resolved_at: float | None = None
        self.parked = False
        self._record = record
        self._listeners: list[Callable[["Checkpoint"], None]] = []
        self._future: asyncio.Future | None = None

    @property
    def options(self) -> list[str]:
        """The labels the person can choose, ending with "Let me think" (which parks it)."""
        return self.choices + [LET_ME_THINK]

    @property
    def pending(self) -> bool:
        return self.answer is None

    def _get_future(self) -> asyncio.Future:
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
            if self.answer is not None:
                self._future.set_result(self.answer)
        return self._future

    def __await__(self):
        return asyncio.shield(self._get_future()).__await__()

    def on_change(self, listener: Callable[["Checkpoint"], None]) -> None:
        self._listeners.append(listener)

    def resolve(self, label: str, by: str = "code") -> None:
        """Answer with one of `options`; "Let me think" parks it (it stays pending)."""
        if not self.pending:
            raise ValueError(f"checkpoint {self.id} is already answered ({self.answer!r} by {self.decided_by})")
        if label == LET_ME_THINK:
            self.parked = True
            if self._record:
                self._record(self, label, by)
            self._notify()
            return
        if label not in self.choices:
            raise ValueError(f"{label!r} is not an option of this checkpoint; choose one of {self.options}")
        self._settle(label, by, time.time(), record=True)

    def _settle(self, label: str, by: str, at: float, record: bool) -> None:
        self.answer, self.decided_by, self.resolved_at, self.parked = label, by, at, False
        if record and self._record:
            self._record(self, label, by)   # the event is written before the agent goes on
        if self._future is not None and not self._future.done():
            self._future.set_result(label)
        self._notify()

    def _notify(self) -> None:
        for listener in self._listeners:
            listener(self)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "task_id": self.task_id, "question": self.question,
                "options": self.choices, "proposed": self.proposed, "confidence": self.confidence,
                "category": self.category, "created_at": self.created_at}

    def __repr__(self) -> str:
        state = f"answered {self.answer!r} by {self.decided_by}" if self.answer else "pending"
        return f"<Checkpoint {self.task_id}: {self.question!r} options={self.options} {state}>"
