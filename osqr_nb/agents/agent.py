"""The agent: a tool loop over one task in one worktree.

The model asks for tools; the agent runs them and answers. Decisions, file
changes and runs of failures go through the `Supervisor` (the autonomy policy,
maybe a checkpoint); `finish` ends the loop.
Between turns the agent waits at `gate`, which is how Pause All reaches it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..models.base import ModelClient, Reply, Usage
from ..models.errors import BadToolCall, ProviderError, Truncated
from ..plan.task import Task
from .messages import Message
from .commands import CommandError
from .secrets import redact, redacting
from .tools import TOOL_SPECS, Rejected, ToolError, validate_arguments

SYSTEM_PROMPT = """\
You are one of several coding agents working in parallel on one repository, each in
its own git worktree. Do only your task. Use the tools: list_files, read_file, search,
write_file and edit_file work inside your worktree; run_command runs the project's own
tests, linters and builds there. Call report_decision before acting on a design choice
you are not sure of and use the option it returns. Use share to tell the tasks that
build on yours what you know so far. Messages from the tasks you depend on may arrive
while you work: adapt to them. Call finish when done, with a summary, your decisions
and the context that tasks building on yours need."""

Emit = Callable[..., None]


class Supervisor(Protocol):
    """What the agent asks of the orchestrator: the autonomy policy, maybe a person."""

    async def decide(self, question: str, options: list[dict[str, Any]], proposed: str,
                     confidence: float, category: str, blocked: bool) -> str: ...

    async def approve_write(self, path: str, old: str | None, new: str) -> bool: ...

    async def errors(self, errors: list[str]) -> bool: ...   # True: let the agent go on

    async def on_reply(self, reply: Reply, sent: list[dict[str, Any]] | None = None,
                       latency: float | None = None) -> None: ...   # log, cost, budgets (may wait)

    async def provider_failed(self, error: ProviderError) -> ModelClient | None: ...

    async def approve_command(self, command: str, sandbox: str) -> bool: ...

    def share(self, context: str, files: list[str]) -> int: ...             # how many got it

    def new_messages(self) -> list[str]: ...                                # arrived since last asked

    async def before_finish(self) -> list[str]: ...   # waits for partial inputs; late news, if any


class Workplace(Protocol):
    """What the agent needs of its task's workspace (workspace.task_workspace.TaskWorkspace)."""

    @property
    def sandbox_mode(self) -> str: ...
    async def call(self, name: str, arguments: dict[str, Any]) -> str: ...
    async def current_text(self, path: str) -> str | None: ...
    async def plan_edit(self, path: str, old: str, new: str, replace_all: bool) -> tuple[str, str]: ...
    async def run_command(self, command: str | list[str], timeout: float | None) -> Any: ...
    def explain(self, tool: str, exc: BaseException) -> str: ...
    async def turn_done(self) -> None: ...


class AgentError(RuntimeError):
    pass


