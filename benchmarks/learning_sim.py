"""Learned thresholds against the static 0.70/0.90: how often the person is asked, how often wrongly not.

Simulated people (osqr_nb.learning.synthetic: hidden per-category acceptance
curves, each person's shifted a little) meet a stream of agent decisions. Every
policy sees the same decisions and the same hidden answers, so the comparison
is paired:

- static: tier 2 with 0.70/0.90: asks below 0.70, proceeds (logged or not) above.
- learned: starts as static; every --relearn decisions, recommend_thresholds on
  what the person answered so far sets each category's ask_below (based on the
  category, its task kind or everything; a recommendation resting on the
  uniform prior alone is ignored). A share --audit of the decisions that would
  proceed is asked anyway, so that confident ranges get evidence too; audits
  count as checkpoints.
- learned + global priors: the same, starting from priors (priors_from: the
  population's counts, weighed by how much its people differ) aggregated from
  --population other simulated people who ran static tier 2 with the same
  audits: a new user inherits what others taught.
- oracle: per category the threshold the learned rule would pick if it knew the
  person's hidden curve; no audits, no warm-up. The bound for the rule.

A wrong auto-proceed is a decision that went ahead that the person would have
changed. Figures are per 100 decisions, over all decisions (warm-up included)
and over the last third. Goal: the learned policy asks at least 50% less than
static with at most 5 wrong auto-proceeds per 100.

    python benchmarks/learning_sim.py [--users 8] [--decisions 3000] [--relearn 150]
        [--target 0.05] [--audit 0.03] [--spread 0.05] [--population 20] [--seed 0] [--check]
    python benchmarks/learning_sim.py --online [--seed 0]    # a new user's first 200 decisions

--online: 40 new users meet their first 200 decisions one by one, thresholds
recomputed every 10 from the answers so far, for static 0.70, the learner
alone and the learner with priors from 30 earlier users (asks and wrong
auto-proceeds per 100, first and second 100 apart).

Exit code 0 unless --check is given and the goal is missed over all decisions by
"learned + global priors" (what a new user gets), or by "learned" with --population 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from osqr_nb.learning import BinPrior, evidence_counts, priors_from, recommend_thresholds
from osqr_nb.learning.thresholds import proceeding
from osqr_nb.learning.synthetic import draw_decisions, user_categories

STATIC = (0.70, 0.90)
GOAL_FEWER = 0.50
GOAL_WRONG = 5.0
ONLINE_FALL = 0.30        # alone: asks in the second half at least 30% below the first
ONLINE_FEWER = 0.35       # with priors: at least 35% fewer asks than static from the start


@dataclass
class Outcome:
    """Per decision: was it asked, and did it go ahead against the person's wish."""

    asked: np.ndarray
    wrong: np.ndarray

    def per_100(self, part: slice = slice(None)) -> tuple[float, float]:
        return 100 * self.asked[part].mean(), 100 * self.wrong[part].mean()


def static_policy(stream: pd.DataFrame) -> Outcome:
    asked = stream["confidence"].to_numpy() < STATIC[0]
    return Outcome(asked, ~asked & ~stream["accepted"].to_numpy())


def oracle_policy(stream: pd.DataFrame, target: float, bins: int = 10) -> Outcome:
    """Per category the smallest bin edge whose auto-proceeds are wrong at most `target` of the time,
    knowing the person's hidden curve: the best the learned rule could do."""
    confidence, p = stream["confidence"].to_numpy(), stream["p_accept"].to_numpy()
    asked = np.zeros(len(stream), dtype=bool)
    for rows in stream.groupby("category").indices.values():
        for t in np.arange(bins + 1) / bins:
            goes = rows[confidence[rows] >= t]
            if not goes.size or (1 - p[goes]).mean() <= target:
                break
        asked[rows] = ~proceeding(confidence[rows], t)
    return Outcome(asked, ~asked & ~stream["accepted"].to_numpy())


def answered_history(stream: pd.DataFrame, asked: np.ndarray) -> pd.DataFrame:
    """What the log would hold: answered decisions with the person's answer, the rest proceeded."""
    confidence = stream["confidence"].to_numpy()
    decided_by = np.where(asked, "human", np.where(confidence > STATIC[1], "auto", "log"))
    return pd.DataFrame({"category": stream["category"], "task_kind": stream["task_kind"],
                         "model": stream["model"], "confidence": confidence, "decided_by": decided_by,
                         "proposed_was_accepted": np.where(asked, stream["accepted"].to_numpy(), True)})


def learned_limits(history: pd.DataFrame, target: float, prior: BinPrior | None) -> dict[str, float]:
    """ask_below per category from the history so far (static where there is no evidence yet)."""
    if prior is None and not (history["decided_by"] == "human").any():
        return {}
    frame = recommend_thresholds(history, target_wrong_rate=target, prior=prior)
    trusted = frame[frame["source"] != "uniform"]
    return dict(zip(trusted["category"], trusted["checkpoint_below"]))


