"""Where learning meets a run: thresholds and routes at its start, evidence at its end.

Everything here is best effort: a personal store that is empty, thin or
unreadable leaves the static thresholds and the table's routes in place.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from .pkv import PKV
from .routes import rank_routes
from .thresholds import apply_thresholds, explanations, recommend_thresholds

log = logging.getLogger(__name__)
PRIORS_FILE = "gpkv_priors.json"          # the last /v1/priors answer, cached next to the PKV


def cached_priors(pkv: PKV) -> Any:
    path = Path(pkv.path).with_name(PRIORS_FILE)
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError):
        return None


def prior_shape(priors: Any) -> pd.DataFrame:
    """Rows that give the global priors' confidence distribution per category (decided_by "auto",
    so they count as no one's evidence: the prior's own counts are the evidence)."""
    rows = []
    for group in priors.get("decisions", []):
        count = int(group.get("accepted", 0)) + int(group.get("overridden", 0))
        confidence = (int(group["bin"]) + 0.5) / 10
        rows += [{"category": group["category"], "task_kind": group["task_kind"], "confidence": confidence,
                  "proposed": "", "chosen": "", "decided_by": "auto"}] * min(count, 50)
    return pd.DataFrame(rows, columns=["category", "task_kind", "confidence", "proposed", "chosen", "decided_by"])


def learn_into(policy: Any, target_wrong_rate: float = 0.05, pkv: PKV | None = None) -> bool:
    """Lay learned per-category thresholds (and why) onto the policy; False when there is no evidence."""
    try:
        pkv = pkv or PKV()
        history = pkv.history()
        priors = cached_priors(pkv)
        prior = pkv.priors_from(priors) if priors else None
        if history.empty and prior is None:
            return False
        if history.empty:       # a new user: the shape of everyone's decisions, no evidence of their own
            history = prior_shape(priors)
        frame = recommend_thresholds(history, target_wrong_rate, prior=prior)
        levels = ("category", "task_kind", "all") + (("prior",) if prior is not None else ())
        learned = apply_thresholds(frame, use=levels)
        policy.by_category.update(learned)
        policy.reasons.update({c: r for c, r in explanations(frame, history).items() if c in learned})
        return bool(learned)
    except (ValueError, OSError, KeyError) as exc:
        log.info("no learned thresholds: %s", exc)
        return False


def learned_routes(table: dict[str, list[str]], pkv: PKV | None = None) -> tuple[dict[str, list[str]], set[str]]:
    """The table re-ranked by past outcomes, and the kinds whose order changed."""
    try:
        pkv = pkv or PKV()
        ranked = rank_routes(pkv.outcomes(), table, prior=cached_priors(pkv))
    except (ValueError, OSError, KeyError) as exc:
        log.info("no learned routes: %s", exc)
        return table, set()
    return ranked, {k for k in table if ranked.get(k) != table[k]}


def record_run(history: pd.DataFrame, outcomes: list[dict[str, Any]], models_by_task: dict[str, str],
               pkv: PKV | None = None) -> None:
    """A finished run's decisions and per-task outcomes into the personal store (counts, no text)."""
    pkv = pkv or PKV()
    if not history.empty:
        pkv.record_history(history, models_by_task=models_by_task)
    for outcome in outcomes:
        pkv.record_outcome(**outcome)