class AgentStopped(AgentError):
    """The person (or the policy) stopped this task."""


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
    def __init__(self, task: Task, workspace: Workplace, model: ModelClient, *,
                 inbox: list[Message], titles: dict[str, str], supervisor: Supervisor, emit: Emit,
                 gate: asyncio.Event | None = None, max_turns: int = 40, resumed: bool = False,
                 notes: list[str] | None = None) -> None:
        self.task = task
        self.workspace = workspace
        self.model = model
        self.supervisor = supervisor
        self.failures: list[str] = []         # tool errors since the last success
        self.emit = redacting(emit)          # tool arguments, results and errors are logged
        self.gate = gate
        self.max_turns = max_turns
        self.messages: list[dict[str, Any]] = [
            {"role": "user", "content": "\n\n".join([brief(task, inbox, titles, resumed), *(notes or [])])}]

    async def run(self) -> AgentResult:
        usage = Usage()
        idle_turns = 0
        for turn in range(1, self.max_turns + 1):
            if self.gate is not None:
                await self.gate.wait()
            self._take_updates()
            reply = await self._ask_model()
            if reply is None:
                continue                          # the failure was told to the model; ask again
            usage = usage + reply.usage
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
                    late = await self.supervisor.before_finish()
                    if not late:
                        args = call.arguments
                        return AgentResult(str(args.get("summary", "")), list(args.get("decisions") or []),
                                           str(args.get("context", "")), turn, usage)
                    result = "not finished: new input arrived from the tasks you depend on; adapt your " \
                             "work to it, then call finish again\n\n" + "\n\n".join(late)
                else:
                    result = await self._tool(call.name, call.arguments)
                self.messages.append({"role": "tool", "tool_call_id": call.id, "content": redact(result)})
            await self.workspace.turn_done()
        raise AgentError(f"no finish after {self.max_turns} turns")

    def _take_updates(self) -> None:
        """Messages that arrived while this agent ran (partial shares, final outputs)."""
        updates = self.supervisor.new_messages()
        if updates:
            self.messages.append({"role": "user", "content": "\n\n".join(updates)})

    async def _ask_model(self) -> Reply | None:
        """One model call. A provider that stays down asks the supervisor (retry, or another
        model); a malformed or cut-off tool call is told to the model, which tries again."""
        while True:
            started = time.perf_counter()
            try:
                reply = await self.model.complete(SYSTEM_PROMPT, self.messages, TOOL_SPECS)
            except BadToolCall as exc:
                await self._spent(exc.reply)
                await self._failed_call(exc.reply, exc.call_id, f"the arguments of your {exc.tool_name} "
                                        "call were not a JSON object; call it again with valid JSON")
                return None
            except Truncated as exc:
                await self._spent(exc.reply)
                await self._failed_call(None, None, f"your reply was cut off at {exc.max_tokens} tokens "
                                        "inside a tool call; work in smaller steps (smaller files, edit_file)")
                return None
            except ProviderError as exc:
                replacement = await self.supervisor.provider_failed(exc)
                if replacement is not None:
                    self.model = replacement
                continue
            await self._spent(reply, time.perf_counter() - started)
            await asyncio.sleep(0)      # a model that answers at once (a cache, the offline one) would make
            return reply                # the whole turn one step of the loop: the person's cells go between

    async def _spent(self, reply: Reply | None, latency: float | None = None) -> None:
        if reply is not None:
            await self.supervisor.on_reply(reply, self.messages, latency)

    async def _failed_call(self, reply: Reply | None, call_id: str | None, message: str) -> None:
        if reply is not None and (reply.text or reply.tool_calls):
            self.messages.append({"role": "assistant", "content": reply.text, "tool_calls": reply.tool_calls})
            for call in reply.tool_calls:
                self.messages.append({"role": "tool", "tool_call_id": call.id,
                                      "content": "not run: another call in this reply was malformed"})
        self.messages.append({"role": "user", "content": f"error: {message}"})
        self.failures.append(message)
        self.emit("tool_call", name="(model)", path=None, ok=False, error=message)
        if not await self.supervisor.errors(list(self.failures)):
            raise AgentStopped(f"stopped after {len(self.failures)} failures in a row: {message}")

    async def _tool(self, name: str, args: dict[str, Any]) -> str:
        handlers = {"report_decision": self._decided, "write_file": self._write, "edit_file": self._edit,
                    "run_command": self._command, "share": self._share}
        try:
            if name in handlers:
                result = await handlers[name](validate_arguments(name, args))
            else:
                result = await self.workspace.call(name, args)
        except Rejected as exc:
            self.emit("tool_call", name=name, path=_target(args), ok=False, error=str(exc), args=args)
            return f"error: {exc}"
        except AgentError:
            raise                                # the task was stopped: not a failure of the tool's
        except Exception as exc:                 # whatever a tool raised, the model reads it and goes on
            error = str(exc) if isinstance(exc, ToolError) else self.workspace.explain(name, exc)
            self.emit("tool_call", name=name, path=_target(args), ok=False, error=error, args=args)
            self.failures.append(f"{name}: {error}")
            if not await self.supervisor.errors(list(self.failures)):
                raise AgentStopped(f"stopped after {len(self.failures)} failed tool calls in a row: "
                                   f"{self.failures[-1]}") from None
            return f"error: {error}"
        self.failures.clear()
        self.emit("tool_call", name=name, path=_target(args), ok=True, args=args, result=result)
        return result

    async def _decided(self, args: dict[str, Any]) -> str:
        return f"chosen: {await self._decision(args)}\nUse this option."

    async def _edit(self, args: dict[str, Any]) -> str:
        path = args["path"]
        old, new = await self.workspace.plan_edit(path, args["old"], args["new"], bool(args.get("replace_all")))
        if not await self.supervisor.approve_write(path, old, new):
            raise Rejected(f"the person rejected this change to {path}; do not make it")
        return await self.workspace.call("edit_file", args)

    async def _command(self, args: dict[str, Any]) -> str:
        command = args["command"]
        shown = command if isinstance(command, str) else " ".join(command)
        if not await self.supervisor.approve_command(shown, self.workspace.sandbox_mode):
            raise Rejected(f"the person did not let this command run: {shown}")
        try:
            result = await self.workspace.run_command(command, args.get("timeout"))
        except CommandError as exc:
            raise ToolError(str(exc)) from None
        self.emit("command", **result.summary())
        return result.text()

    async def _share(self, args: dict[str, Any]) -> str:
        sent = self.supervisor.share(str(args.get("context", "")), list(args.get("files") or []))
        return f"shared with {sent} waiting task(s)" if sent else "shared (no task depends on this one)"

    async def _write(self, args: dict[str, Any]) -> str:
        path, content = args["path"], args["content"]
        old = await self.workspace.current_text(path)   # size-checked: a huge file is not read whole
        if not await self.supervisor.approve_write(path, old, content):
            raise Rejected(f"the person rejected this change to {path}; do not make it")
        return await self.workspace.call("write_file", args)

    async def _decision(self, args: dict[str, Any]) -> str:
        options = [_option(o) for o in (args.get("options") or [])]
        if not options or any(o is None for o in options):
            raise ToolError("options must be a non-empty list of labels (or of {label, pros, cons})")
        try:
            confidence = float(args.get("confidence"))
        except (TypeError, ValueError):
            raise ToolError("confidence must be a number between 0 and 1") from None
        if not 0 <= confidence <= 1:
            raise ToolError(f"confidence must be between 0 and 1, got {confidence}")
        labels = [o["label"] for o in options]
        proposed = args.get("proposed") if args.get("proposed") in labels else labels[0]
        return await self.supervisor.decide(str(args.get("question", "")), options, proposed, confidence,
                                            str(args.get("category") or "general"),
                                            bool(args.get("blocked", False)))


def _option(raw: Any) -> dict[str, Any] | None:
    """An option as {label, pros, cons}, from a plain label or a dict."""
    if isinstance(raw, str) and raw.strip():
        return {"label": raw.strip(), "pros": [], "cons": []}
    if isinstance(raw, dict) and isinstance(raw.get("label"), str) and raw["label"].strip():
        listed = {k: [raw[k]] if isinstance(raw.get(k), str) else list(raw.get(k) or []) for k in ("pros", "cons")}
        return {"label": raw["label"].strip(), **listed}
    return None


def _target(args: dict[str, Any]) -> Any:
    """What a tool call is about, for the event log: its path, or its command."""
    return args.get("path") if isinstance(args, dict) and "path" in args else \
        (args.get("command") if isinstance(args, dict) else None)
