"""How often the person keeps the agent's choice, as a function of the agent's confidence.

Only decisions a person (or the person's code) answered are evidence: an
auto-proceed or a logged decision says nothing about what the person would have
chosen. A decision is *accepted* when the chosen option is the proposed one.

The estimate is a hierarchical Beta-Binomial per confidence bin (10 bins, bin i
holds [i/10, (i+1)/10) and the last also holds 1.0, the same bins the GPKV
payload uses). Groups nest: a category within its task kind within all the
person's decisions, and above them the global priors (`pkv.priors_from`: many
users' decisions, weighed as much as users agree). A group's prior for bin b is
its parent's posterior mean for b, worth `s` pseudo-decisions, plus the global
pseudo-counts for that group when the priors know it; the parent's means are
first moved by the group's own shift on the log-odds scale (logit p_b =
logit parent_b + u, u ~ N(0, tau^2), tau estimated from how far sibling groups'
shifts spread: DerSimonian-Laird, shrunk towards 1 while there are few), so a
category answered only at low confidence still speaks for its whole curve: two
dozen answers, none overridden, let it proceed where it was never asked. `s` is estimated from how
much sibling groups differ (the moment estimator of the Beta-Binomial's
intra-class correlation rho, s = 1/rho - 1, itself shrunk towards s = 10 while
there are few answers): categories that disagree borrow little from each
other, categories that agree borrow a lot. At the top, without global priors,
every bin starts from the person's overall acceptance rate under a uniform
Beta(1, 1). So every answer moves the estimates at once, by as much as its
uncertainty allows: there is no minimum count.

We report the posterior mean and an equal-tailed credible interval (90% by
default, so p_low is a one-sided 95% lower bound); scipy gives the exact Beta
quantiles (scipy.special.betaincinv, what scipy.stats.beta.ppf computes,
without importing scipy.stats), and without scipy a normal approximation with
the same mean and variance is used. The `level` column says whose evidence
weighs most in a category's estimate: its own answers, its task kind's, all the
person's, or the prior (global, or uniform when there is none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Mapping

import numpy as np
import pandas as pd

BINS = 10
PERSON = ("human", "code")          # decided_by values that are evidence
LEVELS = ("category", "task_kind", "all", "prior")
S_MIN, S_MAX, S_GUESS = 2.0, 200.0, 10.0   # pseudo-decisions a parent is worth in a child
GUESS_WEIGHT = 20.0                         # the guess s = 10 weighs like this many answers
SMOOTHING, PRIOR_SHAPE = 0.5, 5.0           # decisions per bin a category's weights get for free
TAU_GUESS, TAU_WEIGHT = 1.0, 2.0            # a group's log-odds shift: the guess, worth this many groups
TAU_MIN, TAU_MAX = 0.25, 3.0
CREDIBLE = 0.90
REQUIRED = ("category", "task_kind", "confidence", "decided_by")
CALIBRATION_COLUMNS = ["group", "level", "source", "bin", "bin_low", "bin_high", "n", "accepted",
                       "prior_n", "p_mean", "p_low", "p_high"]


def confidence_bin(confidence: Any, bins: int = BINS) -> np.ndarray:
    """Bin index of each confidence; 1.0 goes to the last bin (the GPKV payload's `bin_of`)."""
    values = np.asarray(confidence, dtype=float)
    return np.minimum((values * bins + 1e-9).astype(int), bins - 1)


# --- the history, checked ------------------------------------------------------------------------

def _accepted(history: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(accepted, has_proposal): from a PKV frame's flag, or from proposed == chosen."""
    for column in ("proposed_was_accepted", "accepted"):
        if column in history.columns:
            flag = history[column]
            return flag.fillna(False).astype(bool), flag.notna()
    has_proposal = history["proposed"].notna()
    return (history["proposed"] == history["chosen"]) & has_proposal, has_proposal


def _missing_columns(history: pd.DataFrame) -> list[str]:
    missing = [c for c in REQUIRED if c not in history.columns]
    answers = {"proposed_was_accepted", "accepted"} & set(history.columns)
    if not answers:
        missing += [c for c in ("proposed", "chosen") if c not in history.columns]
    return missing


def _confidence(history: pd.DataFrame) -> pd.Series:
    values = pd.to_numeric(history["confidence"], errors="coerce")
    garbled = values.isna() & history["confidence"].notna()
    if garbled.any():
        rows = list(history.index[garbled][:5])
        raise ValueError(f"confidence must be a number from 0 to 1; rows {rows} hold "
                         f"{list(history.loc[garbled, 'confidence'][:5])}")
    outside = values.notna() & ~values.between(0.0, 1.0)
    if outside.any():
        rows = list(history.index[outside][:5])
        raise ValueError(f"confidence must be from 0 to 1; rows {rows} hold {list(values[outside][:5])}")
    return values.astype(float)


def _no_decisions(bins: int) -> pd.DataFrame:
    frame = pd.DataFrame({"category": pd.Series(dtype=str), "task_kind": pd.Series(dtype=str),
                          "confidence": pd.Series(dtype=float), "decided_by": pd.Series(dtype=str),
                          "accepted": pd.Series(dtype=bool), "evidence": pd.Series(dtype=bool),
                          "bin": pd.Series(dtype=int)})
    frame.attrs["without_confidence"] = 0
    return frame


def decisions(history: pd.DataFrame, bins: int = BINS, allow_empty: bool = False) -> pd.DataFrame:
    """The history checked and reduced to what learning needs, one row per decision with a confidence.

    Accepts the frame of `osqr_nb.history()` (accepted = chosen == proposed) or of
    `PKV.history()` (proposed_was_accepted). Rows without a confidence are left out:
    they are decisions no confidence gates (file changes, budgets, errors) and the
    tier-2 thresholds never see them; how many were left out is in
    `.attrs["without_confidence"]`. A history where nothing is left is an error, unless
    allow_empty (a new user with global priors): then an empty history gives an empty frame.
    """
    if not isinstance(history, pd.DataFrame):
        raise ValueError(f"history must be a pandas DataFrame such as osqr_nb.history(), "
                         f"not {type(history).__name__}")
    if history.empty and allow_empty:
        return _no_decisions(bins)
    if history.empty:
        raise ValueError("the history is empty: there are no decisions to learn from yet")
    missing = _missing_columns(history)
    if missing:
        raise ValueError(f"the history lacks the column(s) {', '.join(missing)}; it needs the columns of "
                         f"osqr_nb.history() (category, task_kind, confidence, proposed, chosen, decided_by)")
    confidence = _confidence(history)
    if confidence.isna().all():
        raise ValueError(f"no decision in the history has a confidence (all {len(history)} are NaN); "
                         f"thresholds are learned from decisions the agent rated")
    accepted, has_proposal = _accepted(history)
    frame = pd.DataFrame({
        "category": history["category"].fillna("general").astype(str),
        "task_kind": history["task_kind"].fillna("unknown").astype(str),
        "confidence": confidence,
        "decided_by": history["decided_by"].astype(str),
        "accepted": accepted,
    }, index=history.index)
    frame["evidence"] = frame["decided_by"].isin(PERSON) & has_proposal
    frame = frame[confidence.notna()].copy()
    frame["bin"] = confidence_bin(frame["confidence"], bins)
    frame.attrs["without_confidence"] = int(confidence.isna().sum())
    return frame


# --- priors ---------------------------------------------------------------------------------------

def _pseudo(value: Any, bins: int, where: str) -> np.ndarray:
    table = np.asarray(value, dtype=float)
    if table.shape != (bins, 2) or not np.isfinite(table).all() or (table < 0).any():
        raise ValueError(f"prior for {where} must be {bins} rows of (accepted, overridden) pseudo-counts "
                         f">= 0, got shape {table.shape}")
    return table


@dataclass(frozen=True)
class BinPrior:
    """Pseudo-counts (accepted, overridden) per confidence bin, by category, task kind and overall.

    `seen` holds, per category, how many decisions per bin stand behind the prior (the
    shape of everyone's confidence there, for a category the person has not met yet),
    and `kind_of` the task kind each category mostly comes with.
    """

    categories: Mapping[str, np.ndarray] = field(default_factory=dict)
    kinds: Mapping[str, np.ndarray] = field(default_factory=dict)
    overall: np.ndarray | None = None
    seen: Mapping[str, np.ndarray] = field(default_factory=dict)
    kind_of: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def coerce(cls, prior: "BinPrior | Mapping[str, Any] | None", bins: int = BINS) -> "BinPrior":
        """A BinPrior, None (uniform), or {category: (bins x 2) table} with '*' for every category."""
        if prior is None:
            return cls()
        if isinstance(prior, BinPrior):
            return prior
        if isinstance(prior, Mapping):
            tables = {str(k): _pseudo(v, bins, repr(k)) for k, v in prior.items()}
            overall = tables.pop("*", None)
            return cls(categories=tables, overall=overall)
        raise ValueError(f"prior must be None, a BinPrior or a {{category: pseudo-counts}} mapping, "
                         f"not {type(prior).__name__}")

    @property
    def empty(self) -> bool:
        return not self.categories and not self.kinds and self.overall is None

    def has_category(self, category: str) -> bool:
        return category in self.categories

    def weight(self, category: str, bins: int = BINS) -> np.ndarray:
        """Decisions per bin behind the category's prior (zeros for a category it does not know)."""
        if category in self.seen:
            return np.asarray(self.seen[category], dtype=float)
        if category in self.categories:
            return np.asarray(self.categories[category], dtype=float).sum(axis=1)
        return np.zeros(bins)


# --- how much groups differ -----------------------------------------------------------------------

def _counts(evidence: pd.DataFrame, key: str | None, bins: int) -> dict[str, np.ndarray]:
    """{group: (bins x 2) array of (accepted, overridden)} for one grouping of the evidence."""
    if key is None:
        codes, names = np.zeros(len(evidence), dtype=int), ["all"]
    else:
        codes, names = pd.factorize(evidence[key], sort=True)
    cells = codes * bins + evidence["bin"].to_numpy(dtype=int)
    size = len(names) * bins
    accepted = np.bincount(cells, weights=evidence["accepted"].to_numpy(dtype=float), minlength=size)
    total = np.bincount(cells, minlength=size).astype(float)
    table = np.stack([accepted, total - accepted], axis=1).reshape(len(names), bins, 2)
    return {str(name): table[i] for i, name in enumerate(names)}


def moments(units: np.ndarray) -> np.ndarray:
    """Per cell, the sums the spread estimator needs: units (K, cells, 2) of (accepted, overridden)
    give (cells, 5) of N, A, K (units with answers), sum a^2/n and sum n^2."""
    n, a = units.sum(axis=2), units[..., 0]
    ratio = np.divide(a ** 2, n, out=np.zeros_like(n), where=n > 0)
    return np.stack([n.sum(axis=0), a.sum(axis=0), (n > 0).sum(axis=0), ratio.sum(axis=0),
                     (n ** 2).sum(axis=0)], axis=1)


def spread(stats: np.ndarray) -> tuple[float, float]:
    """(numerator, denominator) of the moment estimator of rho over cells of `moments` rows.

    For units i with a_i of n_i accepted around a pooled rate p, the weighted squared
    deviation sum n_i (p_i - p)^2 has expectation (K - 1) p (1 - p) + rho p (1 - p)
    (N - sum n_i^2 / N) under a Beta-Binomial with intra-class correlation rho; the two
    parts, summed over cells, estimate rho as numerator / denominator.
    """
    n, a, k, ratio, n_sq = (stats[:, i] for i in range(5))
    use = (k >= 2) & (n > 0)
    if not use.any():
        return 0.0, 0.0
    n, a, k, ratio, n_sq = n[use], a[use], k[use], ratio[use], n_sq[use]
    p = a / n
    deviation = ratio - a ** 2 / n
    return float((deviation - (k - 1) * p * (1 - p)).sum()), float((p * (1 - p) * (n - n_sq / n)).sum())


def strength(numerator: float, denominator: float, guess: float | None = None,
             guess_weight: float | None = None) -> float:
    """Pseudo-decisions a parent's mean is worth in a child: s = 1/rho - 1, rho shrunk towards the guess.

    The guess rho0 = 1/(guess + 1) counts as `guess_weight` answers at p = 1/2, so a few
    answers cannot claim that groups are all alike (or all different).
    """
    rho0 = 1 / ((S_GUESS if guess is None else guess) + 1)
    prior_den = (GUESS_WEIGHT if guess_weight is None else guess_weight) * 0.25
    rho = (numerator + rho0 * prior_den) / (denominator + prior_den)
    rho = float(np.clip(rho, 1 / (S_MAX + 1), 1 / (S_MIN + 1)))
    return 1 / rho - 1


def _sibling_strength(groups: Mapping[str, np.ndarray], parent_of: Mapping[str, str]) -> float:
    """One s for children within their parents (e.g. categories within kinds), from every sibling set."""
    numerator = denominator = 0.0
    for parent in set(parent_of.values()):
        siblings = [groups[g] for g, p in parent_of.items() if p == parent and g in groups]
        if len(siblings) >= 2:
            top, bottom = spread(moments(np.stack(siblings)))
            numerator, denominator = numerator + top, denominator + bottom
    return strength(numerator, denominator)


# --- the hierarchy --------------------------------------------------------------------------------

def _mean(total: np.ndarray) -> np.ndarray:
    return total[:, 0] / total.sum(axis=1)


@dataclass(frozen=True)
class Node:
    """One group's posterior per bin: prior pseudo-counts (global and from its parent) and own counts."""

    name: str
    counts: np.ndarray
    from_global: np.ndarray
    from_parent: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.counts + self.from_global + self.from_parent

    @property
    def mean(self) -> np.ndarray:
        return _mean(self.total)

    def weighs(self, weights: np.ndarray) -> str:
        """Whose evidence weighs most here: "own" (all its answers), "global" or "parent" (what
        they add to a typical bin, weighted by where the category's decisions fall)."""
        share = weights / weights.sum()
        own = self.counts.sum()
        from_global = float(share @ self.from_global.sum(axis=1))
        from_parent = float(share @ self.from_parent.sum(axis=1))
        if own > 0 and own >= max(from_global, from_parent):
            return "own"
        return "global" if from_global >= from_parent else "parent"


def _child(name: str, counts: np.ndarray, parent: np.ndarray, s: float, known: np.ndarray | None) -> Node:
    """A group under its parent: the parent's mean worth s pseudo-decisions, except in the bins
    the global priors know for this group (they speak for it; the parent fills their gaps)."""
    g = np.zeros_like(counts) if known is None else known
    pull = np.where(g.sum(axis=1) > 0, 0.0, s)[:, None]
    mean = _mean(parent)
    return Node(name, counts, g, pull * np.stack([mean, 1 - mean], axis=1))


# --- a group's shift from its parent -------------------------------------------------------------

def _logit_mean(parent: np.ndarray) -> np.ndarray:
    mean = np.clip(_mean(parent), 1e-6, 1 - 1e-6)
    return np.log(mean / (1 - mean))


def _expit(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _shift(base: np.ndarray, counts: np.ndarray, tau: float) -> tuple[float, float]:
    """(u, information): the group's log-odds shift from its parent's per-bin means (logit p_b =
    base_b + u), the MAP under u ~ N(0, tau^2), and the Fisher information behind it.

    The log-posterior is strictly concave in u, so a few Newton steps find it (numpy only:
    scipy.optimize would cost half a second of import in the kernel for one scalar)."""
    accepted, n = counts[:, 0], counts.sum(axis=1)
    u = 0.0
    for _ in range(50):
        p = _expit(base + u)
        gradient = (accepted - n * p).sum() - u / tau ** 2
        curvature = (n * p * (1 - p)).sum() + 1 / tau ** 2
        step = float(np.clip(gradient / curvature, -1.0, 1.0))
        u += step
        if abs(step) < 1e-8:
            break
    p = _expit(base + u)
    return u, float((n * p * (1 - p)).sum())


def _tau(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """How far sibling groups' log-odds shifts spread (DerSimonian-Laird's moment estimator over
    (parent base, counts) pairs), shrunk towards TAU_GUESS while there are few groups."""
    fits = [_shift(base, counts, TAU_MAX) for base, counts in pairs if counts.sum() > 0]
    fits = [(u, info) for u, info in fits if info > 1e-9]
    tau2 = 0.0
    if len(fits) >= 2:
        u, w = np.array(fits).T
        centre = (w * u).sum() / w.sum()
        scale = w.sum() - (w ** 2).sum() / w.sum()
        tau2 = max(0.0, ((w * (u - centre) ** 2).sum() - (len(fits) - 1)) / scale)
    tau2 = (len(fits) * tau2 + TAU_WEIGHT * TAU_GUESS ** 2) / (len(fits) + TAU_WEIGHT)
    return float(np.clip(np.sqrt(tau2), TAU_MIN, TAU_MAX))


def _shifted(parent: np.ndarray, counts: np.ndarray, tau: float) -> np.ndarray:
    """The parent's per-bin means moved by the group's own shift (as (p, 1 - p) rows): a category
    accepted more often than its kind in the bins it was answered in is likely so in the others
    too, so its answers in one range of confidence speak for the whole curve."""
    if counts.sum() == 0:
        return parent
    base = _logit_mean(parent)
    mean = _expit(base + _shift(base, counts, tau)[0])
    return np.stack([mean, 1 - mean], axis=1)


class Hierarchy:
    """All, kinds and categories of one history, under the global priors, counted once."""

    def __init__(self, frame: pd.DataFrame, prior: BinPrior, bins: int) -> None:
        evidence = frame[frame["evidence"]]
        self.bins, self.prior = bins, prior
        self.by_category = _counts(evidence, "category", bins)
        self.by_kind = _counts(evidence, "task_kind", bins)
        overall = _counts(evidence, None, bins).get("all", np.zeros((bins, 2)))
        pairs = frame.groupby(["category", "task_kind"]).size().sort_index()
        mine = {category: kind for category, kind in pairs.groupby(level=0).idxmax()} if len(pairs) else {}
        self.kind_of = {**dict(prior.kind_of), **mine}
        self.root = self._root(overall)
        kinds = set(self.by_kind) | set(prior.kinds) | set(self.kind_of.values())
        s_kind = _sibling_strength(self.by_kind, {k: "all" for k in self.by_kind})
        base = _logit_mean(self.root.total)
        tau_kind = _tau([(base, counts) for counts in self.by_kind.values()])
        self.kinds = {}
        for k in sorted(kinds):
            counts = self.by_kind.get(k, np.zeros((bins, 2)))
            self.kinds[k] = _child(k, counts, _shifted(self.root.total, counts, tau_kind), s_kind,
                                   prior.kinds.get(k))
        self.s_category = _sibling_strength(self.by_category, self.kind_of)
        self.tau_category = _tau([(_logit_mean(self._parent(c)), counts) for c, counts in self.by_category.items()])

    def _root(self, overall: np.ndarray) -> Node:
        """All the person's answers; each bin starts from their pooled rate (or the global one)."""
        if self.prior.overall is not None:
            return _child("all", overall, np.ones((self.bins, 2)), S_MIN, self.prior.overall)
        pooled = 1 + overall.sum(axis=0)                     # Beta(1, 1) over every bin together
        s_bin = strength(*spread(moments(overall[:, None, :])))
        return _child("all", overall, np.tile(pooled, (self.bins, 1)), s_bin, None)

    def _parent(self, name: str) -> np.ndarray:
        kind = self.kinds.get(self.kind_of.get(name, "unknown"))
        return kind.total if kind is not None else self.root.total

    def category(self, name: str) -> Node:
        counts = self.by_category.get(name, np.zeros((self.bins, 2)))
        parent = _shifted(self._parent(name), counts, self.tau_category)
        return _child(name, counts, parent, self.s_category, self.prior.categories.get(name))

    def level(self, node: Node, weights: np.ndarray) -> tuple[str, str, int]:
        """Whose evidence weighs most in the category's estimate: (level, source, answers behind it)."""
        kind = self.kinds.get(self.kind_of.get(node.name, "unknown"))
        for level, group in (("category", node), ("task_kind", kind), ("all", self.root)):
            if group is None:
                continue
            weighs = group.weighs(weights)
            if weighs == "own":
                return level, group.name, int(group.counts.sum())
            if weighs == "global":
                return "prior", f"prior:{group.name}", int(group.from_global.sum())
        if self.root.counts.sum() > 0:              # the person's answers pooled over every bin
            return "all", "all", int(self.root.counts.sum())
        return "prior", "uniform", 0


# --- the posterior --------------------------------------------------------------------------------

def _interval(alpha: np.ndarray, beta: np.ndarray, credible: float) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed credible interval of Beta(alpha, beta): exact with scipy, else normal."""
    tail = (1 - credible) / 2
    try:
        from scipy.special import betaincinv     # scipy.stats.beta.ppf's core, without scipy.stats' import time
    except ImportError:
        mean = alpha / (alpha + beta)
        sd = np.sqrt(alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1)))
        z = NormalDist().inv_cdf(1 - tail)
        return np.clip(mean - z * sd, 0, 1), np.clip(mean + z * sd, 0, 1)
    return betaincinv(alpha, beta, tail), betaincinv(alpha, beta, 1 - tail)


def isotonic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted pool-adjacent-violators: the closest non-decreasing sequence.

    Confidence is assumed to mean something: a bin estimated below a lower one is
    pooled with it, each weighing by its own evidence, so a bin nobody answered in
    takes the value of the answered bins below it rather than pulling them down.
    """
    blocks: list[list[float]] = []           # [value, weight, size]
    for value, weight in zip(values, weights):
        blocks.append([float(value), float(weight), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            value, weight, size = blocks.pop()
            last = blocks[-1]
            total = last[1] + weight
            last[0] = (last[0] * last[1] + value * weight) / total
            last[1], last[2] = total, last[2] + size
    return np.repeat([b[0] for b in blocks], [b[2] for b in blocks])


def made_monotone(total: np.ndarray, evidence: np.ndarray) -> np.ndarray:
    """The (alpha, beta) per bin with means made non-decreasing (strengths kept)."""
    strength_ = total.sum(axis=1)
    mean = isotonic(_mean(total), evidence + 0.1)
    return np.stack([mean * strength_, (1 - mean) * strength_], axis=1)


def _weights(frame: pd.DataFrame, prior: BinPrior, category: str, bins: int) -> np.ndarray:
    """How the category's decisions spread over the bins: its own, plus everyone's shape worth
    PRIOR_SHAPE decisions, plus half a decision per bin (a range never seen is not waved through)."""
    own = np.bincount(frame.loc[frame["category"] == category, "bin"].to_numpy(dtype=int), minlength=bins)
    shape = prior.weight(category, bins)
    shape = PRIOR_SHAPE * shape / shape.sum() if shape.sum() > 0 else shape
    return own + shape + SMOOTHING


def categories_of(frame: pd.DataFrame, prior: BinPrior) -> list[str]:
    """Every category in the history and every one the global priors know."""
    return sorted(set(frame["category"].unique()) | set(prior.categories))


def calibrate(history: pd.DataFrame, prior: BinPrior | Mapping[str, Any] | None = None, bins: int = BINS,
              credible: float = CREDIBLE, monotone: bool = False) -> pd.DataFrame:
    """P(the person keeps the agent's choice | confidence bin), per category, with its uncertainty.

    One row per (category, bin): group (the category), level and source (whose evidence
    weighs most, see the module doc), bin_low/bin_high, n and accepted (the category's own
    answered decisions in the bin), prior_n (pseudo-decisions its prior adds), p_mean,
    p_low, p_high. With monotone=True, bins that break "more confident, more often kept"
    are pooled with their neighbours, each weighing by its evidence (what the thresholds use).
    A category the global priors know appears even before the person met it.
    """
    prior = BinPrior.coerce(prior, bins)
    frame = decisions(history, bins, allow_empty=not prior.empty)
    return calibrate_checked(frame, prior, bins, credible, monotone)


def calibrate_checked(frame: pd.DataFrame, prior: BinPrior | Mapping[str, Any] | None = None,
                      bins: int = BINS, credible: float = CREDIBLE, monotone_: bool = False) -> pd.DataFrame:
    """calibrate() on a frame decisions() already checked (so callers check only once)."""
    prior = BinPrior.coerce(prior, bins)
    tree = Hierarchy(frame, prior, bins)
    categories = categories_of(frame, prior)
    nodes = [tree.category(c) for c in categories]
    weights = [_weights(frame, prior, c, bins) for c in categories]
    levels = [tree.level(node, w) for node, w in zip(nodes, weights)]
    totals = np.stack([made_monotone(n.total, n.counts.sum(axis=1) + n.from_global.sum(axis=1)) if monotone_
                       else n.total for n in nodes]) if nodes else np.zeros((0, bins, 2))
    alpha, beta = totals[..., 0].ravel(), totals[..., 1].ravel()
    low, high = _interval(alpha, beta, credible)
    counts = np.stack([n.counts for n in nodes]) if nodes else np.zeros((0, bins, 2))
    edges = np.round(np.arange(bins + 1) / bins, 10)
    result = pd.DataFrame({
        "group": np.repeat(categories, bins), "level": np.repeat([lv[0] for lv in levels], bins),
        "source": np.repeat([lv[1] for lv in levels], bins), "bin": np.tile(np.arange(bins), len(nodes)),
        "bin_low": np.tile(edges[:-1], len(nodes)), "bin_high": np.tile(edges[1:], len(nodes)),
        "n": counts.sum(axis=2).ravel().astype(int), "accepted": counts[..., 0].ravel().astype(int),
        "prior_n": (totals.sum(axis=2) - counts.sum(axis=2)).ravel(),
        "p_mean": alpha / (alpha + beta), "p_low": low, "p_high": high})
    result.attrs["without_confidence"] = frame.attrs.get("without_confidence", 0)
    result.attrs["behind"] = {c: lv[2] for c, lv in zip(categories, levels)}
    result.attrs["weights"] = dict(zip(categories, weights))
    return result
