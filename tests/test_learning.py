"""Learning from decisions: calibration, thresholds, PKV, learned routes, on histories with known answers."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from osqr_nb.autonomy.policy import Action, AutonomyPolicy, Thresholds
from osqr_nb.learning.routes import OUTSIDER_PRIOR, TABLE_NEXT_PRIOR, TABLE_PRIOR, noticing
from osqr_nb.learning import (PKV, apply_thresholds, calibrate, cascade_routes, evidence_counts, explain,
                              priors_from, rank_routes, recommend_thresholds, route_report, route_stats,
                              synthetic_history, synthetic_outcomes, whatif)
from osqr_nb.learning.pkv import DECISION_COLUMNS, default_path
from osqr_nb.store.frames import HISTORY_COLUMNS

ROOT = Path(__file__).parent.parent
NOTEBOOK = ROOT / "notebooks" / "autonomy_analysis.ipynb"


def history_of(rule, n: int = 2000, category: str = "cat", kind: str = "code", seed: int = 0,
               decided_by: str = "human") -> pd.DataFrame:
    """A history whose answers follow `rule(confidence) -> accepted`, confidences uniform on [0, 1]."""
    rng = np.random.default_rng(seed)
    confidence = rng.random(n).round(4)
    accepted = rule(confidence, rng)
    return pd.DataFrame({
        "run_id": "r", "task_id": "t", "task_kind": kind, "category": category, "confidence": confidence,
        "proposed": "A", "chosen": np.where(accepted, "A", "B"), "decided_by": decided_by,
        "created_at": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), "s"),
        "resolved_at": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) + 5, "s")})


def above(limit: float):
    return lambda c, rng: c >= limit


def rate(p: float):
    return lambda c, rng: rng.random(c.size) < p


def row(frame: pd.DataFrame, category: str) -> pd.Series:
    return frame.set_index("category").loc[category]


# --- calibration ---------------------------------------------------------------------------------

def test_calibration_recovers_known_acceptance_per_bin():
    history = history_of(lambda c, rng: rng.random(c.size) < c, n=20000)   # P(accept) = confidence
    cal = calibrate(history)
    assert list(cal.columns[:6]) == ["group", "level", "source", "bin", "bin_low", "bin_high"]
    assert len(cal) == 10 and (cal["level"] == "category").all()
    truth = (cal["bin_low"] + cal["bin_high"]) / 2
    assert np.allclose(cal["p_mean"], truth, atol=0.03)
    assert ((cal["p_low"] <= truth + 0.01) & (truth - 0.01 <= cal["p_high"])).all()
    assert (cal["p_low"] < cal["p_mean"]).all() and (cal["p_mean"] < cal["p_high"]).all()
    assert cal["n"].sum() == 20000


def test_only_person_decisions_are_evidence():
    answered = history_of(rate(0.5), n=300)
    machine = history_of(rate(1.0), n=3000, decided_by="auto", seed=1)
    cal = calibrate(pd.concat([answered, machine], ignore_index=True))
    assert cal["n"].sum() == 300                      # auto-proceeds say nothing about the person
    assert abs(cal["accepted"].sum() / 300 - 0.5) < 0.1


def test_normal_approximation_without_scipy(monkeypatch):
    history = history_of(rate(0.8), n=2000)
    exact = calibrate(history)
    monkeypatch.setitem(sys.modules, "scipy.special", None)      # import fails as if scipy were absent
    approx = calibrate(history)
    assert np.allclose(exact["p_mean"], approx["p_mean"])
    assert np.allclose(exact["p_low"], approx["p_low"], atol=0.02)


# --- thresholds with known answers ---------------------------------------------------------------

def test_accepted_only_above_point_eight_gives_thresholds_at_point_eight():
    rec = recommend_thresholds(history_of(above(0.8)))
    r = row(rec, "cat")
    assert r["checkpoint_below"] == pytest.approx(0.8) and r["proceed_above"] == pytest.approx(0.8)
    assert r["expected_checkpoints_per_100"] == pytest.approx(80, abs=3)
    assert r["expected_wrong_per_100"] < 1
    assert r["based_on"] == "category" and r["n"] == 2000


def test_always_overridden_never_proceeds_alone():
    rec = recommend_thresholds(history_of(lambda c, rng: np.zeros(c.size, bool)))
    r = row(rec, "cat")
    assert r["checkpoint_below"] == 1.0 and r["proceed_above"] == 1.0
    assert r["expected_checkpoints_per_100"] == pytest.approx(100)
    assert r["expected_wrong_per_100"] == 0
    policy = AutonomyPolicy()
    apply_thresholds(rec, policy)
    assert policy.decide(0.99, "cat").action is Action.CHECKPOINT


def test_always_accepted_asks_nothing():
    r = row(recommend_thresholds(history_of(rate(1.0))), "cat")
    assert r["checkpoint_below"] == 0.0 and r["expected_checkpoints_per_100"] == 0


def test_wrong_share_stays_under_target_and_categories_differ():
    history = pd.concat([history_of(rate(0.99), category="docs", kind="docs"),
                         history_of(lambda c, rng: rng.random(c.size) < 0.4 + 0.3 * c, category="auth", seed=2),
                         history_of(lambda c, rng: rng.random(c.size) < c ** 0.3, category="api", seed=3)],
                        ignore_index=True)
    rec = recommend_thresholds(history, target_wrong_rate=0.05).set_index("category")
    assert rec.loc["docs", "checkpoint_below"] <= 0.1
    assert rec.loc["auth", "checkpoint_below"] == 1.0
    assert 0.3 <= rec.loc["api", "checkpoint_below"] <= 0.9
    proceeds = 100 - rec["expected_checkpoints_per_100"]
    share = (rec["expected_wrong_per_100"] / proceeds.where(proceeds > 0)).fillna(0)
    assert (share <= 0.05 + 1e-9).all()
    assert (rec["checkpoint_below"] <= rec["proceed_above"]).all()
    stricter = recommend_thresholds(history, target_wrong_rate=0.01).set_index("category")
    assert (stricter["checkpoint_below"] >= rec["checkpoint_below"]).all()


def test_history_asked_only_below_point_seven_can_still_lower_thresholds():
    """Monotone calibration: answers below 0.7 speak for the unanswered range above."""
    history = history_of(rate(0.995), n=3000, category="docs", kind="docs")
    history.loc[history["confidence"] >= 0.7, "decided_by"] = "log"
    r = row(recommend_thresholds(history), "docs")
    assert r["checkpoint_below"] <= 0.1


# --- fallback and priors -------------------------------------------------------------------------

def thin_and_thick() -> pd.DataFrame:
    return pd.concat([history_of(rate(0.5), n=5, category="auth", kind="code", seed=1),
                      history_of(above(0.6), n=400, category="api", kind="code", seed=2),
                      history_of(rate(0.9), n=8, category="style", kind="review", seed=3)], ignore_index=True)


def test_a_thin_category_moves_with_its_first_answers_and_borrows_the_rest():
    """No minimum count: three overrides already lower a category's estimate; what it lacks comes from its kind."""
    base = history_of(above(0.6), n=400, category="api", kind="code", seed=2)
    unanswered = history_of(rate(1.0), n=3, category="auth", kind="code", seed=1, decided_by="auto")
    overridden = history_of(lambda c, rng: np.zeros(c.size, bool), n=3, category="auth", kind="code", seed=1)
    before, after = (calibrate(pd.concat([base, few], ignore_index=True), monotone=True).query("group == 'auth'")
                     for few in (unanswered, overridden))
    assert before["level"].iat[0] == "task_kind" and after["n"].sum() == 3
    high = before["bin"] >= 6                               # where the kind says "kept"
    assert (after["p_mean"][high.to_numpy()].to_numpy() < before["p_mean"][high].to_numpy() - 0.1).all()


