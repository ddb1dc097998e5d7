"""The Integrator: every task branch merged into the run's integration branch.

Merges go in topological order with git's own 3-way merge, so changes that do
not overlap merge by themselves. An overlap becomes a `Conflict` record and the
merge of that branch is aborted: every branch stays intact for a resolver.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import git

_MARKER_START = re.compile(r"^<<<<<<< ")
_MARKER_END = re.compile(r"^>>>>>>> ")


@dataclass
class Conflict:
    file: str
    lines: list[tuple[int, int]]   # 1-based line ranges of conflict blocks in the marked file
    task: str                      # the task whose branch could not be merged
    other_tasks: list[str]         # tasks already merged that changed the same file

    def describe(self) -> str:
        spans = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in self.lines) or "?"
        others = ", ".join(self.other_tasks) or "the run's base"
        return f"Conflict in {self.file} lines {spans}: {self.task} vs {others}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Integration:
    branch: str
    merged: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    head: str | None = None

    @property
    def clean(self) -> bool:
        return not self.conflicts


def conflict_ranges(text: str) -> list[tuple[int, int]]:
    ranges, start = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if _MARKER_START.match(line):
            start = number
        elif _MARKER_END.match(line) and start is not None:
            ranges.append((start, number))
            start = None
    return ranges


class Integrator:
    """Merges a run's task branches into `osqr/<run>/integration`."""

    def __init__(self, root: Path, run_id: str, base: str, worktree: Path) -> None:
        self.root = root
        self.base = base
        self.worktree = worktree
        self.branch = f"osqr/{run_id}/integration"

    async def integrate(self, branches: list[tuple[str, str, list[str]]]) -> Integration:
        """Merge (task_id, branch, files the task changed) in the given (topological) order."""
        await git.add_worktree(self.root, self.worktree, self.branch, self.base)
        # Start over from the base each time, so that a resumed run integrates once, cleanly.
        await git.git(self.worktree, "reset", "--hard", "-q", self.base)
        result = Integration(self.branch)
        touched: dict[str, list[str]] = {}
        for task_id, branch, files in branches:
            conflicted = await git.merge_branches(self.worktree, [branch], f"osqr: merge {task_id}")
            if conflicted:
                for name in conflicted:
                    marked = (self.worktree / name)
                    text = marked.read_text(errors="replace") if marked.exists() else ""
                    result.conflicts.append(Conflict(name, conflict_ranges(text), task_id,
                                                     touched.get(name, [])))
                await git.abort_merge(self.worktree)
                continue
            result.merged.append(task_id)
            for name in files:
                touched.setdefault(name, []).append(task_id)
        result.head = await git.head(self.worktree)
        return result
