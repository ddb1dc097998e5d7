"""How much the person is asked: the four autonomy tiers.

Tier 1, supervised: every decision and every file change is asked.
Tier 2, balanced: by the agent's confidence. Above `proceed_above` it proceeds;
  from `ask_below` to `proceed_above` (both ends included) it proceeds and logs
  the decision for a later look; below `ask_below` it asks. Whatever the
  confidence, it also asks before a change to a critical path or one that
  deletes or rewrites a large share of an existing file.
Tier 3, autonomous: never asks about a decision or a change; asks only on
  errors (tool failures in a row) or when the agent says it is blocked.
Tier 4, full auto: asks nothing; every decision is listed afterwards for review.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping

TIER_NAMES = {1: "supervised", 2: "balanced", 3: "autonomous", 4: "full auto"}


class Action(str, Enum):
    PROCEED = "auto"        # go on, record the decision
    LOG = "log"             # go on, and list it for the person to look at
    CHECKPOINT = "human"    # wait for an answer


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str

    @property
    def asks(self) -> bool:
        return self.action is Action.CHECKPOINT


def check_tier(tier: object) -> int:
    if isinstance(tier, bool) or not isinstance(tier, int) or tier not in TIER_NAMES:
        names = ", ".join(f"{k} {v}" for k, v in TIER_NAMES.items())
        raise ValueError(f"tier must be 1-4 ({names}); got {tier!r}")
    return tier


@dataclass(frozen=True)
class Thresholds:
    ask_below: float = 0.70
    proceed_above: float = 0.90

    def __post_init__(self) -> None:
        for name in ("ask_below", "proceed_above"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")
        if self.ask_below > self.proceed_above:
            raise ValueError(f"thresholds out of order: ask_below ({self.ask_below}) must not be "
                             f"above proceed_above ({self.proceed_above})")

    @classmethod
    def parse(cls, value: Any, where: str = "thresholds") -> "Thresholds":
        if isinstance(value, Thresholds):
            return value
        try:
            if isinstance(value, Mapping):
                return cls(**value)
            ask_below, proceed_above = value
            return cls(ask_below, proceed_above)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: give [ask_below, proceed_above] (e.g. [0.7, 0.9]); {exc}") from None


def _matches(path: str, pattern: str) -> bool:
    """Glob match where `**/` may also match nothing (so `**/auth/**` matches `auth/x.py`)."""
    candidates = [pattern]
    while candidates[-1].startswith("**/"):
        candidates.append(candidates[-1][3:])
    return any(fnmatch.fnmatchcase(path, p) for p in candidates)


def changed_share(old: str, new: str) -> float:
    """The share of the old file's lines that the new text removes or replaces."""
    old_lines = old.splitlines()
    if not old_lines:
        return 0.0
    kept = sum(block.size for block in
               difflib.SequenceMatcher(None, old_lines, new.splitlines(), autojunk=False).get_matching_blocks())
    return 1 - kept / len(old_lines)


@dataclass
class AutonomyPolicy:
    tier: int = 2
    thresholds: Thresholds = field(default_factory=Thresholds)
    by_category: dict[str, Thresholds] = field(default_factory=dict)
    tier_by_kind: dict[str, int] = field(default_factory=dict)
    critical_paths: list[str] = field(default_factory=lambda: ["**/migrations/**"])
    rewrite_share: float = 0.5
    errors_in_a_row: int = 3
    reasons: dict[str, str] = field(default_factory=dict)   # why a learned category is asked, for its cards

    def __post_init__(self) -> None:
        check_tier(self.tier)
        self.thresholds = Thresholds.parse(self.thresholds)
        self.by_category = {c: Thresholds.parse(t, f"thresholds for {c!r}") for c, t in self.by_category.items()}
        for kind, tier in self.tier_by_kind.items():
            try:
                check_tier(tier)
            except ValueError as exc:
                raise ValueError(f"tier_by_kind[{kind!r}]: {exc}") from None
        if not 0 < self.rewrite_share <= 1:
            raise ValueError(f"rewrite_share must be in (0, 1], got {self.rewrite_share!r}")

    def tier_for(self, kind: str | None) -> int:
        return self.tier_by_kind.get(kind or "", self.tier)

    def thresholds_for(self, category: str) -> Thresholds:
        return self.by_category.get(category, self.thresholds)

    def decide(self, confidence: float, category: str = "general", kind: str | None = None,
               blocked: bool = False) -> Verdict:
        tier = self.tier_for(kind)
        if blocked and tier < 4:
            return Verdict(Action.CHECKPOINT, "the agent says it is blocked")
        if tier == 1:
            return Verdict(Action.CHECKPOINT, "tier 1 (supervised) asks every decision")
        if tier == 4:
            return Verdict(Action.PROCEED, "tier 4 (full auto) decides alone; listed for review")
        limits = self.thresholds_for(category)
        if confidence > limits.proceed_above and limits.ask_below < 1.0:
            return Verdict(Action.PROCEED, f"confidence {confidence:.2f} is above {limits.proceed_above:.2f}")
        if tier == 2 and (confidence < limits.ask_below or limits.ask_below >= 1.0):
            why = self.reasons.get(category) or (f"confidence {confidence:.2f} is below {limits.ask_below:.2f} "
                                                 f"for {category} decisions (tier 2)")
            return Verdict(Action.CHECKPOINT, why)
        return Verdict(Action.LOG, f"confidence {confidence:.2f}: proceed and log (tier {tier})")

    def review_write(self, path: str, old: str | None, new: str, kind: str | None = None) -> Verdict:
        """Should a change to `path` (old text None: a new file) be shown before it is made?"""
        tier = self.tier_for(kind)
        if tier == 1:
            return Verdict(Action.CHECKPOINT, "tier 1 (supervised) approves every file change")
        if tier == 2:
            for pattern in self.critical_paths:
                if _matches(path, pattern):
                    return Verdict(Action.CHECKPOINT, f"{path} is a critical path ({pattern})")
            if old:
                share = changed_share(old, new)
                if share > self.rewrite_share:
                    what = "deletes" if not new.strip() else "rewrites"
                    return Verdict(Action.CHECKPOINT, f"the change {what} {share:.0%} of the existing "
                                                      f"{path} (asks above {self.rewrite_share:.0%})")
        return Verdict(Action.PROCEED, "")

    def on_errors(self, consecutive: int, kind: str | None = None) -> Verdict:
        if consecutive >= self.errors_in_a_row and self.tier_for(kind) < 4:
            return Verdict(Action.CHECKPOINT, f"{consecutive} tool calls failed in a row")
        return Verdict(Action.PROCEED, "")

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "thresholds": [self.thresholds.ask_below, self.thresholds.proceed_above],
                "by_category": {c: [t.ask_below, t.proceed_above] for c, t in self.by_category.items()},
                "tier_by_kind": dict(self.tier_by_kind), "critical_paths": list(self.critical_paths),
                "rewrite_share": self.rewrite_share, "errors_in_a_row": self.errors_in_a_row,
                "reasons": dict(self.reasons)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AutonomyPolicy":
        return cls(**data)
