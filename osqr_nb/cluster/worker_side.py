"""The worker's half of a task's workspace: a Dask actor holding a worktree of a clone.

An actor holds one task's workspace at a time, so every tool call of the task reaches
the same worker and the same files; the kernel keeps its actors and hands each to the
next task that goes to its worker (see pool.py). The tasks of a run on one worker
share a bare clone, kept until all the run's tasks are complete: the base arrives once
as a bundle, then each task's start as the commits the clone lacks (their objects, or a
thin bundle: bundles.py). A workspace is a lazy worktree of
that clone, made without a lock or a checkout (files come out as tools need them,
as in the kernel). Nothing here knows a model, a key or the event log: the actor
receives commits, tool calls and commands, and answers with results and the task's own
commits.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ..agents import tools
from ..agents.commands import CommandResult
from ..workspace import git, libgit
from ..workspace.task_workspace import LocalHost, LocalWorkspace, Saved
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
    """A task's worktree on this worker, one task at a time: its file tools, commands, saves
    and snapshots.

    Every exception a tool raises comes back as a `ToolError` with the message the model
    reads, never as an `OSError`: on the kernel's side an `OSError` means the worker is
    gone, and the workspace moves.
    """

    def __init__(self) -> None:
        self.task_id = self.branch = ""
        self.workspace: LocalWorkspace | None = None
        self.kernel_has: list[str] = []        # commits that came from the kernel or reached it
        self.dirty = False                     # changed since the last snapshot
        self.snapshot_tree: str | None = None   # the last snapshot's tree, while nothing changed since
        self.snapshot_nested: list[str] = []    # the nested repositories it left out
        self.loose = False                     # the kernel takes commits as objects, not only bundles

    # -- opening ---------------------------------------------------------------------------

    @_plain_errors
    async def haves(self, run_id: str, commits: list[str]) -> list[str]:
        """Which of the kernel's candidate commits this worker has: the next bundle leaves them out."""
        return await bundles.present((await _run_clone(run_id)).root, commits)

    @_plain_errors
    async def open(self, job: dict[str, Any]) -> dict[str, Any]:
        """The task's worktree on its branch at `start`, from the bundle sent unless this worker
        has it, with the files of the snapshot `wip` laid over it when given (a moved task).
        With `keep` (a task resumed after the kernel went away), the worktree the task left on
        this worker is kept as it is, repaired, when it holds `start`: no file is lost.

        Answers `{"lacking": True}` when the bundle was made against a commit this worker does
        not have (its clone is new): the kernel asks `haves` and sends another.
        """
        if self.workspace is not None:
            await self.close()
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        _apply(job["settings"])
        clone = await _run_clone(job["run_id"])
        for data in (job["bundle"], job["wip_bundle"]):
            if data is not None and not await bundles.unbundle(clone.root, data):
                return {"lacking": True}
        timings["fetch"] = time.perf_counter() - clock
        self.task_id, self.branch, start, wip = job["task_id"], job["branch"], job["start"], job["wip"]
        path = clone.root.parent / "worktrees" / self.task_id
        workspace = LocalWorkspace(clone.root, path, self.branch, clone.lock, job["sandbox"], lazy=True,
                                   listing=clone.files_at)
        kept = bool(job["keep"]) and await _left_on(path, start)
        notes = await workspace.open(start, fresh=not kept)
        self.workspace = workspace
        if wip is not None and not kept:
            await git.git(path, "read-tree", "-u", "--reset", wip)
            await workspace.files.load()
        self.dirty, self.snapshot_tree = kept or wip is not None, None
        self.kernel_has = [c for c in (start, wip) if c]
        self.loose = bool(job.get("loose"))
        timings["worktree"] = time.perf_counter() - clock - timings["fetch"]
        return {"address": _worker_address(), "sandbox": workspace.sandbox_mode, "timings": timings,
                "kept": kept, "notes": notes, "loose": await bundles.reads_objects(clone.root)}

    # -- tools -----------------------------------------------------------------------------

    @_plain_errors
    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        self.dirty |= name in MUTATING
        return await self._guarded(name, self._open().call(name, arguments))

    @_plain_errors
    async def current_text(self, path: str) -> str | None:
        return await self._guarded("write_file", self._open().current_text(path))

    @_plain_errors
    async def plan_edit(self, path: str, old: str, new: str, replace_all: bool) -> tuple[str, str]:
        return await self._guarded("edit_file", self._open().plan_edit(path, old, new, replace_all))

    @_plain_errors
    async def run_command(self, command: str | list[str], timeout: float | None) -> CommandResult:
        self.dirty = True
        return await self._guarded("run_command", self._open().run_command(command, timeout))

    def _open(self) -> LocalWorkspace:
        if self.workspace is None:
            raise WorkspaceError(f"no workspace is open on {_worker_address()}")
        return self.workspace

    async def _guarded(self, tool: str, work: Any) -> Any:
        try:
            return await work
        except tools.ToolError:
            raise
        except Exception as exc:                      # an OSError must not look like a lost worker
            raise tools.ToolError(self._open().explain(tool, exc)) from None

    # -- commits ---------------------------------------------------------------------------

    @_plain_errors
    async def save(self, message: str, author: str) -> dict[str, Any]:
        """Commit everything on the task's branch; the commit, and a bundle of what the kernel lacks."""
        workspace = self._open()
        if not self.dirty and self.snapshot_tree is not None:
            saved = await self._save_snapshot(message, author)
        else:
            saved = await workspace.save(message, author)
        data = await bundles.make(workspace.path, f"refs/heads/{self.branch}", self.kernel_has, self.loose)
        self._reached_kernel(saved.commit)
        self.dirty, self.snapshot_tree = False, None
        return {"commit": saved.commit, "left_out": saved.left_out, "bundle": data}

    async def _save_snapshot(self, message: str, author: str) -> Saved:
        """Nothing changed since the last snapshot (a task that ran its tests, then finished): its
        tree, already in the index, becomes the commit, made in process (what `git add -A` and
        `git commit` would write, less two processes)."""
        path = self._open().path
        head = await git.head(path)
        if self.snapshot_tree == await git.off_the_loop(libgit.tree, path, head):
            return Saved(head, self.snapshot_nested)
        commit = await git.commit_tree(path, self.snapshot_tree, [head], message, author)
        await git.set_ref(path, f"refs/heads/{self.branch}", commit, f"commit: {message.splitlines()[0]}")
        return Saved(commit, self.snapshot_nested)

    @_plain_errors
    async def snapshot(self) -> dict[str, Any] | None:
        """The files as they are now, as a commit on top of the branch (the branch stays where it
        is): what the task continues from if this worker is lost. None when nothing changed."""
        if not self.dirty:
            return None
        self.dirty = False
        workspace = self._open()
        path = workspace.path
        await workspace.files.settle()
        nested = await asyncio.to_thread(git.nested_repositories, path)
        await git.git(path, "add", "-A", "--sparse", "--", ".", *[f":(exclude,top){p}" for p in nested])
        tree = await git.write_tree(path)
        if tree == self.snapshot_tree:
            return None
        self.snapshot_tree, self.snapshot_nested = tree, nested
        commit = await git.commit_tree(path, tree, [await git.head(path)], f"osqr: work in progress of {self.task_id}")
        ref = f"refs/osqr/wip/{self.task_id}"
        await git.set_ref(path, ref, commit, "osqr: snapshot")
        data = await bundles.make(path, ref, self.kernel_has, self.loose)
        self._reached_kernel(commit)
        return {"commit": commit, "bundle": data}

    @_plain_errors
    async def advance(self, commit: str, bundle: bytes | None) -> None:
        """Move the worktree forward to a commit made in the kernel (its inputs merged in)."""
        workspace = self._open()
        if bundle is not None and not await bundles.present(workspace.path, [commit]):   # not if moved here
            if not await bundles.unbundle(workspace.path, bundle):
                raise WorkspaceError(f"{_worker_address()} lacks the commits {commit[:10]} was made on")
        await workspace.advance(commit)
        self.snapshot_tree = None              # the files moved on: the next save is git's own
        self._reached_kernel(commit)

    @_plain_errors
    async def close(self) -> None:
        """Remove the worktree (no git process, no lock); the clone keeps the objects and the
        branch for the run's next tasks, and this actor waits for the next task."""
        workspace, self.workspace = self.workspace, None
        if workspace is not None:
            await workspace.close()

    def _reached_kernel(self, commit: str) -> None:
        self.kernel_has = [commit, *[c for c in self.kernel_has if c != commit]][:KEEP_HAVES]


