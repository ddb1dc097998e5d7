"""The personal knowledge store (PKV): what this person decided, and how routes went, on this machine.

A small SQLite file, by default `pkv.sqlite` in the user's config directory
(platformdirs.user_config_dir("osqr-nb")); the environment variable OSQR_PKV or
a path argument puts it elsewhere. It keeps only what learning needs and what
may be shared as aggregates: no question, option or file text, no run or task
ids. Names (category, task kind, model) are normalised to the GPKV payload's
NAME_PATTERN so that what is stored is what could be shared.

A decision is identified only by its time, category, kind, confidence and who
decided, so recording the same run twice stores it once.

Global priors come in as counts per (category, task_kind, model, bin):
accepted and overridden, with how they spread over contributors. `priors_from`
pools them per category, per task kind and overall, and weighs each bin as
much as users agree (s pseudo-decisions, s = 1/rho - 1 with rho the share of
the variance between contributors): in a bin with n personal answers the prior
weighs s / (s + n). So a new user starts from what everyone taught osqr-nb, as
firmly as people are alike, and the person's own evidence takes over as it grows.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from .calibration import BINS, PERSON, S_GUESS, BinPrior, confidence_bin, decisions, spread, strength

DECISION_COLUMNS = ["task_kind", "category", "model", "confidence", "proposed_was_accepted", "decided_by", "at"]
OUTCOME_COLUMNS = ["task_kind", "model", "success", "cost_usd", "seconds", "at", "escalated_from", "escalate_to"]
ADDED_COLUMNS = {"outcomes": {"escalated_from": "TEXT", "escalate_to": "TEXT"}}   # since the first schema
PRIOR_COLUMNS = ["category", "task_kind", "model", "bin", "accepted", "overridden"]
SPREAD_COLUMNS = ("contributors", "sum_a2_over_n", "sum_n2")   # per group, over its contributors

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    task_kind TEXT NOT NULL, category TEXT NOT NULL, model TEXT NOT NULL, confidence REAL,
    proposed_was_accepted INTEGER NOT NULL, decided_by TEXT NOT NULL, at REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS decision_once
    ON decisions (at, category, task_kind, IFNULL(confidence, -1), decided_by);
CREATE TABLE IF NOT EXISTS outcomes (
    task_kind TEXT NOT NULL, model TEXT NOT NULL, success INTEGER NOT NULL,
    cost_usd REAL, seconds REAL, at REAL NOT NULL, escalated_from TEXT, escalate_to TEXT);
CREATE TABLE IF NOT EXISTS shared (name TEXT PRIMARY KEY, upto INTEGER NOT NULL);
"""


def name(value: Any, default: str = "unknown") -> str:
    """A label as the GPKV payload accepts it: lowercase [a-z0-9_.:-], at most 64 characters."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return default
    text = re.sub(r"[^a-z0-9_.:-]+", "_", str(value).strip().lower())[:64].strip("_")
    return text or default


def default_path() -> Path:
    """OSQR_PKV, else pkv.sqlite in the user's config directory."""
    if os.environ.get("OSQR_PKV"):
        return Path(os.environ["OSQR_PKV"]).expanduser()
    try:
        from platformdirs import user_config_dir
        folder = Path(user_config_dir("osqr-nb"))
    except ImportError:
        folder = Path.home() / ".config" / "osqr-nb"
    return folder / "pkv.sqlite"


def _seconds(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).timestamp() if not isinstance(value, (int, float)) else float(value)


