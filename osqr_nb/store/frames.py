"""The event log as pandas DataFrames, for analysis and for `osqr_nb.history()`."""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from .events import Event

EVENT_COLUMNS = ["seq", "run_id", "type", "task_id", "time", "data"]
HISTORY_COLUMNS = ["run_id", "task_id", "task_kind", "category", "confidence", "proposed",
                   "chosen", "decided_by", "created_at", "resolved_at"]


def _time(ts: float | None) -> pd.Timestamp | None:
    """A UTC timestamp to the millisecond: enough to order events, without nanosecond noise."""
    return None if ts is None else pd.Timestamp(int(round(ts * 1000)), unit="ms", tz="UTC")


def events_frame(events: Iterable[Event]) -> pd.DataFrame:
    rows = [(e.seq, e.run_id, e.type, e.task_id, _time(e.ts), e.data) for e in events]
    frame = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def history_frame(events: Iterable[Event]) -> pd.DataFrame:
    """One row per decision, however it was taken (auto, log, human or code)."""
    rows = []
    for e in events:
        if e.type != "decision":
            continue
        d = e.data
        rows.append((e.run_id, e.task_id, d.get("task_kind"), d.get("category"),
                     d.get("confidence"), d.get("proposed"), d.get("chosen"),
                     d.get("decided_by"), _time(d.get("created_at")), _time(d.get("resolved_at"))))
    frame = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    for column in ("created_at", "resolved_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["confidence"] = frame["confidence"].astype(float)
    return frame


COST_COLUMNS = ["run_id", "task_id", "time", "model", "input_tokens", "output_tokens", "cache_read_tokens",
                "cache_write_tokens", "cost_usd", "latency", "purpose"]


def costs_frame(events: Iterable[Event]) -> pd.DataFrame:
    """One row per model call of every kind: an agent's turn (purpose 'agent'), the planner's
    ('plan') and the merge agent's ('merge'), retries included. cost_usd is NaN where the price
    is unknown (never 0 for unknown)."""
    rows = [(e.run_id, e.task_id, _time(e.ts), e.data.get("model"), e.data.get("input_tokens", 0),
             e.data.get("output_tokens", 0), e.data.get("cache_read_tokens", 0),
             e.data.get("cache_write_tokens", 0), e.data.get("cost_usd"), e.data.get("latency"),
             e.data.get("purpose", "agent"))
            for e in events if e.type in ("model_reply", "model_call")]
    frame = pd.DataFrame(rows, columns=COST_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["cost_usd"] = pd.to_numeric(frame["cost_usd"], errors="coerce").astype(float)
    return frame


def for_people(frame: pd.DataFrame, decimals: int = 4) -> pd.DataFrame:
    """A copy to show in a notebook: times to the second, dollars to `decimals` places.

    The frames themselves keep milliseconds and full prices for analysis."""
    shown = frame.copy()
    shown.attrs = dict(frame.attrs)
    for column in shown.columns:
        if pd.api.types.is_datetime64_any_dtype(shown[column]):
            shown[column] = shown[column].dt.floor("s")
        elif "usd" in column and pd.api.types.is_numeric_dtype(shown[column]):
            shown[column] = shown[column].round(decimals)
    return shown