def test_a_category_kept_in_one_range_of_confidence_is_trusted_across_its_curve():
    """Two dozen answers, none overridden, all at confidence 0.1-0.6: the category proceeds from low
    confidence, even where it was never answered, while a sibling that is overridden stays careful."""
    kept = history_of(rate(1.0), n=24, category="docs", kind="docs", seed=3)
    kept["confidence"] = np.linspace(0.1, 0.6, 24).round(3)
    contested = history_of(lambda c, rng: rng.random(c.size) < 0.3 + 0.6 * c, n=120, category="auth",
                           kind="code", seed=4)
    frame = recommend_thresholds(pd.concat([kept, contested], ignore_index=True), target_wrong_rate=0.05)
    assert row(frame, "docs")["checkpoint_below"] <= 0.1
    assert row(frame, "auth")["checkpoint_below"] >= 0.9


def test_levels_say_whose_evidence_weighs_most():
    rec = recommend_thresholds(thin_and_thick()).set_index("category")
    assert (rec.loc["api", "based_on"], rec.loc["api", "n"]) == ("category", 400)
    assert rec.loc["auth", "n_category"] == 5 and rec.loc["auth", "checkpoint_below"] == 1.0
    assert rec.loc["api", "checkpoint_below"] == pytest.approx(0.6)
    thin = recommend_thresholds(history_of(rate(0.5), n=6))
    assert (thin["based_on"] == "all").all() and (thin["checkpoint_below"] == 1.0).all()   # careful, not blind


def global_rows(category: str, accepted: int, overridden: int, bins=range(10)) -> list[dict]:
    return [{"category": category, "task_kind": "code", "model": "codex", "bin": b,
             "accepted": accepted, "overridden": overridden} for b in bins]


