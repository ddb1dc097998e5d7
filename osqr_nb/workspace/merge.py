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

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from . import git, libgit
from .checks import check_merged
from .imports import BrokenImport, Version, broken_imports, wanted_by
from .parsing import parsed, texts_size

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
    found_by: str = "git"          # git (overlapping lines), check, imports, markers or review
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


async def conflict_in_tree(root: Path, merge: git.TreeMerge, name: str, task_id: str, others: list[str],
                           intents: dict[str, dict[str, Any]]) -> Conflict:
    """The Conflict an in-memory merge left at `name` (its stages and the marked file in its tree)."""
    marked = await git.read_blob(root, f"{merge.tree}:{name}") or ""
    stages = merge.conflicts.get(name, {})
    base, ours, theirs = [await git.read_blob(root, stages[s][1]) if s in stages else None for s in (1, 2, 3)]
    return Conflict(name, conflict_ranges(marked), task_id, others, base or "", ours or "", theirs or "",
                    marked, intents, "both sides changed the same lines",
                    ours_missing=ours is None, theirs_missing=theirs is None)


class _Merged:
    """A merge's result as the checks read it: in the integration worktree (`tree` None), or a
    tree `git merge-tree` wrote with no checkout (read through the repository at `root`).
    `ours` is the commit merged into."""

    def __init__(self, root: Path, worktree: Path, ours: str, tree: str | None = None,
                 known: dict[str, str | None] | None = None) -> None:
        self.root, self.worktree, self.ours, self.tree = root, worktree, ours, tree
        self.known = known if known is not None else {}     # `rev:path` -> text, read ahead in one batch

    async def read(self, name: str) -> str | None:
        if self.tree is None:
            disk = self.worktree / name
            return disk.read_text(errors="replace") if disk.is_file() else None
        spec = f"{self.tree}:{name}"
        return self.known[spec] if spec in self.known else await _stage(self.root, spec)

    async def with_markers(self, names: list[str]) -> set[str]:
        """Which of `names` hold conflict markers (one `git grep` for a tree)."""
        if not names:
            return set()
        if self.tree is None:
            return {n for n in names if git.has_markers(await self.read(n) or "")}
        found = await git.off_the_loop(libgit.with_markers, self.root, self.tree, names)
        if found is not None:
            return found
        code, out = await git.git(self.root, "grep", "-l", "-z", "-I", "-E", "^(<<<<<<<|>>>>>>>) ",
                                  self.tree, "--", *names, check=False)
        prefix = f"{self.tree}:"
        return {n.removeprefix(prefix) for n in out.split("\0") if n} if code == 0 else set()


