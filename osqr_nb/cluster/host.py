"""The kernel's half of a task's workspace on a Dask cluster.

`ClusterHost` plays `LocalHost`'s part for a run: each task attempt gets a
`ClusterWorkspace`, which places a `WorkspaceActor` on a worker and forwards the
task's tool calls to it. The conversation, model calls, checkpoints and the event
log never leave the kernel; what the worker receives is commits (git bundles),
tool calls and commands. Commits come back the same way and land in the user's
repository on the task's branch, so the engine merges and integrates as it does
locally. After each agent turn that changed files, a snapshot of the files comes
back too (`refs/osqr/wip/<run>/<task>`): a lost worker costs at most one turn.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from ..agents import tools
from ..agents.commands import CommandResult, extra_environment
from ..agents.secrets import looks_secret
from ..models.errors import KEY_VARIABLES
from ..workspace import git
from ..workspace.task_workspace import Saved
from . import bundles
from .connect import Connection
from .worker_side import MUTATING, WorkspaceActor

Emit = Callable[..., None]
MAX_MOVES = 3              # moves of one call before its error is the task's
JOURNAL_CALLS = 16         # file changes kept to make again before a snapshot is taken anyway
JOURNAL_BYTES = 1 << 20
KEEP_SEEN = 32             # commits remembered per worker, offered as a bundle's exclusions


class ClusterHost:
    """Makes a run's task workspaces as actors on the workers of a Dask cluster."""

    def __init__(self, connection: Connection, root: Path, run_id: str, sandbox: bool | None = None) -> None:
        self.connection, self.root, self.run_id, self.sandbox = connection, root, run_id, sandbox
        self.seen: dict[str, list[str]] = {}          # worker -> commits sent to it or received from it
        self.lost = connection.gone                   # workers gone or failed: not chosen again
        self.resources: dict[str, int] | None = None  # what each actor asks of its worker
        self.round_trips: collections.deque[tuple[str, float]] = collections.deque(maxlen=100_000)

    def make(self, task_id: str, branch: str, emit: Emit) -> "ClusterWorkspace":
        return ClusterWorkspace(self, task_id, branch, emit)

    def saw(self, worker: str, *commits: str | None) -> None:
        known = self.seen.setdefault(worker, [])
        for commit in commits:
            if commit and commit not in known:
                known.insert(0, commit)
        del known[KEEP_SEEN:]

    async def placement(self) -> dict[str, Any]:
        """Where the next actor may go: the Dask resource `sandbox` when the workers declare it
        (looked up once per run), and not on a worker lost before (Dask may not know yet)."""
        workers: dict[str, Any] | None = None
        if self.resources is None or self.lost:
            workers = await self.workers()
        if self.resources is None:
            declared = any("sandbox" in (w.get("resources") or {}) for w in workers.values())
            self.resources = {"sandbox": 1} if declared else {}
        where: dict[str, Any] = {"resources": self.resources} if self.resources else {}
        alive = [a for a, w in (workers or {}).items() if a not in self.lost
                 and all(k in (w.get("resources") or {}) for k in self.resources)]
        if self.lost and alive:
            where.update(workers=alive, allow_other_workers=False)
        return where

    async def workers(self) -> dict[str, Any]:
        """The scheduler's workers now (an asynchronous client caches none of them)."""
        client = await self.connection.client()
        return (await client.scheduler.identity(n_workers=-1)).get("workers", {})


def command_settings() -> dict[str, Any]:
    """The kernel's command settings as a worker needs them, less anything that looks secret:
    keys stay in the kernel (set such variables on the workers themselves)."""
    from ..config import settings
    env = {k: v for k, v in extra_environment().items()
           if not looks_secret(k) and k not in KEY_VARIABLES.values()}
    return {"command_env": env, "unsandboxed_commands": settings().unsandboxed_commands}