def population(spread: float, people: int = 30, p: float = 0.8, seed: int = 1) -> list[dict]:
    """Per-contributor counts of people whose acceptance rate differs by up to +-spread."""
    rng = np.random.default_rng(seed)
    rows = []
    for person in range(people):
        rate_ = np.clip(p + rng.uniform(-spread, spread), 0, 1)
        accepted = rng.binomial(40, rate_, size=10)
        rows += [{**row, "accepted": int(a), "overridden": int(40 - a), "contributor": person}
                 for row, a in zip(global_rows("auth", 0, 0), accepted)]
    return rows


def test_global_priors_weigh_as_much_as_users_agree():
    alike, apart = priors_from(population(0.0)), priors_from(population(0.2))
    assert (alike.categories["auth"].sum(axis=1) >= 150).all()       # 1,200 decisions of people alike
    # people 0.2 apart: rho = var / p(1-p) = (0.2^2 / 3) / 0.16, so s = 1/rho - 1 is about 11
    assert np.allclose(apart.categories["auth"].sum(axis=1), 11, atol=5)
    assert np.allclose(alike.categories["auth"][:, 0] / alike.categories["auth"].sum(axis=1), 0.8, atol=0.03)
    gaps = []
    for n in (0, 10, 40, 400):                                  # n answers per bin of a person at 0.2
        history = history_of(rate(0.2), n=max(n, 1) * 10, category="auth", seed=n)
        if n == 0:
            history = history.iloc[:1].assign(decided_by="auto")
        cal = calibrate(history, prior=apart)
        gaps.append(abs(cal["p_mean"].mean() - 0.2))
    assert gaps[0] > 0.5 and gaps == sorted(gaps, reverse=True) and gaps[-1] < 0.05


def test_unanimous_global_evidence_lets_a_new_user_proceed():
    """The issue's case: two contributors accepted 40 of 40 auth decisions at 0.6."""
    rows = [{**global_rows("auth", 40, 0, bins=[6])[0], "contributor": who} for who in ("a", "b")]
    prior = priors_from(rows)
    empty = pd.DataFrame(columns=HISTORY_COLUMNS)
    fresh = row(recommend_thresholds(empty, prior=prior), "auth")
    assert (fresh["based_on"], fresh["source"]) == ("prior", "prior:auth")
    assert fresh["checkpoint_below"] == pytest.approx(0.6)
    assert fresh["expected_wrong_per_100"] < 5
    second_run = history_of(rate(1.0), n=2, category="auth").assign(confidence=[0.45, 0.5])
    after = row(recommend_thresholds(second_run, prior=prior), "auth")
    uniform = row(recommend_thresholds(second_run), "auth")
    assert after["checkpoint_below"] <= 0.6 < uniform["checkpoint_below"]


def test_an_empty_history_gets_a_row_for_every_category_the_prior_knows():
    prior = priors_from(global_rows("auth", 2, 98) + global_rows("docs", 99, 1))
    empty = pd.DataFrame(columns=HISTORY_COLUMNS)
    rec = recommend_thresholds(empty, prior=prior).set_index("category")
    assert set(rec.index) == {"auth", "docs"} and (rec["based_on"] == "prior").all()
    assert rec.loc["auth", "checkpoint_below"] == 1.0 and rec.loc["docs", "checkpoint_below"] == 0.0
    assert (rec["decisions"] == 0).all() and (rec["n_category"] == 0).all()
    assert rec.loc["docs", "expected_checkpoints_per_100"] == 0
    mine = recommend_thresholds(history_of(rate(0.9), n=50, category="naming", kind="refactor"), prior=prior)
    assert set(mine["category"]) == {"auth", "docs", "naming"}
    with pytest.raises(ValueError, match="empty"):
        recommend_thresholds(empty)


def test_category_prior_beats_unrelated_personal_evidence():
    prior = priors_from(global_rows("auth", 2, 98))
    rec = recommend_thresholds(thin_and_thick().query("category != 'auth'"), prior=prior).set_index("category")
    assert (rec.loc["auth", "based_on"], rec.loc["auth", "source"]) == ("prior", "prior:auth")
    assert rec.loc["auth", "checkpoint_below"] == 1.0


def test_priors_from_accepts_the_shapes_gpkv_gives():
    rows = global_rows("auth", 3, 1, bins=[7])
    as_frame = priors_from(pd.DataFrame(rows))
    as_payload = priors_from({"decisions": rows})
    as_keys = priors_from({("auth", "code", "codex", 7): {"accepted": 3, "overridden": 1}})
    for prior in (as_frame, as_payload, as_keys):
        assert np.allclose(prior.categories["auth"][7], as_frame.categories["auth"][7])
        assert prior.categories["auth"][7].sum() == pytest.approx(4)       # never more than the decisions
        assert prior.kinds["code"][7].sum() == pytest.approx(4) and prior.kind_of == {"auth": "code"}
    served = [{**r, "contributors": 6, "sum_a2_over_n": 1.5, "sum_n2": 2.7} for r in global_rows("auth", 3, 1, [7])]
    assert priors_from({"decisions": served}).categories["auth"][7].sum() == pytest.approx(4)
    with pytest.raises(ValueError, match="bins must be 0-9"):
        priors_from(global_rows("auth", 1, 1, bins=[12]))
    with pytest.raises(ValueError, match="lack the field"):
        priors_from([{"category": "auth"}])


