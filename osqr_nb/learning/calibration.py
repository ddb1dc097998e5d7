"""How often the person keeps the agent's choice, as a function of the agent's confidence.

Only decisions a person (or the person's code) answered are evidence: an
auto-proceed or a logged decision says nothing about what the person would have
chosen. A decision is *accepted* when the chosen option is the proposed one.

The estimate is Beta-Binomial per confidence bin (10 bins, bin i holds
[i/10, (i+1)/10) and the last also holds 1.0, the same bins the GPKV payload
uses): the posterior of bin i is Beta(1 + a0 + accepted, 1 + o0 + overridden),
where (a0, o0) are prior pseudo-counts (none by default: a uniform Beta(1, 1);
global priors from `osqr_nb.learning.pkv.priors_from` otherwise). We report the
posterior mean and an equal-tailed credible interval (90% by default, so p_low
is a one-sided 95% lower bound); scipy gives the exact Beta quantiles
(scipy.special.betaincinv, what scipy.stats.beta.ppf computes, without importing
scipy.stats), and without scipy a normal approximation with the same mean and
variance is used.

Each category is calibrated on the most specific evidence there is enough of
(`min_n` answered decisions): the category itself; else global priors for that
category, when given (what everyone taught us about it beats the person's
unrelated decisions); else the category's task kind; else all the person's
decisions; else the prior alone with the category's few decisions. The
`level` column says which one was used.
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


def decisions(history: pd.DataFrame, bins: int = BINS) -> pd.DataFrame:
    """The history checked and reduced to what learning needs, one row per decision with a confidence.

    Accepts the frame of `osqr_nb.history()` (accepted = chosen == proposed) or of
    `PKV.history()` (proposed_was_accepted). Rows without a confidence are left out:
    they are decisions no confidence gates (file changes, budgets, errors) and the
    tier-2 thresholds never see them; how many were left out is in
    `.attrs["without_confidence"]`. A history where nothing is left is an error.
    """
    if not isinstance(history, pd.DataFrame):
        raise ValueError(f"history must be a pandas DataFrame such as osqr_nb.history(), "
                         f"not {type(history).__name__}")
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

    They are added to the uniform Beta(1, 1), so an all-zero prior is the uniform one.
    """

    categories: Mapping[str, np.ndarray] = field(default_factory=dict)
    kinds: Mapping[str, np.ndarray] = field(default_factory=dict)
    overall: np.ndarray | None = None

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

    def has_category(self, category: str) -> bool:
        return category in self.categories

    def lookup(self, category: str | None = None, kind: str | None = None) -> tuple[np.ndarray | None, str]:
        """The most specific pseudo-counts for a category and/or kind, and what they are for."""
        if category is not None and category in self.categories:
            return self.categories[category], f"prior:{category}"
        if kind is not None and kind in self.kinds:
            return self.kinds[kind], f"prior:{kind}"
        if self.overall is not None:
            return self.overall, "prior:all"
        return None, "uniform"


# --- counting and the posterior ------------------------------------------------------------------

def _counts(evidence: pd.DataFrame, key: str | None, bins: int) -> dict[str, np.ndarray]:
    """{group: (bins x 2) array of (accepted, overridden)} for one grouping of the evidence."""
    if key is None:
        codes, names = np.zeros(len(evidence), dtype=int), ["all"]
    else:
        codes, names = pd.factorize(evidence[key], sort=True)
    cells = codes * bins + evidence["bin"].to_numpy()
    size = len(names) * bins
    accepted = np.bincount(cells, weights=evidence["accepted"].to_numpy(dtype=float), minlength=size)
    total = np.bincount(cells, minlength=size).astype(float)
    table = np.stack([accepted, total - accepted], axis=1).reshape(len(names), bins, 2)
    return {str(name): table[i] for i, name in enumerate(names)}


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


def _monotone(total: np.ndarray) -> np.ndarray:
    """Per bin, the (accepted, overridden) of its pool: adjacent bins that break the order are pooled.

    Pool-adjacent-violators on the posterior means: a bin more often overridden than
    a lower one is noise until proven otherwise, so they share their counts. A bin
    with no counts at all takes the pool of the nearest lower bin that has some
    (confidence is assumed to mean something); below every counted bin it stays empty.
    """
    blocks: list[list] = []               # [first bin, last bin, accepted, overridden]
    for b in np.flatnonzero(total.sum(axis=1) > 0):
        blocks.append([b, b, *total[b]])
        while len(blocks) > 1 and _mean(blocks[-2]) > _mean(blocks[-1]):
            last = blocks.pop()
            blocks[-1][1], blocks[-1][2], blocks[-1][3] = last[1], blocks[-1][2] + last[2], blocks[-1][3] + last[3]
    pooled = np.zeros_like(total)
    for i, (first, _, accepted, overridden) in enumerate(blocks):
        end = blocks[i + 1][0] if i + 1 < len(blocks) else len(total)
        pooled[first:end] = (accepted, overridden)
    return pooled


def _mean(block: list) -> float:
    return (1 + block[2]) / (2 + block[2] + block[3])


