"""Budgets: a warning at 90% of the run's budget; at 100% the run pauses on a card.

[Raise budget to $X] carries on; [Stop here] cancels the run with nothing lost
(finished work is on its branches, unfinished worktrees stay for resume).
A per-task cap works the same way for one task.
"""

from __future__ import annotations

import math

import asyncio
from typing import TYPE_CHECKING

from ..autonomy.checkpoints import ERRORS

if TYPE_CHECKING:
    from .run import Run
    from .supervisor import TaskSupervisor

WARN_AT = 0.9
STOP_HERE, STOP_TASK = "Stop here", "Stop this task"


def check_budget(value: object, name: str = "budget") -> float | None:
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{name} must be a positive number of US dollars, got {value!r}")
    return float(value)


class Budgets:
    def __init__(self, run: "Run") -> None:
        self.run = run
        self._lock = asyncio.Lock()

    async def check(self, supervisor: "TaskSupervisor") -> None:
        state = self.run.state
        task = state.tasks[supervisor.task_id]
        if state.task_budget and task.cost_usd >= task.budget_cap(state.task_budget):
            await self._task_over(supervisor, task.budget_cap(state.task_budget))
        if not state.budget:
            return
        if state.total_cost >= WARN_AT * state.budget and not state.budget_warned:
            self.run.emit("budget_warning", spent=state.total_cost, budget=state.budget,
                           warning=f"the run has spent ${state.total_cost:.2f} of its ${state.budget:.2f} budget")
        async with self._lock:                 # one card for the run, however many agents cross at once
            if state.total_cost >= state.budget:
                await self._run_over(supervisor)

    async def _run_over(self, supervisor: "TaskSupervisor") -> None:
        state = self.run.state
        raised = math.ceil(max(state.budget * 2, state.total_cost * 1.5) * 100) / 100   # whole cents, up
        raise_label = f"Raise budget to ${raised:.2f}"
        was_paused = state.paused
        self.run.pause()
        answer = await supervisor.ask(
            ERRORS, f"The run has spent ${state.total_cost:.2f}, its whole ${state.budget:.2f} budget.",
            [raise_label, STOP_HERE], proposed=STOP_HERE, category="budget", free_text=False, fresh=True,
            reason="the run's budget is spent", details={"errors": [f"spent ${state.total_cost:.4f}"]})
        if answer == STOP_HERE:
            self.run.emit("budget_stop", spent=state.total_cost, budget=state.budget)
            self.run.cancel()
            await asyncio.sleep(0)            # let the cancellation reach this task
            return
        self.run.emit("budget_raised", budget=raised, previous=state.budget)
        if not was_paused:
            self.run.resume()

    async def _task_over(self, supervisor: "TaskSupervisor", cap: float) -> None:
        task = self.run.state.tasks[supervisor.task_id]
        raised = math.ceil(cap * 2 * 100) / 100
        answer = await supervisor.ask(
            ERRORS, f"This task has spent ${task.cost_usd:.2f}, its whole ${cap:.2f} cap.",
            [f"Raise task budget to ${raised:.2f}", STOP_TASK], proposed=STOP_TASK, category="budget",
            free_text=False, fresh=True, reason="the task's budget is spent")
        if answer == STOP_TASK:
            from ..agents.agent import AgentStopped
            raise AgentStopped(f"stopped at its budget of ${cap:.2f}")
        self.run.emit("task_budget_raised", supervisor.task_id, budget=raised)
