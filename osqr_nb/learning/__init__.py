"""Learning from decisions: calibration, thresholds, the personal store (PKV) and learned routes.

Pure functions over pandas frames (plus one SQLite file for the PKV), so the
policy, the cards, `%osqr route` and the analysis notebook all read the same
numbers. See each module's docstring for its method.
"""

from __future__ import annotations

from .calibration import BINS, BinPrior, calibrate, confidence_bin, decisions
from .pkv import PKV, evidence_counts, priors_from
from .routes import cascade_routes, rank_routes, route_report, route_stats
from .synthetic import synthetic_history, synthetic_outcomes
from .thresholds import apply_thresholds, explain, explanations, recommend_thresholds, whatif

__all__ = ["BINS", "BinPrior", "PKV", "apply_thresholds", "calibrate", "cascade_routes", "confidence_bin", "decisions",
           "evidence_counts", "explain", "explanations", "priors_from", "rank_routes", "recommend_thresholds",
           "route_report", "route_stats", "synthetic_history", "synthetic_outcomes", "whatif"]
