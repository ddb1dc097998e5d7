"""What a run cost, and what it saved: the table behind `run.cost_report()` and `%osqr cost`.

Time a task spent waiting for a person (its checkpoints open) is not agent
time: the speed-up compares agent time run in parallel with the same agent
time run one task after another, so a run that waited ten minutes for a click
does not look slower than a sequential one. Every model call is counted, the
planner's and the merge agent's too (`model_call` events with a `purpose`).
The human-equivalent uses the plan's hours where it has them and says when it
falls back to an estimate by task kind.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import networkx as nx
import pandas as pd

from ..models.base import Reply
from ..models.catalog import CATALOG, ModelInfo, describe_client
from ..models.pricing import price
from ..store.events import Event
from .state import RunState, TaskState

COLUMNS = ["task", "title", "model", "route", "status", "input_tokens", "output_tokens", "cache_read_tokens",
           "cost_usd", "seconds", "human_hours_estimate", "human_cost_estimate_usd",
           "kind", "waiting_seconds", "agent_seconds", "human_hours_source"]
# A person's hours per task when the plan gives none: a rough default, always labelled as one.
DEFAULT_HOURS = {"architecture": 2.0, "code": 3.0, "refactor": 2.0, "tests": 1.5, "docs": 1.0,
                 "quick_fix": 0.5, "review": 1.0}
PLAN_HOURS, DEFAULT_ESTIMATE = "plan", "default estimate by kind"


# --- model calls outside agents -------------------------------------------------------------------

def info_of(client: Any) -> ModelInfo:
    """The catalog entry of a client (its route name, as agents' events use), else what it says."""
    model_id = getattr(client, "model_id", None)
    known = next((info for info in CATALOG.values() if model_id and info.model_id == model_id), None)
    return known or describe_client(client)


def model_call_fields(purpose: str, client: Any, reply: Reply, latency: float | None) -> dict[str, Any]:
    """The fields of a `model_call` event: a call made for the run itself ('plan', 'merge'),
    with the same usage and price fields as an agent's `model_reply`."""
    info, usage = info_of(client), reply.usage
    return dict(purpose=purpose, model=info.name, model_id=info.model_id, latency=latency,
                input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                cache_read_tokens=getattr(usage, "cache_read_tokens", 0),
                cache_write_tokens=getattr(usage, "cache_write_tokens", 0),
                cost_usd=price(info.model_id, info.provider, usage), stop_reason=reply.stop_reason,
                tools=[c.name for c in reply.tool_calls])


# --- time -----------------------------------------------------------------------------------------

Interval = tuple[float, float]


def _union(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[list[float]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def _length(intervals: Iterable[Interval]) -> float:
    return sum(b - a for a, b in _union(intervals))


def _minus(whole: Interval, holes: list[Interval]) -> list[Interval]:
    """`whole` without the parts inside `holes` (already a union)."""
    left, out = whole[0], []
    for a, b in holes:
        if b <= left or a >= whole[1]:
            continue
        if a > left:
            out.append((left, a))
        left = max(left, b)
    if left < whole[1]:
        out.append((left, whole[1]))
    return out


def waits(state: RunState, now: float) -> dict[str | None, list[Interval]]:
    """Per task, when its checkpoints were open (answered ones, and those still open)."""
    found: dict[str | None, list[Interval]] = {}
    for d in state.decisions:
        if d.get("checkpoint_id") and d.get("created_at") and d.get("resolved_at"):
            found.setdefault(d["task_id"], []).append((d["created_at"], d["resolved_at"]))
    for c in state.open_checkpoints.values():
        if c.get("created_at"):
            found.setdefault(c["task_id"], []).append((c["created_at"], state.finished_at or now))
    return {task: _union(spans) for task, spans in found.items()}


# --- the report -----------------------------------------------------------------------------------

def _hours(task: Any) -> tuple[float | None, str | None]:
    if task.estimate_hours is not None:
        return float(task.estimate_hours), PLAN_HOURS
    return DEFAULT_HOURS.get(task.kind.value), DEFAULT_ESTIMATE


def route_text(task: TaskState) -> str | None:
    """The models a task went to: one, or the cascade's two when its first attempt failed."""
    return f"{task.escalated_from} → {task.route}" if task.escalated_from else task.route


def cost_report(state: RunState, human_rate: float, events: Iterable[Event] | None = None) -> pd.DataFrame:
    """One row per task; `attrs["summary"]` the run's totals, `attrs["by_model"]` and
    `attrs["by_kind"]` the cost per model and per task kind (with the planner's and the merge
    agent's calls when `events` are given)."""
    now = time.time()
    waited = waits(state, now)
    rows, busy = [], []
    for task in state.plan.tasks:
        t = state.tasks[task.id]
        span = (t.started_at, t.finished_at or now) if t.started_at else None
        mine = _minus(span, waited.get(task.id, [])) if span else []
        busy += mine
        hours, source = _hours(task)
        rows.append({"task": task.id, "title": task.title, "model": t.model, "route": route_text(t),
                     "status": t.status,
                     "input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
                     "cache_read_tokens": t.cache_read_tokens,
                     "cost_usd": float("nan") if t.cost_unknown and not t.cost_usd else t.cost_usd,
                     "seconds": span[1] - span[0] if span else None,
                     "human_hours_estimate": task.estimate_hours,
                     "human_cost_estimate_usd": hours * human_rate if source == PLAN_HOURS else None,
                     "kind": task.kind.value, "waiting_seconds": (span[1] - span[0]) - _length(mine) if span else None,
                     "agent_seconds": _length(mine) if span else None, "human_hours_source": source})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    calls = calls_frame(state, events)
    frame.attrs["by_model"] = _by(calls, "model")
    frame.attrs["by_kind"] = _by(calls, "kind")
    frame.attrs["summary"] = summary(state, frame, human_rate, busy, waited, calls, now)
    return frame


def calls_frame(state: RunState, events: Iterable[Event] | None) -> pd.DataFrame:
    """Every priced call: from the events when given (agents', planner's, merge agent's), else the
    tasks' totals. `kind` is the task's kind, or the purpose ('plan', 'merge') for the run's own."""
    kinds = {t.id: t.kind.value for t in state.plan.tasks}
    if events is None:
        rows = [(s.model, kinds.get(tid), s.cost_usd, s.cost_unknown, s.input_tokens, s.output_tokens)
                for tid, s in state.tasks.items()]
    else:
        rows = [(e.data.get("model"), e.data["purpose"] if e.type == "model_call" else kinds.get(e.task_id),
                 e.data.get("cost_usd") or 0.0, e.data.get("cost_usd") is None, e.data.get("input_tokens", 0),
                 e.data.get("output_tokens", 0))
                for e in events if e.type in ("model_reply", "model_call")]
    return pd.DataFrame(rows, columns=["model", "kind", "cost_usd", "cost_unknown", "input_tokens",
                                       "output_tokens"])


def _by(calls: pd.DataFrame, key: str) -> pd.DataFrame:
    """Cost and tokens per model or kind; `cost_complete` False where some call had no known price."""
    if calls.empty:
        return pd.DataFrame(columns=[key, "calls", "input_tokens", "output_tokens", "cost_usd", "cost_complete"])
    grouped = calls.fillna({key: "unknown"}).groupby(key, sort=True)
    table = grouped.agg(calls=("cost_usd", "size"), input_tokens=("input_tokens", "sum"),
                        output_tokens=("output_tokens", "sum"), cost_usd=("cost_usd", "sum"),
                        unknown=("cost_unknown", "any")).reset_index()
    table["cost_complete"] = ~table.pop("unknown")
    return table


def _developers(state: RunState) -> int:
    """How many people the parallel run stands for: the most tasks the plan lets run at once."""
    generations = list(nx.topological_generations(state.plan.graph)) if len(state.plan) else []
    return max((len(g) for g in generations), default=0)


def summary(state: RunState, frame: pd.DataFrame, human_rate: float, busy: list[Interval] | None = None,
            waited: dict[str | None, list[Interval]] | None = None, calls: pd.DataFrame | None = None,
            now: float | None = None) -> dict[str, Any]:
    now = now or time.time()
    wall = ((state.finished_at or now) - state.started_at) if state.started_at else None
    person = _length(w for spans in (waited or {}).values() for w in spans)
    # time nothing worked because the run waited for a person (some agent busy: not lost)
    blocked = 0.0
    if wall:
        run = (state.started_at, state.finished_at or now)
        open_ = _union(w for spans in (waited or {}).values() for w in spans)
        blocked = sum(_length(_minus(span, _union(busy or []))) for span in
                      [(max(a, run[0]), min(b, run[1])) for a, b in open_] if span[1] > span[0])
    agent_wall = wall - blocked if wall else None
    sequential = float(frame["agent_seconds"].fillna(0).sum())
    hours = [_hours(t)[0] for t in state.plan.tasks]
    sources = {_hours(t)[1] for t in state.plan.tasks}
    known_hours = [h for h in hours if h is not None]
    total_hours = float(sum(known_hours)) if known_hours else None
    cost = float(calls["cost_usd"].sum()) if calls is not None and not calls.empty else state.total_cost
    unknown = bool(calls["cost_unknown"].any()) if calls is not None and not calls.empty else state.cost_unknown
    return {
        "cost_usd": cost,                                   # every model call: agents, planner, merge agent
        "agent_cost_usd": state.total_cost - state.own_cost_usd,
        "cost_complete": not unknown,                       # False: some calls had no known price
        "budget_usd": state.budget,
        "wall_seconds": wall,
        "waiting_for_person_seconds": person,               # checkpoints open, summed over time
        "blocked_on_person_seconds": blocked,               # of which no agent was working
        "agent_wall_seconds": agent_wall,                   # the wall time without the blocked part
        "sequential_seconds": sequential,                   # agent time one task after another
        "speed_up": sequential / agent_wall if agent_wall else None,
        "developers": _developers(state),
        "human_hours_estimate": total_hours,
        "human_hours_source": PLAN_HOURS if sources == {PLAN_HOURS} else
        (DEFAULT_ESTIMATE if sources == {DEFAULT_ESTIMATE} else f"{PLAN_HOURS}, else {DEFAULT_ESTIMATE}"),
        "human_cost_estimate_usd": total_hours * human_rate if total_hours is not None else None,
        "human_rate_usd_per_hour": human_rate,
    }


def describe(frame: pd.DataFrame) -> str:
    """One paragraph for people: cost, time saved by running in parallel, the human estimate."""
    s = frame.attrs["summary"]
    cost = f"${s['cost_usd']:.4f}" + ("" if s["cost_complete"] else " (plus calls of unknown price)")
    budget = f" of a ${s['budget_usd']:.2f} budget" if s["budget_usd"] else ""
    parts = [f"Cost: {cost}{budget}."]
    by_model = frame.attrs.get("by_model")
    if by_model is not None and len(by_model) > 1:
        parts.append("By model: " + ", ".join(f"{r.model} ${r.cost_usd:.4f}" for r in by_model.itertuples())
                     + ".")
    if s["agent_wall_seconds"]:
        waited = (f" (plus {s['blocked_on_person_seconds']:.1f} s when every agent waited for you)"
                  if s["blocked_on_person_seconds"] >= 0.05 else "")
        parts.append(f"Agents worked {s['agent_wall_seconds']:.1f} s{waited} against {s['sequential_seconds']:.1f} s "
                     f"one task after another: {s['speed_up']:.2f}x from running in parallel.")
    if s["human_hours_estimate"] is not None:
        source = ("the planner's hours" if s["human_hours_source"] == PLAN_HOURS else
                  f"an estimate: {DEFAULT_ESTIMATE}, not the planner's" if s["human_hours_source"] == DEFAULT_ESTIMATE
                  else "the planner's hours where given, else an estimate by kind")
        parts.append(f"Human equivalent ({source}, at ${s['human_rate_usd_per_hour']:.0f}/h): "
                     f"{s['human_hours_estimate']:.1f} h of work, about ${s['human_cost_estimate_usd']:.0f}, "
                     f"by up to {s['developers']} developers at once.")
    return " ".join(parts)