def posterior(counts: np.ndarray, pseudo: np.ndarray | None, credible: float = CREDIBLE,
              monotone: bool = False) -> pd.DataFrame:
    """Posterior mean and interval per bin of Beta(1 + prior + accepted, 1 + prior + overridden)."""
    pseudo = np.zeros_like(counts) if pseudo is None else pseudo
    total = _monotone(pseudo + counts) if monotone else pseudo + counts
    alpha, beta = 1 + total[:, 0], 1 + total[:, 1]
    low, high = _interval(alpha, beta, credible)
    return pd.DataFrame({"n": counts.sum(axis=1).astype(int), "accepted": counts[:, 0].astype(int),
                         "prior_n": pseudo.sum(axis=1), "p_mean": alpha / (alpha + beta),
                         "p_low": low, "p_high": high})


# --- choosing the evidence ------------------------------------------------------------------------

@dataclass(frozen=True)
class Evidence:
    """The counts and prior one category is calibrated on, and where they come from."""

    level: str
    source: str
    counts: np.ndarray
    pseudo: np.ndarray | None

    @property
    def n(self) -> int:
        return int(self.counts.sum())


class _Pool:
    """Every grouping of the evidence, counted once, to choose from per category."""

    def __init__(self, frame: pd.DataFrame, prior: BinPrior, min_n: int, bins: int) -> None:
        evidence = frame[frame["evidence"]]
        self.bins, self.min_n, self.prior = bins, min_n, prior
        self.by_category = _counts(evidence, "category", bins)
        self.by_kind = _counts(evidence, "task_kind", bins)
        self.overall = _counts(evidence, None, bins).get("all", np.zeros((bins, 2)))
        pairs = frame.groupby(["category", "task_kind"]).size().sort_index()
        self.kind_of = {category: kind for category, kind in pairs.groupby(level=0).idxmax()}

    def _enough(self, counts: np.ndarray) -> bool:
        return counts.sum() >= self.min_n

    def choose(self, category: str) -> Evidence:
        zeros = np.zeros((self.bins, 2))
        own = self.by_category.get(category, zeros)
        kind = self.kind_of.get(category, "unknown")
        if self._enough(own):
            return Evidence("category", category, own, self.prior.lookup(category, kind)[0])
        if self.prior.has_category(category):
            return Evidence("prior", f"prior:{category}", own, self.prior.lookup(category)[0])
        kind_counts = self.by_kind.get(kind, zeros)
        if self._enough(kind_counts):
            return Evidence("task_kind", kind, kind_counts, self.prior.lookup(kind=kind)[0])
        if self._enough(self.overall):
            return Evidence("all", "all", self.overall, self.prior.lookup()[0])
        pseudo, source = self.prior.lookup(category, kind)
        return Evidence("prior", source, own, pseudo)


def check_min_n(min_n: Any) -> int:
    if isinstance(min_n, bool) or not isinstance(min_n, (int, np.integer)) or min_n < 1:
        raise ValueError(f"min_n must be a whole number of decisions >= 1, got {min_n!r}")
    return int(min_n)


def calibrate(history: pd.DataFrame, prior: BinPrior | Mapping[str, Any] | None = None, min_n: int = 20,
              bins: int = BINS, credible: float = CREDIBLE, monotone: bool = False) -> pd.DataFrame:
    """P(the person keeps the agent's choice | confidence bin), per category, with its uncertainty.

    One row per (category, bin): group (the category), level and source (the evidence
    used, see the module doc), bin_low/bin_high, n and accepted (answered decisions in
    the bin at that level), prior_n (pseudo-counts added), p_mean, p_low, p_high.
    With monotone=True, bins that break "more confident, more often kept" are pooled
    with their neighbours and empty bins take the pool below them (what the
    thresholds use); n and accepted stay the bin's own.
    """
    return calibrate_checked(decisions(history, bins), prior, min_n, bins, credible, monotone)


def calibrate_checked(frame: pd.DataFrame, prior: BinPrior | Mapping[str, Any] | None = None, min_n: int = 20,
                      bins: int = BINS, credible: float = CREDIBLE, monotone: bool = False) -> pd.DataFrame:
    """calibrate() on a frame decisions() already checked (so callers check only once)."""
    pool = _Pool(frame, BinPrior.coerce(prior, bins), check_min_n(min_n), bins)
    categories = sorted(frame["category"].unique())
    chosen = [pool.choose(category) for category in categories]
    counts = np.stack([e.counts for e in chosen])
    pseudo = np.stack([np.zeros((bins, 2)) if e.pseudo is None else e.pseudo for e in chosen])
    total = pseudo + counts
    if monotone:
        total = np.stack([_monotone(t) for t in total])
    alpha, beta = 1 + total[..., 0].ravel(), 1 + total[..., 1].ravel()
    low, high = _interval(alpha, beta, credible)
    edges = np.round(np.arange(bins + 1) / bins, 10)
    result = pd.DataFrame({
        "group": np.repeat(categories, bins), "level": np.repeat([e.level for e in chosen], bins),
        "source": np.repeat([e.source for e in chosen], bins), "bin": np.tile(np.arange(bins), len(chosen)),
        "bin_low": np.tile(edges[:-1], len(chosen)), "bin_high": np.tile(edges[1:], len(chosen)),
        "n": counts.sum(axis=2).ravel().astype(int), "accepted": counts[..., 0].ravel().astype(int),
        "prior_n": pseudo.sum(axis=2).ravel(), "p_mean": alpha / (alpha + beta), "p_low": low, "p_high": high})
    result.attrs["without_confidence"] = frame.attrs["without_confidence"]
    return result
