"""The kernel's half of a task's workspace on a Dask cluster.

`ClusterHost` plays `LocalHost`'s part for a run: each task attempt gets a
`ClusterWorkspace`, which takes a worker and an actor there from the connection's
pool (pool.py), sends the commits of the task's start that the worker lacks, and
forwards the task's tool calls to the actor. The conversation, model calls,
checkpoints and the event log never leave the kernel; what the worker receives is
commits (git bundles, or their objects: bundles.py), tool calls and commands.
Commits come back the same way and land in the user's repository on the task's
branch, so the engine merges and integrates as it does locally. After each agent
turn that ran a command, a snapshot of the files comes back too
(`refs/osqr/wip/<run>/<task>`); file changes since are kept here to make again: a
lost worker costs no turn's work. A run resumed after the kernel died sends each
unfinished task back to its worker, which keeps its worktree as left when it still
has it.

Opening costs a reservation (no round trip), an actor kept from an earlier task, and
one call that stores the commits sent and makes a lazy worktree; closing returns the
actor at once while the worker removes the worktree behind it
(`benchmarks/scale_out.py` times each phase).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
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
from .pool import Slot, pool_of
from .worker_side import MUTATING, forget_run

Emit = Callable[..., None]
MAX_MOVES = 3              # moves of one call before its error is the task's
JOURNAL_CALLS = 16         # file changes kept to make again before a snapshot is taken anyway
JOURNAL_BYTES = 1 << 20
KEEP_SEEN = 32             # commits remembered per worker, offered as a bundle's exclusions


class ClusterHost:
    """Makes a run's task workspaces as actors on the workers of a Dask cluster."""

    def __init__(self, connection: Connection, root: Path, run_id: str, sandbox: bool | None = None,
                 last_worker: Callable[[str], str | None] | None = None) -> None:
        self.connection, self.root, self.run_id, self.sandbox = connection, root, run_id, sandbox
        self.last_worker = last_worker or (lambda task_id: None)   # where a task's workspace was
        self.pool = pool_of(connection)
        self.seen: dict[str, list[str]] = {}          # worker -> commits sent to it or received from it
        self.lost = connection.gone                   # workers gone or failed: not chosen again
        self._first: dict[str, asyncio.Lock] = {}     # worker -> held while the run's base goes there
        self.loose_on: dict[str, bool] = {}            # worker -> its clone takes objects (libgit2 there)
        self._loose_here: bool | None = None           # this repository takes objects
        self.round_trips: collections.deque[tuple[str, float]] = collections.deque(maxlen=100_000)

    def make(self, task_id: str, branch: str, emit: Emit) -> "ClusterWorkspace":
        return ClusterWorkspace(self, task_id, branch, emit)

    async def done(self) -> None:
        """Every task of the run is complete and its commits are here: each worker drops the
        run's clone (a long-lived cluster's disks would otherwise keep every run's). A run with
        a task left to resume keeps its clones, as a local run keeps a failed task's worktree."""
        try:
            client = await self.connection.client()
            await client.run(forget_run, self.run_id)
        except Exception:            # a worker gone meanwhile took its clone with it
            pass

    @contextlib.contextmanager
    def timed(self, phase: str):
        """Time a phase of opening or closing a workspace, kept with the calls' round trips:
        the benchmark shows where a task's time on the cluster goes."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.round_trips.append((phase, time.perf_counter() - started))

    def saw(self, worker: str, *commits: str | None) -> None:
        known = self.seen.setdefault(worker, [])
        for commit in commits:
            if commit and commit not in known:
                known.insert(0, commit)
        del known[KEEP_SEEN:]

    async def takes_objects(self) -> bool:
        """Whether workers may send this repository commits as objects (libgit2 opens it here)."""
        if self._loose_here is None:
            self._loose_here = await bundles.reads_objects(self.root)
        return self._loose_here

    def holds(self, worker: str, commit: str) -> bool:
        return commit in self.seen.get(worker, ())

    def first_on(self, worker: str) -> contextlib.AbstractAsyncContextManager:
        """Held by the first workspace that opens on a worker this run has sent nothing yet, so
        the base goes there once, not with each task that starts there at the same moment."""
        if self.seen.get(worker):
            return contextlib.nullcontext()
        return self._first.setdefault(worker, asyncio.Lock())


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
        self._slot: Slot | None = None       # the actor this workspace holds
        self._reserved = False               # counted among the workspaces of `where`
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
        """On a worker, the task's branch at `start` (fresh) or where it was left (resumed after
        the kernel went away). A resumed task goes back to the worker that held it: if that
        worker still has its worktree, every file the agent wrote is kept, as a local worktree
        would be; otherwise it starts again from the branch's tip, with the last snapshot's
        files when it was taken on that tip."""
        keep = None
        if fresh:
            await git.set_ref(self.root, f"refs/heads/{self.branch}", start, "osqr: task start")
            tip, wip = start, None
        else:
            if not await git.branch_exists(self.root, self.branch):
                await git.set_ref(self.root, f"refs/heads/{self.branch}", start, "osqr: task start")
            tip = await self._tip()
            wip = await self._usable_snapshot(tip)
            keep = self.host.last_worker(self.task_id)
        for attempt in range(MAX_MOVES + 1):
            try:
                with self.host.timed("open"):
                    return await self._place(tip, wip, keep)
            except Exception as exc:
                if not _worker_lost(exc) or attempt == MAX_MOVES:
                    raise
                self._lost_here()
                await self._drop()
                keep = None
        return []

    async def _place(self, tip: str, wip: str | None, keep: str | None = None) -> list[str]:
        """An actor on a worker (kept from an earlier task when there is one), opened at `tip`:
        the bundle of what the worker lacks is made while the actor is found. `keep`: the
        worker that held this task's worktree before the kernel went away, tried first."""
        with self.host.timed("open: reserve"):
            self.where = await self.host.pool.reserve(self, lambda worker: self.host.holds(worker, tip), keep)
        self._reserved = True
        try:
            return await self._open_on_worker(tip, wip, keep == self.where)
        except BaseException:
            await self._drop()
            raise

    async def _open_on_worker(self, tip: str, wip: str | None, keep: bool) -> list[str]:
        async with self.host.first_on(self.where):
            seen = list(self.host.seen.get(self.where, []))
            with self.host.timed("open: actor and bundle"):
                try:
                    async with asyncio.TaskGroup() as group:
                        slot = group.create_task(self.host.pool.take(self.where))
                        sent = group.create_task(self._bundles(tip, wip, seen))
                except BaseExceptionGroup as failed:     # the caller tells a lost worker by its error
                    raise failed.exceptions[0] from None
            self._slot = slot.result()
            with self.host.timed("open: worker"):
                info = await self._unless_lost(self._slot.actor.open(await self._job(tip, wip, keep,
                                                                                     *sent.result())))
            if info.get("lacking"):                  # a clone newer than what the kernel remembers
                haves = await self._unless_lost(self._slot.actor.haves(self.host.run_id, seen))
                job = await self._job(tip, wip, keep, *await self._bundles(tip, wip, haves))
                info = await self._unless_lost(self._slot.actor.open(job))
        for phase, seconds in info.get("timings", {}).items():
            self.host.round_trips.append((f"open: worker {phase}", seconds))
        self._snapshotted |= wip is not None
        self._sandbox = info["sandbox"]
        self.host.loose_on[self.where] = bool(info.get("loose"))
        self._touched = info["kept"]          # the kept files reach the kernel after the first turn
        self.host.saw(self.where, tip, wip)
        return info["notes"]

    async def _bundles(self, tip: str, wip: str | None,
                       haves: list[str]) -> tuple[bundles.Payload | None, bundles.Payload | None]:
        """What the worker needs of the branch at `tip` and of the snapshot, given what it has."""
        loose = self.host.loose_on.get(self.where, False)
        bundle = None if tip in haves else await bundles.make(self.root, f"refs/heads/{self.branch}", haves, loose)
        wip_bundle = await bundles.make(self.root, self.wip_ref, [*haves, tip], loose) if wip else None
        return bundle, wip_bundle

    async def _job(self, tip: str, wip: str | None, keep: bool, bundle: bundles.Payload | None,
                   wip_bundle: bundles.Payload | None) -> dict[str, Any]:
        return {"run_id": self.host.run_id, "task_id": self.task_id, "branch": self.branch,
                "sandbox": self.host.sandbox, "settings": command_settings(), "start": tip, "wip": wip,
                "keep": keep, "bundle": bundle, "wip_bundle": wip_bundle,
                "loose": await self.host.takes_objects()}

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
                await self._unless_lost(getattr(self._slot.actor, method)(*args))
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
                result = await self._unless_lost(getattr(self._slot.actor, method)(*args))
            except Exception as exc:
                if not _worker_lost(exc) or attempt == MAX_MOVES:
                    raise
                await self._move_until_placed(exc)
                continue
            self.host.round_trips.append((method, time.perf_counter() - started))
            return result

    async def _unless_lost(self, call: Any) -> Any:
        """The call's answer, or WorkerLost as soon as the scheduler says its worker left."""
        return await self.host.connection.unless_lost(self.where, call)

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

    async def _drop(self, keep: bool = False) -> None:
        """Give the worker's place back; the actor goes back to the pool (`keep`), or is forgotten
        (its worker is gone): once no client wants its key, Dask neither keeps the actor nor
        makes it again on another worker."""
        slot, self._slot = self._slot, None
        if slot is not None and not keep:
            slot.future.release()
        if self._reserved:
            self._reserved = False
            self.host.pool.release(self.where, self, slot if keep else None)

    async def _tip(self) -> str:
        return await git.rev_parse(self.root, f"refs/heads/{self.branch}")

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
            await git.set_ref(self.root, self.wip_ref, snap["commit"], "osqr: snapshot")
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
            await git.set_ref(self.root, ref, result["commit"], "osqr: saved")
        self.host.saw(self.where, result["commit"])
        self._touched = False
        self._journal.clear()
        return Saved(result["commit"], list(result["left_out"]))

    async def advance(self, commit: str) -> None:
        """The branch moves to `commit` (made in the kernel) and the worker's worktree with it."""
        await self._settled()
        previous = await self._tip()
        ref = f"refs/heads/{self.branch}"
        await git.set_ref(self.root, ref, commit, "osqr: inputs merged")
        bundle = await bundles.make(self.root, ref, [previous, *self.host.seen.get(self.where, [])],
                                    self.host.loose_on.get(self.where, False))
        await self._remote("advance", commit, bundle)
        self.host.saw(self.where, commit)

    async def close(self) -> None:
        """Give the actor back and let its worker remove the worktree behind the next task (the
        branch holds the work); the snapshot ref goes too."""
        with self.host.timed("close"):
            await self._close()

    async def _close(self) -> None:
        if self._snapshot is not None:
            self._snapshot.cancel()
            await asyncio.gather(self._snapshot, return_exceptions=True)
            self._snapshot = None
        if self._slot is not None:
            self._slot.close_behind(self.host.connection.unless_lost(self.where, self._slot.actor.close()))
            await self._drop(keep=True)
        if self._snapshotted:
            await git.delete_ref(self.root, self.wip_ref)


def _worker_lost(exc: BaseException) -> bool:
    """The actor's worker is gone (a dropped connection, or Dask saying so), not a tool's failure:
    the worker side turns every error of a tool into a ToolError."""
    from distributed.scheduler import KilledWorker
    if isinstance(exc, (OSError, KilledWorker)):
        return True
    return isinstance(exc, RuntimeError) and "Worker holding Actor was lost" in str(exc)
