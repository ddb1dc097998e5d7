"""How much the person is asked: the four autonomy tiers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

TIER_NAMES = {1: "supervised", 2: "balanced", 3: "autonomous", 4: "full auto"}


class Action(str, Enum):
    PROCEED = "auto"        # go on, record the decision
    LOG = "log"             # go on, and list it for the person to look at
    CHECKPOINT = "human"    # wait for an answer


def check_tier(tier: object) -> int:
    if isinstance(tier, bool) or not isinstance(tier, int) or tier not in TIER_NAMES:
        names = ", ".join(f"{k} {v}" for k, v in TIER_NAMES.items())
        raise ValueError(f"tier must be 1-4 ({names}); got {tier!r}")
    return tier


@dataclass
class AutonomyPolicy:
    """Tier 1 asks every decision; tier 2 asks below `ask_below` and logs below
    `proceed_above`; tier 3 never asks about a decision it is given, but logs
    the unsure ones; tier 4 proceeds on everything."""

    tier: int = 2
    ask_below: float = 0.70
    proceed_above: float = 0.90

    def __post_init__(self) -> None:
        check_tier(self.tier)

    def decide(self, confidence: float, category: str = "general") -> Action:
        if self.tier == 1:
            return Action.CHECKPOINT
        if self.tier == 4:
            return Action.PROCEED
        if confidence >= self.proceed_above:
            return Action.PROCEED
        if self.tier == 2 and confidence < self.ask_below:
            return Action.CHECKPOINT
        return Action.LOG
