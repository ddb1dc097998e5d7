"""Bringing a task's inputs (its dependencies' results) into its worktree.

Inputs are merged one branch at a time: an octopus merge of many inputs gives up
when a join has many merge bases. A partial dependency's final result arrives
while the dependent works, so the dependent's work in progress is committed on
its own branch first (never `git stash`, which would park it in the user's
stash list and bring it back as conflict markers), then the input is merged.
What git cannot merge goes to the run's resolvers (semantic merge, merge agent,
card); what none settles keeps the task's own side, and the agent is shown the
input's version and told to reconcile. No conflict marker is ever committed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..workspace import git
from ..workspace.merge import Conflict, conflict_at
from .resolution import MergeResolution
from .state import COMPLETE

if TYPE_CHECKING:
    from .run import Run

MAX_NOTE = 8_000      # characters of an input's version shown to the agent


class TaskInputs:
    """The inputs of one task of a run, merged into its worktree."""

    def __init__(self, run: "Run", task_id: str) -> None:
        self.run = run
        self.task_id = task_id
        self.path = run.worktree(task_id)

    async def bring_in(self, inputs: list[str]) -> list[str]:
        """Merge finished partial inputs into the running task's worktree, its own edits kept
        (committed first). Returns notes for the agent on what it must reconcile."""
        pending = [t for t in inputs if self.run.state.tasks[t].status == COMPLETE
                   and not await git.is_merged(self.path, self.run.branch(t))]
        if not pending:
            return []
        nested = await asyncio.to_thread(git.nested_repositories, self.path)
        await git.commit_all(self.path, f"osqr: work in progress of {self.task_id}, before merging "
                             f"{', '.join(pending)}", author=f"osqr-nb agent ({self.task_id})", leave_out=nested)
        return await self.merge(pending)

    async def merge(self, inputs: list[str]) -> list[str]:
        """Merge each input's branch in turn (an input already in the history is skipped, so
        this is safe to repeat after a crash); returns the notes for the agent."""
        notes: list[str] = []
        for input_id in inputs:
            branch = self.run.branch(input_id)
            if await git.is_merged(self.path, branch):
                continue
            conflicted = await git.start_merge(self.path, branch, f"osqr: {input_id} into {self.task_id}")
            resolved = {name: await self._settle(input_id, name, notes) for name in conflicted}
            if conflicted:
                await git.finish_merge(self.path, resolved)
            self.run.emit("input_merged", self.task_id, input=input_id, conflicts=conflicted)
        return notes

    async def _settle(self, input_id: str, name: str, notes: list[str]) -> str | None:
        """The resolvers' text for one conflicted file, or this task's own side (None: deleted)."""
        conflict = await conflict_at(self.path, name, input_id, [self.task_id], self._intents([self.task_id, input_id]))
        conflict.reason = f"{self.task_id} and its input {input_id} both changed the same lines"
        text = await MergeResolution(self.run).resolve(conflict)
        if text is not None:
            return text
        notes.append(reconcile_note(conflict, self.run.titles.get(input_id, input_id)))
        self.run.emit("input_conflict_left_to_agent", self.task_id, input=input_id, file=name)
        return None if conflict.ours_missing else conflict.ours

    def _intents(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        plan, decisions = self.run.plan, self.run.state.decisions
        return {t: {"title": plan[t].title, "description": plan[t].description,
                    "decisions": [d["chosen"] for d in decisions if d["task_id"] == t]} for t in task_ids}


def reconcile_note(conflict: Conflict, title: str) -> str:
    """What the agent reads when its input's change could not be merged into its own work."""
    theirs = "(deleted there)" if conflict.theirs_missing else conflict.theirs
    if len(theirs) > MAX_NOTE:
        theirs = theirs[:MAX_NOTE] + f"\n[... cut: {len(theirs) - MAX_NOTE} more characters]"
    return (f"## Your input {title} ({conflict.task}) also changed {conflict.file}\n"
            f"Both changed the same lines and no automatic merge settled it, so {conflict.file} now "
            f"holds your version{' (you deleted it)' if conflict.ours_missing else ''}. Make it right for "
            f"both: keep what your task needs and bring in what {title} did. Its version:\n"
            f"```\n{theirs}\n```")
