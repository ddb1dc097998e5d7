"""Bringing a task's inputs (its dependencies' results) into its workspace.

Inputs are merged in the user's repository, in memory (`git merge-tree`), one
branch at a time: an octopus merge gives up when a join has many merge bases,
and no checkout means the cost does not grow with the repository, and the
workspace may be on another machine. A fresh task's workspace is then made at
the merged commit; a partial dependency's final result arrives while the
dependent works, so the dependent's work in progress is saved as a commit on its
own branch first (never `git stash`), merged with the input, and the workspace
moved forward to the merge. What git cannot merge goes to the run's resolvers
(semantic merge, merge agent, card); what none settles keeps the task's own
side, and the agent is shown the input's version and told to reconcile. No
conflict marker is ever committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..workspace import git
from ..workspace.merge import Conflict, conflict_in_tree
from ..workspace.task_workspace import TaskWorkspace
from .resolution import MergeResolution
from .state import COMPLETE

if TYPE_CHECKING:
    from .run import Run

MAX_NOTE = 8_000      # characters of an input's version shown to the agent


class TaskInputs:
    """The inputs of one task of a run, merged for its workspace."""

    def __init__(self, run: "Run", task_id: str) -> None:
        self.run = run
        self.task_id = task_id
        self.root = run.root

    async def start_from(self, inputs: list[str]) -> tuple[str, list[str]]:
        """The commit a fresh task starts at (the base, its finished inputs merged in) and the
        notes for the agent on what it must reconcile."""
        notes: list[str] = []
        head = self.run.state.base
        for input_id in inputs:
            head = await self._merge(head, input_id, notes)
        return head, notes

    async def bring_in(self, workspace: TaskWorkspace, inputs: list[str]) -> list[str]:
        """Merge finished partial inputs into the running task's workspace, its own edits kept
        (saved first). Returns notes for the agent on what it must reconcile."""
        tip = self.run.branch(self.task_id)
        pending = [t for t in inputs if self.run.state.tasks[t].status == COMPLETE
                   and not await git.is_merged(self.root, self.run.branch(t), tip)]
        if not pending:
            return []
        saved = await workspace.save(f"osqr: work in progress of {self.task_id}, before merging "
                                     f"{', '.join(pending)}", author=f"osqr-nb agent ({self.task_id})")
        notes: list[str] = []
        head = saved.commit
        for input_id in pending:
            head = await self._merge(head, input_id, notes)
        if head != saved.commit:
            await workspace.advance(head)
        return notes

    async def _merge(self, head: str, input_id: str, notes: list[str]) -> str:
        """`head` with one input merged in (itself when the input is in its history already; the
        input's tip when `head` is in the input's history: a fast-forward, as git would)."""
        branch = self.run.branch(input_id)
        if await git.is_merged(self.root, branch, head):
            return head
        if await git.is_merged(self.root, head, branch):
            merged = await git.rev_parse(self.root, branch)
            conflicted: list[str] = []
        else:
            merge = await git.merge_trees(self.root, head, branch)
            conflicted = sorted(merge.conflicts)
            resolved = {name: await self._settle(input_id, merge, name, notes) for name in conflicted}
            merged = await git.commit_merge(self.root, merge, resolved, [head, branch],
                                            f"osqr: {input_id} into {self.task_id}")
        self.run.emit("input_merged", self.task_id, input=input_id, conflicts=conflicted)
        return merged

    async def _settle(self, input_id: str, merge: git.TreeMerge, name: str, notes: list[str]) -> str | None:
        """The resolvers' text for one conflicted file, or this task's own side (None: deleted)."""
        conflict = await conflict_in_tree(self.root, merge, name, input_id, [self.task_id],
                                          self._intents([self.task_id, input_id]))
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