class Integrator:
    """Merges a run's task branches into `osqr/<run>/integration`.

    Each merge is first made in memory (`git merge-tree --write-tree`, then
    `commit-tree`): no checkout, so its cost does not grow with the repository.
    Only a merge that conflicts or fails a check is made again in the
    integration worktree, where the resolvers write their results.
    """

    def __init__(self, root: Path, run_id: str, base: str, worktree: Path,
                 intents: dict[str, dict[str, Any]] | None = None,
                 reviews: list[dict[str, Any]] | None = None, starts: dict[str, str] | None = None) -> None:
        self.reviews = reviews or []        # pairs let run in parallel "with merge review"
        self.starts = starts or {}          # task -> the commit its branch began at, when that is its merge base
        self.root = root
        self.base = base
        self.worktree = worktree
        self.branch = f"osqr/{run_id}/integration"
        self.intents = intents or {}
        self._known: dict[str, str | None] = {}      # files read ahead for the merge being checked
        self.premerged: dict[tuple[str, str], str] = {}   # (head, task) -> its clean merge, made ahead
        self._ahead: tuple[str, dict[str, list[str]]] = (base, {})   # merge_ahead's head and touched

    async def integrate(self, branches: list[tuple[str, str, list[str]]],
                        resolve: Resolve | None = None) -> Integration:
        """Merge (task_id, branch, files the task changed) in the given (topological) order,
        starting over from the base (so a resumed run integrates once, cleanly)."""
        result = Integration(self.branch)
        touched: dict[str, list[str]] = {}
        head = self.base
        for task_id, branch, files in branches:
            merged = self.premerged.get((head, task_id)) \
                or await self._merge_in_memory(head, task_id, branch, files, touched)
            if merged is None:
                await self.check_out(head)
                merged = await self._merge_in_worktree(task_id, branch, files, touched, resolve, result)
            if merged is None:
                continue
            head = merged
            result.merged.append(task_id)
            for name in files:
                touched.setdefault(name, []).append(task_id)
        await git.git(self.root, "update-ref", f"refs/heads/{self.branch}", head)
        if self.worktree.exists():
            await self.check_out(head)
        result.head = head
        return result

    async def merge_ahead(self, task_id: str, branch: str, files: list[str]) -> bool:
        """Merge one more task, in order, in memory, while the run goes on; False (and nothing
        kept) when the merge needs more than git: `integrate` takes it from there."""
        head, touched = self._ahead
        merged = await self._merge_in_memory(head, task_id, branch, files, touched)
        if merged is None:
            return False
        self.premerged[(head, task_id)] = merged
        for name in files:
            touched.setdefault(name, []).append(task_id)
        self._ahead = (merged, touched)
        return True

    async def check_out(self, head: str) -> None:
        """The integration worktree at `head` (made when first needed: a conflict, a check)."""
        await git.add_worktree(self.root, self.worktree, self.branch, self.base)
        await git.git(self.worktree, "reset", "--hard", "-q", head)

    async def _merge_tree(self, head: str, task_id: str, branch: str) -> tuple[int, str]:
        """`git merge-tree --write-tree` of head and branch, from the task's start when known.

        Left to itself git finds the merge base by walking the integration branch back
        to where the task began, a commit for every task merged before: n² over a run
        of n tasks. git >= 2.40 takes the base (`--merge-base`); older git is handed a
        stand-in for head, a commit with head's tree and the start as its one parent.
        """
        start = self.starts.get(task_id)
        sides = [head, branch]
        if start and start != head:
            if await git.version() >= (2, 40):
                sides = [f"--merge-base={start}", head, branch]
            else:
                stand_in = await git.commit_tree(self.root, f"{head}^{{tree}}", [start], "osqr: integration so far")
                sides = [stand_in, branch]
        return await git.git(self.root, "merge-tree", "--write-tree", "--no-messages", *sides,
                             check=False, stderr=False)

    async def _merge_in_memory(self, head: str, task_id: str, branch: str, files: list[str],
                               touched: dict[str, list[str]]) -> str | None:
        """The merge commit, made without a checkout; None when it conflicts or a check fails."""
        code, out = await self._merge_tree(head, task_id, branch)
        if code != 0:
            return None
        tree = out.split()[0]
        if await self._checked(task_id, branch, files, touched, _Merged(self.root, self.worktree, head, tree)):
            return None
        return await git.commit_tree(self.root, tree, [head, branch], f"osqr: merge {task_id}")   # a branch
        # with nothing new (its tip is head): one parent

    async def _merge_in_worktree(self, task_id: str, branch: str, files: list[str], touched: dict[str, list[str]],
                                 resolve: Resolve | None, result: Integration) -> str | None:
        """git's merge in the worktree, each conflict to the resolvers; the commit, or None (aborted)."""
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
            return None
        await git.git(self.worktree, "commit", "--no-verify", "-q", "--no-edit", "--allow-empty",
                      "-m", f"osqr: merge {task_id}")
        return await git.head(self.worktree)

    async def _merge_one(self, task_id: str, branch: str, files: list[str],
                         touched: dict[str, list[str]]) -> list[Conflict]:
        """Merge without committing; the conflicts (including clean merges that fail the checks)."""
        code, out = await git.git(self.worktree, "merge", "--no-ff", "--no-commit", branch, check=False)
        if code == 0:
            merged = _Merged(self.root, self.worktree, await git.head(self.worktree))
            return await self._checked(task_id, branch, files, touched, merged)
        conflicted = await git.conflicted_files(self.worktree)
        if not conflicted:
            await git.abort_merge(self.worktree)
            raise git.GitError(("merge", branch), code, out)
        return [await self._conflict(task_id, name, touched) for name in conflicted]

    def _for_review(self, task_id: str, name: str, touched: dict[str, list[str]]) -> bool:
        """Both tasks of a pair marked for merge review changed this file."""
        return any(task_id in r["tasks"] and set(r["tasks"]) & set(touched.get(name, []))
                   for r in self.reviews)

    async def _checked(self, task_id: str, branch: str, files: list[str], touched: dict[str, list[str]],
                       merged: _Merged) -> list[Conflict]:
        problems = []
        self._known = merged.known
        await self._read_ahead([f"{rev}:{name}" for name in files if name in touched or name.endswith((".py", ".pyi"))
                                for rev in (self.base, merged.ours, branch, merged.tree) if rev])
        marked = await merged.with_markers(files)
        for name in files:
            found = await self._markers_brought_in(task_id, branch, name, touched, merged) if name in marked else None
            if found is not None:
                problems.append(found)
                continue
            reviewed = self._for_review(task_id, name, touched)
            python = name in touched and name.endswith((".py", ".pyi"))
            text = await merged.read(name) if reviewed or python else None
            if text is None:
                continue
            base, ours, theirs = [await self._show(f"{rev}:{name}") for rev in (self.base, merged.ours, branch)]
            if reviewed:
                problems.append(self._make(task_id, name, touched, base, ours, theirs, text, REVIEW, "review"))
                continue
            why = await parsed(check_merged, base, ours, theirs, text, chars=texts_size(base, ours, theirs, text))
            if why:
                problems.append(self._make(task_id, name, touched, base, ours, theirs, text,
                                           f"git merged it cleanly, but {why}", "check"))
        flagged = {problem.file for problem in problems}
        for broken in await self._broken_imports(branch, files, touched, merged):
            if broken.file not in flagged:
                flagged.add(broken.file)
                texts = [await self._show(f"{rev}:{broken.file}") for rev in (self.base, merged.ours, branch)]
                problems.append(self._make(task_id, broken.file, touched, *texts, await merged.read(broken.file) or "",
                                           f"git merged it cleanly, but {broken.describe()}", "imports"))
        return problems

    async def _markers_brought_in(self, task_id: str, branch: str, name: str, touched: dict[str, list[str]],
                                  merged: _Merged) -> Conflict | None:
        """A file the task left with conflict markers that its base did not have: never merged silently."""
        text = await merged.read(name) or ""
        base = await self._show(f"{self.base}:{name}")
        if not git.has_markers(text) or git.has_markers(base):
            return None
        texts = [await self._show(f"{rev}:{name}") for rev in (merged.ours, branch)]
        return self._make(task_id, name, touched, base, *texts, text,
                          "git merged it cleanly, but the result has conflict markers (<<<<<<< / >>>>>>>) "
                          "that its base does not have", "markers")

    async def _broken_imports(self, branch: str, files: list[str], touched: dict[str, list[str]],
                              merged: _Merged) -> list[BrokenImport]:
        """Imports in the files either side changed that the merge broke (see workspace/imports.py)."""
        python = sorted(name for name in {*files, *touched} if name.endswith((".py", ".pyi")))
        if not touched or not python:
            return []
        revs = (merged.ours, branch)
        versions: dict[str, Version] = {"merged": {}, revs[0]: {}, branch: {}}
        await self._read(versions, revs, set(python), merged)
        needed = await parsed(wanted_by, python, list(versions.values()), chars=texts_size(versions))
        await self._read(versions, revs, needed - set(python), merged)
        return await parsed(broken_imports, python, versions["merged"], [versions[revs[0]], versions[branch]],
                            chars=texts_size(versions))

    async def _read(self, versions: dict[str, Version], revs: tuple[str, ...], paths: set[str],
                    merged: _Merged) -> None:
        """Each path as merged and in each revision; None where it is absent."""
        listed = {rev: await git.files_in(self.root, rev, paths) for rev in revs}
        await self._read_ahead([f"{rev}:{path}" for path in paths for rev, names in listed.items() if path in names]
                               + [f"{merged.tree}:{path}" for path in paths if merged.tree])
        for path in paths:
            versions["merged"][path] = await merged.read(path)
            for rev, names in listed.items():
                versions[rev][path] = await self._show(f"{rev}:{path}") if path in names else None

    async def _conflict(self, task_id: str, name: str, touched: dict[str, list[str]]) -> Conflict:
        others = touched.get(name, [])
        intents = {t: self.intents[t] for t in [*others, task_id] if t in self.intents}
        return await conflict_at(self.worktree, name, task_id, others, intents)

    def _make(self, task_id: str, name: str, touched: dict[str, list[str]], base: str, ours: str, theirs: str,
              marked: str, reason: str, found_by: str = "git") -> Conflict:
        others = touched.get(name, [])
        intents = {t: self.intents[t] for t in [*others, task_id] if t in self.intents}
        return Conflict(name, conflict_ranges(marked), task_id, others, base, ours, theirs, marked, intents, reason,
                        found_by)

    async def _read_ahead(self, specs: list[str]) -> None:
        """Read the files a check will show in one git process, not one each."""
        wanted = [s for s in dict.fromkeys(specs) if s not in self._known and not s.startswith(":")]
        self._known.update(await git.read_blobs(self.root, wanted))

    async def _show(self, spec: str) -> str:
        """A file at a revision (`rev:path`, or a stage `:2:path` of the worktree's merge)."""
        if spec in self._known:
            return self._known[spec] or ""
        cwd = self.worktree if spec.startswith(":") else self.root
        code, out = await git.git(cwd, "show", spec, check=False)
        return out if code == 0 else ""