class ClusterWorkspace:
    """One task's workspace, held by an actor on a worker; moves to another worker if that one is lost."""

    def __init__(self, host: ClusterHost, task_id: str, branch: str, emit: Emit) -> None:
        self.host, self.task_id, self.branch, self.emit = host, task_id, branch, emit
        self.root = host.root
        self.where = "(not placed)"
        self.wip_ref = f"refs/osqr/wip/{host.run_id}/{task_id}"
        self._actor: Any = None
        self._future: Any = None
        self._sandbox = "none"
        self._touched = False                 # a command ran, or the journal is long: snapshot this turn
        self._journal: list[tuple[str, tuple[Any, ...]]] = []   # changes made since then, to replay
        self._snapshot: asyncio.Task | None = None   # the last turn's snapshot, on its way to the kernel
        self._snapshotted = False                    # a snapshot ref is in the kernel's repository
        self._explainer = tools.Workspace(host.root)

    @property
    def sandbox_mode(self) -> str:
        return self._sandbox

    # -- placing ---------------------------------------------------------------------------

    async def open(self, start: str, fresh: bool) -> list[str]:
        """On a worker, the task's branch at `start` (fresh) or where it was left (resumed: the
        branch's tip, with the last snapshot's files when it was taken on that tip)."""
        if fresh:
            await git.git(self.root, "update-ref", f"refs/heads/{self.branch}", start)
            tip, wip = start, None
        else:
            if not await git.branch_exists(self.root, self.branch):
                await git.git(self.root, "update-ref", f"refs/heads/{self.branch}", start)
            tip = await self._tip()
            wip = await self._usable_snapshot(tip)
        for attempt in range(MAX_MOVES + 1):
            try:
                await self._place(tip, wip)
                return []
            except Exception as exc:
                if not _worker_lost(exc) or attempt == MAX_MOVES:
                    raise
                self._lost_here()
                await self._drop()
        return []

    async def _place(self, tip: str, wip: str | None) -> None:
        client = await self.host.connection.client()
        key = f"osqr-workspace-{self.host.run_id}-{self.task_id}-{uuid.uuid4().hex[:8]}"
        self._future = client.submit(WorkspaceActor, self.host.run_id, self.task_id, self.branch,
                                     self.host.sandbox, command_settings(), actor=True, key=key,
                                     **await self.host.placement())
        self._actor = await self._future
        self.where = self._actor._address
        self.host.connection.watch(client, self.where)
        haves = await self._actor.haves(self.host.seen.get(self.where, []))
        bundle = None if tip in haves else await bundles.make(self.root, f"refs/heads/{self.branch}", haves)
        wip_bundle = await bundles.make(self.root, self.wip_ref, [*haves, tip]) if wip else None
        self._snapshotted |= wip is not None
        info = await self._actor.open(tip, bundle, wip, wip_bundle)
        self.where, self._sandbox = info["address"], info["sandbox"]
        self.host.saw(self.where, tip, wip)

    async def _move(self, error: BaseException, old: str) -> None:
        """Carry on, on another worker, from the last commit or snapshot that reached the kernel,
        with the changes made since then made again: the files match the conversation."""
        self.host.connection.lose(old)
        await self._drop()
        tip = await self._tip()
        wip = await self._usable_snapshot(tip)
        await self._place(tip, wip)
        for method, args in self._journal:
            try:
                await self._unless_lost(getattr(self._actor, method)(*args))
            except tools.ToolError:
                pass                     # it failed the same way the first time, or the model was told
        self._touched = True
        self.emit("task_moved", from_worker=old, worker=self.where, commit=tip, snapshot=wip,
                  replayed=len(self._journal), error=f"{type(error).__name__}: {error}"[:300])

    async def _remote(self, method: str, *args: Any) -> Any:
        """A call to the actor, timed; a lost worker moves the workspace and the call is made again."""
        for attempt in range(MAX_MOVES + 1):
            started = time.perf_counter()
            try:
                result = await self._unless_lost(getattr(self._actor, method)(*args))
            except Exception as exc:
                if not _worker_lost(exc) or attempt == MAX_MOVES:
                    raise
                await self._move_until_placed(exc)
                continue
            self.host.round_trips.append((method, time.perf_counter() - started))
            return result

    async def _unless_lost(self, call: Any) -> Any:
        """The call's answer, or WorkerLost as soon as the scheduler says its worker left."""
        lost = self.host.connection.lost(self.where)
        if lost.is_set():
            raise WorkerLost(f"{self.where} left the cluster")
        answer = asyncio.ensure_future(call)
        watch = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait([answer, watch], return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            if not answer.done():
                answer.cancel()
        if not answer.done() or answer.cancelled():
            raise WorkerLost(f"{self.where} left the cluster during the call")
        return answer.result()

    async def _move_until_placed(self, error: BaseException) -> None:
        old = self.where
        for attempt in range(MAX_MOVES + 1):
            try:
                return await self._move(error, old)
            except Exception as exc:
                if not _worker_lost(exc) or attempt == MAX_MOVES:
                    raise
                self._lost_here()            # the worker it was moving to went too
                error = exc

    def _lost_here(self) -> None:
        if "://" in self.where:
            self.host.connection.lose(self.where)

    async def _drop(self) -> None:
        """Forget the actor (its worker is gone, or the task is done): once no client wants its
        key, Dask neither keeps the actor nor makes it again on another worker."""
        future, self._future, self._actor = self._future, None, None
        if future is not None:
            future.release()

    async def _tip(self) -> str:
        return (await git.git(self.root, "rev-parse", f"refs/heads/{self.branch}", stderr=False))[1].strip()

    async def _usable_snapshot(self, tip: str) -> str | None:
        """The last snapshot, if it was taken on `tip` (a later save makes it stale)."""
        code, out = await git.git(self.root, "rev-parse", "-q", f"{self.wip_ref}^", self.wip_ref,
                                  check=False, stderr=False)
        parent, _, commit = out.strip().partition("\n")
        return commit.strip() if code == 0 and parent == tip else None

    # -- the seam ----------------------------------------------------------------------------

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        await self._settled()
        result = await self._remote("call", name, arguments)
        if name in MUTATING:
            self._changed("call", name, arguments)
        return result

    async def current_text(self, path: str) -> str | None:
        await self._settled()
        return await self._remote("current_text", path)

    async def plan_edit(self, path: str, old: str, new: str, replace_all: bool) -> tuple[str, str]:
        await self._settled()
        return await self._remote("plan_edit", path, old, new, replace_all)

    async def run_command(self, command: str | list[str], timeout: float | None) -> CommandResult:
        await self._settled()
        result = await self._remote("run_command", command, timeout)
        self._changed("run_command", command, timeout)
        return result

    def _changed(self, method: str, *args: Any) -> None:
        """A change made on the worker since the last snapshot: made again if the worker is lost.

        A file written or edited is cheap to make again from here; a command may not be (a
        build), so a turn that ran one, or a long journal, is snapshotted when the turn ends.
        """
        self._journal.append((method, args))
        size = sum(len(str(a)) for _, args in self._journal for a in args)
        if method == "run_command" or len(self._journal) >= JOURNAL_CALLS or size >= JOURNAL_BYTES:
            self._touched = True

    def explain(self, tool: str, exc: BaseException) -> str:
        return self._explainer.explain(tool, exc)

    async def turn_done(self) -> None:
        """A snapshot of the files on its way to the kernel when this turn ran a command (or the
        file changes to make again pile up): a lost worker then costs no turn's work.

        It travels while the agent waits for its model; the workspace's next call waits for it
        (one call at a time reaches the worker, as the agent makes them).
        """
        await self._settled()
        if not self._touched:
            return
        self._touched = False
        self._snapshot = asyncio.create_task(self._take_snapshot(), name=f"osqr-snapshot-{self.task_id}")

    async def _take_snapshot(self) -> None:
        snap = await self._remote("snapshot")
        if snap is None:
            self._journal.clear()
            return
        if snap["bundle"] is not None:
            await bundles.take(self.root, snap["bundle"], f"refs/osqr/wip/{self.task_id}", self.wip_ref)
        else:
            await git.git(self.root, "update-ref", self.wip_ref, snap["commit"])
        self._snapshotted = True
        self.host.saw(self.where, snap["commit"])
        self._journal.clear()

    async def _settled(self) -> None:
        """Wait for the snapshot under way; its failure is the caller's (the worker side failed)."""
        pending, self._snapshot = self._snapshot, None
        if pending is not None:
            await pending

    async def save(self, message: str, author: str) -> Saved:
        """Commit on the worker; the commit fetched into the user's repository as the task's branch."""
        await self._settled()
        result = await self._remote("save", message, author)
        ref = f"refs/heads/{self.branch}"
        if result["bundle"] is not None:
            await bundles.take(self.root, result["bundle"], ref, ref)
        else:
            await git.git(self.root, "update-ref", ref, result["commit"])
        self.host.saw(self.where, result["commit"])
        self._touched = False
        self._journal.clear()
        return Saved(result["commit"], list(result["left_out"]))

    async def advance(self, commit: str) -> None:
        """The branch moves to `commit` (made in the kernel) and the worker's worktree with it."""
        await self._settled()
        previous = await self._tip()
        ref = f"refs/heads/{self.branch}"
        await git.git(self.root, "update-ref", ref, commit)
        bundle = await bundles.make(self.root, ref, [previous, *self.host.seen.get(self.where, [])])
        await self._remote("advance", commit, bundle)
        self.host.saw(self.where, commit)

    async def close(self) -> None:
        """Free the worker's worktree; the branch holds the work, so the snapshot goes too."""
        if self._snapshot is not None:
            self._snapshot.cancel()
            await asyncio.gather(self._snapshot, return_exceptions=True)
            self._snapshot = None
        try:
            if self._actor is not None:
                await getattr(self._actor, "close")()
        except Exception as exc:
            if not _worker_lost(exc):
                raise
        finally:
            await self._drop()
        if self._snapshotted:
            await git.git(self.root, "update-ref", "-d", self.wip_ref, check=False)


class WorkerLost(ConnectionError):
    """The worker holding a workspace left the cluster."""


def _worker_lost(exc: BaseException) -> bool:
    """The actor's worker is gone (a dropped connection, or Dask saying so), not a tool's failure:
    the worker side turns every error of a tool into a ToolError."""
    from distributed.scheduler import KilledWorker
    if isinstance(exc, (OSError, KilledWorker)):
        return True
    return isinstance(exc, RuntimeError) and "Worker holding Actor was lost" in str(exc)
