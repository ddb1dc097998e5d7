import pytest

from osqr_nb.autonomy.policy import Action, AutonomyPolicy, Thresholds, changed_share
from osqr_nb.config import OSQR


@pytest.mark.parametrize("tier, confidence, expected", [
    (1, 0.99, Action.CHECKPOINT),
    # tier 2: above 0.90 proceeds; 0.70 to 0.90, both ends included, proceeds and logs; below 0.70 asks
    (2, 0.95, Action.PROCEED), (2, 0.901, Action.PROCEED), (2, 0.90, Action.LOG), (2, 0.80, Action.LOG),
    (2, 0.70, Action.LOG), (2, 0.69, Action.CHECKPOINT), (2, 0.0, Action.CHECKPOINT),
    (3, 0.20, Action.LOG), (3, 0.95, Action.PROCEED),
    (4, 0.01, Action.PROCEED),
])
def test_decisions_by_tier_and_confidence(tier, confidence, expected):
    assert AutonomyPolicy(tier).decide(confidence).action is expected


def test_the_reason_says_why_it_asks():
    verdict = AutonomyPolicy(2).decide(0.6, "auth")
    assert verdict.reason == "confidence 0.60 is below 0.70 for auth decisions (tier 2)"


def test_thresholds_per_category():
    policy = AutonomyPolicy(2, by_category={"auth": [0.8, 0.95]})
    assert policy.decide(0.75, "auth").asks
    assert not policy.decide(0.75, "docs_style").asks
    assert policy.decide(0.93, "auth").action is Action.LOG


def test_tier_by_kind_overrides_the_run_tier():
    policy = AutonomyPolicy(2, tier_by_kind={"docs": 4, "code": 1})
    assert policy.decide(0.1, kind="docs").action is Action.PROCEED
    assert policy.decide(0.99, kind="code").asks
    assert policy.decide(0.1, kind="tests").asks


def test_blocked_agents_ask_except_at_full_auto():
    assert AutonomyPolicy(3).decide(0.99, blocked=True).asks
    assert not AutonomyPolicy(4).decide(0.99, blocked=True).asks


@pytest.mark.parametrize("bad, message", [
    ([0.9, 0.7], "out of order"), ([-0.1, 0.5], "from 0 to 1"), ([0.5, 1.5], "from 0 to 1"),
    (["a", 0.9], "from 0 to 1"), ([0.5], "ask_below, proceed_above"),
])
def test_bad_thresholds_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        AutonomyPolicy(2, thresholds=bad)
    with pytest.raises(ValueError, match="thresholds for 'auth'"):
        AutonomyPolicy(2, by_category={"auth": bad})


@pytest.mark.parametrize("tier", [0, 5, "2", True, None])
def test_bad_tier_is_refused(tier):
    with pytest.raises(ValueError, match="tier must be 1-4"):
        AutonomyPolicy(tier)
    with pytest.raises(ValueError, match=r"tier_by_kind\['docs'\]"):
        AutonomyPolicy(2, tier_by_kind={"docs": tier})


def test_tier_1_approves_every_write_and_tier_2_only_critical_or_large_ones():
    assert AutonomyPolicy(1).review_write("notes.md", None, "x").asks
    tier2 = AutonomyPolicy(2, critical_paths=["**/auth/**", "**/migrations/**"])
    assert tier2.review_write("auth/sessions.py", None, "x").asks                  # '**/' matches nothing too
    assert tier2.review_write("src/app/auth/tokens.py", None, "x").asks
    assert "critical path" in tier2.review_write("db/migrations/001.sql", None, "x").reason
    assert not tier2.review_write("src/authority.py", None, "x").asks
    assert not AutonomyPolicy(3, critical_paths=["**"]).review_write("auth/x.py", "a\n", "").asks


def test_tier_2_asks_before_deleting_or_largely_rewriting_existing_code():
    old = "".join(f"line {i}\n" for i in range(10))
    policy = AutonomyPolicy(2, rewrite_share=0.5)
    assert "deletes 100%" in policy.review_write("app.py", old, "").reason
    rewritten = "".join(f"new {i}\n" for i in range(6)) + old.split("\n", 6)[-1]
    assert policy.review_write("app.py", old, rewritten).asks                       # 60% replaced
    appended = old + "line 10\n"
    assert not policy.review_write("app.py", old, appended).asks
    assert changed_share(old, appended) == 0.0
    assert not policy.review_write("new.py", None, "anything").asks                 # a new file


def test_errors_in_a_row():
    assert AutonomyPolicy(3).on_errors(3).asks and not AutonomyPolicy(3).on_errors(2).asks
    assert not AutonomyPolicy(4).on_errors(10).asks


def test_settings_build_the_policy_and_refuse_bad_values():
    config = OSQR()
    config.thresholds = {"default": [0.6, 0.8], "auth": [0.9, 0.99]}
    config.tier_by_kind = {"docs": 4}
    policy = config.policy(2)
    assert policy.thresholds == Thresholds(0.6, 0.8) and policy.by_category["auth"] == Thresholds(0.9, 0.99)
    assert policy.tier_for("docs") == 4
    assert AutonomyPolicy.from_dict(policy.to_dict()) == policy
    config.thresholds = {"default": [0.9, 0.1]}
    with pytest.raises(ValueError, match="out of order"):
        config.policy(2)