def learned_policy(stream: pd.DataFrame, rng: np.random.Generator, relearn: int, target: float,
                   audit: float, prior: BinPrior | None) -> Outcome:
    """Thresholds recomputed every `relearn` decisions from what was answered so far; with priors,
    the first decision already follows them."""
    n = len(stream)
    confidence = stream["confidence"].to_numpy()
    accepted = stream["accepted"].to_numpy()
    audits = rng.random(n) < audit
    asked = np.zeros(n, dtype=bool)
    limits = learned_limits(answered_history(stream.iloc[:0], asked[:0]), target, prior)
    for start in range(0, n, relearn):
        part = slice(start, min(start + relearn, n))
        ask_below = stream["category"].iloc[part].map(limits).fillna(STATIC[0]).to_numpy(dtype=float)
        asked[part] = ~proceeding(confidence[part], ask_below) | audits[part]
        limits = learned_limits(answered_history(stream.iloc[:part.stop], asked[:part.stop]), target, prior)
    return Outcome(asked, ~asked & ~accepted)


def population_prior(people: int, decisions: int, audit: float, spread: float, seed: int) -> BinPrior:
    """Global priors: the answered counts of people who ran static tier 2 with audits, each with
    their contributor id (as the service counts them), so priors_from sees how much people differ."""
    counts = []
    for person in range(people):
        rng = np.random.default_rng([seed, 10_000 + person])
        stream = draw_decisions(decisions, rng, user_categories(rng, spread))
        asked = (stream["confidence"].to_numpy() < STATIC[0]) | (rng.random(len(stream)) < audit)
        counts.append(evidence_counts(answered_history(stream, asked)).assign(contributor=person))
    return priors_from(pd.concat(counts, ignore_index=True))


def simulate(args: argparse.Namespace) -> dict[str, list[Outcome]]:
    prior = population_prior(args.population, args.decisions, args.audit, args.spread, args.seed) \
        if args.population else None
    results: dict[str, list[Outcome]] = {"static 0.70/0.90": [], "learned": []}
    if prior is not None:
        results["learned + global priors"] = []
    results["oracle (knows the curves)"] = []
    for person in range(args.users):
        rng = np.random.default_rng([args.seed, person])
        stream = draw_decisions(args.decisions, rng, user_categories(rng, args.spread))
        results["static 0.70/0.90"].append(static_policy(stream))
        results["learned"].append(learned_policy(stream, np.random.default_rng([args.seed, person, 1]),
                                                 args.relearn, args.target, args.audit, None))
        if prior is not None:
            results["learned + global priors"].append(learned_policy(
                stream, np.random.default_rng([args.seed, person, 1]), args.relearn, args.target, args.audit, prior))
        results["oracle (knows the curves)"].append(oracle_policy(stream, args.target))
    return results


