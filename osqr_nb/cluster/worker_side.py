"""The worker's half of a task's workspace: a Dask actor holding a worktree of a clone.

One actor per task attempt, so every tool call of the task reaches the same worker
and the same files. The tasks of a run on one worker share a bare clone (objects
sent once per worker, not once per task); each has its own worktree on its own
branch. Nothing here knows a model, a key or the event log: the actor receives
commits (bundles), tool calls and commands, and answers with results and bundles.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..agents import tools
from ..agents.commands import CommandResult
from ..workspace import git
from . import bundles

MUTATING = frozenset({"write_file", "edit_file", "run_command"})   # what makes a turn worth a snapshot
KEEP_HAVES = 8          # commits the kernel is known to have, offered as a bundle's exclusions


class WorkspaceError(RuntimeError):
    """A failure of the workspace itself on the worker (git, the disk), said in one message:
    any exception that crosses to the kernel must unpickle there, and a GitError would not."""


def _plain_errors(method):
    """ToolErrors go back as they are (the model reads them); anything else as a WorkspaceError."""
    @functools.wraps(method)
    async def run(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        except (tools.ToolError, WorkspaceError):
            raise
        except Exception as exc:
            raise WorkspaceError(f"{type(exc).__name__} on {_worker_address()}: {exc}") from None
    return run


class WorkspaceActor:
    """A task's worktree on this worker: its file tools, commands, saves and snapshots.

    Every exception a tool raises comes back as a `ToolError` with the message the model
    reads, never as an `OSError`: on the kernel's side an `OSError` means the worker is
    gone, and the workspace moves.
    """

    def __init__(self, run_id: str, task_id: str, branch: str, sandbox: bool | None,
                 command_settings: dict[str, Any]) -> None:
        self.run_id, self.task_id, self.branch = run_id, task_id, branch
        self.sandbox = sandbox
        _apply(command_settings)
        self.path: Path | None = None
        self.tools: tools.Workspace | None = None
        self.kernel_has: list[str] = []        # commits that came from the kernel or reached it
        self.dirty = False                     # changed since the last snapshot
        self.snapshot_tree: str | None = None

    # -- opening ---------------------------------------------------------------------------

    @_plain_errors
    async def haves(self, commits: list[str]) -> list[str]:
        """Which of the kernel's candidate commits this worker has: the next bundle leaves them out."""
        return await bundles.present(await _run_repo(self.run_id), commits)

    @_plain_errors
    async def open(self, start: str, bundle: bytes | None, wip: str | None = None,
                   wip_bundle: bytes | None = None) -> dict[str, Any]:
        """The worktree on the task's branch at `start` (sent in `bundle` unless this worker has
        it), with the files of the snapshot `wip` laid over it when given (a moved task)."""
        repo = await _run_repo(self.run_id)
        async with _lock(repo):
            if bundle is not None:
                await bundles.take(repo, bundle, f"refs/heads/{self.branch}", f"refs/osqr/in/{self.task_id}")
            if wip_bundle is not None:
                await bundles.take(repo, wip_bundle, f"refs/osqr/wip/{self.run_id}/{self.task_id}",
                                   f"refs/osqr/wip/{self.task_id}")
            self.path = repo.parent / "worktrees" / self.task_id
            await _clear(repo, self.path)
            await git.git(repo, "worktree", "add", "-q", "-f", "-B", self.branch, str(self.path), start)
        if wip is not None:
            await git.git(self.path, "read-tree", "-u", "--reset", wip)
            self.dirty = True
        self.kernel_has = [c for c in (start, wip) if c]
        self.tools = tools.Workspace(self.path, sandbox=self.sandbox)
        return {"address": _worker_address(), "sandbox": self.tools.sandbox_mode}

    # -- tools -----------------------------------------------------------------------------

    @_plain_errors
    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        self.dirty |= name in MUTATING
        return await self._guarded(name, self.tools.acall(name, arguments))

    @_plain_errors
    async def current_text(self, path: str) -> str | None:
        return await self._guarded("write_file", asyncio.to_thread(self.tools.current_text, path))

    @_plain_errors
    async def plan_edit(self, path: str, old: str, new: str, replace_all: bool) -> tuple[str, str]:
        return await self._guarded("edit_file", asyncio.to_thread(self.tools.plan_edit, path, old, new,
                                                                   replace_all))

    @_plain_errors
    async def run_command(self, command: str | list[str], timeout: float | None) -> CommandResult:
        self.dirty = True
        return await self._guarded("run_command", self.tools.run_command(command, timeout))

    async def _guarded(self, tool: str, work: Any) -> Any:
        try:
            return await work
        except tools.ToolError:
            raise
        except Exception as exc:                      # an OSError must not look like a lost worker
            raise tools.ToolError(self.tools.explain(tool, exc)) from None

    # -- commits ---------------------------------------------------------------------------

    @_plain_errors
    async def save(self, message: str, author: str) -> dict[str, Any]:
        """Commit everything on the task's branch; the commit and the bundle the kernel lacks."""
        nested = await asyncio.to_thread(git.nested_repositories, self.path)
        commit = await git.commit_all(self.path, message, author=author, leave_out=nested) \
            or await git.head(self.path)
        data = await bundles.make(self.path, f"refs/heads/{self.branch}", self.kernel_has)
        self._reached_kernel(commit)
        self.dirty, self.snapshot_tree = False, None
        return {"commit": commit, "left_out": nested, "bundle": data}

    @_plain_errors
    async def snapshot(self) -> dict[str, Any] | None:
        """The files as they are now, as a commit on top of the branch (the branch stays where it
        is): what the task continues from if this worker is lost. None when nothing changed."""
        if not self.dirty:
            return None
        self.dirty = False
        nested = await asyncio.to_thread(git.nested_repositories, self.path)
        await git.git(self.path, "add", "-A", "--", ".", *[f":(exclude,top){p}" for p in nested])
        tree = (await git.git(self.path, "write-tree", stderr=False))[1].strip()
        if tree == self.snapshot_tree:
            return None
        self.snapshot_tree = tree
        _, out = await git.git(self.path, "commit-tree", tree, "-p", "HEAD", "-m",
                               f"osqr: work in progress of {self.task_id}", stderr=False)
        commit, ref = out.strip(), f"refs/osqr/wip/{self.task_id}"
        await git.git(self.path, "update-ref", ref, commit)
        data = await bundles.make(self.path, ref, self.kernel_has)
        self._reached_kernel(commit)
        return {"commit": commit, "bundle": data}

    @_plain_errors
    async def advance(self, commit: str, bundle: bytes | None) -> None:
        """Move the worktree forward to a commit made in the kernel (its inputs merged in)."""
        if bundle is not None and not await bundles.present(self.path, [commit]):   # not if moved here
            await bundles.take(self.path, bundle, f"refs/heads/{self.branch}", f"refs/osqr/in/{self.task_id}")
        await git.git(self.path, "merge", "--ff-only", "-q", commit)
        self._reached_kernel(commit)

    @_plain_errors
    async def close(self) -> None:
        """Remove the worktree and its refs; the clone's objects stay for the run's next tasks."""
        if self.path is None:
            return
        repo = await _run_repo(self.run_id)
        async with _lock(repo):
            await _clear(repo, self.path)
            await git.git(repo, "branch", "-D", self.branch, check=False)
            for ref in (f"refs/osqr/wip/{self.task_id}", f"refs/osqr/in/{self.task_id}"):
                await git.git(repo, "update-ref", "-d", ref, check=False)

    def _reached_kernel(self, commit: str) -> None:
        self.kernel_has = [commit, *[c for c in self.kernel_has if c != commit]][:KEEP_HAVES]


