"""The `cluster` setting, turned into a Dask client on the kernel's own event loop.

`None` keeps today's local mode. `"local:N"` starts a `LocalCluster` of N worker
processes for this kernel (once, then shared by its runs); `"tcp://host:8786"` (any
address Dask understands) connects to a running scheduler; a `distributed.Client`
the user made (dask-kubernetes, dask-jobqueue, SSHCluster, Coiled...) is used as
it is, or re-opened asynchronously on its scheduler. The client is made on first
use, awaited on the loop (`Client(asynchronous=True)`), so a cell never waits for it.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

from ..agents.secrets import looks_secret
from ..models.errors import KEY_VARIABLES

_LOCAL = re.compile(r"local:(\d+)")
_ADDRESS = re.compile(r"[a-z][a-z0-9+.-]*://\S+")


class ClusterError(ValueError):
    """A `cluster` setting that cannot be used; the message says what would work."""


def check(setting: Any) -> Any:
    """The setting itself if usable (None, "local:N", a scheduler address, a Client); else ClusterError."""
    if setting is None or setting == "":
        return None
    if isinstance(setting, str):
        setting = setting.strip()
        if setting.lower() in ("none", "local"):
            return None
        local = _LOCAL.fullmatch(setting)
        if local and int(local.group(1)) >= 1:
            return setting
        if _ADDRESS.fullmatch(setting):
            return setting
        raise ClusterError(
            f"cluster {setting!r} is not a cluster: use 'local:N' (N worker processes on this machine, "
            "N >= 1), a scheduler address such as 'tcp://host:8786', a distributed.Client, or None")
    if _is_client(setting):
        return setting
    raise ClusterError(f"cluster takes None, 'local:N', a scheduler address or a distributed.Client, "
                       f"not {type(setting).__name__}")


def _is_client(value: Any) -> bool:
    try:
        from distributed import Client
    except ImportError:
        return False
    return isinstance(value, Client)


def _require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ClusterError("a cluster needs Dask's distributed scheduler: pip install 'osqr-nb[cluster]' "
                           "(or 'dask[distributed]')") from None


class WorkerLost(ConnectionError):
    """The worker holding a workspace left the cluster."""


class Connection:
    """One cluster setting's client on one event loop, made the first time it is needed."""

    def __init__(self, setting: Any) -> None:
        _require_dask()
        self.setting = check(setting)
        if self.setting is None:
            raise ClusterError("no cluster given: leave OSQR.cluster at None for local workspaces")
        self._client: asyncio.Task | None = None
        self.cluster: Any = None                # the LocalCluster started for "local:N"
        self.gone: set[str] = set()             # workers the scheduler removed (or a call found dead)
        self._losses: dict[str, asyncio.Event] = {}

    async def client(self) -> Any:
        if self._client is None:
            self._client = asyncio.get_running_loop().create_task(self._connect())
        return await asyncio.shield(self._client)

    async def _connect(self) -> Any:
        from distributed import Client, LocalCluster
        setting = self.setting
        if _is_client(setting):
            if setting.asynchronous and _same_loop(setting):
                return setting
            # a blocking client: the same scheduler, asynchronously, on this loop
            return await Client(setting.scheduler.address, security=setting.security, asynchronous=True,
                                direct_to_workers=setting.direct_to_workers)
        if setting.startswith("local:"):
            # The scheduler runs on this loop and the workers die with the kernel. (SubprocessCluster
            # keeps the scheduler off the loop but leaves its processes behind a killed kernel.)
            self.cluster = await LocalCluster(
                n_workers=int(setting[6:]), threads_per_worker=2, processes=True, asynchronous=True,
                host="127.0.0.1", dashboard_address=":0", env=blank_secrets())
            return await Client(self.cluster, asynchronous=True, direct_to_workers=True)
        return await Client(setting, asynchronous=True)

    def watch(self, client: Any, worker: str) -> None:
        """Hear from the scheduler when `worker` leaves (its events' topic is its address)."""
        if worker not in self._losses:
            self._losses[worker] = asyncio.Event()
            client.subscribe_topic(worker, lambda event: self._on_event(worker, event))

    def _on_event(self, worker: str, event: tuple[float, Any]) -> None:
        _, message = event
        if isinstance(message, dict) and message.get("action") == "remove-worker":
            self.lose(worker)

    def lose(self, worker: str) -> None:
        """A worker is gone: calls waiting on it give up at once (the scheduler's own connection
        to a dead worker may wait for its 30 s connect timeout)."""
        self.gone.add(worker)
        self._losses.setdefault(worker, asyncio.Event()).set()

    def lost(self, worker: str) -> asyncio.Event:
        """Set when `worker` leaves the cluster."""
        return self._losses.setdefault(worker, asyncio.Event())

    async def unless_lost(self, worker: str, call: Any) -> Any:
        """The call's answer, or WorkerLost as soon as the scheduler says its worker left."""
        lost = self.lost(worker)
        if lost.is_set():
            raise WorkerLost(f"{worker} left the cluster")
        answer = asyncio.ensure_future(call)
        watch = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait([answer, watch], return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            if not answer.done():
                answer.cancel()
        if not answer.done() or answer.cancelled():
            raise WorkerLost(f"{worker} left the cluster during the call")
        return answer.result()

    def usable(self) -> bool:
        """Not failed or closed (a new connection is made for the setting otherwise)."""
        if self._client is None or not self._client.done():
            return True
        return not self._client.cancelled() and self._client.exception() is None and self._client.result().status == "running"

    async def close(self) -> None:
        """Close what this connection opened (never a Client the user handed over)."""
        if self._client is None or not self._client.done() or self._client.cancelled() \
                or self._client.exception():
            return
        client = self._client.result()
        if client is not self.setting:
            await client.close()
        if self.cluster is not None:
            await self.cluster.close()


def _same_loop(client: Any) -> bool:
    try:
        return client.loop.asyncio_loop is asyncio.get_running_loop()
    except AttributeError:
        return False


def blank_secrets() -> dict[str, str]:
    """Environment for workers the kernel starts itself: every key variable emptied, so a
    worker process (and what runs there) finds no key in its environment."""
    return {name: "" for name in os.environ if name in KEY_VARIABLES.values() or looks_secret(name)}


_connections: dict[tuple[Any, int], Connection] = {}


def connection(setting: Any) -> Connection | None:
    """The kernel's connection for a setting, shared by the runs started on the running loop."""
    setting = check(setting)
    if setting is None:
        return None
    loop = asyncio.get_running_loop()
    key = (setting if isinstance(setting, str) else id(setting), id(loop))
    found = _connections.get(key)
    if found is None or not found.usable():
        found = _connections[key] = Connection(setting)
    return found
