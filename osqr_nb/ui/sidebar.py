"""The kernel's side of the JupyterLab sidebar: one comm, target "osqr".

The sidebar (labextension/) shows the runs of the notebook's kernel next to the
notebook and answers their checkpoints, so a person who has scrolled away from
the run's cell still sees who needs them. The kernel sends a snapshot of its
runs whenever one changed (at most 5 times a second, nothing while they hold
still); the sidebar sends back what the person clicked. Either side may open
the comm: the kernel when `%load_ext osqr_nb` runs, the sidebar when it
(re)connects to a kernel that has the extension loaded.

Messages, kernel to sidebar: {"type": "snapshot", "runs": [...]} (see
`snapshot`), {"type": "error", "message": ...}. Sidebar to kernel:
{"action": "refresh" | "resolve" | "pause" | "resume", "run": id,
"checkpoint": id, "answer": label}.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    from ..engine.run import Run

TARGET = "osqr"
PROTOCOL = 1
REFRESH_HZ = 5
REQUEST_CHARS = 200


def describe_run(run: "Run") -> dict[str, Any]:
    """What the sidebar shows of one run: plain JSON, no widget state."""
    state = run.state
    plan = run.plan
    titles = {t.id: t for t in plan.tasks} if plan is not None else {}
    tasks = []
    for task_id, task in state.tasks.items():
        spec = titles.get(task_id)
        tasks.append({"id": task_id, "title": spec.title if spec else task_id,
                      "kind": str(spec.kind.value) if spec else "", "status": task.status,
                      "model": task.model, "cost": round(task.cost_usd, 6), "turns": task.turns,
                      "depends_on": list(spec.depends_on) if spec else []})
    request = (state.request or "").strip().splitlines()
    cost = f"${state.total_cost:.4f}" + ("+?" if state.cost_unknown else "")
    return {"id": run.id, "status": run.status, "done": run.done,
            "request": request[0][:REQUEST_CHARS] if request else "",
            "model": run.model_name, "cost": round(state.total_cost, 6), "cost_text": cost,
            "counts": {k: v for k, v in state.counts().items() if k != "cancelled"},
            "tasks": tasks,
            "checkpoints": [{"id": c.id, "task": c.task_id, "title": f"AGENT CHECKPOINT: {c.task_title}",
                             "question": c.question, "options": c.options, "recommended": c.proposed,
                             "parked": c.parked}
                            for c in run.checkpoints]}


def snapshot(runs: Iterable["Run"]) -> dict[str, Any]:
    """Every run, newest first."""
    return {"type": "snapshot", "runs": [describe_run(r) for r in reversed(list(runs))]}


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
        self._refresher: asyncio.Task | None = None

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
        self.comms.append(comm)
        comm.on_msg(lambda msg: self.receive(comm, msg["content"]["data"]))
        comm.on_close(lambda _msg: self._detach(comm))
        comm.send(snapshot(self.runs()))
        self._start_refresher()

    def _detach(self, comm) -> None:
        if comm in self.comms:
            self.comms.remove(comm)

    # ----- kernel to sidebar -----------------------------------------------------------------

    def publish(self, force: bool = False) -> bool:
        """Send a snapshot to every comm if a run changed since the last one; True if sent."""
        runs = list(self.runs())
        seen = tuple((r.id, r.version, r.done) for r in runs)
        if not self.comms or (seen == self._seen and not force):
            return False
        self._seen = seen
        message = snapshot(runs)
        for comm in list(self.comms):
            comm.send(message)
        return True

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
            self._act(data if isinstance(data, dict) else {})
        except (KeyError, ValueError, TypeError) as exc:
            comm.send({"type": "error", "message": exc.args[0] if exc.args else str(exc)})
        self.publish(force=True)

    def _act(self, data: dict[str, Any]) -> None:
        action = data.get("action")
        if action == "refresh":
            return
        if action not in ("resolve", "pause", "resume"):
            raise ValueError(f"the sidebar sent an unknown action {action!r} "
                             "(known: refresh, resolve, pause, resume)")
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


def _report_crash(task: asyncio.Task) -> None:
    """A refresher that died says so on the kernel's stderr instead of leaving the sidebar stale."""
    if not task.cancelled() and task.exception() is not None:
        print("osqr sidebar: snapshots stopped:", file=sys.stderr)
        traceback.print_exception(task.exception(), file=sys.stderr)
