"""Routes that learn: which model each task kind should go to, from how past routes went.

An outcome is one finished task: task_kind, model, success (accepted without
change and its checks passed), cost_usd, seconds. Per kind, every candidate
competes: the table's models and, with `candidates`, every other reachable
model. They are ranked by Thompson sampling: each model draws a success rate
from its Beta posterior and the highest score goes first, so a model with a
good record usually wins, and one with little record still gets tried now and
then, in proportion to how plausibly it is better (explore=False ranks by the
posterior mean instead, for reports). The table gives the starting order and
the prior: its first model starts from TABLE_PRIOR pseudo-outcomes (later
table models from a little less), any other model from a uniform Beta(1, 1)
discounted to OUTSIDER_PRIOR, so a fresh install keeps its table and a cheaper
model has to earn its place.

Cost enters in two ways. Within a kind, a model's score is its draw minus
`cost_weight` times its mean cost relative to the dearest candidate: by
default we pay for the dearest model only when it is at least about 10 points
more likely to succeed. A model without a cost record yet is priced from
`price_hint` (relative prices, e.g. dollars per million tokens) against the
models that have one. With `budget_usd` (dollars per task), models whose mean
cost is above it go after every model within it, as fallbacks only. Until a
kind has `min_n` outcomes (own, or global pseudo-outcomes from GPKV's route
priors, at most 10 per route) its table order stands. Time is reported, not scored.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

COST_WEIGHT = 0.1
MIN_OUTCOMES = 5
TABLE_PRIOR = (3.0, 1.0)          # pseudo (successes, failures) of a table's first model
TABLE_NEXT_PRIOR = (2.0, 1.0)     # of its later models
OUTSIDER_PRIOR = (1.0, 1.0)       # of a reachable model the table does not name for the kind
PRIOR_CAP = 10.0
STAT_COLUMNS = ["task_kind", "model", "n", "successes", "failures", "success_rate", "mean_cost_usd",
                "mean_seconds"]


def _outcomes(outcomes: pd.DataFrame | None) -> pd.DataFrame:
    if outcomes is None:
        return pd.DataFrame(columns=["task_kind", "model", "success", "cost_usd", "seconds"])
    if not isinstance(outcomes, pd.DataFrame):
        raise ValueError(f"outcomes must be a DataFrame such as PKV().outcomes(), not {type(outcomes).__name__}")
    missing = [c for c in ("task_kind", "model", "success") if c not in outcomes.columns]
    if missing and not outcomes.empty:
        raise ValueError(f"outcomes lack the column(s) {', '.join(missing)}; "
                         f"need task_kind, model, success (and cost_usd, seconds if known)")
    frame = outcomes.reindex(columns=["task_kind", "model", "success", "cost_usd", "seconds"])
    frame["success"] = frame["success"].fillna(False).astype(bool)
    for column in ("cost_usd", "seconds"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def route_stats(outcomes: pd.DataFrame | None) -> pd.DataFrame:
    """Per (task_kind, model): n, successes, failures, success_rate, mean_cost_usd, mean_seconds."""
    grouped = _outcomes(outcomes).groupby(["task_kind", "model"])
    stats = pd.DataFrame({"n": grouped.size(), "successes": grouped["success"].sum(),
                          "mean_cost_usd": grouped["cost_usd"].mean(), "mean_seconds": grouped["seconds"].mean()})
    stats["failures"] = stats["n"] - stats["successes"]
    stats["success_rate"] = stats["successes"] / stats["n"]
    return stats.reset_index().reindex(columns=STAT_COLUMNS)


def _rng(rng: Any) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _priced(cost: np.ndarray, models: list[str], hint: Mapping[str, float] | None) -> np.ndarray:
    """Costs with the unknown ones estimated: from the price hint against the known ones, else their median."""
    known = np.isfinite(cost)
    hinted = np.array([float(hint.get(m, np.nan)) if hint else np.nan for m in models])
    ratio = cost[known] / hinted[known]
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    if ratio.size:
        estimate = np.where(np.isfinite(hinted), hinted * np.median(ratio), np.nan)
        cost = np.where(known, cost, estimate)
    elif hint and np.isfinite(hinted).all():
        return hinted                   # nothing known: relative prices still order the models
    fallback = np.median(cost[np.isfinite(cost)]) if np.isfinite(cost).any() else 0.0
    return np.where(np.isfinite(cost), cost, fallback)


def _rank(models: list[str], record: dict[str, tuple[float, float, float]], rng: np.random.Generator,
          explore: bool, cost_weight: float, budget_usd: float | None, table: list[str],
          price_hint: Mapping[str, float] | None = None) -> list[str]:
    """`record`: model -> (successes, failures, mean cost) for this kind."""
    wins, losses, cost = (np.array([record.get(m, (0.0, 0.0, np.nan))[i] for m in models], dtype=float)
                          for i in range(3))
    prior = np.array([TABLE_PRIOR if m == table[0] else TABLE_NEXT_PRIOR if m in table else OUTSIDER_PRIOR
                      for m in models]) if table else np.ones((len(models), 2))
    alpha, beta = wins + prior[:, 0], losses + prior[:, 1]
    rate = rng.beta(alpha, beta) if explore else alpha / (alpha + beta)
    cost = _priced(cost, models, price_hint)
    dearest = cost.max() if cost.max() > 0 else 1.0
    score = rate - cost_weight * cost / dearest
    over_budget = cost > budget_usd if budget_usd is not None else np.zeros(len(models), bool)
    order = sorted(range(len(models)), key=lambda i: (over_budget[i], -score[i], i))
    return [models[i] for i in order]


def _records(stats: pd.DataFrame, prior: Any = None, m: float = PRIOR_CAP
             ) -> dict[str, dict[str, tuple[float, float, float]]]:
    """{kind: {model: (successes, failures, mean cost)}}: own outcomes plus capped prior pseudo-outcomes."""
    records: dict[str, dict[str, tuple[float, float, float]]] = {}
    for kind, model, wins, losses, cost in _prior_rows(prior, m):
        records.setdefault(kind, {})[model] = (wins, losses, cost)
    for kind, model, wins, losses, cost in stats[["task_kind", "model", "successes", "failures",
                                                   "mean_cost_usd"]].itertuples(index=False):
        w0, l0, c0 = records.get(kind, {}).get(model, (0.0, 0.0, np.nan))
        records.setdefault(kind, {})[model] = (wins + w0, losses + l0, cost if np.isfinite(cost) else c0)
    return records


def _prior_rows(prior: Any, m: float) -> list[tuple[str, str, float, float, float]]:
    """Global route outcomes (GPKV's route rows, or {"routes": rows}) as at most m pseudo-outcomes each."""
    if prior is None:
        return []
    rows = prior.get("routes", []) if isinstance(prior, Mapping) else \
        prior.to_dict("records") if isinstance(prior, pd.DataFrame) else list(prior)
    result = []
    for row in rows:
        wins, losses = float(row["successes"]), float(row["failures"])
        scale = min(1.0, m / (wins + losses)) if wins + losses > 0 else 0.0
        cost = row["cost_usd_sum"] / row["n"] if row.get("n") else np.nan
        result.append((row["task_kind"], row["model"], wins * scale, losses * scale, cost))
    return result


def rank_routes(outcomes_df: pd.DataFrame | None, table: Mapping[str, list[str]], rng: Any = None,
                explore: bool = True, cost_weight: float = COST_WEIGHT, budget_usd: float | None = None,
                min_n: int = MIN_OUTCOMES, prior: Any = None, candidates: Iterable[str] | None = None,
                price_hint: Mapping[str, float] | None = None) -> dict[str, list[str]]:
    """{kind: candidates, best first} from past outcomes (see the module doc).

    `candidates`: every reachable model, each competing for every kind after the
    table's own (without it, only the table's models compete). `prior`: global route
    outcomes (the `routes` rows of GPKV's /v1/priors, or that whole answer), each
    (kind, model) counted as at most 10 pseudo-outcomes. `price_hint`: {model: relative
    price} for models without a cost record yet.
    """
    if cost_weight < 0:
        raise ValueError(f"cost_weight must be >= 0, got {cost_weight!r}")
    records = _records(route_stats(outcomes_df), prior)
    generator = _rng(rng)
    others = list(dict.fromkeys(candidates or []))
    ranked = {}
    for kind, named in table.items():
        named = [named] if isinstance(named, str) else list(named)
        models = named + [m for m in others if m not in named]
        record = records.get(kind, {})
        seen = sum(wins + losses for wins, losses, _ in record.values())
        ranked[kind] = models if seen < min_n or len(models) < 2 else \
            _rank(models, record, generator, explore, cost_weight, budget_usd, named, price_hint)
    return ranked


def route_report(outcomes_df: pd.DataFrame | None, table: Mapping[str, list[str]],
                 cost_weight: float = COST_WEIGHT, budget_usd: float | None = None,
                 prior: Any = None) -> pd.DataFrame:
    """Table route against learned route per kind, for `%osqr route`.

    Columns: kind, table_route, learned_route (posterior means, no exploration),
    changed, n (outcomes of the kind), then the learned first model's model,
    success_rate, mean_cost_usd and mean_seconds (NaN where it has no outcomes).
    """
    learned = rank_routes(outcomes_df, table, explore=False, cost_weight=cost_weight, budget_usd=budget_usd,
                          prior=prior)
    stats = route_stats(outcomes_df).set_index(["task_kind", "model"])
    rows = []
    for kind, models in table.items():
        models = [models] if isinstance(models, str) else list(models)
        first = learned[kind][0] if learned[kind] else None
        mine = stats.loc[kind] if kind in stats.index.get_level_values(0) else stats.iloc[0:0]
        best = mine.loc[first] if first in mine.index else None
        rows.append({"kind": kind, "table_route": " → ".join(models), "learned_route": " → ".join(learned[kind]),
                     "changed": learned[kind] != models, "n": int(mine["n"].sum()), "model": first,
                     "success_rate": np.nan if best is None else float(best["success_rate"]),
                     "mean_cost_usd": np.nan if best is None else float(best["mean_cost_usd"]),
                     "mean_seconds": np.nan if best is None else float(best["mean_seconds"])})
    return pd.DataFrame(rows)