# -- one clone per run on this worker ----------------------------------------------------------

_clones: dict[str, LocalHost] = {}
_making: dict[str, asyncio.Task] = {}


async def _left_on(path: Path, start: str) -> bool:
    """Whether a worktree a task left here (its kernel went away) can be kept: it is there, and
    its commit holds `start` (the kernel's tip of the branch)."""
    if not (path / ".git").exists():
        return False
    code, _ = await git.git(path, "merge-base", "--is-ancestor", start, "HEAD", check=False)
    return code == 0


async def _run_clone(run_id: str) -> LocalHost:
    """The run's bare clone on this worker, made empty on first use (bundles fill it), with
    what its worktrees share: the listing of each start commit, the worktree lock."""
    if run_id not in _clones:
        if run_id not in _making:
            _making[run_id] = asyncio.get_running_loop().create_task(_make_clone(run_id))
        clone = await asyncio.shield(_making[run_id])
        _clones.setdefault(run_id, clone)
        _making.pop(run_id, None)
    return _clones[run_id]


async def forget_run(run_id: str) -> bool:
    """Drop the run's clone on this worker (run by the kernel on every worker once the run's
    tasks are all complete); whether there was one. The folder goes in a thread, the answer
    at once: a large clone's files need not hold the kernel's integration."""
    if run_id in _making:
        await asyncio.gather(_making[run_id], return_exceptions=True)
    clone = _clones.pop(run_id, None)
    if clone is None:
        return False
    task = asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, clone.root.parent, True)
    _removing.add(task)
    task.add_done_callback(_removing.discard)
    return True


_removing: set[asyncio.Future] = set()


async def _make_clone(run_id: str) -> LocalHost:
    root = Path(tempfile.mkdtemp(prefix=f"osqr-{run_id}-", dir=_local_directory()))
    repo = root / "repo.git"
    await git.git(root, "init", "-q", "--bare", str(repo))
    # objects arrive without refs (bundles are unbundled) and must stay: no automatic gc
    await git.git(repo, "config", "gc.auto", "0")
    return LocalHost(repo, run_id)


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
