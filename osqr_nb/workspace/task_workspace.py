"""Where one task's files live and its tools act: the seam between the engine and a machine.

The engine (merges, routing, checkpoints, the event log) stays in the kernel and
reaches a task's files only through `TaskWorkspace`. `LocalWorkspace` is a git
worktree on this machine; a cluster backend puts the same thing on another one
(osqr_nb/cluster/). Every commit a workspace saves is on the task's branch in the
user's repository when `save` returns, so merging inputs and integrating need
nothing from the workspace but its commits.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol

from ..agents import tools
from ..agents.commands import CommandResult
from . import git
from .lazy_files import LazyFiles, ancestors_and_self, tool_paths

Emit = Callable[..., None]
_MAX_LINKS = 40          # symbolic links followed through the index, as the kernel allows


@dataclass
class Saved:
    """A save: the commit at the task branch's tip, and the folders left out of it."""
    commit: str
    left_out: list[str] = field(default_factory=list)   # nested git repositories (made by the task)


class TaskWorkspace(Protocol):
    """One task's files and tools: a git worktree here, or on a Dask worker."""

    where: str                              # "local", or the worker's address

    @property
    def sandbox_mode(self) -> str: ...      # how the next command runs: lets the policy ask first

    async def open(self, start: str, fresh: bool) -> list[str]: ...
    async def call(self, name: str, arguments: dict[str, Any]) -> str: ...
    async def current_text(self, path: str) -> str | None: ...
    async def plan_edit(self, path: str, old: str, new: str, replace_all: bool) -> tuple[str, str]: ...
    async def run_command(self, command: str | list[str], timeout: float | None) -> CommandResult: ...
    def explain(self, tool: str, exc: BaseException) -> str: ...
    async def turn_done(self) -> None: ...
    async def save(self, message: str, author: str) -> Saved: ...
    async def advance(self, commit: str) -> None: ...
    async def close(self) -> None: ...


class WorkspaceHost(Protocol):
    """Makes the workspaces of a run's tasks (one per task attempt)."""

    def make(self, task_id: str, branch: str, emit: Emit) -> TaskWorkspace: ...
    async def done(self) -> None: ...       # every task complete: what the run left can go


class LocalWorkspace:
    """A task's git worktree under `<repo>/.osqr/worktrees/<run>/<task>` on this machine.

    `open(start, fresh=True)` makes it on the task's branch at `start`, from scratch;
    `fresh=False` (a resumed task) repairs and keeps what a crash left, or checks the
    branch out again when the folder is gone. `lazy`: files are checked out when a
    tool first needs them (see lazy_files.py), so a task pays for what it touches.
    """

    where = "local"

    def __init__(self, root: Path, path: Path, branch: str, lock: asyncio.Lock,
                 sandbox: bool | None = None, lazy: bool = True,
                 listing: Callable[[str], Awaitable[frozenset[str]]] | None = None) -> None:
        self.root, self.path, self.branch, self._lock, self.lazy = root, path, branch, lock, lazy
        self.tools = tools.Workspace(path, sandbox=sandbox)
        self.files = LazyFiles(self.tools.root)
        self._listing = listing

    @property
    def sandbox_mode(self) -> str:
        return self.tools.sandbox_mode

    async def open(self, start: str, fresh: bool) -> list[str]:
        async with _opening(self.root):
            return await self._open(start, fresh)

    async def _open(self, start: str, fresh: bool) -> list[str]:
        if fresh and self.lazy:
            await asyncio.to_thread(shutil.rmtree, self.path, True)
            await git.add_lazy_worktree(self.root, self.path, self.branch, start)
            notes: list[str] = []
        else:
            async with self._lock:   # two `git worktree add` at once fail reading each other's
                notes = await git.add_worktree(self.root, self.path, self.branch, start,  # half-made
                                               fresh=fresh, lazy=self.lazy)               # admin folders
        admin = git.git_dir(self.path)
        if self.lazy and admin is not None and not (admin / "index").exists():   # made now, or a kill
            await git.check_out_nothing(self.path)                               # came before its index
        if not fresh:
            await self.files.load()      # a crash may have left brought files still marked
        elif self.lazy and self._listing is not None:
            self.files.start_from(await self._listing(start))
        return notes

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        if name == "run_command":
            await self.files.bring_all()
        else:
            await self._bring_for(name, arguments)
        return await self.tools.acall(name, arguments)

    async def current_text(self, path: str) -> str | None:
        await self._bring_for("write_file", {"path": path})
        return await _in_tool_thread(self.tools.current_text, path)

    async def plan_edit(self, path: str, old: str, new: str, replace_all: bool) -> tuple[str, str]:
        await self._bring_for("edit_file", {"path": path})
        return await _in_tool_thread(self.tools.plan_edit, path, old, new, replace_all)

    async def run_command(self, command: str | list[str], timeout: float | None) -> CommandResult:
        await self.files.bring_all()
        return await self.tools.run_command(command, timeout)

    def explain(self, tool: str, exc: BaseException) -> str:
        return self.tools.explain(tool, exc)

    async def turn_done(self) -> None:
        """Nothing to do: the worktree is on this machine's disk, where resume finds it."""

    async def save(self, message: str, author: str) -> Saved:
        await self.files.settle()
        nested = await asyncio.to_thread(git.nested_repositories, self.path)
        commit = await git.commit_all(self.path, message, author=author, leave_out=nested) \
            or await git.head(self.path)           # nothing new since the last save
        return Saved(commit, nested)

    async def advance(self, commit: str) -> None:
        await self.files.settle()
        await git.git(self.path, "merge", "--ff-only", "-q", commit)
        await self.files.load()          # the merge writes the files it changes, marked or not

    async def close(self) -> None:
        """Remove the worktree at once: its branch holds the work, and worktrees left to pile
        up make every later `git worktree add` slower."""
        await git.remove_worktree(self.root, self.path)     # no git process, nothing half gone

    async def _bring_for(self, name: str, arguments: Any) -> None:
        """Check out what a file tool is about to read, write, list or search, following
        symbolic links that were themselves still in the index."""
        for _ in range(_MAX_LINKS):
            relative, folder = tool_paths(self.tools.resolve, self.tools.root, name, arguments)
            if relative is None:
                return
            if folder:
                await self.files.bring_under(relative)
            if not await self.files.bring(ancestors_and_self(relative)):
                return


