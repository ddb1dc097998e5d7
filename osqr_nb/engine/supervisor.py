"""Between one agent and the person: the autonomy policy, and checkpoints when it says ask.

Each answer is an event. After a restart, a question the person already
answered in an earlier attempt of the task is not asked again.
"""

from __future__ import annotations

import dataclasses
import difflib
import time
from typing import TYPE_CHECKING, Any

from ..agents.agent import AgentStopped
from ..agents.commands import unsandboxed_refusal
from ..agents.tools import ToolError
from ..autonomy.checkpoints import DECISION, ERRORS, WRITE
from ..models.base import ModelClient, Reply
from ..models.catalog import ModelInfo
from ..models.errors import ProviderError
from ..models.pricing import price
from ..store.events import to_json

if TYPE_CHECKING:
    from .run import Run

APPROVE, REJECT, APPROVE_REST = "Approve", "Reject", "Approve the rest of this task"
GO_ON, STOP, RETRY = "Let it go on", "Stop this task", "Retry"
RUN_IT, DONT_RUN, RUN_ALL = "Run it", "Don't run it", "Run this and the rest of this task's commands"
MAX_DIFF_LINES = 200


def unified_diff(path: str, old: str | None, new: str) -> str:
    lines = list(difflib.unified_diff((old or "").splitlines(), new.splitlines(),
                                      "/dev/null" if old is None else f"a/{path}", f"b/{path}", lineterm=""))
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"[... cut: {len(lines) - MAX_DIFF_LINES} more diff lines]"]
    return "\n".join(lines)


