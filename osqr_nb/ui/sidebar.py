"""The kernel's side of the JupyterLab sidebar: one comm, target "osqr".

The sidebar (labextension/) shows the runs of the notebook's kernel next to the
notebook and answers their checkpoints, so a person who has scrolled away from
the run's cell still sees who needs them. The kernel sends a snapshot of its
runs whenever one changed (at most 5 times a second, nothing while they hold
still); the sidebar sends back what the person clicked. Either side may open
the comm: the kernel when `%load_ext osqr_nb` runs, the sidebar when it
(re)connects to a kernel that has the extension loaded.

Messages, kernel to sidebar: {"type": "snapshot", "runs": [...],
"checkpoint_cells": bool} (see ui/snapshot.py: the same snapshot the cell's
dashboard draws), {"type": "changes", "order": [run ids], "runs": [...],
"checkpoint_cells": bool} (what changed since the last message: a new run whole,
a known one as its fields with only the tasks that changed, plus "task_order"
when tasks came or went; a run of 1,000 tasks where one task moved costs one
task's worth, not the run's), {"type": "error", "message": ...}. A sidebar gets
the first snapshot whole and changes once it said hello with protocol 2.
Sidebar to kernel: {"action": "hello", "extension": version, "protocol": 2}
(the extension, and so its stylesheet, is loaded: views stop writing inline
colour fallbacks),
{"action": "refresh" | "resolve" | "pause" | "resume", "run": id,
"checkpoint": id, "answer": label}.

Each open window, and each connection of a window to this kernel, has its own
comm; the kernel sends every snapshot on each. A window that went away without
closing its comm costs one message per snapshot until the kernel restarts.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    from ..engine.run import Run

from .snapshot import describe_run, shown_in_cells, snapshot  # noqa: F401  (describe_run: the sidebar's view of a run)

TARGET = "osqr"
PROTOCOL = 2
REFRESH_HZ = 5
ACTIONS = ("hello", "refresh", "resolve", "pause", "resume")


class SidebarChannel:
    """The comms to the sidebars of this kernel, fed from the runs it holds.

    `runs` is called for the runs to show (the kernel's live runs, oldest
    first). One channel serves any number of comms: each open window of Lab
    that looks at this kernel has its own.
    """

    def __init__(self, runs: Callable[[], Iterable["Run"]]) -> None:
        self.runs = runs
        self.comms: list[Any] = []
        self._seen: tuple | None = None
        self._sent: dict[str, dict[str, Any]] = {}    # run id -> as every comm last received it
        self._patched: set[int] = set()               # comms (by id) that take "changes" messages
        self._refresher: asyncio.Task | None = None
        self.extension = ""           # the osqr labextension's version, once one said hello

    # ----- opening ---------------------------------------------------------------------------

    def open(self) -> None:
        """Offer a comm to the front end (a front end without the sidebar closes it)."""
        from comm import create_comm

        self.attach(create_comm(target_name=TARGET, data={"protocol": PROTOCOL}))

    def register_target(self, kernel) -> None:
        """Let a sidebar that (re)connects later open its own comm (e.g. after a page reload)."""
        manager = getattr(kernel, "comm_manager", None)
        if manager is not None:
            manager.register_target(TARGET, lambda comm, _msg: self.attach(comm))

    def attach(self, comm) -> None:
        self.publish(force=True)              # the others first: then all comms hold the same runs
        comm.on_msg(lambda msg: self.receive(comm, msg["content"]["data"]))
        comm.on_close(lambda _msg: self._detach(comm))
        comm.send(self._snapshot(list(self.runs())))
        self.comms.append(comm)
        self._start_refresher()

    def _detach(self, comm) -> None:
        if comm in self.comms:
            self.comms.remove(comm)
        self._patched.discard(id(comm))

    # ----- kernel to sidebar -----------------------------------------------------------------

    def publish(self, force: bool = False) -> bool:
        """Send a snapshot to every comm if a run changed since the last one; True if sent."""
        runs = list(self.runs())
        seen = (tuple((r.id, r.version, r.done) for r in runs), len(shown_in_cells), _checkpoint_cells())
        if seen == self._seen and not force:
            return False
        self._seen = seen
        whole = snapshot(runs, checkpoint_cells=_checkpoint_cells())
        changes = run_changes(self._sent, whole)
        self._sent = {run["id"]: run for run in whole["runs"]}
        for comm in list(self.comms):
            comm.send(changes if id(comm) in self._patched else whole)
        return bool(self.comms)

    def _snapshot(self, runs: list["Run"]) -> dict[str, Any]:
        whole = snapshot(runs, checkpoint_cells=_checkpoint_cells())
        self._sent = {run["id"]: run for run in whole["runs"]}
        return whole

    def _start_refresher(self) -> None:
        if self._refresher is not None and not self._refresher.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return          # no loop (a plain script): snapshots go out on each message only
        self._refresher = loop.create_task(self._refresh_loop(), name="osqr-sidebar")
        self._refresher.add_done_callback(_report_crash)

    async def _refresh_loop(self) -> None:
        while self.comms:
            self.publish()
            await asyncio.sleep(1 / REFRESH_HZ)

    # ----- sidebar to kernel -----------------------------------------------------------------

    def receive(self, comm, data: dict[str, Any]) -> None:
        """Carry out a click; a click that cannot be taken comes back as an error message."""
        try:
            self._act(comm, data if isinstance(data, dict) else {})
        except (KeyError, ValueError, TypeError) as exc:
            comm.send({"type": "error", "message": exc.args[0] if exc.args else str(exc)})
        self.publish(force=True)

    def _act(self, comm, data: dict[str, Any]) -> None:
        action = data.get("action")
        if action == "hello":
            self.extension = str(data.get("extension") or "?")
            if isinstance(data.get("protocol"), int) and data["protocol"] >= 2:
                self._patched.add(id(comm))
            return
        if action == "refresh":
            return
        if action not in ACTIONS:
            raise ValueError(f"the sidebar sent an unknown action {action!r} (known: {', '.join(ACTIONS)})")
        run = self._run(data.get("run"))
        if action == "pause":
            run.pause()
        elif action == "resume":
            run.resume()
        else:
            wanted = data.get("checkpoint")
            checkpoint = run.checkpoint(wanted) if isinstance(wanted, str) else None
            if checkpoint is None:
                raise KeyError(f"run {run.id} has no checkpoint {data.get('checkpoint')!r}")
            checkpoint.resolve(data.get("answer"), by="human")

    def _run(self, run_id: object) -> "Run":
        for run in self.runs():
            if run.id == run_id:
                return run
        raise KeyError(f"no run {run_id!r} in this kernel")


def run_changes(sent: dict[str, dict[str, Any]], whole: dict[str, Any]) -> dict[str, Any]:
    """A "changes" message: what turns the runs as `sent` into the runs of `whole`."""
    patches = []
    for run in whole["runs"]:
        before = sent.get(run["id"])
        if before is None:
            patches.append(run)
        elif run != before:
            patches.append(_run_patch(before, run))
    return {"type": "changes", "order": [run["id"] for run in whole["runs"]], "runs": patches,
            "checkpoint_cells": whole["checkpoint_cells"]}


def _run_patch(before: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """A known run: every field but its tasks, which come only where they changed."""
    old_tasks = {task["id"]: task for task in before["tasks"]}
    patch = {key: value for key, value in run.items() if key != "tasks"}
    patch["tasks"] = [task for task in run["tasks"] if old_tasks.get(task["id"]) != task]
    order = [task["id"] for task in run["tasks"]]
    if order != list(old_tasks):
        patch["task_order"] = order
    return patch


def _checkpoint_cells() -> bool:
    """`%config OSQR.checkpoint_cells`: whether the sidebar puts each checkpoint in a cell of its own."""
    from ..config import settings
    return bool(getattr(settings(), "checkpoint_cells", True))


def _report_crash(task: asyncio.Task) -> None:
    """A refresher that died says so on the kernel's stderr instead of leaving the sidebar stale."""
    if not task.cancelled() and task.exception() is not None:
        print("osqr sidebar: snapshots stopped:", file=sys.stderr)
        traceback.print_exception(task.exception(), file=sys.stderr)
