"""The Integrator: every task branch merged into the run's integration branch.

Merges go in topological order with git's own 3-way merge, so changes that do
not overlap merge by themselves. A clean text merge is not yet a good merge:
Python files both sides changed are checked (the result parses, no name it uses
was renamed or removed by one side), and so are the imports between files (no
`from utils import helper` left pointing at a `helper` the other side renamed),
before the merge is committed. Each overlap
(or failed check) becomes a `Conflict` with the base, both sides and both
tasks' intents, handed to a resolver; what no resolver settles is reported and
the merge of that branch aborted, so every branch stays intact.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from . import git
from .imports import BrokenImport, Version, broken_imports, wanted_paths
from .semantic import check_merged

_MARKER_START = re.compile(r"^<<<<<<< ")
_MARKER_END = re.compile(r"^>>>>>>> ")
_MARKERS = re.compile(r"^(<<<<<<<|=======|>>>>>>>)( |$)", re.M)
REVIEW = "merged cleanly; marked for merge review when the two tasks were let run in parallel"


@dataclass
class Conflict:
    file: str
    lines: list[tuple[int, int]]   # 1-based line ranges of conflict blocks in the marked file
    task: str                      # the task whose branch could not be merged
    other_tasks: list[str]         # tasks already merged that changed the same file
    base: str = ""                 # the file at the merge base
    ours: str = ""                 # as merged so far (the earlier tasks' side)
    theirs: str = ""               # as this task left it
    marked: str = ""               # with git's conflict markers
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)   # task -> title, description, decisions
    reason: str = "both sides changed the same lines"
    ours_missing: bool = False     # one side deleted the file (git's modify/delete conflict)
    theirs_missing: bool = False

    def describe(self) -> str:
        spans = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in self.lines) or "?"
        others = ", ".join(self.other_tasks) or "the run's base"
        return f"Conflict in {self.file} lines {spans}: {self.task} vs {others} ({self.reason})"

    def to_dict(self) -> dict:
        return asdict(self)


Resolve = Callable[[Conflict], Awaitable[str | None]]


@dataclass
class Integration:
    branch: str
    merged: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    resolved: list[Conflict] = field(default_factory=list)
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


def problems_with(text: str, path: str, base: str = "", ours: str = "", theirs: str = "") -> str | None:
    """Why a proposed merge result cannot be used (markers left, not Python, lost names), or None."""
    if _MARKERS.search(text):
        return "conflict markers are still in the file"
    if path.endswith((".py", ".pyi")):
        return check_merged(base, ours, theirs, text) if (base or ours or theirs) else _parse_error(text)
    return None


def _parse_error(text: str) -> str | None:
    try:
        compile(text, "<merged>", "exec")
    except SyntaxError as error:
        return f"the result is not valid Python: {error.msg} (line {error.lineno})"
    return None


async def _stage(worktree: Path, spec: str) -> str | None:
    code, out = await git.git(worktree, "show", spec, check=False)
    return out if code == 0 else None


async def conflict_at(worktree: Path, name: str, task_id: str, others: list[str],
                      intents: dict[str, dict[str, Any]]) -> Conflict:
    """The Conflict git left at `name` in a worktree mid-merge (its stages 1-3 and the marked file)."""
    marked_path = worktree / name
    marked = marked_path.read_text(errors="replace") if marked_path.is_file() else ""
    base, ours, theirs = [await _stage(worktree, f":{stage}:{name}") for stage in (1, 2, 3)]
    return Conflict(name, conflict_ranges(marked), task_id, others, base or "", ours or "", theirs or "",
                    marked, intents, "both sides changed the same lines",
                    ours_missing=ours is None, theirs_missing=theirs is None)


class Integrator:
    """Merges a run's task branches into `osqr/<run>/integration`."""

    def __init__(self, root: Path, run_id: str, base: str, worktree: Path,
                 intents: dict[str, dict[str, Any]] | None = None,
                 reviews: list[dict[str, Any]] | None = None) -> None:
        self.reviews = reviews or []        # pairs let run in parallel "with merge review"
        self.root = root
        self.base = base
        self.worktree = worktree
        self.branch = f"osqr/{run_id}/integration"
        self.intents = intents or {}

    async def integrate(self, branches: list[tuple[str, str, list[str]]],
                        resolve: Resolve | None = None) -> Integration:
        """Merge (task_id, branch, files the task changed) in the given (topological) order."""
        await git.add_worktree(self.root, self.worktree, self.branch, self.base)
        # Start over from the base each time, so that a resumed run integrates once, cleanly.
        await git.git(self.worktree, "reset", "--hard", "-q", self.base)
        result = Integration(self.branch)
        touched: dict[str, list[str]] = {}
        for task_id, branch, files in branches:
            conflicts = await self._merge_one(task_id, branch, files, touched)
            unresolved = []
            for conflict in conflicts:
                text = await resolve(conflict) if resolve is not None else None
                if text is not None and git.has_markers(text) and not git.has_markers(conflict.base):
                    text = None            # a resolution that kept markers is no resolution
                if text is None:
                    unresolved.append(conflict)
                else:
                    (self.worktree / conflict.file).write_text(text)
                    await git.git(self.worktree, "add", "--", conflict.file)
                    result.resolved.append(conflict)
            if unresolved:
                result.conflicts.extend(unresolved)
                await git.abort_merge(self.worktree)
                continue
            await git.git(self.worktree, "commit", "--no-verify", "-q", "--no-edit", "--allow-empty",
                          "-m", f"osqr: merge {task_id}")
            result.merged.append(task_id)
            for name in files:
                touched.setdefault(name, []).append(task_id)
        result.head = await git.head(self.worktree)
        return result

    async def _merge_one(self, task_id: str, branch: str, files: list[str],
                         touched: dict[str, list[str]]) -> list[Conflict]:
        """Merge without committing; the conflicts (including clean merges that fail the checks)."""
        code, out = await git.git(self.worktree, "merge", "--no-ff", "--no-commit", branch, check=False)
        if code == 0:
            return await self._checked(task_id, branch, files, touched)
        conflicted = await git.conflicted_files(self.worktree)
        if not conflicted:
            await git.abort_merge(self.worktree)
            raise git.GitError(("merge", branch), code, out)
        return [await self._conflict(task_id, name, touched) for name in conflicted]

    def _for_review(self, task_id: str, name: str, touched: dict[str, list[str]]) -> bool:
        """Both tasks of a pair marked for merge review changed this file."""
        return any(task_id in r["tasks"] and set(r["tasks"]) & set(touched.get(name, []))
                   for r in self.reviews)

    async def _checked(self, task_id: str, branch: str, files: list[str],
                       touched: dict[str, list[str]]) -> list[Conflict]:
        problems = []
        for name in files:
            marked = await self._markers_brought_in(task_id, branch, name, touched)
            if marked is not None:
                problems.append(marked)
                continue
            if self._for_review(task_id, name, touched) and (self.worktree / name).exists():
                merged = (self.worktree / name).read_text(errors="replace")
                problems.append(self._make(task_id, name, touched, await self._show(f"{self.base}:{name}"),
                                           await self._show(f"HEAD:{name}"), await self._show(f"{branch}:{name}"),
                                           merged, REVIEW))
                continue
            if name in touched and name.endswith((".py", ".pyi")) and (self.worktree / name).exists():
                base = await self._show(f"{self.base}:{name}")
                ours = await self._show(f"HEAD:{name}")
                theirs = await self._show(f"{branch}:{name}")
                merged = (self.worktree / name).read_text(errors="replace")
                why = check_merged(base, ours, theirs, merged)
                if why:
                    problems.append(self._make(task_id, name, touched, base, ours, theirs, merged,
                                               f"git merged it cleanly, but {why}"))
        flagged = {problem.file for problem in problems}
        for broken in await self._broken_imports(branch, files, touched):
            if broken.file not in flagged:
                flagged.add(broken.file)
                texts = [await self._show(f"{rev}:{broken.file}") for rev in (self.base, "HEAD", branch)]
                merged = (self.worktree / broken.file).read_text(errors="replace")
                problems.append(self._make(task_id, broken.file, touched, *texts, merged,
                                           f"git merged it cleanly, but {broken.describe()}"))
        return problems

    async def _markers_brought_in(self, task_id: str, branch: str, name: str,
                                  touched: dict[str, list[str]]) -> Conflict | None:
        """A file the task left with conflict markers that its base did not have: never merged silently."""
        disk = self.worktree / name
        merged = disk.read_text(errors="replace") if disk.is_file() else ""
        if not git.has_markers(merged):
            return None
        base = await self._show(f"{self.base}:{name}")
        if git.has_markers(base):
            return None
        texts = [await self._show(f"{rev}:{name}") for rev in ("HEAD", branch)]
        return self._make(task_id, name, touched, base, *texts, merged,
                          "git merged it cleanly, but the result has conflict markers (<<<<<<< / >>>>>>>) "
                          "that its base does not have")

    async def _broken_imports(self, branch: str, files: list[str], touched: dict[str, list[str]]) -> list[BrokenImport]:
        """Imports in the files either side changed that the merge broke (see workspace/imports.py)."""
        python = sorted(name for name in {*files, *touched} if name.endswith((".py", ".pyi")))
        if not touched or not python:
            return []
        listed = {rev: set((await git.git(self.worktree, "ls-tree", "-r", "-z", "--name-only", rev))[1].split("\0"))
                  for rev in ("HEAD", branch)}
        versions: dict[str, Version] = {"merged": {}, "HEAD": {}, branch: {}}
        await self._read(versions, listed, set(python))
        needed = {path for version in versions.values() for name in python
                  for path in wanted_paths(name, version.get(name))}
        await self._read(versions, listed, needed - set(python))
        # parsing is CPU work: off the kernel's loop, like the semantic merge
        return await asyncio.to_thread(broken_imports, python, versions["merged"], [versions["HEAD"], versions[branch]])

    async def _read(self, versions: dict[str, Version], listed: dict[str, set[str]], paths: set[str]) -> None:
        """Each path as merged (the worktree) and in each listed revision; None where it is absent."""
        for path in paths:
            disk = self.worktree / path
            versions["merged"][path] = disk.read_text(errors="replace") if disk.is_file() else None
            for rev, names in listed.items():
                versions[rev][path] = await self._show(f"{rev}:{path}") if path in names else None

    async def _conflict(self, task_id: str, name: str, touched: dict[str, list[str]]) -> Conflict:
        others = touched.get(name, [])
        intents = {t: self.intents[t] for t in [*others, task_id] if t in self.intents}
        return await conflict_at(self.worktree, name, task_id, others, intents)

    def _make(self, task_id: str, name: str, touched: dict[str, list[str]], base: str, ours: str, theirs: str,
              marked: str, reason: str) -> Conflict:
        others = touched.get(name, [])
        intents = {t: self.intents[t] for t in [*others, task_id] if t in self.intents}
        return Conflict(name, conflict_ranges(marked), task_id, others, base, ours, theirs, marked, intents, reason)

    async def _show(self, spec: str) -> str:
        code, out = await git.git(self.worktree, "show", spec, check=False)
        return out if code == 0 else ""
