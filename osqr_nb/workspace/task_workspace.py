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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from ..agents import tools
from ..agents.commands import CommandResult
from . import git

Emit = Callable[..., None]


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


class LocalWorkspace:
    """A task's git worktree under `<repo>/.osqr/worktrees/<run>/<task>` on this machine.

    `open(start, fresh=True)` makes it on the task's branch at `start`, from scratch;
    `fresh=False` (a resumed task) repairs and keeps what a crash left, or checks the
    branch out again when the folder is gone.
    """

    where = "local"

    def __init__(self, root: Path, path: Path, branch: str, lock: asyncio.Lock,
                 sandbox: bool | None = None) -> None:
        self.root, self.path, self.branch, self._lock = root, path, branch, lock
        self.tools = tools.Workspace(path, sandbox=sandbox)

    @property
    def sandbox_mode(self) -> str:
        return self.tools.sandbox_mode

    async def open(self, start: str, fresh: bool) -> list[str]:
        async with self._lock:   # git serialises ref and worktree updates; so do we, within a process
            return await git.add_worktree(self.root, self.path, self.branch, start, fresh=fresh)

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        return await self.tools.acall(name, arguments)

    async def current_text(self, path: str) -> str | None:
        return await _in_tool_thread(self.tools.current_text, path)

    async def plan_edit(self, path: str, old: str, new: str, replace_all: bool) -> tuple[str, str]:
        return await _in_tool_thread(self.tools.plan_edit, path, old, new, replace_all)

    async def run_command(self, command: str | list[str], timeout: float | None) -> CommandResult:
        return await self.tools.run_command(command, timeout)

    def explain(self, tool: str, exc: BaseException) -> str:
        return self.tools.explain(tool, exc)

    async def turn_done(self) -> None:
        """Nothing to do: the worktree is on this machine's disk, where resume finds it."""

    async def save(self, message: str, author: str) -> Saved:
        nested = await asyncio.to_thread(git.nested_repositories, self.path)
        commit = await git.commit_all(self.path, message, author=author, leave_out=nested) \
            or await git.head(self.path)           # nothing new since the last save
        return Saved(commit, nested)

    async def advance(self, commit: str) -> None:
        await git.git(self.path, "merge", "--ff-only", "-q", commit)

    async def close(self) -> None:
        """Remove the worktree at once: its branch holds the work, and worktrees left to pile
        up make every later `git worktree add` slower."""
        async with self._lock:
            await git.remove_worktree(self.root, self.path)


class LocalHost:
    """Workspaces as worktrees of the user's repository, under `.osqr/worktrees/<run>/`."""

    def __init__(self, root: Path, run_id: str, sandbox: bool | None = None) -> None:
        self.root, self.run_id, self.sandbox = root, run_id, sandbox
        self.lock = _worktree_locks.setdefault(root, asyncio.Lock())

    def path(self, task_id: str) -> Path:
        return self.root / ".osqr" / "worktrees" / self.run_id / task_id

    def make(self, task_id: str, branch: str, emit: Emit) -> LocalWorkspace:
        return LocalWorkspace(self.root, self.path(task_id), branch, self.lock, self.sandbox)


_worktree_locks: dict[Path, asyncio.Lock] = {}   # one per repository, across the runs of a process


async def _in_tool_thread(function: Callable[..., Any], *args: Any) -> Any:
    """A bounded file read in the tools' threads, never on the event loop."""
    return await asyncio.get_running_loop().run_in_executor(
        tools.tool_threads(), functools.partial(function, *args))
