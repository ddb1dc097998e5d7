"""What a run cost, and what it saved: the table behind `run.cost_report()` and `%osqr cost`."""

from __future__ import annotations

import time

import pandas as pd

from .state import RunState

COLUMNS = ["task", "title", "model", "status", "input_tokens", "output_tokens", "cache_read_tokens",
           "cost_usd", "seconds", "human_hours_estimate", "human_cost_estimate_usd"]


def cost_report(state: RunState, human_rate: float) -> pd.DataFrame:
    rows = []
    for task in state.plan.tasks:
        t = state.tasks[task.id]
        seconds = ((t.finished_at or time.time()) - t.started_at) if t.started_at else None
        hours = getattr(task, "estimate_hours", None)
        rows.append({"task": task.id, "title": task.title, "model": t.model, "status": t.status,
                     "input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
                     "cache_read_tokens": t.cache_read_tokens,
                     "cost_usd": float("nan") if t.cost_unknown and not t.cost_usd else t.cost_usd,
                     "seconds": seconds, "human_hours_estimate": hours,
                     "human_cost_estimate_usd": hours * human_rate if hours is not None else None})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.attrs["summary"] = summary(state, frame, human_rate)
    return frame


def summary(state: RunState, frame: pd.DataFrame, human_rate: float) -> dict:
    wall = ((state.finished_at or time.time()) - state.started_at) if state.started_at else None
    sequential = float(frame["seconds"].fillna(0).sum())
    hours = frame["human_hours_estimate"].dropna()
    return {
        "cost_usd": state.total_cost,
        "cost_complete": not state.cost_unknown,        # False: some calls had no known price
        "budget_usd": state.budget,
        "wall_seconds": wall,
        "sequential_seconds": sequential,             # the sum of task times: a one-at-a-time run
        "speed_up": sequential / wall if wall else None,
        "human_hours_estimate": float(hours.sum()) if len(hours) else None,
        "human_cost_estimate_usd": float(hours.sum()) * human_rate if len(hours) else None,
        "human_rate_usd_per_hour": human_rate,
    }


def describe(frame: pd.DataFrame) -> str:
    """One paragraph for people: cost, time saved by running in parallel, the human estimate."""
    s = frame.attrs["summary"]
    cost = f"${s['cost_usd']:.4f}" + ("" if s["cost_complete"] else " (plus calls of unknown price)")
    budget = f" of a ${s['budget_usd']:.2f} budget" if s["budget_usd"] else ""
    parts = [f"Cost: {cost}{budget}."]
    if s["wall_seconds"]:
        parts.append(f"Wall time {s['wall_seconds']:.1f} s against {s['sequential_seconds']:.1f} s of task "
                     f"time one after another: {s['speed_up']:.2f}x from running in parallel.")
    if s["human_hours_estimate"] is not None:
        parts.append(f"Estimate (from the planner's hours, at ${s['human_rate_usd_per_hour']:.0f}/h): "
                     f"{s['human_hours_estimate']:.1f} h of a person's time, about "
                     f"${s['human_cost_estimate_usd']:.0f}.")
    return " ".join(parts)
