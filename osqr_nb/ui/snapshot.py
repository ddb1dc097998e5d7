"""One snapshot of a run, read by the cell's dashboard and by the JupyterLab sidebar.

The engine publishes `run.state`, `run.version` and the checkpoints; this turns
them into plain JSON once, so that the two views can never disagree on what a
status, a count or a progress figure means.

Progress is the share of the agent's turn budget used: turns taken over the
agent's `max_turns` (40 unless the Agent is built otherwise), shown at most 99%
while the task works and 100% only when it has finished. An agent that finishes
early jumps to 100%: the figure says how much of its allowance a task has spent,
not a guess at how much work is left.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Iterable

from ..agents.agent import Agent
from ..autonomy.checkpoints import COLLISION, CONFLICT
from ..engine.state import SYMBOLS

if TYPE_CHECKING:
    from ..engine.run import Run

REQUEST_CHARS = 200
TURN_BUDGET: int = inspect.signature(Agent.__init__).parameters["max_turns"].default
PAUSED = "paused"
SHOWN_SYMBOLS = {**SYMBOLS, PAUSED: "⏸"}
LEGEND = "● running · ○ waiting · ⏸ paused · ✓ complete · ⚠ needs input · ✗ failed"
COUNTED = (("running", "Active"), ("waiting", "Waiting"), ("complete", "Complete"), ("needs_input", "Needs input"))

# checkpoints that a `%osqr checkpoint <id>` cell already shows (the sidebar inserts one cell each)
shown_in_cells: set[str] = set()


def shown_status(status: str, paused: bool) -> str:
    """A running task of a paused run is shown paused (⏸), not active."""
    return PAUSED if paused and status == "running" else status


def progress(status: str, turns: int) -> float:
    """Share of the turn budget used; 1.0 only when finished."""
    if status == "complete":
        return 1.0
    return min(turns / TURN_BUDGET, 0.99)


def describe_task(task_id: str, state, spec, paused: bool) -> dict[str, Any]:
    shown = shown_status(state.status, paused)
    share = progress(state.status, state.turns)
    cost = f"${state.cost_usd:.3f}" + ("+?" if state.cost_unknown else "")
    return {"id": task_id, "title": spec.title if spec else task_id,
            "kind": str(spec.kind.value) if spec else "", "status": state.status, "shown": shown,
            "symbol": SHOWN_SYMBOLS[shown], "model": state.model, "cost": round(state.cost_usd, 6),
            "cost_text": cost, "turns": state.turns, "progress": round(share, 4),
            "progress_text": f"{int(share * 100)}%",
            "progress_note": (f"{state.turns} of {TURN_BUDGET} turns used (the agent's turn budget); "
                              "100% only when the task has finished"),
            "depends_on": list(spec.depends_on) if spec else [],
            "worker": state.worker, "escalated_from": state.escalated_from,
            "model_text": model_text(state.model, state.worker, state.escalated_from)}


def model_text(model: str | None, worker: str | None, escalated_from: str | None = None) -> str:
    """The model (after the one whose failed attempt it took over), and the Dask worker holding
    the task's files when it is not this machine."""
    shown = f"{escalated_from} → {model or ''}" if escalated_from else model or ""
    if not worker or worker == "local":
        return shown
    return f"{shown} · {worker.split('://')[-1]}"


def count_text(counts: dict[str, int]) -> str:
    """Active / Waiting / Complete / Needs input, then what else there is (Paused, Failed, Skipped)."""
    parts = [f"{label} {counts.get(key, 0)}" for key, label in COUNTED]
    parts += [f"{label} {counts[key]}" for key, label in
              ((PAUSED, "Paused"), ("failed", "Failed"), ("skipped", "Skipped")) if counts.get(key)]
    return " · ".join(parts)


def describe_run(run: "Run") -> dict[str, Any]:
    """What both views show of one run: plain JSON, no widget state."""
    state = run.state
    paused = bool(state.paused) and not run.done
    specs = {t.id: t for t in run.plan.tasks} if run.plan is not None else {}
    tasks = [describe_task(task_id, task, specs.get(task_id), paused) for task_id, task in state.tasks.items()]
    counts = {k: v for k, v in state.counts().items() if k != "cancelled"}
    if paused:
        counts[PAUSED], counts["running"] = counts["running"], 0
    request = (state.request or "").strip().splitlines()
    cost = f"${state.total_cost:.4f}" + ("+?" if state.cost_unknown else "")
    return {"id": run.id, "status": run.status, "done": run.done, "paused": paused,
            "request": request[0][:REQUEST_CHARS] if request else "",
            "model": run.model_name, "cost": round(state.total_cost, 6), "cost_text": cost,
            "counts": counts, "count_text": count_text(counts), "tasks": tasks,
            "checkpoints": [describe_checkpoint(c) for c in run.checkpoints]}


def checkpoint_title(checkpoint) -> str:
    """The card's heading, the same in the cell and in the sidebar."""
    return {COLLISION: "PREDICTED COLLISION", CONFLICT: "MERGE CONFLICT"}.get(
        checkpoint.kind, f"AGENT CHECKPOINT: {checkpoint.task_title}")


def describe_checkpoint(checkpoint) -> dict[str, Any]:
    return {"id": checkpoint.id, "task": checkpoint.task_id, "title": checkpoint_title(checkpoint),
            "question": checkpoint.question, "options": list(checkpoint.options),
            "recommended": checkpoint.proposed, "parked": checkpoint.parked,
            "cell": checkpoint.id in shown_in_cells}


def snapshot(runs: Iterable["Run"], checkpoint_cells: bool = True) -> dict[str, Any]:
    """Every run, newest first, as the sidebar receives it."""
    return {"type": "snapshot", "runs": [describe_run(r) for r in reversed(list(runs))],
            "checkpoint_cells": checkpoint_cells}