class LocalHost:
    """Workspaces as worktrees of the user's repository, under `.osqr/worktrees/<run>/`."""

    def __init__(self, root: Path, run_id: str, sandbox: bool | None = None, lazy: bool = True) -> None:
        self.root, self.run_id, self.sandbox, self.lazy = root, run_id, sandbox, lazy
        self.lock = _worktree_locks.setdefault(root, asyncio.Lock())
        self._listings: dict[str, frozenset[str]] = {}    # the latest few, newest last

    async def files_at(self, commit: str) -> frozenset[str]:
        """The paths of a commit's tree, read once for all the tasks that start there (most start
        at the run's base; a task with inputs starts at a merge of its own, so few are kept)."""
        listing = self._listings.pop(commit, None)
        if listing is None:
            _, out = await git.git(self.root, "ls-tree", "-r", "-z", "--name-only", "--full-tree", commit,
                                   stderr=False)
            listing = frozenset(p for p in out.split("\0") if p)
        self._listings[commit] = listing
        while len(self._listings) > LISTINGS_KEPT:
            del self._listings[next(iter(self._listings))]
        return listing

    def path(self, task_id: str) -> Path:
        return self.root / ".osqr" / "worktrees" / self.run_id / task_id

    def make(self, task_id: str, branch: str, emit: Emit) -> LocalWorkspace:
        return LocalWorkspace(self.root, self.path(task_id), branch, self.lock, self.sandbox, self.lazy,
                              self.files_at)

    async def done(self) -> None:
        """Nothing: the run removes its worktrees here after integrating (or keeps them, asked to)."""


_worktree_locks: dict[Path, asyncio.Lock] = {}   # one per repository, across the runs of a process
OPEN_AT_ONCE = 4     # workspaces being made at one time, per repository
LISTINGS_KEPT = 8    # tree listings a host keeps (each as long as the repository's file list)
_openings: dict[tuple[Path, asyncio.AbstractEventLoop], asyncio.Semaphore] = {}


def _opening(root: Path) -> asyncio.Semaphore:
    """A few workspaces made at a time: a thousand agents starting together would otherwise
    all log their first events in one turn of the loop, and a click would wait a second
    and more behind them; a few at a time, the kernel answers in milliseconds."""
    key = (root, asyncio.get_running_loop())      # an asyncio primitive serves one loop
    if key not in _openings:
        _openings[key] = asyncio.Semaphore(OPEN_AT_ONCE)
    return _openings[key]


async def _in_tool_thread(function: Callable[..., Any], *args: Any) -> Any:
    """A bounded file read in the tools' threads, never on the event loop."""
    return await asyncio.get_running_loop().run_in_executor(
        tools.tool_threads(), functools.partial(function, *args))