def table(results: dict[str, list[Outcome]], decisions: int) -> pd.DataFrame:
    last_third = slice(decisions - decisions // 3, None)
    rows = []
    for name, outcomes in results.items():
        overall = np.mean([o.per_100() for o in outcomes], axis=0)
        late = np.mean([o.per_100(last_third) for o in outcomes], axis=0)
        rows.append({"policy": name, "checkpoints/100": overall[0], "wrong auto/100": overall[1],
                     "checkpoints/100 (last third)": late[0], "wrong auto/100 (last third)": late[1]})
    frame = pd.DataFrame(rows).set_index("policy")
    for column, label in (("checkpoints/100", "fewer"), ("checkpoints/100 (last third)", "fewer (last third)")):
        frame[label] = (1 - frame[column] / frame[column].iloc[0]).map("{:.0%}".format)
    return frame


def goal(frame: pd.DataFrame, name: str, column: str = "checkpoints/100", wrong: str = "wrong auto/100") -> bool:
    base = frame[column].iloc[0]
    row = frame.loc[name]
    return bool(row[column] <= (1 - GOAL_FEWER) * base and row[wrong] <= GOAL_WRONG)


def verdicts(frame: pd.DataFrame) -> list[str]:
    lines = []
    for name in frame.index:
        if not name.startswith("learned"):
            continue
        overall = goal(frame, name)
        late = goal(frame, name, "checkpoints/100 (last third)", "wrong auto/100 (last third)")
        lines.append(f"  {name}: {'met' if overall else 'missed'} over all decisions, "
                     f"{'met' if late else 'missed'} over the last third")
    return lines


def simulate_online(args: argparse.Namespace) -> dict[str, list[Outcome]]:
    """A new user's first decisions, one by one: static, the learner alone, the learner with priors."""
    prior = population_prior(args.population, args.population_decisions, args.audit, args.spread, args.seed)
    results: dict[str, list[Outcome]] = {"static 0.70": [], "learned alone": [],
                                         f"learned + priors ({args.population} users)": []}
    for person in range(args.users):
        rng = np.random.default_rng([args.seed, person])
        stream = draw_decisions(args.decisions, rng, user_categories(rng, args.spread))
        results["static 0.70"].append(static_policy(stream))
        for name, given in (("learned alone", None), (f"learned + priors ({args.population} users)", prior)):
            results[name].append(learned_policy(stream, np.random.default_rng([args.seed, person, 1]),
                                                args.relearn, args.target, args.audit, given))
    return results


def online_table(results: dict[str, list[Outcome]], decisions: int) -> pd.DataFrame:
    half = decisions // 2
    rows = []
    for name, outcomes in results.items():
        first, second, whole = (np.mean([o.per_100(part) for o in outcomes], axis=0)
                                for part in (slice(0, half), slice(half, decisions), slice(None)))
        rows.append({"policy": name, "asks/100 (first half)": first[0], "asks/100 (second half)": second[0],
                     "asks/100": whole[0], "wrong auto/100": whole[1],
                     "wrong auto/100 (first half)": first[1]})
    frame = pd.DataFrame(rows).set_index("policy")
    frame["asks fall, first to second half"] = 1 - frame["asks/100 (second half)"] / frame["asks/100 (first half)"]
    frame["fewer asks than static"] = 1 - frame["asks/100"] / frame["asks/100"].iloc[0]
    return frame


def online_verdicts(frame: pd.DataFrame) -> list[tuple[str, bool]]:
    """The issue's targets for a new user's first decisions."""
    alone, priors = frame.iloc[1], frame.iloc[2]
    return [("at most 5 wrong auto-proceeds per 100 in every mode", bool((frame["wrong auto/100"] <= GOAL_WRONG).all())),
            ("alone: asks in the second half at least 30% below the first",
             bool(alone["asks fall, first to second half"] >= ONLINE_FALL)),
            ("with priors: at least 35% fewer asks than static from the start",
             bool(priors["fewer asks than static"] >= ONLINE_FEWER
                  and 1 - priors["asks/100 (first half)"] / frame["asks/100 (first half)"].iloc[0] >= ONLINE_FEWER))]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--online", action="store_true",
                        help="a new user's first decisions: defaults 40 users x 200 decisions, relearn 10")
    parser.add_argument("--users", type=int, help="simulated people (default 8, online 40)")
    parser.add_argument("--decisions", type=int, help="decisions per person (default 3000, online 200)")
    parser.add_argument("--relearn", type=int, help="re-learn every N decisions (default 150, online 10)")
    parser.add_argument("--target", type=float, default=0.05, help="target wrong auto-proceed rate (0.05)")
    parser.add_argument("--audit", type=float, default=0.03,
                        help="share of would-proceed decisions asked anyway, for evidence (0.03)")
    parser.add_argument("--spread", type=float, default=0.05, help="how much people's curves differ (0.05)")
    parser.add_argument("--population", type=int,
                        help="people behind the global priors; 0 skips that policy (default 20, online 30)")
    parser.add_argument("--population-decisions", type=int, default=1500,
                        help="decisions each of them made (online mode; default 1500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="exit 1 if the goal is missed")
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    defaults = {"users": (8, 40), "decisions": (3000, 200), "relearn": (150, 10), "population": (20, 30)}
    for name, (long_run, online) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, online if args.online else long_run)
    return args


def main_online(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    frame = online_table(simulate_online(args), args.decisions)
    print(f"online: {args.users} new users x their first {args.decisions} decisions, thresholds re-learned every "
          f"{args.relearn}, target {args.target:.0%} wrong, audit {args.audit:.0%}, priors from "
          f"{args.population} users x {args.population_decisions}, seed {args.seed}\n")
    shown = frame.copy()
    for column in ("asks fall, first to second half", "fewer asks than static"):
        shown[column] = shown[column].map("{:.0%}".format)
    with pd.option_context("display.float_format", "{:.1f}".format, "display.width", 200):
        print(shown.to_string())
    verdicts = online_verdicts(frame)
    print(f"\n[{time.perf_counter() - started:.1f} s]")
    print("\n".join(f"  {'met' if ok else 'MISSED'}: {text}" for text, ok in verdicts))
    return 0 if all(ok for _, ok in verdicts) or not args.check else 1


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.online:
        return main_online(args)
    started = time.perf_counter()
    frame = table(simulate(args), args.decisions)
    with pd.option_context("display.float_format", "{:.1f}".format, "display.width", 160):
        print(f"{args.users} people x {args.decisions} decisions, re-learned every {args.relearn}, "
              f"target {args.target:.0%} wrong, audit {args.audit:.0%}, seed {args.seed}\n")
        print(frame.to_string())
    print(f"\ngoal: >= {GOAL_FEWER:.0%} fewer checkpoints than static, <= {GOAL_WRONG:g} wrong auto-proceeds "
          f"per 100  [{time.perf_counter() - started:.1f} s]")
    print("\n".join(verdicts(frame)))
    shipped = "learned + global priors" if "learned + global priors" in frame.index else "learned"
    return 0 if goal(frame, shipped) or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
