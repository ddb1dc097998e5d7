"""Tier-2 thresholds learned from the person's answers: ask as little as possible, be wrong rarely.

For each category, on its own empirical confidence distribution:

- `checkpoint_below` (the policy's ask_below) is the smallest confidence t such
  that, among the decisions that would go ahead without asking (confidence >= t),
  the expected share the person would have overridden is at most the target,
  using the posterior mean of 1 - p per bin. The target is a rate of wrong
  decisions in expectation, and the posterior mean is the Bayes estimate of
  exactly that; an upper bound here would keep asking for hundreds of decisions
  in every category before it lowered anything.
- `proceed_above` is the smallest t >= checkpoint_below where the same share stays
  under the target with the conservative bound, 1 - p_low per bin (p_low the
  lower end of the credible interval). Between the two the policy proceeds and
  lists the decision for a look (tier 2's "log"): we expect to be right there, but
  are not yet sure. Above it we are sure enough to proceed silently.

Thresholds are bin edges (0.0, 0.1, ..., 1.0); checkpoint_below 1.0 means "never
without asking", even at confidence 1.0 (see `proceeding`). The estimates come
from calibration's hierarchy (category within kind within all, global priors on
top), so they move with the first answers. Two assumptions keep thin data from
misleading:

- Confidence means something: the calibration is made monotone (isotonic, each
  bin weighing by its own evidence), so a bin nobody answered in takes the value
  of the answered bins below it, and a history that was only ever asked below
  0.7 can still lower thresholds. It cannot show that a high bin is *better*
  than the bins below it, though: that needs answers there (tier 1, or the
  occasional audit checkpoint above the threshold).
- Each bin counts half a decision more than it holds, so a confidence range the
  category never showed is not waved through on the strength of the others. A
  category the person has not met yet is weighed on everyone's confidence
  distribution there (the prior's).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from .calibration import BINS, CREDIBLE, LEVELS, BinPrior, calibrate_checked, decisions

RECOMMENDATION_COLUMNS = ["category", "checkpoint_below", "proceed_above", "n", "n_category", "decisions",
                          "expected_checkpoints_per_100", "expected_logged_per_100",
                          "expected_wrong_per_100", "based_on", "source"]


def proceeding(confidence: np.ndarray, ask_below: float | np.ndarray) -> np.ndarray:
    """Which decisions go ahead without asking: ask_below 1.0 asks every one, even at confidence 1.0."""
    return (confidence >= ask_below) & (np.asarray(ask_below) < 1.0)


def check_target(target: Any) -> float:
    if isinstance(target, bool) or not isinstance(target, (int, float, np.floating)) \
            or not np.isfinite(target) or not 0 < target < 1:
        raise ValueError(f"target_wrong_rate must be a number strictly between 0 and 1 "
                         f"(e.g. 0.05 for 5 wrong auto-proceeds in 100), got {target!r}")
    return float(target)


def _smallest(weights: np.ndarray, wrong: np.ndarray, target: float, start: int = 0) -> int:
    """Smallest bin k >= start with sum_{b>=k} w*wrong / sum_{b>=k} w <= target (len = never)."""
    wrong_above = np.append(np.cumsum((weights * wrong)[::-1])[::-1], 0.0)
    weight_above = np.append(np.cumsum(weights[::-1])[::-1], 0.0)
    share = np.divide(wrong_above, weight_above, out=np.zeros_like(wrong_above), where=weight_above > 0)
    ok = np.flatnonzero(share[start:] <= target + 1e-12)
    return start + int(ok[0])


def _recommend(category: str, confidence: np.ndarray, binned: np.ndarray, answered: int, cal: pd.DataFrame,
               weights: np.ndarray, behind: int, target: float, bins: int) -> dict:
    """One category's thresholds on its confidence distribution (its own decisions, else the prior's)."""
    p_mean, p_low = cal["p_mean"].to_numpy(), cal["p_low"].to_numpy()
    ask = _smallest(weights, 1 - p_mean, target)
    silent = _smallest(weights, 1 - p_low, target, start=ask)
    low, high = ask / bins, silent / bins
    if len(confidence):
        proceeds = proceeding(confidence, low)
        wrong = np.where(proceeds, 1 - p_mean[binned], 0.0)
        rates = (~proceeds).mean(), (proceeds & (confidence <= high)).mean(), wrong.mean()
    else:                                  # a category only the prior knows: its distribution there
        share = weights / weights.sum()
        goes = (np.arange(bins) >= ask) & (low < 1.0)
        rates = share[~goes].sum(), share[goes & (np.arange(bins) < silent)].sum(), \
            (share * goes * (1 - p_mean)).sum()
    return {"category": category, "checkpoint_below": low, "proceed_above": high,
            "n": behind, "n_category": answered, "decisions": len(confidence),
            "expected_checkpoints_per_100": 100 * float(rates[0]),
            "expected_logged_per_100": 100 * float(rates[1]),
            "expected_wrong_per_100": 100 * float(rates[2]),
            "based_on": cal["level"].iat[0], "source": cal["source"].iat[0]}


def recommend_thresholds(history: pd.DataFrame, target_wrong_rate: float = 0.05,
                         prior: BinPrior | Mapping[str, Any] | None = None,
                         bins: int = BINS, credible: float = CREDIBLE) -> pd.DataFrame:
    """Per category: checkpoint_below, proceed_above and what they would cost and risk.

    Columns: category, checkpoint_below, proceed_above, n (answered decisions behind the
    level used: the category's, its kind's, all of the person's, or the prior's), n_category
    (the category's own), decisions (all of the category's decisions with a confidence),
    expected_checkpoints_per_100, expected_logged_per_100, expected_wrong_per_100 (per 100
    of the category's decisions, on its past confidence distribution, or the prior's),
    based_on (category | task_kind | all | prior) and source. Every category the prior
    knows has a row, also when the history is empty (a new user): based_on "prior".
    """
    target = check_target(target_wrong_rate)
    prior = BinPrior.coerce(prior, bins)
    frame = decisions(history, bins, allow_empty=not prior.empty)
    cal = calibrate_checked(frame, prior=prior, bins=bins, credible=credible, monotone_=True)
    confidence, binned, answered = (frame[c].to_numpy() for c in ("confidence", "bin", "evidence"))
    groups = frame.groupby("category").indices
    empty = np.array([], dtype=int)
    rows = []
    for i, category in enumerate(cal["group"].iloc[::bins]):
        at = groups.get(category, empty)
        rows.append(_recommend(category, confidence[at], binned[at].astype(int), int(answered[at].sum()),
                               cal.iloc[i * bins:(i + 1) * bins], cal.attrs["weights"][category],
                               cal.attrs["behind"][category], target, bins))
    result = pd.DataFrame(rows, columns=RECOMMENDATION_COLUMNS)
    result.attrs.update(target_wrong_rate=target, prior="uniform" if prior.empty else "given",
                        without_confidence=frame.attrs["without_confidence"])
    return result


# --- making them the policy's ----------------------------------------------------------------------

def apply_thresholds(frame: pd.DataFrame, policy: Any = None, *,
                     use: Iterable[str] = LEVELS) -> dict[str, Any]:
    """{category: Thresholds(ask_below=checkpoint_below, proceed_above=proceed_above)}.

    With a policy (an AutonomyPolicy), the learned thresholds also replace its
    `by_category` entries for those categories (others, e.g. configured by hand,
    stay). `use` picks which rows count, e.g. use=("category", "task_kind", "all")
    to ignore recommendations that rest on a prior alone.
    """
    from ..autonomy.policy import Thresholds

    missing = [c for c in ("category", "checkpoint_below", "proceed_above", "based_on") if c not in frame]
    if missing:
        raise ValueError(f"the recommendation lacks the column(s) {', '.join(missing)}; "
                         f"pass the frame recommend_thresholds() returned")
    levels = set(use)
    unknown = levels - set(LEVELS)
    if unknown:
        raise ValueError(f"use: unknown level(s) {sorted(unknown)}; choose from {', '.join(LEVELS)}")
    learned = {}
    for row in frame[frame["based_on"].isin(levels)].itertuples(index=False):
        if not row.checkpoint_below <= row.proceed_above:
            raise ValueError(f"thresholds for {row.category!r} are out of order: checkpoint_below "
                             f"({row.checkpoint_below}) is above proceed_above ({row.proceed_above})")
        try:
            learned[row.category] = Thresholds(float(row.checkpoint_below), float(row.proceed_above))
        except ValueError as error:
            raise ValueError(f"thresholds for {row.category!r}: {error}") from None
    if policy is not None:
        if not hasattr(policy, "by_category"):
            raise ValueError(f"policy must be an AutonomyPolicy, not {type(policy).__name__}")
        policy.by_category = {**policy.by_category, **learned}
    return learned


# --- saying why ------------------------------------------------------------------------------------

def _rate(rows: pd.DataFrame) -> tuple[int, int]:
    answered = rows[rows["evidence"]]
    return int((~answered["accepted"]).sum()), len(answered)


def _said(overridden: int, n: int) -> str:
    return f"overridden {overridden / n:.0%} of the time ({overridden} of {n})" if n else "never answered yet"


def explain(category: str, recommendation_row: Mapping[str, Any] | pd.Series, history: pd.DataFrame,
            confidence: float | None = None) -> str:
    """One line for a checkpoint card: why this category asks where it asks.

    E.g. "asked because: auth decisions are overridden 40% of the time (12 of 30);
    learned: ask below 0.90".
    """
    row = dict(recommendation_row)
    frame = decisions(history, allow_empty=True)
    own = frame[frame["category"] == category]
    overridden, n = _rate(own)
    based_on = row.get("based_on", "category")
    if based_on == "category":
        reason = f"{category} decisions are {_said(overridden, n)}"
    elif based_on == "task_kind":
        kind = row.get("source", "this kind")
        k_over, k_n = _rate(frame[frame["task_kind"] == kind])
        reason = f"only {n} {category} decisions so far; {kind} tasks' decisions are {_said(k_over, k_n)}"
    elif based_on == "all":
        a_over, a_n = _rate(frame)
        reason = f"only {n} {category} decisions so far; all your decisions are {_said(a_over, a_n)}"
    else:
        source = row.get("source", "uniform")
        whose = "what everyone's decisions taught (global priors)" if source != "uniform" else \
            "no evidence yet, so it stays careful"
        reason = f"only {n} {category} decisions of yours so far; thresholds from {whose}"
    limit = float(row["checkpoint_below"])
    learned = "learned: never proceed without asking" if limit >= 1 else f"learned: ask below {limit:.2f}"
    if confidence is not None:
        learned = f"this one is at {confidence:.2f}, {learned}"
    return f"asked because: {reason}; {learned}"


def explanations(frame: pd.DataFrame, history: pd.DataFrame) -> dict[str, str]:
    """{category: explain(...)} for every recommended category, for the policy's cards."""
    return {row["category"]: explain(row["category"], row, history) for _, row in frame.iterrows()}


