"""Checkpoints: questions to the person that an agent awaits without blocking the kernel.

A checkpoint is an awaitable resolved by a click or by `resolve(label)` from
code. Only the waiting agent pauses; the kernel and every other agent go on.
The answer is recorded (through `record`) before the agent is let go.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

LET_ME_THINK = "Let me think"

DECISION, WRITE, ERRORS, COLLISION, CONFLICT = "decision", "write", "errors", "collision", "conflict"


class CheckpointClosed(ValueError):
    """The run or task the checkpoint belongs to has ended; it can no longer be answered."""


class Checkpoint:
    def __init__(self, id: str, run_id: str, task_id: str, question: str, options: list[str],
                 *, kind: str = DECISION, proposed: str | None = None, confidence: float | None = None,
                 category: str = "general", task_title: str | None = None, reason: str = "",
                 details: dict[str, Any] | None = None, affects: list[str] | None = None,
                 free_text: bool = True, created_at: float | None = None,
                 record: Callable[["Checkpoint", str, str], None] | None = None,
                 validate: Callable[[str], str | None] | None = None) -> None:
        self.id = id
        self.run_id = run_id
        self.task_id = task_id
        self.task_title = task_title or task_id
        self.question = question
        self.choices = list(options)
        self.kind = kind
        self.proposed = proposed
        self.confidence = confidence
        self.category = category
        self.reason = reason                  # why it was asked
        self.details = details or {}          # pros and cons per option, a diff, errors
        self.affects = affects or []          # titles of the tasks that depend on this one
        self.free_text = free_text            # may the answer be none of the options?
        self.created_at = created_at or time.time()
        self.answer: str | None = None
        self.decided_by: str | None = None
        self.resolved_at: float | None = None
        self.parked = False
        self.timed_out = False                # answered with the proposal when time ran out
        self.closed: str | None = None
        self._record = record
        self._validate = validate             # why a free-text answer cannot be taken, or None
        self._listeners: list[Callable[["Checkpoint"], None]] = []
        self._future: asyncio.Future | None = None

    @property
    def options(self) -> list[str]:
        """The labels the person can choose, ending with "Let me think" (which parks it)."""
        return self.choices + [LET_ME_THINK]

    @property
    def pending(self) -> bool:
        return self.answer is None and self.closed is None

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
        self._check_open()
        if label == LET_ME_THINK:
            self.parked = True
            if self._record:
                self._record(self, label, by)
            self._notify()
            return
        if label not in self.choices:
            raise ValueError(f"{label!r} is not an option of this checkpoint; choose one of {self.options}"
                             + (" or answer in your own words with answer(text)" if self.free_text else ""))
        self._settle(label, by)

    def answer_text(self, text: str, by: str = "code") -> None:
        """Answer in your own words: none of the options."""
        self._check_open()
        if not self.free_text:
            raise ValueError(f"this checkpoint takes one of {self.choices}, not free text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("the answer is empty; write what the agent should do")
        problem = self._validate(text) if self._validate else None
        if problem:
            raise ValueError(f"not taken: {problem}")
        self._settle(text if self._validate else text.strip(), by)

    def _check_open(self) -> None:
        if self.closed is not None:
            raise CheckpointClosed(f"checkpoint {self.id} can no longer be answered: {self.closed}")
        if self.answer is not None:
            raise ValueError(f"checkpoint {self.id} is already answered ({self.answer!r} by {self.decided_by})")

    def _settle(self, label: str, by: str) -> None:
        self.answer, self.decided_by, self.resolved_at, self.parked = label, by, time.time(), False
        if self._record:
            self._record(self, label, by)   # the event is written before the agent goes on
        if self._future is not None and not self._future.done():
            self._future.set_result(label)
        self._notify()

    def close(self, why: str) -> None:
        """The task or run ended while this was pending: refuse answers from now on."""
        if self.pending:
            self.closed = why
            if self._future is not None and not self._future.done():
                self._future.cancel()
            self._notify()

    def _notify(self) -> None:
        for listener in self._listeners:
            listener(self)

    def __repr__(self) -> str:
        if self.answer:
            state = f"answered {self.answer!r} by {self.decided_by}"
        else:
            state = f"closed ({self.closed})" if self.closed else "parked" if self.parked else "pending"
        return f"<Checkpoint {self.task_id}: {self.question!r} options={self.options} {state}>"