class TaskSupervisor:
    def __init__(self, run: "Run", task_id: str, attempt: int, model: ModelInfo | None = None) -> None:
        self.run = run
        self.task_id = task_id
        self.model = model
        self.kind = run.plan[task_id].kind.value
        self.attempt = attempt
        self.approve_rest = False
        self.errors_seen = 0
        self._reused: set[str] = set()
        self._logged = 0           # messages of the conversation already in the log
        self.commands_approved = False
        self._seen_messages = len(run.state.messages)   # the inbox before the agent started

    async def decide(self, question: str, options: list[dict[str, Any]], proposed: str,
                     confidence: float, category: str, blocked: bool = False) -> str:
        verdict = self.run.policy.decide(confidence, category, self.kind, blocked)
        labels = [o["label"] for o in options]
        if not verdict.asks:
            now = time.time()
            self.run.emit("decision", self.task_id, question=question, options=labels, proposed=proposed,
                           chosen=proposed, confidence=confidence, category=category, task_kind=self.kind,
                           decided_by=verdict.action.value, reason=verdict.reason, created_at=now,
                           resolved_at=now, latency=0.0, attempt=self.attempt, checkpoint_kind=None)
            return proposed
        pros_cons = {o["label"]: {"pros": o["pros"], "cons": o["cons"]} for o in options
                     if o["pros"] or o["cons"]}
        return await self.ask(DECISION, question, labels, proposed=proposed, confidence=confidence,
                               category=category, reason=verdict.reason, details={"options": pros_cons})

    async def approve_write(self, path: str, old: str | None, new: str) -> bool:
        if self.approve_rest:
            return True
        verdict = self.run.policy.review_write(path, old, new, self.kind)
        if not verdict.asks:
            return True
        question = f"{'Create' if old is None else 'Change'} {path}?"
        answer = await self.ask(WRITE, question, [APPROVE, REJECT, APPROVE_REST], proposed=APPROVE,
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
        answer = await self.ask(ERRORS, f"The agent's last {len(errors)} tool calls failed. Let it go on?",
                                 [GO_ON, STOP], proposed=GO_ON, category="errors", reason=verdict.reason,
                                 details={"errors": errors[-5:]}, free_text=False)
        return answer == GO_ON

    async def on_reply(self, reply: Reply, sent: list[dict[str, Any]] | None = None,
                       latency: float | None = None) -> None:
        """Record the call (what was sent, the reply, usage, cost, latency), then hold the agent
        if a budget is spent. Message bodies are stored once, by content hash."""
        usage = reply.usage
        info = self.model
        cost = price(info.model_id, info.provider, usage) if info else None
        new = [self.run.log.put_blob(_json(m)) for m in (sent or [])[self._logged:]]
        self._logged = len(sent or [])
        self.run.emit("model_reply", self.task_id, model=info.name if info else self.run.model_name,
                       sent=new, reply=self.run.log.put_blob(_json(_as_message(reply))),
                       latency=latency, attempt=self.attempt,
                       input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                       cache_read_tokens=getattr(usage, "cache_read_tokens", 0),
                       cache_write_tokens=getattr(usage, "cache_write_tokens", 0),
                       cost_usd=cost, stop_reason=reply.stop_reason, tools=[c.name for c in reply.tool_calls])
        if cost is None and info is not None and info.name not in self.run.state.unpriced:
            self.run.emit("cost_unknown", self.task_id, model=info.name, model_id=info.model_id,
                           warning=f"no known price for {info.model_id}: its cost is counted as unknown, not zero")
        await self.run.budgets.check(self)

    async def provider_failed(self, error: ProviderError) -> ModelClient | None:
        """A provider that stays down: the task waits on a [Retry] [Switch model] card."""
        current = self.model.name if self.model else self.run.model_name
        self.run.emit("provider_failed", self.task_id, model=current, error=str(error),
                       status_code=error.status_code, kind=type(error).__name__)
        others = self.run.router.alternatives(self.kind, current) if self.run.router else []
        options = [RETRY] + [f"Switch to {m.name}" for m in others[:3]] + [STOP]
        answer = await self.ask(ERRORS, f"⚠ {error}", options, proposed=RETRY, category="provider",
                                 reason="the model's provider failed after its retries", free_text=False,
                                 details={"errors": [str(error)]}, fresh=True)
        if answer == STOP:
            raise AgentStopped(f"stopped after the provider failed: {error}")
        if answer == RETRY:
            return None
        chosen = next(m for m in others if answer == f"Switch to {m.name}")
        self.model = chosen
        self.run.emit("task_routed", self.task_id, reason="switched", **_route_fields(chosen))
        return self.run.router.client(chosen)

    async def approve_command(self, command: str, sandbox: str) -> bool:
        """Unsandboxed commands can touch the whole machine: refused unless the person opted in
        (OSQR.unsandboxed_commands), then tiers 1-2 ask before each one. [Run it] approves this
        command only; [Run this and the rest of this task's commands] is the one blanket answer."""
        if sandbox != "none":
            return True
        refusal = unsandboxed_refusal()
        if refusal is not None:
            raise ToolError(refusal)
        tier = self.run.policy.tier_for(self.kind)
        if tier > 2 or self.commands_approved:
            return True
        answer = await self.ask(WRITE, f"Run `{command}` without a sandbox?", [RUN_IT, DONT_RUN, RUN_ALL],
                                 proposed=RUN_IT, category="command", free_text=False,
                                 reason=f"no sandbox is usable here, so the command could read and change "
                                        f"files outside the worktree (tier {tier})",
                                 details={"errors": [command]})
        self.commands_approved = answer == RUN_ALL
        return answer != DONT_RUN

    def share(self, context: str, files: list[str]) -> int:
        """Publish partial context to the tasks that depend on this one (a `partial` message each)."""
        messages = self.run.mediator.route(self.task_id, {"context": context, "files_created": files},
                                           type="partial")
        delivered = [m.to_dict() for m in self.run.state.messages]
        fresh = [m for m in messages if m.to_dict() not in delivered]   # a restarted task shares once
        self.run.emit_all([("message", self.task_id, m.to_dict()) for m in fresh])
        return len(messages)

    def new_messages(self) -> list[str]:
        """Messages to this task that arrived since the agent last looked, as text."""
        messages = self.run.state.messages
        fresh = [m for m in messages[self._seen_messages:] if m.to_task == self.task_id]
        self._seen_messages = len(messages)
        return [m.render(self.run.titles.get(m.from_task), update=True) for m in fresh]

    async def before_finish(self) -> list[str]:
        """A task that started on partial inputs finishes only once they have: their results
        are merged into its worktree, and whatever they said since comes back as late news."""
        inputs = self.run.partial_inputs(self.task_id)
        for task_id in inputs:
            await self.run.settled(task_id)
        notes = await self.run.bring_in_inputs(self.task_id, inputs)
        return self.new_messages() + notes

    async def ask(self, kind: str, question: str, options: list[str], fresh: bool = False,
                   **fields: Any) -> str:
        earlier = None if fresh else self._earlier_answer(question)
        if earlier is not None:
            return earlier
        return await self.run.ask(self.task_id, kind=kind, question=question, options=options,
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


def _route_fields(info: ModelInfo) -> dict[str, Any]:
    return {"model": info.name, "model_id": info.model_id, "provider": info.provider}


def _as_message(reply: Reply) -> dict[str, Any]:
    return {"role": "assistant", "content": reply.text, "tool_calls": reply.tool_calls,
            "stop_reason": reply.stop_reason}


def _json(message: dict[str, Any]) -> str:
    return to_json(message, default=_plain, sort_keys=True)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return str(value)