class PKV:
    """The person's own decisions and route outcomes, in one SQLite file."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)
            _migrate(db)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    def __repr__(self) -> str:
        return f"PKV({str(self.path)!r})"

    # --- recording ---

    def record_history(self, history: pd.DataFrame, models_by_task: Mapping[str, str] | None = None) -> int:
        """Stores a history frame's decisions (osqr_nb.history() columns); returns how many were new.

        The model comes from a `model` column if the frame has one, else from
        models_by_task[task_id]; the task id itself is not stored.
        """
        rows = list(self._decision_rows(history, models_by_task or {}))
        with closing(self._connect()) as db, db:
            before = db.total_changes
            db.executemany(f"INSERT OR IGNORE INTO decisions ({', '.join(DECISION_COLUMNS)}) "   # by name: a
                           f"VALUES ({', '.join('?' * len(DECISION_COLUMNS))})", rows)  # newer store may have more
            return db.total_changes - before

    def _decision_rows(self, history: pd.DataFrame, models: Mapping[str, str]) -> Iterable[tuple]:
        if not isinstance(history, pd.DataFrame):
            raise ValueError(f"history must be a DataFrame such as osqr_nb.history(), not {type(history).__name__}")
        if history.empty:
            return
        missing = [c for c in ("task_kind", "category", "confidence", "proposed", "chosen", "decided_by")
                   if c not in history.columns]
        if missing:
            raise ValueError(f"the history lacks the column(s) {', '.join(missing)}")
        now = time.time()
        for row in history.to_dict("records"):
            model = row.get("model")
            if model is None or pd.isna(model):
                model = models.get(row.get("task_id"))
            confidence = None if pd.isna(row["confidence"]) else float(row["confidence"])
            accepted = row["proposed"] is not None and not pd.isna(row["proposed"]) \
                and row["proposed"] == row["chosen"]
            at = _seconds(row.get("resolved_at")) or _seconds(row.get("created_at")) or now
            yield (name(row["task_kind"]), name(row["category"], "general"), name(model), confidence,
                   int(bool(accepted)), name(row["decided_by"]), at)

    def record_outcome(self, task_kind: str, model: str, success: bool, cost_usd: float | None = None,
                       seconds: float | None = None, at: float | None = None,
                       escalated_from: str | None = None, escalate_to: str | None = None) -> None:
        """One attempt at a task: did its route succeed (accepted without change, checks passed)?
        Cascades: `escalated_from` the model whose failed attempt this one took over;
        `escalate_to` the model this attempt's failure would go on to, had the run seen it."""
        self.record_outcomes([dict(task_kind=task_kind, model=model, success=success, cost_usd=cost_usd,
                                   seconds=seconds, at=at, escalated_from=escalated_from,
                                   escalate_to=escalate_to)])

    def record_outcomes(self, outcomes: Iterable[Mapping[str, Any]]) -> None:
        """A run's finished tasks, in one connection and one transaction (a run of 1,000 tasks is one
        commit, not 1,000)."""
        now = time.time()
        rows = [(name(o["task_kind"]), name(o["model"]), int(bool(o["success"])),
                 None if o.get("cost_usd") is None else float(o["cost_usd"]),
                 None if o.get("seconds") is None else float(o["seconds"]),
                 now if o.get("at") is None else float(o["at"]),
                 _optional_name(o.get("escalated_from")), _optional_name(o.get("escalate_to")))
                for o in outcomes]
        marks = ", ".join("?" * len(OUTCOME_COLUMNS))
        with closing(self._connect()) as db, db:
            db.executemany(f"INSERT INTO outcomes ({', '.join(OUTCOME_COLUMNS)}) VALUES ({marks})", rows)

    # --- reading ---

    def _frame(self, table: str, columns: list[str]) -> pd.DataFrame:
        with closing(self._connect()) as db:
            frame = pd.read_sql_query(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid", db)
        frame["at"] = pd.to_datetime(frame["at"], unit="s", utc=True)
        return frame

    def history(self) -> pd.DataFrame:
        """Stored decisions: task_kind, category, model, confidence, proposed_was_accepted, decided_by, at.

        recommend_thresholds and calibrate take this frame as they take osqr_nb.history().
        """
        frame = self._frame("decisions", DECISION_COLUMNS)
        frame["proposed_was_accepted"] = frame["proposed_was_accepted"].astype(bool)
        frame["confidence"] = frame["confidence"].astype(float)
        return frame

    def outcomes(self) -> pd.DataFrame:
        """Stored route outcomes: task_kind, model, success, cost_usd, seconds, at, escalated_from
        (None for a first attempt) and escalate_to (None outside a cascade), for rank_routes and
        cascade_routes."""
        frame = self._frame("outcomes", OUTCOME_COLUMNS)
        frame["success"] = frame["success"].astype(bool)
        for column in ("escalated_from", "escalate_to"):
            values = frame[column].astype(object)
            frame[column] = values.where(values.notna(), None)
        return frame

    # --- sharing and priors ---

    def aggregates(self, since_last_share: bool = True) -> dict[str, Any]:
        """Counts in the GPKV payload's row shapes (decisions, routes), and where they stop (upto).

        Only answered decisions with a confidence count. With since_last_share, only
        what mark_shared(upto) has not yet covered: uploads carry increments.
        """
        with closing(self._connect()) as db:
            marks = dict(db.execute("SELECT name, upto FROM shared")) if since_last_share else {}
            d = pd.read_sql_query("SELECT rowid AS id, * FROM decisions WHERE rowid > ?", db,
                                  params=(marks.get("decisions", 0),))
            r = pd.read_sql_query("SELECT rowid AS id, * FROM outcomes WHERE rowid > ?", db,
                                  params=(marks.get("outcomes", 0),))
        upto = {"decisions": int(d["id"].max()) if len(d) else marks.get("decisions", 0),
                "outcomes": int(r["id"].max()) if len(r) else marks.get("outcomes", 0)}
        return {"decisions": _decision_counts(d), "routes": _route_counts(r), "upto": upto}

    def mark_shared(self, upto: Mapping[str, int]) -> None:
        """Remembers that everything up to these row numbers has been uploaded."""
        with closing(self._connect()) as db, db:
            db.executemany("INSERT INTO shared VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET upto = excluded.upto",
                           [(k, int(v)) for k, v in upto.items()])

    def priors_from(self, global_priors: Any, m: float | None = None) -> BinPrior:
        """Global priors as the prior calibrate and recommend_thresholds take (see priors_from)."""
        return priors_from(global_priors, m)


def _optional_name(value: Any) -> str | None:
    """A name, or None for a missing value (None, NaN, empty)."""
    return None if value is None or value == "" or (isinstance(value, float) and np.isnan(value)) else name(value)


def _migrate(db: sqlite3.Connection) -> None:
    """Columns added since a store was made: an older file stays readable and gains them."""
    for table, added in ADDED_COLUMNS.items():
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for column, kind in added.items():
            if column not in columns:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _decision_counts(frame: pd.DataFrame) -> list[dict[str, Any]]:
    answered = frame[frame["decided_by"].isin(PERSON) & frame["confidence"].notna()]
    if answered.empty:
        return []
    answered = answered.assign(bin=confidence_bin(answered["confidence"]),
                               accepted=answered["proposed_was_accepted"].astype(int),
                               overridden=1 - answered["proposed_was_accepted"].astype(int))
    table = answered.groupby(["category", "task_kind", "model", "bin"], as_index=False)[
        ["accepted", "overridden"]].sum()
    return [{k: (int(v) if k in ("bin", "accepted", "overridden") else v) for k, v in row.items()}
            for row in table.to_dict("records")]


def _route_counts(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Per (kind, model), first attempts only: an escalated attempt took on a task a cheaper model
    had failed, which says how the model rescues, not how it does on the kind."""
    if "escalated_from" in frame.columns:
        frame = frame[frame["escalated_from"].isna()]
    if frame.empty:
        return []
    table = frame.groupby(["task_kind", "model"], as_index=False).agg(
        successes=("success", "sum"), n=("success", "size"),
        cost_usd_sum=("cost_usd", "sum"), seconds_sum=("seconds", "sum"))
    table["failures"] = table["n"] - table["successes"]
    return [{"task_kind": r["task_kind"], "model": r["model"], "successes": int(r["successes"]),
             "failures": int(r["failures"]), "n": int(r["n"]), "cost_usd_sum": float(r["cost_usd_sum"]),
             "seconds_sum": float(r["seconds_sum"])} for r in table.to_dict("records")]


# --- global priors -------------------------------------------------------------------------------

def _prior_frame(global_priors: Any) -> pd.DataFrame:
    """Rows of (category, task_kind, model, bin, accepted, overridden, ...) from any of the accepted shapes."""
    if isinstance(global_priors, pd.DataFrame):
        frame = global_priors
    elif isinstance(global_priors, Mapping) and "decisions" in global_priors:
        frame = pd.DataFrame(list(global_priors["decisions"]))
    elif isinstance(global_priors, Mapping):
        frame = pd.DataFrame([(*key, counts["accepted"], counts["overridden"])
                              for key, counts in global_priors.items()], columns=PRIOR_COLUMNS)
    else:
        frame = pd.DataFrame([r if isinstance(r, Mapping) else vars(r) for r in global_priors])
    if frame.empty:
        return pd.DataFrame(columns=PRIOR_COLUMNS)
    missing = [c for c in PRIOR_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"global priors lack the field(s) {', '.join(missing)}; each row needs "
                         f"{', '.join(PRIOR_COLUMNS)}")
    extra = [c for c in ("contributor", *SPREAD_COLUMNS) if c in frame.columns]
    frame = frame[PRIOR_COLUMNS + extra].copy()
    bad = ~frame["bin"].between(0, BINS - 1) | (frame[["accepted", "overridden"]] < 0).any(axis=1)
    if bad.any():
        raise ValueError(f"global priors: bins must be 0-{BINS - 1} and counts >= 0; "
                         f"bad rows {list(frame.index[bad][:5])}")
    return frame


def _units(frame: pd.DataFrame) -> pd.DataFrame:
    """Each row with the moments of its units (contributor x group): from a `contributor` column
    (one unit per contributor and group), from the service's published moments, or unknown (NaN)."""
    frame = frame.assign(n=frame["accepted"] + frame["overridden"])
    if "contributor" in frame.columns:
        frame = frame.groupby(["contributor", "category", "task_kind", "model", "bin"], as_index=False)[
            ["accepted", "overridden", "n"]].sum()
        positive = frame["n"] > 0
        return frame.assign(contributors=positive.astype(float),
                            sum_a2_over_n=np.where(positive, frame["accepted"] ** 2 / frame["n"].clip(lower=1), 0.0),
                            sum_n2=frame["n"].astype(float) ** 2)
    if set(SPREAD_COLUMNS) <= set(frame.columns):
        return frame
    return frame.assign(**{c: np.nan for c in SPREAD_COLUMNS})


def _strength(stats: pd.DataFrame, m: float | None) -> float:
    """How many pseudo-decisions one user's rate in this group is worth, from how contributors differ."""
    if stats[list(SPREAD_COLUMNS)].isna().any().any():
        s = S_GUESS                       # nothing says how users differ: the hierarchy's own guess
    else:
        s = strength(*spread(stats[["n", "accepted", *SPREAD_COLUMNS]].to_numpy(dtype=float)))
    return s if m is None else min(s, m)


def _tables(frame: pd.DataFrame, key: str | None, m: float | None) -> tuple[dict[str, np.ndarray], dict]:
    """{group: pseudo-counts per bin}: the pooled rate, worth min(s, decisions) per bin; and {group: seen}."""
    grouped = frame.assign(_all="all").groupby([key or "_all", "bin"])[
        ["n", "accepted", *SPREAD_COLUMNS]].sum(min_count=1)
    tables, seen = {}, {}
    for group, sub in grouped.groupby(level=0):
        stats = pd.DataFrame(0.0, index=range(BINS), columns=sub.columns)
        stats.loc[sub.index.get_level_values(1).astype(int)] = sub.to_numpy(dtype=float)
        n, accepted = stats["n"].to_numpy(), stats["accepted"].to_numpy()
        rate = (accepted + 0.5) / (n + 1)
        weight = np.minimum(n, _strength(stats[stats["n"] > 0], m))
        tables[str(group)] = np.stack([rate * weight, (1 - rate) * weight], axis=1)
        seen[str(group)] = n
    return tables, seen


def priors_from(global_priors: Any, m: float | None = None) -> BinPrior:
    """Global counts per (category, task_kind, model, bin) as the prior recommend_thresholds takes.

    Accepts a DataFrame or rows with the columns category, task_kind, model, bin,
    accepted, overridden (the GPKV /v1/priors decision rows, or that whole answer), or
    {(category, task_kind, model, bin): {"accepted": a, "overridden": o}}. Per category,
    task kind and overall, each bin's prior is everyone's pooled rate, weighing as many
    pseudo-decisions as users agree: s = 1/rho - 1, with rho the share of the variance
    that lies between contributors (see calibration.spread), never more than the
    decisions behind it. The spread comes from a `contributor` column (one row per
    contributor and group: concatenated `evidence_counts` with an id each) or from the
    service's per-group moments (contributors, sum_a2_over_n, sum_n2); without either,
    each bin weighs at most S_GUESS. `m` caps the weight further.
    """
    if m is not None and not m > 0:
        raise ValueError(f"m (the most pseudo-decisions a prior bin may weigh) must be > 0, got {m!r}")
    frame = _prior_frame(global_priors)
    if frame.empty:
        return BinPrior()
    frame = _units(frame)
    categories, seen = _tables(frame, "category", m)
    kinds, _ = _tables(frame, "task_kind", m)
    overall, _ = _tables(frame, None, m)
    pairs = frame.groupby(["category", "task_kind"])["n"].sum()
    kind_of = {category: kind for category, kind in pairs.groupby(level=0).idxmax()}
    return BinPrior(categories=categories, kinds=kinds, overall=overall["all"], seen=seen, kind_of=kind_of)


def evidence_counts(history: pd.DataFrame) -> pd.DataFrame:
    """A history's answered decisions as prior rows (what a population contributes to GPKV)."""
    frame = decisions(history)
    answered = frame[frame["evidence"]]
    model = history.loc[answered.index, "model"] if "model" in history.columns else "unknown"
    rows = answered.assign(model=model, overridden=~answered["accepted"])
    return rows.groupby(["category", "task_kind", "model", "bin"], as_index=False)[
        ["accepted", "overridden"]].sum().astype({"accepted": int, "overridden": int})
