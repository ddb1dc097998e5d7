"""The run's check on one task's work, while a cascade can still act on it.

A learned cascade sends a task to a cheap model first and on to a stronger one when
the first attempt fails. An agent that gives up is a failure the run sees; one that
finishes with work that breaks the project is not, until the person overrides it,
too late. So when the run has a check command (`--check`, e.g. `pytest -q`) and a
task is on a cascade's cheap model, the check runs in the task's workspace where
the task starts and again once its work is committed (so nothing that second run
leaves behind is committed; what the first leaves, such as a build's output, is in
the workspace the agent starts from, as if it had run the check itself): work that
turns a passing check into a failing one is a failed attempt, and the task goes on
to the cascade's last model from the same commit, before any dependent sees its
output. A check that already fails where the task starts says nothing about the
task, and decides nothing; neither does one that cannot run (no sandbox, and
unsandboxed commands not allowed). The start's answer is asked once per start
commit (tasks at the run's base share it), and read back from the log when a run
is resumed after a kill.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..agents.agent import AgentError
from ..agents.secrets import redact
from ..agents.tool_calls import ToolError

if TYPE_CHECKING:
    from ..workspace.task_workspace import TaskWorkspace
    from .run import Run

CHECK_SECONDS = 600        # as the integration's check
TAIL_CHARS = 1_500         # of the check's output, kept in its event


class CheckBroke(AgentError):
    """The attempt's work turned the run's check from passing to failing."""


class TaskChecks:
    """The run's check before and after each cheap attempt on a cascade."""

    def __init__(self, run: "Run") -> None:
        self.run = run
        self._at_start: dict[str, asyncio.Future[bool | None]] = {}   # start commit -> passes there
        self._before: dict[str, bool | None] = {}                      # task -> passes where it started

    def applies(self, task_id: str) -> bool:
        """A check is set, and this attempt is on a cascade's cheap model (not yet escalated)."""
        task = self.run.state.tasks[task_id]
        return bool(self.run.check and task.escalate_to and not task.escalated_from
                    and task.escalate_to != task.route)

    async def before(self, task_id: str, workspace: "TaskWorkspace", fresh: bool) -> None:
        """Whether the check passes where the task starts, kept for `after`. A resumed workspace
        already holds the agent's work: its answer is the one logged before the kernel went
        away, or not known (None) when none was."""
        self._before[task_id] = None
        start = self.run.state.tasks[task_id].start_commit
        if not self.applies(task_id) or start is None:
            return
        if start not in self._at_start:
            if not fresh:
                self._before[task_id] = self._logged(start)
                return
            self._at_start[start] = asyncio.ensure_future(self._check(task_id, workspace, "start", start))
        self._before[task_id] = await asyncio.shield(self._at_start[start])

    def _logged(self, start: str) -> bool | None:
        """The check's answer at `start` as the log has it (a run reopened after a kill)."""
        answers = [e.data.get("ok") for e in self.run.log.read(self.run.id)
                   if e.type == "task_checked" and e.data.get("at") == "start" and e.data.get("commit") == start]
        return answers[-1] if answers else None

    async def after(self, task_id: str, workspace: "TaskWorkspace") -> None:
        """Raise CheckBroke when the check passed where the task started and fails on its work."""
        if self._before.pop(task_id, None) is not True or not self.applies(task_id):
            return
        if await self._check(task_id, workspace, "finish") is False:
            raise CheckBroke(f"`{self.run.check}` passed where the task started and fails after its work")

    async def _check(self, task_id: str, workspace: "TaskWorkspace", at: str,
                     commit: str | None = None) -> bool | None:
        try:
            outcome = await workspace.run_command(self.run.check, CHECK_SECONDS)
        except ToolError as exc:          # no sandbox, and unsandboxed commands not allowed
            self.run.emit("task_checked", task_id, at=at, commit=commit, command=self.run.check, error=str(exc))
            return None
        details: dict[str, Any] = outcome.summary()
        self.run.emit("task_checked", task_id, at=at, commit=commit, command=self.run.check, ok=outcome.ok,
                      tail=redact(outcome.text()[-TAIL_CHARS:]), **details)
        return outcome.ok
