"""The agent: a tool loop over one task in one worktree.

The model asks for tools; the agent runs them and answers. Decisions go through
`decide` (the autonomy policy, maybe a checkpoint); `finish` ends the loop.
Between turns the agent waits at `gate`, which is how Pause All reaches it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from ..models.base import ModelClient, Usage
from ..plan.task import Task
from .messages import Message
from .tools import TOOL_SPECS, ToolError, Workspace

SYSTEM_PROMPT = """\
You are one of several coding agents working in parallel on one repository, each in
its own git worktree. Do only your task. Use the tools: list_files, read_file and
write_file work inside your worktree; call report_decision before acting on a design
choice you are not sure of and use the option it returns; call finish when done, with
a summary, your decisions and the context that tasks building on yours need."""

Decide = Callable[[str, list[str], str, float, str], Awaitable[str]]
Emit = Callable[..., None]


class AgentError(RuntimeError):
    pass


@dataclass
class AgentResult:
    summary: str
    decisions: list[str] = field(default_factory=list)
    context: str = ""
    turns: int = 0
    usage: Usage = field(default_factory=Usage)


def brief(task: Task, inbox: list[Message], titles: dict[str, str], resumed: bool = False) -> str:
    """The first user message: the task and what its inputs reported."""
    parts = [f"# Task: {task.title}", f"id: {task.id}", f"kind: {task.kind.value}", "",
             task.description or task.title]
    if inbox:
        parts += ["", "## From the tasks you depend on"]
        parts += [m.render(titles.get(m.from_task)) for m in inbox]
    if resumed:
        parts += ["", "Note: this task was interrupted and restarted; files you wrote before "
                  "the interruption are still in the worktree."]
    return "\n".join(parts)


class Agent:
    def __init__(self, task: Task, workspace: Workspace, model: ModelClient, *,
                 inbox: list[Message], titles: dict[str, str], decide: Decide, emit: Emit,
                 gate: asyncio.Event | None = None, max_turns: int = 40, resumed: bool = False) -> None:
        self.task = task
        self.workspace = workspace
        self.model = model
        self.decide = decide
        self.emit = emit
        self.gate = gate
        self.max_turns = max_turns
        self.messages: list[dict[str, Any]] = [
            {"role": "user", "content": brief(task, inbox, titles, resumed)}]

    async def run(self) -> AgentResult:
        usage = Usage()
        idle_turns = 0
        for turn in range(1, self.max_turns + 1):
            if self.gate is not None:
                await self.gate.wait()
            reply = await self.model.complete(SYSTEM_PROMPT, self.messages, TOOL_SPECS)
            usage = usage + reply.usage
            self.emit("model_reply", input_tokens=reply.usage.input_tokens,
                      output_tokens=reply.usage.output_tokens, stop_reason=reply.stop_reason,
                      tools=[c.name for c in reply.tool_calls])
            self.messages.append({"role": "assistant", "content": reply.text,
                                  "tool_calls": reply.tool_calls})
            if not reply.tool_calls:
                idle_turns += 1
                if idle_turns >= 3:
                    raise AgentError(f"the model stopped calling tools ({turn} turns) without finish")
                self.messages.append({"role": "user", "content": "Continue with the tools; call "
                                      "finish when the task is done."})
                continue
            idle_turns = 0
            for call in reply.tool_calls:
                if call.name == "finish":
                    args = call.arguments
                    return AgentResult(str(args.get("summary", "")), list(args.get("decisions") or []),
                                       str(args.get("context", "")), turn, usage)
                result = await self._tool(call.name, call.arguments)
                self.messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        raise AgentError(f"no finish after {self.max_turns} turns")

    async def _tool(self, name: str, args: dict[str, Any]) -> str:
        try:
            if name == "report_decision":
                chosen = await self._decision(args)
                return f"chosen: {chosen}\nUse this option."
            result = self.workspace.call(name, args)
        except ToolError as exc:
            self.emit("tool_call", name=name, path=args.get("path"), ok=False, error=str(exc))
            return f"error: {exc}"
        self.emit("tool_call", name=name, path=args.get("path"), ok=True)
        return result

    async def _decision(self, args: dict[str, Any]) -> str:
        options = args.get("options")
        if not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options):
            raise ToolError("options must be a non-empty list of strings")
        try:
            confidence = float(args.get("confidence"))
        except (TypeError, ValueError):
            raise ToolError("confidence must be a number between 0 and 1") from None
        if not 0 <= confidence <= 1:
            raise ToolError(f"confidence must be between 0 and 1, got {confidence}")
        proposed = args.get("proposed") if args.get("proposed") in options else options[0]
        return await self.decide(str(args.get("question", "")), options, proposed, confidence,
                                 str(args.get("category") or "general"))