def test_service_moments_and_contributor_rows_give_the_same_prior():
    rows = pd.DataFrame(population(0.1, people=8))
    by_person = priors_from(rows)
    per_owner = rows.assign(n=rows["accepted"] + rows["overridden"])
    served = per_owner.groupby(["category", "task_kind", "model", "bin"], as_index=False).apply(
        lambda g: pd.Series({"accepted": g["accepted"].sum(), "overridden": g["overridden"].sum(),
                             "contributors": len(g), "sum_a2_over_n": (g["accepted"] ** 2 / g["n"]).sum(),
                             "sum_n2": (g["n"] ** 2).sum()}), include_groups=False)
    assert np.allclose(priors_from(served).categories["auth"], by_person.categories["auth"])


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("target", [0, 1, -0.1, 1.5, float("nan"), "0.05", True])
def test_target_outside_zero_one_is_refused(target):
    with pytest.raises(ValueError, match="target_wrong_rate"):
        recommend_thresholds(history_of(rate(0.5), n=50), target_wrong_rate=target)


@pytest.mark.parametrize("history, message", [
    (pd.DataFrame(columns=HISTORY_COLUMNS), "empty"),
    (pd.DataFrame({"category": ["a"], "confidence": [0.5]}), "lacks the column.*task_kind.*decided_by"),
    ([{"category": "a"}], "must be a pandas DataFrame"),
])
def test_malformed_history_is_refused(history, message):
    with pytest.raises(ValueError, match=message):
        recommend_thresholds(history)
    with pytest.raises(ValueError, match=message):
        calibrate(history)


def test_confidences_nan_or_out_of_range_are_named():
    history = history_of(rate(0.5), n=10)
    with pytest.raises(ValueError, match="no decision in the history has a confidence"):
        recommend_thresholds(history.assign(confidence=np.nan))
    with pytest.raises(ValueError, match=r"confidence must be from 0 to 1; rows \[3\] hold \[1.5\]"):
        recommend_thresholds(history.assign(confidence=history["confidence"].where(history.index != 3, 1.5)))
    with pytest.raises(ValueError, match="must be a number"):
        recommend_thresholds(history.assign(confidence="high"))


def test_decisions_without_confidence_are_left_out_and_counted():
    """File-change, budget and error decisions carry no confidence; thresholds never gate them."""
    history = history_of(rate(0.5), n=100)
    history.loc[:9, "confidence"] = np.nan
    rec = recommend_thresholds(history)
    assert rec.attrs["without_confidence"] == 10 and row(rec, "cat")["decisions"] == 90


def test_apply_thresholds_checks_order_and_columns():
    rec = recommend_thresholds(history_of(above(0.8)))
    with pytest.raises(ValueError, match="'cat' are out of order"):
        apply_thresholds(rec.assign(checkpoint_below=0.9, proceed_above=0.5))
    with pytest.raises(ValueError, match="lacks the column"):
        apply_thresholds(rec.drop(columns="proceed_above"))
    with pytest.raises(ValueError, match="thresholds for 'cat'"):
        apply_thresholds(rec.assign(checkpoint_below=-1.0))
    with pytest.raises(ValueError, match="must be an AutonomyPolicy"):
        apply_thresholds(rec, policy=object())


# --- the policy, cards and what-if ----------------------------------------------------------------

def test_apply_thresholds_makes_them_the_policys():
    rec = recommend_thresholds(history_of(above(0.8)))
    policy = AutonomyPolicy(by_category={"budget": Thresholds(0.5, 0.6)})
    learned = apply_thresholds(rec, policy)
    assert learned == {"cat": Thresholds(0.8, 0.8)}
    assert policy.by_category == {"budget": Thresholds(0.5, 0.6), "cat": Thresholds(0.8, 0.8)}
    assert policy.decide(0.75, "cat").asks and not policy.decide(0.85, "cat").asks
    assert AutonomyPolicy.from_dict(policy.to_dict()).by_category == policy.by_category


def test_explain_says_how_often_a_category_is_overridden():
    history = pd.concat([history_of(lambda c, rng: np.arange(c.size) >= 12, n=30, category="auth"),
                         history_of(rate(0.9), n=5, category="naming", kind="refactor", seed=1),
                         history_of(rate(0.9), n=60, category="rename", kind="refactor", seed=2)],
                        ignore_index=True)
    rec = recommend_thresholds(history).set_index("category")
    text = explain("auth", rec.loc["auth"], history)
    assert text.startswith("asked because: auth decisions are overridden 40% of the time (12 of 30)")
    assert "learned: never proceed without asking" in text
    naming = explain("naming", rec.loc["naming"], history, confidence=0.62)
    assert "only 5 naming decisions so far; refactor tasks' decisions are overridden" in naming
    assert "this one is at 0.62" in naming


