"""The merge agent: a model (the one routed for review) proposes a merged file.

It sees the base, both versions, and both tasks' intents; it must answer through
one tool, with the whole merged file, an explanation and a confidence. Every
proposal is checked (no conflict markers; for Python: it parses and loses no
name) and a failed check goes back to the model, a bounded number of times.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable

from ..models.base import ModelClient, Reply, ToolSpec
from .merge import Conflict, problems_with

PROPOSE = ToolSpec("propose_merge", "Give the merged file.", {
    "type": "object",
    "properties": {"merged": {"type": "string", "description": "the whole merged file"},
                   "explanation": {"type": "string", "description": "what you kept from each side, and why"},
                   "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
    "required": ["merged", "explanation", "confidence"]})

SYSTEM = ("You merge the work of two coding agents. Keep both sides' intended changes unless they "
          "truly contradict; never leave conflict markers; answer only with the propose_merge tool.")


@dataclass
class Proposal:
    text: str
    explanation: str
    confidence: float


def brief(conflict: Conflict) -> str:
    intents = json.dumps(conflict.intents, indent=1, ensure_ascii=False)
    return (f"File: {conflict.file}\nWhy it needs you: {conflict.reason}\n\nWhat each task meant:\n{intents}\n\n"
            f"--- base ---\n{conflict.base}\n--- ours (merged so far: {', '.join(conflict.other_tasks)}) ---\n"
            f"{conflict.ours}\n--- theirs ({conflict.task}) ---\n{conflict.theirs}\n--- with markers ---\n"
            f"{conflict.marked}")


async def propose_merge(model: ModelClient, conflict: Conflict, attempts: int = 2,
                        on_reply: Callable[[Reply, float], None] | None = None) -> tuple[Proposal | None, str]:
    """A checked proposal, or None with the reason (the last check that failed).

    `on_reply(reply, seconds)` hears of every reply, retries included, so the run can log and price it."""
    messages = [{"role": "user", "content": brief(conflict)}]
    reason = "the model gave no proposal"
    for _ in range(attempts):
        started = time.monotonic()
        reply = await model.complete(SYSTEM, messages, [PROPOSE])
        if on_reply is not None:
            on_reply(reply, time.monotonic() - started)
        call = next((c for c in reply.tool_calls if c.name == PROPOSE.name), None)
        messages.append({"role": "assistant", "content": reply.text, "tool_calls": reply.tool_calls})
        if call is None:
            messages.append({"role": "user", "content": "Answer with the propose_merge tool."})
            continue
        args = call.arguments
        text = args.get("merged") if isinstance(args.get("merged"), str) else ""
        problem = problems_with(text, conflict.file, conflict.base, conflict.ours, conflict.theirs) \
            if text else "the merged file is empty"
        if problem is None:
            try:
                confidence = min(max(float(args.get("confidence", 0)), 0.0), 1.0)
            except (TypeError, ValueError):
                confidence = 0.0
            return Proposal(text, str(args.get("explanation", "")), confidence), ""
        reason = f"the proposal was refused: {problem}"
        messages.append({"role": "tool", "tool_call_id": call.id, "content": f"error: {reason}; try again"})
    return None, reason