# -- one clone per run on this worker ----------------------------------------------------------

_repos: dict[str, Path] = {}
_locks: dict[Path, asyncio.Lock] = {}


async def _run_repo(run_id: str) -> Path:
    """The run's bare clone on this worker, made empty on first use (bundles fill it)."""
    repo = _repos.get(run_id)
    if repo is None:
        root = Path(tempfile.mkdtemp(prefix=f"osqr-{run_id}-", dir=_local_directory()))
        repo = root / "repo.git"
        await git.git(root, "init", "-q", "--bare", str(repo))
        repo = _repos.setdefault(run_id, repo)
    return repo


def _lock(repo: Path) -> asyncio.Lock:
    """git serialises ref and worktree updates of one clone; so do the actors sharing it."""
    return _locks.setdefault(repo, asyncio.Lock())


async def _clear(repo: Path, path: Path) -> None:
    if path.exists():
        await asyncio.to_thread(shutil.rmtree, path, True)
    await git.git(repo, "worktree", "prune")


def _local_directory() -> str | None:
    try:
        from distributed import get_worker
        return get_worker().local_directory
    except (ImportError, ValueError):
        return None


def _worker_address() -> str:
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def _apply(command_settings: dict[str, Any]) -> None:
    """The kernel's command settings (what commands may see), on this worker's settings."""
    from ..config import settings
    config = settings()
    for name, value in command_settings.items():
        setattr(config, name, value)
