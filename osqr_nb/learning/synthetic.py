"""Seeded synthetic decision histories and route outcomes, for the analysis notebook, tests and benchmark.

A synthetic person has a hidden acceptance curve per category: the probability
of keeping the agent's choice as a function of the agent's confidence,
floor + (ceiling - floor) * logistic((confidence - middle) / width). The
defaults differ on purpose: docs and naming choices are almost always kept
(and the agent is needlessly unsure of them), auth choices are often changed
even when the agent is sure, the rest lie between. The agent's confidence per
category follows a Beta distribution. Most decisions are routine, as in most
coding work; the contentious ones are a fifth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..store.frames import HISTORY_COLUMNS


@dataclass(frozen=True)
class Curve:
    """P(the person keeps the agent's choice | confidence)."""

    floor: float
    ceiling: float
    middle: float
    width: float

    def __call__(self, confidence: np.ndarray | float) -> np.ndarray:
        c = np.asarray(confidence, dtype=float)
        return self.floor + (self.ceiling - self.floor) / (1 + np.exp(-(c - self.middle) / self.width))


@dataclass(frozen=True)
class CategorySpec:
    share: float            # of all decisions
    task_kind: str
    confidence: tuple[float, float]   # Beta(a, b) of the agent's confidence
    curve: Curve


CATEGORIES: dict[str, CategorySpec] = {
    "docs": CategorySpec(0.32, "docs", (2.5, 2.5), Curve(0.97, 0.998, 0.30, 0.10)),
    "naming": CategorySpec(0.22, "refactor", (3.0, 2.5), Curve(0.85, 0.995, 0.40, 0.08)),
    "tests": CategorySpec(0.20, "tests", (3.0, 2.0), Curve(0.60, 0.99, 0.45, 0.06)),
    "api": CategorySpec(0.12, "code", (4.0, 2.0), Curve(0.30, 0.98, 0.55, 0.05)),
    "data_model": CategorySpec(0.07, "architecture", (4.0, 2.0), Curve(0.20, 0.97, 0.65, 0.05)),
    "auth": CategorySpec(0.07, "code", (5.0, 2.0), Curve(0.30, 0.70, 0.60, 0.10)),
}
# The seed's routing table, by route name; synthetic only (the real one is osqr_nb.routing).
MODELS: dict[str, list[str]] = {
    "code": ["codex", "claude-sonnet"], "architecture": ["claude-opus"], "docs": ["claude-sonnet", "gpt-4o"],
    "refactor": ["claude-sonnet"], "tests": ["codex"],
}
# How much more (or less) often the person keeps a model's choice, on top of the category's curve.
MODEL_EFFECT = {"codex": 0.0, "claude-sonnet": 0.01, "claude-opus": 0.02, "gpt-4o": -0.02}


def user_categories(rng: np.random.Generator | None = None, spread: float = 0.0) -> dict[str, CategorySpec]:
    """The default categories, each curve shifted by up to `spread` for one simulated person."""
    if rng is None or spread == 0:
        return dict(CATEGORIES)
    people = {}
    for name, spec in CATEGORIES.items():
        c = spec.curve
        shift = rng.uniform(-spread, spread, size=2)
        curve = replace(c, floor=float(np.clip(c.floor + shift[0], 0, c.ceiling)),
                        middle=float(np.clip(c.middle + shift[1], 0.05, 0.95)))
        people[name] = replace(spec, curve=curve)
    return people


def draw_decisions(n: int, rng: np.random.Generator,
                   categories: dict[str, CategorySpec] | None = None) -> pd.DataFrame:
    """n decisions: category, task_kind, model, confidence and the hidden p_accept; `accepted` drawn."""
    specs = categories or CATEGORIES
    names = list(specs)
    shares = np.array([specs[c].share for c in names])
    category = rng.choice(names, size=n, p=shares / shares.sum())
    frame = pd.DataFrame({"category": category})
    frame["task_kind"] = frame["category"].map({c: s.task_kind for c, s in specs.items()})
    frame["model"] = [MODELS[k][rng.integers(len(MODELS[k]))] for k in frame["task_kind"]]
    confidence = np.empty(n)
    p_accept = np.empty(n)
    for name in names:
        rows = np.flatnonzero(category == name)
        confidence[rows] = rng.beta(*specs[name].confidence, size=rows.size)
        p_accept[rows] = specs[name].curve(confidence[rows])
    frame["confidence"] = confidence.round(3)
    effect = frame["model"].map(MODEL_EFFECT).fillna(0.0).to_numpy()
    frame["p_accept"] = np.clip(p_accept + effect, 0.0, 1.0)
    frame["accepted"] = rng.random(n) < frame["p_accept"].to_numpy()
    return frame


def _decided_by(frame: pd.DataFrame, rng: np.random.Generator, ask_below: float | None) -> np.ndarray:
    person = np.where(rng.random(len(frame)) < 0.1, "code", "human")
    if ask_below is None:
        return person
    confidence = frame["confidence"].to_numpy()
    machine = np.where(confidence > 0.9, "auto", "log")
    return np.where(confidence < ask_below, person, machine)


def synthetic_history(n: int = 2000, seed: int = 0, ask_below: float | None = None) -> pd.DataFrame:
    """A history frame with the columns of osqr_nb.history() plus `model`, seeded.

    By default every decision was answered by the person (or their code), as at
    tier 1, so a what-if over it is exact. With ask_below, only decisions below it
    were asked; the rest proceeded ('log' up to 0.9, 'auto' above) with the
    agent's choice, as tier 2 would have done.
    """
    rng = np.random.default_rng(seed)
    frame = draw_decisions(n, rng)
    decided_by = _decided_by(frame, rng, ask_below)
    answered = np.isin(decided_by, ("human", "code"))
    options = np.array(["A", "B", "C"])
    proposed = options[rng.integers(3, size=n)]
    other = options[(np.searchsorted(options, proposed) + rng.integers(1, 3, size=n)) % 3]
    chosen = np.where(answered & ~frame["accepted"].to_numpy(), other, proposed)
    created = pd.Timestamp("2026-01-05", tz="UTC") + pd.to_timedelta(np.arange(n) * 90 + rng.integers(0, 60, n), "s")
    latency = np.where(answered, rng.integers(5, 300, n), 0)
    history = pd.DataFrame({
        "run_id": [f"run-{i // 25:04d}" for i in range(n)], "task_id": [f"t{(i // 5) % 5}" for i in range(n)],
        "task_kind": frame["task_kind"], "category": frame["category"], "confidence": frame["confidence"],
        "proposed": proposed, "chosen": chosen, "decided_by": decided_by,
        "created_at": created, "resolved_at": created + pd.to_timedelta(latency, "s")})
    return history[HISTORY_COLUMNS].assign(model=frame["model"].to_numpy())


# Per (task kind, model): (success probability, mean cost in dollars, mean seconds) of a task.
ROUTE_TRUTH = {
    ("code", "codex"): (0.72, 0.40, 240), ("code", "claude-sonnet"): (0.86, 0.55, 200),
    ("docs", "claude-sonnet"): (0.90, 0.20, 90), ("docs", "gpt-4o"): (0.88, 0.08, 70),
    ("tests", "codex"): (0.80, 0.30, 150), ("tests", "claude-sonnet"): (0.82, 0.35, 160),
}


def synthetic_outcomes(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Route outcomes (task_kind, model, success, cost_usd, seconds) drawn from ROUTE_TRUTH, seeded."""
    rng = np.random.default_rng(seed)
    keys = list(ROUTE_TRUTH)
    picks = rng.integers(len(keys), size=n)
    truth = np.array([ROUTE_TRUTH[keys[i]] for i in picks])
    return pd.DataFrame({
        "task_kind": [keys[i][0] for i in picks], "model": [keys[i][1] for i in picks],
        "success": rng.random(n) < truth[:, 0],
        "cost_usd": (truth[:, 1] * rng.lognormal(0, 0.3, n)).round(4),
        "seconds": (truth[:, 2] * rng.lognormal(0, 0.3, n)).round(1)})
