"""Which worker a task's workspace goes to, and the actors kept there between tasks.

A workspace opens and closes in every task attempt; a new actor for each would cost a
scheduler round trip and a task on the worker every time. So a connection keeps the
actors it made (one per workspace open at once on a worker) and hands an idle one to
the next task that goes there. The kernel picks the worker itself, before the actor:
the bundle the task needs is then made while the actor is found, and a worker that
already holds the task's start commit (it made it) is preferred when it is nearly as
idle as the least busy one, so nothing needs to travel. A worker that declares a
`sandbox` resource holds at most that many workspaces at once, counted across every
kernel that uses the cluster: each workspace holds a lease of a Dask `Semaphore` named
after its worker (a kernel that dies without giving its leases back loses them when
the scheduler's lease timeout passes, 30 s by default).
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any, Callable

from .connect import Connection, WorkerLost
from .worker_side import WorkspaceActor

WORKERS_FRESH = 2.0     # seconds the scheduler's list of workers is used before asking again
LEASE_POLL = 0.25       # seconds between asking again for a sandbox another kernel holds
AFFINITY = 1            # workspaces more than the least busy worker's that one holding the start may take


@dataclass
class Slot:
    """An actor on a worker, held by one task's workspace at a time."""
    worker: str
    future: Any                 # keeps the actor alive on its worker while the connection wants it
    actor: Any
    closing: asyncio.Future | None = None    # the last task's worktree being removed there

    def close_behind(self, call: Any) -> None:
        """Let the worker remove the last worktree while the kernel goes on: the next task that
        takes this actor waits for it (`ready`), the one that closed it does not."""
        self.closing = asyncio.ensure_future(call)
        self.closing.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def ready(self) -> bool:
        """Whether the last close went well (else the actor, or its worker, is not to be trusted)."""
        if self.closing is None:
            return True
        try:
            await self.closing
        except Exception:
            return False
        return True


