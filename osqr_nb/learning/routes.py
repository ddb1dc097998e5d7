"""Routes that learn: which model each task kind should go to, from how past routes went.

An outcome is one attempt at a task: task_kind, model, success (accepted
without change and its checks passed), cost_usd, seconds, and escalated_from
when it took over from a cheaper model's failed attempt. Per kind, every candidate
competes: the table's models and, with `candidates`, every other reachable
model. The aim is the cheapest successful task at no less success than the
table's route: per kind, each model draws a success rate from its Beta
posterior (Thompson sampling), the models whose draw is not below the draw of
the table's first model are ranked by expected cost per successful task
(mean cost / drawn rate), and the rest follow by drawn rate. So a model with a
good record usually wins, one with little record still gets tried now and
then, in proportion to how plausibly it is as good and cheaper, and a dearer
model is not bought for success above the table's (explore=False ranks by the
posterior means instead, for reports). The table gives the starting order and
the prior: its first model starts from TABLE_PRIOR pseudo-outcomes (later
table models from a little less), any other model from a uniform Beta(1, 1)
discounted to OUTSIDER_PRIOR, so a fresh install keeps its table and a cheaper
model has to earn its place.

A model without a cost record yet is priced from `price_hint` (relative
prices, e.g. dollars per million tokens) against the models that have one.
With `budget_usd` (dollars per task), models whose mean cost is above it go
after every model within it, as fallbacks only. Until a kind has `min_n`
outcomes (own, or global pseudo-outcomes from GPKV's route priors, at most 10
per route) its table order stands. Time is reported, not scored.

`cascade_routes` adds a FrugalGPT-style cascade, which runs use: a cheaper
model tries first and a task whose attempt fails in the run goes on to the
cascade's last model, the failed attempt's cost counted. That last model is
the table's first model, or one whose posterior makes it at least as likely to
succeed with probability MAIN_SURE (once the table's model has MAIN_EVIDENCE
first attempts of its own): a cascade succeeds at least as often as
its last model alone (the union of two attempts), so it never trades success
below the table's for its savings. Whether the last model rescues a task the
cheaper one failed is learned from escalated outcomes (`escalated_from` names
the model that failed first), starting from the pessimistic guess that
failures nest (the stronger model succeeds only where it would have anyway).
Only failures seen in the run are escalated (an agent that gives up); a task
the person overrides later was not, and counts as the cheap model's failure.
How many a cascade misses is learned from its first tries' outcomes (each
names the model it would go on to, `escalate_to`), and a cascade that would
lose more than MISSED_LOSS of success to them is not taken.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

MIN_OUTCOMES = 5
TABLE_PRIOR = (3.0, 1.0)          # pseudo (successes, failures) of a table's first model
TABLE_NEXT_PRIOR = (2.0, 1.0)     # of its later models
OUTSIDER_PRIOR = (1.0, 1.0)       # of a reachable model the table does not name for the kind
FLOOR_QUANTILE = 0.75            # how sure "as good as the table's model" must be
FLOOR_SLACK = 0.01                # ranked on means: a point below the table's model still counts as as good
RESCUE_PRIOR = 2.0                # pseudo-outcomes behind the guess that failures nest (cascades)
RESCUE_SURE = 0.9                 # a cascade is dropped when escalations fail this surely below the guess
NOTICE_PRIOR = (5.0, 0.01)        # pseudo (seen, unseen) failures of a cascade's first try: seen, until shown
MISSED_LOSS = 0.002               # success a cascade may lose to failures the run misses (0.2 points)
MAIN_SURE = 0.99                  # P(as good as the table's model) a cascade's last model needs
MAIN_EVIDENCE = 20                # first attempts of the table's model before another may replace it
GRID = 2000                       # points over [0, 1] for P(one success rate >= another)
PRIOR_CAP = 10.0
OUTCOME_COLUMNS = ["task_kind", "model", "success", "cost_usd", "seconds", "escalated_from", "escalate_to"]
STAT_COLUMNS = ["task_kind", "model", "n", "successes", "failures", "success_rate", "mean_cost_usd",
                "mean_seconds"]


def _outcomes(outcomes: pd.DataFrame | None) -> pd.DataFrame:
    if outcomes is None:
        return pd.DataFrame(columns=OUTCOME_COLUMNS)
    if not isinstance(outcomes, pd.DataFrame):
        raise ValueError(f"outcomes must be a DataFrame such as PKV().outcomes(), not {type(outcomes).__name__}")
    missing = [c for c in ("task_kind", "model", "success") if c not in outcomes.columns]
    if missing and not outcomes.empty:
        raise ValueError(f"outcomes lack the column(s) {', '.join(missing)}; "
                         f"need task_kind, model, success (and cost_usd, seconds if known)")
    frame = outcomes.reindex(columns=OUTCOME_COLUMNS)
    frame["success"] = frame["success"].fillna(False).astype(bool)
    for column in ("cost_usd", "seconds"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def route_stats(outcomes: pd.DataFrame | None) -> pd.DataFrame:
    """Per (task_kind, model): n, successes, failures, success_rate, mean_cost_usd, mean_seconds.

    First attempts only: a task a cascade escalated says how the model does on what a cheaper
    one failed, not how it does on the kind (see `rescues`).
    """
    frame = _outcomes(outcomes)
    grouped = frame[frame["escalated_from"].isna()].groupby(["task_kind", "model"])
    stats = pd.DataFrame({"n": grouped.size(), "successes": grouped["success"].sum(),
                          "mean_cost_usd": grouped["cost_usd"].mean(), "mean_seconds": grouped["seconds"].mean()})
    stats["failures"] = stats["n"] - stats["successes"]
    stats["success_rate"] = stats["successes"] / stats["n"]
    return stats.reset_index().reindex(columns=STAT_COLUMNS)


def rescues(outcomes: pd.DataFrame | None) -> dict[tuple[str, str, str], tuple[int, int]]:
    """{(kind, first model, escalated to): (successes, failures)} of escalated attempts."""
    frame = _outcomes(outcomes)
    frame = frame[frame["escalated_from"].notna()]
    grouped = frame.groupby(["task_kind", "escalated_from", "model"])["success"]
    return {key: (int(ok), int(n - ok)) for key, ok, n in zip(grouped.groups, grouped.sum(), grouped.size())}


def noticing(outcomes: pd.DataFrame | None) -> dict[tuple[str, str, str], tuple[int, int]]:
    """{(kind, first model, escalated to): (failures the run saw and escalated, failures it did
    not see)} of cascades' first tries. A first try's row names the model its failure would go on
    to (`escalate_to`); a failure with no escalation behind it was found only later (the person
    overrode the task, the run's check failed)."""
    frame = _outcomes(outcomes)
    tried = frame[frame["escalate_to"].notna() & frame["escalated_from"].isna() & ~frame["success"]]
    failed = tried.groupby(["task_kind", "model", "escalate_to"]).size()
    escalated = rescues(outcomes)
    result = {}
    for key, n in failed.items():
        seen = min(int(n), sum(escalated.get(key, (0, 0))))
        result[key] = (seen, int(n) - seen)
    return result


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


def _posterior(models: list[str], record: dict[str, tuple[float, float, float]], table: list[str]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Beta (alpha, beta) of each model's success rate for one kind: its record on the table's prior."""
    wins, losses = (np.array([record.get(m, (0.0, 0.0, np.nan))[i] for m in models], dtype=float)
                    for i in range(2))
    prior = np.array([TABLE_PRIOR if m == table[0] else TABLE_NEXT_PRIOR if m in table else OUTSIDER_PRIOR
                      for m in models]) if table else np.ones((len(models), 2))
    return wins + prior[:, 0], losses + prior[:, 1]


def _beliefs(models: list[str], record: dict[str, tuple[float, float, float]], rng: np.random.Generator,
             explore: bool, table: list[str], price_hint: Mapping[str, float] | None,
             sure: bool | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(success rate drawn from each model's posterior, or its mean; mean cost; the floor) for one
    kind. The floor is the table's first model (models[0]) at the FLOOR_QUANTILE of its posterior:
    a fixed bar that a thin record of the table's model makes high, so a weak model cannot slip
    under it by luck; it comes down to the table model's rate as that model's record grows.
    Ranked on means (sure=False, for reports) the bar is the median, less FLOOR_SLACK."""
    alpha, beta = _posterior(models, record, table)
    cost = np.array([record.get(m, (0.0, 0.0, np.nan))[2] for m in models], dtype=float)
    rate = rng.beta(alpha, beta) if explore else alpha / (alpha + beta)
    from scipy.special import betaincinv         # Beta quantiles; imported when routes are ranked, not at import
    sure = explore if sure is None else sure
    floor = float(betaincinv(alpha[0], beta[0], FLOOR_QUANTILE)) if sure else \
        float(betaincinv(alpha[0], beta[0], 0.5)) - FLOOR_SLACK
    return rate, _priced(cost, models, price_hint), floor


def p_at_least(a: tuple[float, float], b: tuple[float, float]) -> float:
    """P(x >= y) for independent x ~ Beta(*a), y ~ Beta(*b), integrated over y on a grid."""
    from scipy.special import betainc
    from scipy.stats import beta as beta_law
    y = (np.arange(GRID) + 0.5) / GRID
    return float(np.clip(np.sum(beta_law.pdf(y, *b) * (1 - betainc(a[0], a[1], y))) / GRID, 0.0, 1.0))


def _as_good(alpha: np.ndarray, beta: np.ndarray, cost: np.ndarray, budget_usd: float | None,
             table_seen: float) -> list[int]:
    """The models a cascade may end with: the table's (index 0), and any other whose success rate
    is at least the table model's with probability MAIN_SURE (and whose mean is not lower), within
    the budget. Until the table's model has MAIN_EVIDENCE first attempts of its own none may: it
    runs first rarely once cascades end with it, so a few unlucky tasks would otherwise unseat
    it for good."""
    mean = alpha / (alpha + beta)
    able = [0]
    for i in range(1, len(alpha) if table_seen >= MAIN_EVIDENCE else 1):
        if budget_usd is not None and cost[i] > budget_usd:
            continue
        if mean[i] >= mean[0] and p_at_least((alpha[i], beta[i]), (alpha[0], beta[0])) >= MAIN_SURE:
            able.append(i)
    return able


def _rank(models: list[str], rate: np.ndarray, cost: np.ndarray, floor: float, budget_usd: float | None
          ) -> list[str]:
    """Models at least as likely to succeed as the table's first (the floor) by cost per success,
    then the others by success; models over the budget last."""
    feasible = rate >= floor - 1e-12
    feasible[0] = True                                   # the table's route sets the bar
    per_success = cost / np.maximum(rate, 1e-9)
    over_budget = cost > budget_usd if budget_usd is not None else np.zeros(len(models), bool)
    order = sorted(range(len(models)), key=lambda i: (over_budget[i], not feasible[i],
                                                      per_success[i] if feasible[i] else -rate[i], i))
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


def _candidates(kind_table: list[str] | str, others: list[str]) -> tuple[list[str], list[str]]:
    named = [kind_table] if isinstance(kind_table, str) else list(kind_table)
    return named, named + [m for m in others if m not in named]


def rank_routes(outcomes_df: pd.DataFrame | None, table: Mapping[str, list[str]], rng: Any = None,
                explore: bool = True, budget_usd: float | None = None,
                min_n: int = MIN_OUTCOMES, prior: Any = None, candidates: Iterable[str] | None = None,
                price_hint: Mapping[str, float] | None = None) -> dict[str, list[str]]:
    """{kind: candidates, best first} from past outcomes (see the module doc).

    `candidates`: every reachable model, each competing for every kind after the
    table's own (without it, only the table's models compete). `prior`: global route
    outcomes (the `routes` rows of GPKV's /v1/priors, or that whole answer), each
    (kind, model) counted as at most 10 pseudo-outcomes. `price_hint`: {model: relative
    price} for models without a cost record yet.
    """
    records = _records(route_stats(outcomes_df), prior)
    generator = _rng(rng)
    others = list(dict.fromkeys(candidates or []))
    ranked = {}
    for kind, named in table.items():
        named, models = _candidates(named, others)
        record = records.get(kind, {})
        seen = sum(wins + losses for wins, losses, _ in record.values())
        if seen < min_n or len(models) < 2:
            ranked[kind] = models
            continue
        rate, cost, floor = _beliefs(models, record, generator, explore, named, price_hint)
        ranked[kind] = _rank(models, rate, cost, floor, budget_usd)
    return ranked


def _noticed(counts: tuple[int, int]) -> float:
    """The share of a first try's failures the run sees (and so escalates), posterior mean, from
    the guess that it sees them all."""
    return (NOTICE_PRIOR[0] + counts[0]) / (NOTICE_PRIOR[0] + NOTICE_PRIOR[1] + counts[0] + counts[1])


def _rescue(rescued: tuple[int, int], p_first: float, p_main: float, rng: np.random.Generator | None
            ) -> tuple[float, float]:
    """P(the main model succeeds | the first failed), drawn (with rng) or its mean; and the
    posterior's RESCUE_SURE quantile. From escalated outcomes, starting from the guess that
    failures nest (what fails on the stronger model fails on the weaker one too): the lowest
    rescue the two models' rates allow, so escalations below it are noise or a sign that the
    main model is weaker than its record said."""
    from scipy.special import betaincinv
    guess = float(np.clip((p_main - p_first) / max(1 - p_first, 1e-9), 0.0, 1.0))
    alpha = RESCUE_PRIOR * guess + rescued[0] + 1e-3
    beta = RESCUE_PRIOR * (1 - guess) + rescued[1] + 1e-3
    value = float(rng.beta(alpha, beta)) if rng is not None else alpha / (alpha + beta)
    return value, float(betaincinv(alpha, beta, RESCUE_SURE))


def cascade_routes(outcomes_df: pd.DataFrame | None, table: Mapping[str, list[str]], rng: Any = None,
                   explore: bool = True, budget_usd: float | None = None, min_n: int = MIN_OUTCOMES,
                   prior: Any = None, candidates: Iterable[str] | None = None,
                   price_hint: Mapping[str, float] | None = None) -> dict[str, list[str]]:
    """{kind: the models a task tries, in order}: [cheaper model, last] or [last], whichever is
    expected to cost least per successful task (a failed first attempt's cost counted).

    The last model carries the success: the table's first model, or one at least as likely to
    succeed with probability MAIN_SURE (see the module doc), so the route's success is not
    below the table's. Thompson sampling explores the cheap first try only, whose failures the
    last model catches. A cheap first try is dropped when escalations show, at RESCUE_SURE,
    that the cascade would succeed less often than the table's model, or when the failures a
    run misses (see `noticing`) would cost more than MISSED_LOSS of success. Arguments as for
    rank_routes; outcomes may carry `escalated_from` and `escalate_to` (see the module doc)."""
    records = _records(route_stats(outcomes_df), prior)
    rescued, seen = rescues(outcomes_df), noticing(outcomes_df)
    generator = _rng(rng)
    others = list(dict.fromkeys(candidates or []))
    routes = {}
    for kind, named in table.items():
        named, models = _candidates(named, others)
        record = records.get(kind, {})
        if sum(w + f for w, f, _ in record.values()) < min_n or len(models) < 2:
            routes[kind] = models[:1]
            continue
        alpha, beta = _posterior(models, record, named)
        mean, cost, _ = _beliefs(models, record, generator, False, named, price_hint)
        rate = _beliefs(models, record, generator, explore, named, price_hint)[0] if explore else mean
        wins, losses, _ = record.get(models[0], (0.0, 0.0, np.nan))
        mains = _as_good(alpha, beta, cost, budget_usd, wins + losses)
        routes[kind] = _cheapest_chain(kind, models, mean, rate, cost, mains, rescued, seen,
                                       generator if explore else None)
    return routes


def _cheapest_chain(kind: str, models: list[str], mean: np.ndarray, rate: np.ndarray, cost: np.ndarray,
                    mains: list[int], rescued: dict[tuple[str, str, str], tuple[int, int]],
                    seen: dict[tuple[str, str, str], tuple[int, int]], rng: np.random.Generator | None
                    ) -> list[str]:
    """The route of least expected cost per success among [main] and [cheaper first, main], for
    each main allowed. Only the failures the run sees are escalated, so a first try whose
    failures are missed, or whose escalations are not rescued, surely enough to lose success
    against the table's model is left out."""
    best, best_per_success = [models[0]], np.inf
    for main in mains:
        if cost[main] / max(mean[main], 1e-9) < best_per_success:
            best, best_per_success = [models[main]], cost[main] / max(mean[main], 1e-9)
        for first in range(len(models)):
            if first == main or cost[first] >= cost[main]:
                continue
            key = (kind, models[first], models[main])
            fails = 1 - rate[first]
            rescue, optimistic = _rescue(rescued.get(key, (0, 0)), rate[first], mean[main], rng)
            noticed = _noticed(seen.get(key, (0, 0)))
            if rate[first] + fails * optimistic < mean[0] - 1e-9:
                continue                       # escalations are not rescued enough: it would lose success
            if fails * (1 - noticed) * rescue > MISSED_LOSS:
                continue                       # failures the run misses would cost success the last model has
            success = rate[first] + fails * noticed * rescue
            spent = cost[first] + fails * noticed * cost[main]
            if spent / max(success, 1e-9) < best_per_success:
                best, best_per_success = [models[first], models[main]], spent / max(success, 1e-9)
    return best


def route_report(outcomes_df: pd.DataFrame | None, table: Mapping[str, list[str]],
                 budget_usd: float | None = None, prior: Any = None) -> pd.DataFrame:
    """Table route against learned route per kind, for `%osqr route`.

    Columns: kind, table_route, learned_route (posterior means, no exploration),
    changed, n (outcomes of the kind), then the learned first model's model,
    success_rate, mean_cost_usd and mean_seconds (NaN where it has no outcomes),
    and cascade: the models a run's task tries (cascade_routes on posterior means).
    """
    learned = rank_routes(outcomes_df, table, explore=False, budget_usd=budget_usd, prior=prior)
    chains = cascade_routes(outcomes_df, table, explore=False, budget_usd=budget_usd, prior=prior)
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
                     "mean_seconds": np.nan if best is None else float(best["mean_seconds"]),
                     "cascade": " → ".join(chains[kind])})
    return pd.DataFrame(rows)