def test_whatif_replays_answered_decisions():
    history = history_of(above(0.8), n=1000)
    table = whatif(history, {"static": (0.7, 0.9), "learned": apply_thresholds(recommend_thresholds(history)),
                             "none": Thresholds(0.0, 0.0)}).set_index("scenario")
    confidence = history["confidence"]
    assert table.loc["static", "checkpoints_per_100"] == pytest.approx(100 * (confidence < 0.7).mean())
    assert table.loc["static", "wrong_auto_per_100"] == pytest.approx(
        100 * ((confidence >= 0.7) & (confidence < 0.8)).mean())
    assert table.loc["learned", "wrong_auto_per_100"] == 0
    assert table.loc["none", "checkpoints_per_100"] == 0


# --- routes --------------------------------------------------------------------------------------

def outcomes(records: dict[tuple[str, str], tuple[int, int, float]]) -> pd.DataFrame:
    rows = []
    for (kind, model), (wins, losses, cost) in records.items():
        rows += [(kind, model, True, cost, 60.0)] * wins + [(kind, model, False, cost, 60.0)] * losses
    return pd.DataFrame(rows, columns=["task_kind", "model", "success", "cost_usd", "seconds"])


TABLE = {"code": ["codex", "claude-sonnet"], "review": ["claude-opus"]}


def test_rank_routes_prefers_the_better_record():
    record = outcomes({("code", "codex"): (10, 30, 0.3), ("code", "claude-sonnet"): (36, 4, 0.3)})
    assert rank_routes(record, TABLE, explore=False) == {"code": ["claude-sonnet", "codex"],
                                                         "review": ["claude-opus"]}
    firsts = [rank_routes(record, TABLE, rng=seed)["code"][0] for seed in range(100)]
    assert firsts.count("claude-sonnet") > 95


def test_thompson_sampling_still_tries_an_uncertain_model():
    record = outcomes({("code", "codex"): (14, 6, 0.3), ("code", "claude-sonnet"): (1, 1, 0.3)})
    rng = np.random.default_rng(0)
    firsts = [rank_routes(record, TABLE, rng=rng)["code"][0] for _ in range(200)]
    assert 10 < firsts.count("claude-sonnet") < 100


def test_routes_keep_the_table_without_evidence_and_weigh_cost():
    assert rank_routes(None, TABLE) == TABLE
    assert rank_routes(outcomes({("code", "claude-sonnet"): (3, 0, 0.1)}), TABLE, rng=0) == TABLE
    even = outcomes({("code", "codex"): (40, 10, 2.0), ("code", "claude-sonnet"): (40, 10, 0.2)})
    assert rank_routes(even, TABLE, explore=False)["code"] == ["claude-sonnet", "codex"]
    # the table's success is the bar: a dearer model is not bought for success above it ...
    better_but_dear = outcomes({("code", "codex"): (30, 20, 0.2), ("code", "claude-sonnet"): (45, 5, 2.0)})
    assert rank_routes(better_but_dear, TABLE, explore=False)["code"] == ["codex", "claude-sonnet"]
    # ... and a cheaper one is not taken below it, however cheap
    cheap_but_worse = outcomes({("code", "codex"): (45, 5, 2.0), ("code", "claude-sonnet"): (30, 20, 0.02)})
    assert rank_routes(cheap_but_worse, TABLE, explore=False)["code"] == ["codex", "claude-sonnet"]
    assert rank_routes(cheap_but_worse, TABLE, explore=False, budget_usd=1.0)["code"] == ["claude-sonnet", "codex"]
    with pytest.raises(ValueError, match="lack the column"):
        rank_routes(pd.DataFrame({"model": ["codex"]}), TABLE)


def gpkv_answer() -> dict:
    """The shape of osqr-gpkv's GET /v1/priors."""
    route = {"task_kind": "code", "n": 100, "cost_usd_sum": 30.0, "seconds_sum": 6000.0, "contributors": 7}
    return {"schema": 1, "k": 5, "bins": [[i / 10, (i + 1) / 10] for i in range(10)],
            "decisions": [{**r, "contributors": 6} for r in global_rows("auth", 2, 98)],
            "routes": [{**route, "model": "codex", "successes": 40, "failures": 60},
                       {**route, "model": "claude-sonnet", "successes": 90, "failures": 10}]}


def test_new_user_inherits_global_routes_until_own_outcomes_speak():
    answer = gpkv_answer()
    assert rank_routes(None, TABLE, explore=False, prior=answer)["code"] == ["claude-sonnet", "codex"]
    own = outcomes({("code", "codex"): (60, 0, 0.3), ("code", "claude-sonnet"): (5, 55, 0.3)})
    assert rank_routes(own, TABLE, explore=False, prior=answer)["code"] == ["codex", "claude-sonnet"]
    prior = priors_from(answer)                                  # the decisions half of the same answer
    assert prior.categories["auth"].sum() == pytest.approx(100)