class ActorPool:
    """A connection's actors on its workers, and how many workspaces each worker holds."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.idle: dict[str, list[Slot]] = collections.defaultdict(list)
        self.holders: dict[str, weakref.WeakSet] = collections.defaultdict(weakref.WeakSet)
        self._workers: dict[str, Any] = {}
        self._asked = -math.inf
        self._asking: asyncio.Future | None = None
        self._freed = asyncio.Event()
        self.declared: bool | None = None       # whether the workers declare a `sandbox` resource
        self._semaphores: dict[str, Any] = {}   # worker -> its sandboxes, shared by every kernel
        self._leases: weakref.WeakKeyDictionary[object, weakref.finalize] = weakref.WeakKeyDictionary()

    async def workers(self, fresh: bool = False) -> dict[str, Any]:
        """The scheduler's workers, asked at most every WORKERS_FRESH s (workers join a running
        cluster); the tasks that want them at the same moment share one question."""
        if fresh or time.monotonic() - self._asked > WORKERS_FRESH:
            if self._asking is None or self._asking.done():
                self._asking = asyncio.ensure_future(self._ask())
            await asyncio.shield(self._asking)
        return self._workers

    async def _ask(self) -> None:
        client = await self.connection.client()
        self._workers = (await client.scheduler.identity(n_workers=-1)).get("workers", {})
        self._asked = time.monotonic()
        if self.declared is None:
            self.declared = any("sandbox" in (w.get("resources") or {}) for w in self._workers.values())

    def busy(self, worker: str) -> int:
        """Workspaces open on `worker` (one that failed or was cancelled without closing counts
        until it is garbage: the pool holds its workspaces weakly)."""
        return len(self.holders[worker])

    async def reserve(self, holder: object, holds_start: Callable[[str], bool], prefer: str | None = None) -> str:
        """A worker with room for one more workspace, held by `holder` until `release`; `prefer`
        when it has room (a resumed task's worker, which may still hold its files)."""
        while True:
            workers = await self.workers()
            if not self._room(workers):
                workers = await self._some_workers()
            taken = set()                # workers whose sandboxes other kernels hold
            while (chosen := self.choose({w: i for w, i in workers.items() if w not in taken},
                                         holds_start, prefer)) is not None:
                self.holders[chosen].add(holder)       # counted here while the lease is asked for
                if await self._lease(chosen, workers[chosen], holder):
                    return chosen
                self.holders[chosen].discard(holder)
                taken.add(chosen)
            self._freed.clear()
            try:             # a workspace closing, or (asked again then) a worker joining
                await asyncio.wait_for(self._freed.wait(), LEASE_POLL if taken else WORKERS_FRESH)
            except TimeoutError:
                pass

    async def _lease(self, worker: str, info: dict[str, Any], holder: object) -> bool:
        """One of `worker`'s sandboxes for `holder`, unless other kernels hold them all; given back
        by `release`, or when `holder` is garbage (a workspace that failed without closing)."""
        if not self.declared:
            return True
        try:
            semaphore = self._semaphores.get(worker) or await self._semaphore(worker, info)
            if not await semaphore.acquire(timeout=0):
                return False
        except Exception:              # the scheduler cannot say: count this kernel's own alone
            return True
        self._leases[holder] = weakref.finalize(holder, _give_back, asyncio.get_running_loop(), semaphore)
        return True

    async def _semaphore(self, worker: str, info: dict[str, Any]) -> Any:
        from distributed import Semaphore
        client = await self.connection.client()
        self._semaphores[worker] = Semaphore(max_leases=int(self._capacity(info)), name=f"osqr-sandbox-{worker}",
                                             scheduler_rpc=client.scheduler, loop=client.loop)
        return self._semaphores[worker]

    async def _some_workers(self) -> dict[str, Any]:
        """The workers now; when the cluster has none yet (it is starting), as soon as one joins."""
        workers = await self.workers(fresh=True)
        if not workers:
            client = await self.connection.client()
            await client.wait_for_workers(1)
            workers = await self.workers(fresh=True)
        return workers

    def choose(self, workers: dict[str, Any], holds_start: Callable[[str], bool],
               prefer: str | None = None) -> str | None:
        """The least busy worker with room, or one holding the start that is nearly as idle."""
        room = self._room(workers)
        if not room:
            return None
        if prefer in room:
            return prefer
        least = min(self.busy(w) for w in room)
        near = [w for w in room if self.busy(w) <= least + AFFINITY and holds_start(w)]
        return min(near or room, key=lambda w: (self.busy(w), -len(self.idle[w]), w))

    def _room(self, workers: dict[str, Any]) -> list[str]:
        return [w for w, info in workers.items()
                if w not in self.connection.gone and self.busy(w) < self._capacity(info)]

    def _capacity(self, info: dict[str, Any]) -> float:
        if not self.declared:
            return math.inf
        return (info.get("resources") or {}).get("sandbox", 0)

    async def take(self, worker: str) -> Slot:
        """An idle actor on `worker`, or a new one there."""
        if worker in self.connection.gone:
            self._forget(worker)
        while self.idle[worker]:
            slot = self.idle[worker].pop()
            if await slot.ready():
                return slot
            slot.future.release()
        client = await self.connection.client()
        self.connection.watch(client, worker)          # first: a worker leaving from now on is heard
        if worker not in await self.workers(fresh=True):
            raise WorkerLost(f"{worker} left the cluster")   # an actor asked of it would wait forever
        future = client.submit(WorkspaceActor, actor=True, key=f"osqr-workspace-{uuid.uuid4().hex}",
                               workers=[worker], allow_other_workers=False)
        try:
            actor = await self.connection.unless_lost(worker, future)
        except BaseException:
            future.release()
            raise
        return Slot(worker, future, actor)

    def release(self, worker: str, holder: object, slot: Slot | None) -> None:
        """The reservation ends; `slot` goes back to the idle ones (None: its actor is gone)."""
        self.holders[worker].discard(holder)
        lease = self._leases.pop(holder, None)
        if lease is not None:
            lease()
        if slot is not None and worker not in self.connection.gone:
            self.idle[worker].append(slot)
        elif slot is not None:
            slot.future.release()
        self._freed.set()

    def _forget(self, worker: str) -> None:
        for slot in self.idle.pop(worker, []):
            slot.future.release()


def _give_back(loop: asyncio.AbstractEventLoop, semaphore: Any) -> None:
    """Release one lease of `semaphore` on its loop (a finalizer may run in any thread)."""
    def release() -> None:
        try:
            future = asyncio.ensure_future(semaphore.release())
        except RuntimeError:           # released already, or the semaphore is closed
            return
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
    try:
        loop.call_soon_threadsafe(release)
    except RuntimeError:               # the loop is closed: the scheduler's lease timeout frees it
        pass


_pools: weakref.WeakKeyDictionary[Connection, ActorPool] = weakref.WeakKeyDictionary()


def pool_of(connection: Connection) -> ActorPool:
    """The connection's pool, shared by the runs that use it."""
    pool = _pools.get(connection)
    if pool is None:
        pool = _pools[connection] = ActorPool(connection)
    return pool
