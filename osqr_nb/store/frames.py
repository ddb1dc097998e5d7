"""The event log as pandas DataFrames, for analysis and for `osqr_nb.history()`."""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from .events import Event

EVENT_COLUMNS = ["seq", "run_id", "type", "task_id", "time", "data"]
HISTORY_COLUMNS = ["run_id", "task_id", "task_kind", "category", "confidence", "proposed",
                   "chosen", "decided_by", "created_at", "resolved_at"]


def _time(ts: float | None) -> pd.Timestamp | None:
    return None if ts is None else pd.Timestamp(ts, unit="s", tz="UTC")


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
                "cache_write_tokens", "cost_usd", "latency"]


def costs_frame(events: Iterable[Event]) -> pd.DataFrame:
    """One row per model call; cost_usd is NaN where the price is unknown (never 0 for unknown)."""
    rows = [(e.run_id, e.task_id, _time(e.ts), e.data.get("model"), e.data.get("input_tokens", 0),
             e.data.get("output_tokens", 0), e.data.get("cache_read_tokens", 0),
             e.data.get("cache_write_tokens", 0), e.data.get("cost_usd"), e.data.get("latency"))
            for e in events if e.type == "model_reply"]
    frame = pd.DataFrame(rows, columns=COST_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["cost_usd"] = pd.to_numeric(frame["cost_usd"], errors="coerce").astype(float)
    return frame