def test_route_report_compares_table_and_learned():
    report = route_report(synthetic_outcomes(400, seed=0), {"code": ["codex", "claude-sonnet"],
                                                            "docs": ["claude-sonnet", "gpt-4o"],
                                                            "review": ["claude-opus"]}).set_index("kind")
    assert list(report.columns) == ["table_route", "learned_route", "changed", "n", "model", "success_rate",
                                    "mean_cost_usd", "mean_seconds", "cascade"]
    # codex succeeds less often but costs less per successful task: the table's route stands
    assert report.loc["code", "learned_route"] == "codex → claude-sonnet" and not report.loc["code", "changed"]
    failing = pd.concat([synthetic_outcomes(400, seed=0), outcomes({("code", "codex"): (5, 45, 0.4)})])
    changed = route_report(failing, {"code": ["codex", "claude-sonnet"]}).set_index("kind")
    assert changed.loc["code", "learned_route"] == "claude-sonnet → codex" and changed.loc["code", "changed"]
    assert report.loc["review", "n"] == 0 and not report.loc["review", "changed"]
    assert np.isnan(report.loc["review", "success_rate"])


# --- the personal store --------------------------------------------------------------------------

SECRETS = ("SECRET-proposal-text", "SECRET-choice-text", "run-ID-4242", "task-ID-4242")


def secret_history() -> pd.DataFrame:
    history = synthetic_history(300, seed=3)
    history["proposed"] = history["proposed"].replace("A", SECRETS[0])
    history["chosen"] = history["chosen"].replace({"A": SECRETS[0], "B": SECRETS[1]})
    return history.assign(run_id=SECRETS[2], task_id=SECRETS[3])


def test_pkv_round_trip_stores_no_text_and_no_ids(tmp_path):
    path = tmp_path / "pkv.sqlite"
    pkv = PKV(path)
    history = secret_history()
    assert pkv.record_history(history) == 300
    assert pkv.record_history(history) == 0                       # the same run twice is stored once
    stored = pkv.history()
    assert list(stored.columns) == DECISION_COLUMNS and len(stored) == 300
    accepted = (history["proposed"] == history["chosen"]).to_numpy()
    assert (stored["proposed_was_accepted"].to_numpy() == accepted).all()
    assert (stored["model"].to_numpy() == history["model"].to_numpy()).all()
    pd.testing.assert_frame_equal(recommend_thresholds(stored), recommend_thresholds(history),
                                  check_dtype=False)
    with sqlite3.connect(path) as db:
        columns = [r[1] for r in db.execute("PRAGMA table_info(decisions)")]
        dump = "\n".join(db.iterdump())
    assert columns == DECISION_COLUMNS
    raw = path.read_bytes()
    for secret in SECRETS:
        assert secret not in dump and secret.encode() not in raw


def test_pkv_models_by_task_outcomes_and_aggregates(tmp_path):
    pkv = PKV(tmp_path / "p.sqlite")
    history = secret_history().drop(columns="model")
    pkv.record_history(history, models_by_task={SECRETS[3]: "Claude Sonnet"})
    assert set(pkv.history()["model"]) == {"claude_sonnet"}          # normalised to the payload's names
    pkv.record_outcome("code", "codex", True, cost_usd=0.25, seconds=30)
    pkv.record_outcome("code", "codex", False, cost_usd=0.75, seconds=50)
    out = pkv.outcomes()
    assert out[["task_kind", "model", "success"]].values.tolist() == [["code", "codex", True],
                                                                      ["code", "codex", False]]
    shared = pkv.aggregates()
    answered = history["decided_by"].isin(["human", "code"]).sum()
    assert sum(r["accepted"] + r["overridden"] for r in shared["decisions"]) == answered
    assert shared["routes"] == [{"task_kind": "code", "model": "codex", "successes": 1, "failures": 1, "n": 2,
                                 "cost_usd_sum": 1.0, "seconds_sum": 80.0}]
    pkv.mark_shared(shared["upto"])
    assert pkv.aggregates()["decisions"] == [] and pkv.aggregates(since_last_share=False)["routes"]


def test_pkv_aggregates_pass_the_gpkv_payload_check(tmp_path):
    payload = pytest.importorskip("osqr_nb.gpkv.payload")
    pkv = PKV(tmp_path / "p.sqlite")
    pkv.record_history(synthetic_history(500, seed=4))
    pkv.record_outcome("docs", "gpt-4o", True, 0.1, 20)
    shared = pkv.aggregates()
    checked = payload.validate({"schema": payload.SCHEMA_VERSION, "contributor": payload.new_id(),
                                "upload_id": payload.new_id(), "decisions": shared["decisions"],
                                "routes": shared["routes"]})
    assert len(checked.decisions) == len(shared["decisions"])