# --- what the past would have looked like ----------------------------------------------------------

def _limits(scenario: Any, category: str) -> tuple[float, float]:
    if isinstance(scenario, Mapping):
        scenario = scenario.get(category, scenario.get("default", (0.70, 0.90)))
    if hasattr(scenario, "ask_below"):
        return float(scenario.ask_below), float(scenario.proceed_above)
    ask_below, proceed_above = scenario
    return float(ask_below), float(proceed_above)


def whatif(history: pd.DataFrame, scenarios: Mapping[str, Any]) -> pd.DataFrame:
    """Replays the answered decisions under other thresholds: checkpoints and wrong auto-proceeds.

    `scenarios` maps a name to (ask_below, proceed_above), to a Thresholds, or to a
    {category: thresholds} mapping (with 'default' for the rest), e.g. the result
    of apply_thresholds. Only answered decisions count: for them we know what the
    person wanted. Rates are per 100 answered decisions.
    """
    frame = decisions(history)
    answered = frame[frame["evidence"]]
    if answered.empty:
        raise ValueError("the history has no decisions answered by a person, so there is nothing to replay")
    rows = []
    for name, scenario in scenarios.items():
        limits = answered["category"].map(lambda c: _limits(scenario, c))
        ask_below = limits.str[0].to_numpy()
        proceed_above = limits.str[1].to_numpy()
        confidence = answered["confidence"].to_numpy()
        asks = ~proceeding(confidence, ask_below)
        wrong = ~asks & ~answered["accepted"].to_numpy()
        rows.append({"scenario": name, "answered": len(answered),
                     "checkpoints_per_100": 100 * asks.mean(),
                     "logged_per_100": 100 * (~asks & (confidence <= proceed_above)).mean(),
                     "wrong_auto_per_100": 100 * wrong.mean()})
    return pd.DataFrame(rows)
