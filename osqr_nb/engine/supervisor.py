"""Between one agent and the person: the autonomy policy, and checkpoints when it says ask.

Each answer is an event. After a restart, a question the person already
answered in an earlier attempt of the task is not asked again.
"""

from __future__ import annotations

import difflib
import time
from typing import TYPE_CHECKING, Any

from ..autonomy.checkpoints import DECISION, ERRORS, WRITE

if TYPE_CHECKING:
    from .run import Run

APPROVE, REJECT, APPROVE_REST = "Approve", "Reject", "Approve the rest of this task"
GO_ON, STOP = "Let it go on", "Stop this task"
MAX_DIFF_LINES = 200


def unified_diff(path: str, old: str | None, new: str) -> str:
    lines = list(difflib.unified_diff((old or "").splitlines(), new.splitlines(),
                                      "/dev/null" if old is None else f"a/{path}", f"b/{path}", lineterm=""))
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"[... cut: {len(lines) - MAX_DIFF_LINES} more diff lines]"]
    return "\n".join(lines)


class TaskSupervisor:
    def __init__(self, run: "Run", task_id: str, attempt: int) -> None:
        self.run = run
        self.task_id = task_id
        self.kind = run.plan[task_id].kind.value
        self.attempt = attempt
        self.approve_rest = False
        self.errors_seen = 0
        self._reused: set[str] = set()

    async def decide(self, question: str, options: list[dict[str, Any]], proposed: str,
                     confidence: float, category: str, blocked: bool = False) -> str:
        verdict = self.run.policy.decide(confidence, category, self.kind, blocked)
        labels = [o["label"] for o in options]
        if not verdict.asks:
            now = time.time()
            self.run._emit("decision", self.task_id, question=question, options=labels, proposed=proposed,
                           chosen=proposed, confidence=confidence, category=category, task_kind=self.kind,
                           decided_by=verdict.action.value, reason=verdict.reason, created_at=now,
                           resolved_at=now, latency=0.0, attempt=self.attempt, checkpoint_kind=None)
            return proposed
        pros_cons = {o["label"]: {"pros": o["pros"], "cons": o["cons"]} for o in options
                     if o["pros"] or o["cons"]}
        return await self._ask(DECISION, question, labels, proposed=proposed, confidence=confidence,
                               category=category, reason=verdict.reason, details={"options": pros_cons})

    async def approve_write(self, path: str, old: str | None, new: str) -> bool:
        if self.approve_rest:
            return True
        verdict = self.run.policy.review_write(path, old, new, self.kind)
        if not verdict.asks:
            return True
        question = f"{'Create' if old is None else 'Change'} {path}?"
        answer = await self._ask(WRITE, question, [APPROVE, REJECT, APPROVE_REST], proposed=APPROVE,
                                 category="file_change", reason=verdict.reason, free_text=False,
                                 details={"path": path, "diff": unified_diff(path, old, new)})
        self.approve_rest = answer == APPROVE_REST
        return answer != REJECT

    async def errors(self, errors: list[str]) -> bool:
        if len(errors) < self.errors_seen:
            self.errors_seen = 0
        verdict = self.run.policy.on_errors(len(errors) - self.errors_seen, self.kind)
        if not verdict.asks:
            return True
        self.errors_seen = len(errors)
        answer = await self._ask(ERRORS, f"The agent's last {len(errors)} tool calls failed. Let it go on?",
                                 [GO_ON, STOP], proposed=GO_ON, category="errors", reason=verdict.reason,
                                 details={"errors": errors[-5:]}, free_text=False)
        return answer == GO_ON

    async def _ask(self, kind: str, question: str, options: list[str], **fields: Any) -> str:
        earlier = self._earlier_answer(question)
        if earlier is not None:
            return earlier
        return await self.run._ask(self.task_id, kind=kind, question=question, options=options,
                                   attempt=self.attempt, **fields)

    def _earlier_answer(self, question: str) -> str | None:
        """An answer given to this question in an earlier attempt (each used once)."""
        for decision in self.run.state.decisions:
            key = f"{decision.get('checkpoint_id')}"
            if (decision["task_id"] == self.task_id and decision.get("question") == question
                    and decision.get("checkpoint_id") and decision.get("attempt", 0) < self.attempt
                    and key not in self._reused):
                self._reused.add(key)
                return decision["chosen"]
        return None