def test_pkv_lives_in_the_config_dir_unless_told_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("OSQR_PKV", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path().parent.name == "osqr-nb" and default_path().name == "pkv.sqlite"
    monkeypatch.setenv("OSQR_PKV", str(tmp_path / "elsewhere" / "mine.sqlite"))
    pkv = PKV()
    assert pkv.path == tmp_path / "elsewhere" / "mine.sqlite" and pkv.path.exists()
    assert PKV(tmp_path / "arg.sqlite").path == tmp_path / "arg.sqlite"


def test_population_counts_become_priors():
    counts = [evidence_counts(synthetic_history(1000, seed=seed)).assign(contributor=seed) for seed in range(5)]
    assert set(counts[0].columns) == {"category", "task_kind", "model", "bin", "accepted", "overridden",
                                      "contributor"}
    prior = priors_from(pd.concat(counts))
    assert set(prior.categories) == set(counts[0]["category"])
    for category, table in prior.categories.items():
        assert (table.sum(axis=1) <= prior.seen[category] + 1e-9).all()


# --- synthetic data, benchmark, notebook ----------------------------------------------------------

def test_synthetic_history_is_seeded_and_shaped_like_history():
    a, b = synthetic_history(200, seed=1), synthetic_history(200, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == HISTORY_COLUMNS + ["model"]
    tier2 = synthetic_history(500, seed=1, ask_below=0.7)
    assert set(tier2.loc[tier2["confidence"] < 0.7, "decided_by"]) <= {"human", "code"}
    assert set(tier2.loc[tier2["confidence"] >= 0.7, "decided_by"]) <= {"auto", "log"}


def test_benchmark_runs_small():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import learning_sim
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    args = ["--users", "2", "--decisions", "600", "--population", "2", "--relearn", "200"]
    assert learning_sim.main(args) == 0
    frame = learning_sim.table(learning_sim.simulate(learning_sim.build_parser().parse_args(args)), 600)
    assert frame.loc["static 0.70/0.90", "checkpoints/100"] > frame.loc["learned", "checkpoints/100"]


def test_online_benchmark_runs_small():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import learning_sim
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    args = learning_sim.parse(["--online", "--users", "3", "--decisions", "60", "--population", "4",
                               "--population-decisions", "300"])
    frame = learning_sim.online_table(learning_sim.simulate_online(args), args.decisions)
    assert list(frame.index) == ["static 0.70", "learned alone", "learned + priors (4 users)"]
    assert frame.loc["learned + priors (4 users)", "asks/100"] < frame.loc["static 0.70", "asks/100"]
    assert len(learning_sim.online_verdicts(frame)) == 3


def test_routing_benchmark_lets_every_model_compete():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import routing_sim
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    frame = routing_sim.simulate(routing_sim.build_parser().parse_args(["--users", "1", "--tasks", "300"]))
    assert list(frame.index) == ["table (seed)", "learned", "learned cascade", "oracle (one model per kind)"]
    assert frame.loc["learned cascade", "usd / task"] < frame.loc["table (seed)", "usd / task"]


def test_every_reachable_model_competes_with_the_table_as_prior():
    table = {"docs": ["claude-sonnet"]}
    everyone = ["claude-sonnet", "claude-haiku", "gpt-4o-mini"]
    fresh = rank_routes(None, table, candidates=everyone)
    assert fresh["docs"] == everyone                                       # no evidence: the table first
    record = outcomes({("docs", "claude-sonnet"): (18, 2, 0.09), ("docs", "claude-haiku"): (38, 2, 0.02)})
    assert rank_routes(record, table, explore=False, candidates=everyone)["docs"][0] == "claude-haiku"
    hint = {"claude-sonnet": 26.0, "claude-haiku": 4.5, "gpt-4o-mini": 1.8}
    only_table = outcomes({("docs", "claude-sonnet"): (9, 1, 0.09)})
    ranked = rank_routes(only_table, table, explore=False, candidates=everyone, price_hint=hint)
    assert ranked["docs"][0] == "claude-sonnet"                 # an untried model must earn its place
    firsts = [rank_routes(only_table, table, rng=seed, candidates=everyone, price_hint=hint)["docs"][0]
              for seed in range(200)]
    assert 0 < sum(f != "claude-sonnet" for f in firsts) < 100  # but is tried now and then


def test_a_cascade_tries_a_cheap_model_first_only_when_it_pays():
    table = {"code": ["claude-sonnet"]}
    everyone = ["claude-sonnet", "gpt-4o-mini"]
    solid = outcomes({("code", "claude-sonnet"): (86, 14, 0.26), ("code", "gpt-4o-mini"): (55, 45, 0.018)})
    assert cascade_routes(solid, table, explore=False, candidates=everyone)["code"] == ["gpt-4o-mini",
                                                                                         "claude-sonnet"]
    assert cascade_routes(None, table, candidates=everyone)["code"] == ["claude-sonnet"]   # no evidence
    useless = outcomes({("code", "claude-sonnet"): (86, 14, 0.26), ("code", "gpt-4o-mini"): (1, 99, 0.2)})
    assert cascade_routes(useless, table, explore=False, candidates=everyone)["code"] == ["claude-sonnet"]
    # escalations that the main model never rescues: the cascade would lose success, so it stops
    never = pd.concat([solid, outcomes({("code", "claude-sonnet"): (0, 60, 0.26)}).assign(
        escalated_from="gpt-4o-mini")])
    assert cascade_routes(never, table, explore=False, candidates=everyone)["code"] == ["claude-sonnet"]
    assert route_stats(never).set_index("model").loc["claude-sonnet", "n"] == 100   # first attempts only


def test_a_cascade_whose_failures_the_run_does_not_see_is_dropped():
    """A failure found only later (an override) is never escalated: a cascade that misses many
    loses success its last model alone would have, so it is not taken."""
    table = {"code": ["claude-sonnet"]}
    everyone = ["claude-sonnet", "gpt-4o-mini"]
    main = outcomes({("code", "claude-sonnet"): (86, 14, 0.26)})
    tries = outcomes({("code", "gpt-4o-mini"): (55, 45, 0.018)}).assign(escalate_to="claude-sonnet")

    def escalated(n):
        rescued = outcomes({("code", "claude-sonnet"): (round(n * 0.7), n - round(n * 0.7), 0.26)})
        return rescued.assign(escalated_from="gpt-4o-mini")
    seen = pd.concat([main, tries, escalated(45)])             # every failure seen and escalated
    assert noticing(seen) == {("code", "gpt-4o-mini", "claude-sonnet"): (45, 0)}
    assert cascade_routes(seen, table, explore=False, candidates=everyone)["code"] == ["gpt-4o-mini",
                                                                                        "claude-sonnet"]
    missed = pd.concat([main, tries, escalated(5)])             # 40 of 45 failures found only later
    assert noticing(missed) == {("code", "gpt-4o-mini", "claude-sonnet"): (5, 40)}
    assert cascade_routes(missed, table, explore=False, candidates=everyone)["code"] == ["claude-sonnet"]
    assert route_stats(missed).set_index("model").loc["gpt-4o-mini", "n"] == 100


def posterior_mean(frame: pd.DataFrame, kind: str, model: str, table: list[str]) -> float:
    """A model's posterior mean success for a kind, on the prior the route learner gives it."""
    first = frame[(frame.task_kind == kind) & (frame.model == model) & frame.get(
        "escalated_from", pd.Series(None, index=frame.index)).isna()]
    a, b = TABLE_PRIOR if model == table[0] else TABLE_NEXT_PRIOR if model in table else OUTSIDER_PRIOR
    return (first.success.sum() + a) / (len(first) + a + b)


def test_a_cascade_never_ends_on_a_model_less_likely_to_succeed_than_the_tables():
    """Records where a cheaper model is a point or two below the table's: ranked on means it would
    pass as good enough (FLOOR_SLACK), but a cascade's success is its last model's at worst."""
    table = {"code": ["codex", "claude-sonnet"], "docs": ["claude-sonnet"], "review": ["claude-opus"]}
    everyone = ["codex", "claude-sonnet", "claude-opus", "claude-haiku", "gpt-4o", "gpt-4o-mini"]
    rng = np.random.default_rng(7)
    chosen_last = set()
    for case in range(60):
        rates = {m: rng.uniform(0.5, 0.95) for m in everyone}
        costs = {m: rng.uniform(0.01, 0.5) for m in everyone}
        n = int(rng.integers(5, 400))
        wins = {m: int(np.clip(round(n * rates[m]) + rng.integers(-3, 4), 0, n)) for m in everyone}
        frame = outcomes({(kind, m): (wins[m], n - wins[m], costs[m]) for kind in table for m in everyone})
        for explore in (False, True):
            routes = cascade_routes(frame, table, rng=case, explore=explore, candidates=everyone)
            for kind, chain in routes.items():
                last = chain[-1]
                chosen_last.add(last)
                assert posterior_mean(frame, kind, last, table[kind]) >= \
                    posterior_mean(frame, kind, table[kind][0], table[kind]) - 1e-12, (case, kind, chain)
    assert chosen_last - {"codex", "claude-sonnet", "claude-opus"}     # others do end cascades when sure
    # a table model with a near tie: the cheaper rival never ends the cascade, however cheap
    near = outcomes({("docs", "claude-sonnet"): (890, 110, 0.09), ("docs", "claude-haiku"): (880, 120, 0.01)})
    assert cascade_routes(near, {"docs": ["claude-sonnet"]}, explore=False,
                          candidates=["claude-sonnet", "claude-haiku"])["docs"] == ["claude-haiku", "claude-sonnet"]


@pytest.mark.kernel
def test_autonomy_analysis_notebook_executes(tmp_path):
    from conftest import execute_notebook

    outputs, text = execute_notebook(NOTEBOOK, tmp_path)
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)            # the calibration plot
    assert "asked because: auth decisions are overridden" in text
    assert "learned per category" in text
    assert "learned + priors (30 users)" in text                             # checkpoints over the first decisions
