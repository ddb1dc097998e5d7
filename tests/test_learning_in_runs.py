"""What the person taught in earlier runs changes what later runs ask and where they route."""

import os

import pandas as pd

import osqr_nb
from osqr_nb.config import settings
from osqr_nb.routing import DEFAULT_ROUTES
from osqr_nb.learning import PKV, route_report, synthetic_history
from osqr_nb.learning.wiring import record_run

from conftest import SEED_REQUEST, run_async


async def seed(repo, answer="DB Sessions"):
    """The seed run, answering every card: the auth one with `answer`, the rest as proposed."""
    run = osqr_nb.start(SEED_REQUEST, repo=repo)
    auth = None
    while not run.done:
        try:
            checkpoint = await run.next_checkpoint(timeout=30)
        except RuntimeError:
            break
        if checkpoint.task_id == "auth-module":
            auth = checkpoint
            checkpoint.resolve(answer)
        else:
            checkpoint.resolve(checkpoint.proposed)
    await run
    return run, auth


def test_a_demo_run_teaches_nothing(repo, monkeypatch):
    """The scripted offline model's runs never reach the personal store or the route learner."""
    for _ in range(2):
        run, _ = run_async(seed(repo))
    assert set(run.events().query("type == 'task_routed'")["data"].map(lambda d: d["model"])) == {"scripted"}
    pkv = PKV()
    assert os.environ["OSQR_PKV"] == str(pkv.path)                 # the test's own store
    assert pkv.history().empty and pkv.outcomes().empty
    assert "learned" in set(run.events().type)
    # what %osqr route shows, once real models are reachable: the table, nothing learned
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-secret-1")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-secret-2")
    assert {settings().router().route(kind).reason for kind in ("code", "docs", "tests")} == {"table"}
    report = route_report(pkv.outcomes(), DEFAULT_ROUTES)
    assert not report["changed"].any() and (report["n"] == 0).all()


def test_a_real_models_run_is_recorded_without_text(repo):
    run, _ = run_async(seed(repo))
    history = osqr_nb.history(repo)
    models = {task: "claude-sonnet" for task in history.task_id.dropna()}
    outcomes = [{"task_kind": "code", "model": "claude-sonnet", "success": False, "cost_usd": 0.2, "seconds": 9.0},
                {"task_kind": "docs", "model": "scripted", "success": True, "cost_usd": 0.0, "seconds": 1.0}]
    record_run(history, outcomes, models)
    stored = PKV().history()
    assert len(stored) == 2 and set(stored.category) == {"data_model", "auth"}
    assert set(stored.model) == {"claude-sonnet"}
    assert PKV().outcomes()[["task_kind", "model"]].values.tolist() == [["code", "claude-sonnet"]]


def test_scripted_outcomes_never_move_a_route(monkeypatch):
    """The issue's case: three scripted outcomes flipped a real route."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-secret-1")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-secret-2")
    for _ in range(3):
        record_run(pd.DataFrame(), [{"task_kind": "code", "model": "scripted", "success": True,
                                     "cost_usd": 0.0, "seconds": 1.0}], {"t": "scripted"})
    router = settings().router()
    assert PKV().outcomes().empty and router.route("code").reason == "table"
    assert "scripted" not in router.routes["code"]


def test_learned_thresholds_change_what_is_asked_and_say_why(repo):
    history = synthetic_history(n=2000, seed=0)
    PKV().record_history(history)
    policy = settings().policy(2)
    assert "auth" in policy.by_category and policy.reasons["auth"].startswith("asked because")
    run, checkpoint = run_async(seed(repo))
    assert checkpoint.reason.startswith("asked because: auth decisions are overridden")


def test_explicit_thresholds_win_over_learned_ones():
    PKV().record_history(synthetic_history(n=2000, seed=0))
    config = settings()
    config.thresholds = {"auth": [0.5, 0.6]}
    try:
        policy = config.policy(2)
    finally:
        config.thresholds = {}
    assert (policy.by_category["auth"].ask_below, policy.by_category["auth"].proceed_above) == (0.5, 0.6)
    assert "auth" not in policy.reasons


def test_routes_learn_from_outcomes(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-secret-1")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-secret-2")
    pkv = PKV()
    for _ in range(20):
        pkv.record_outcome("docs", "claude-sonnet", success=False, cost_usd=0.05, seconds=30)
        pkv.record_outcome("docs", "gpt-4o", success=True, cost_usd=0.02, seconds=20)
    router = settings().router()
    route = router.route("docs")
    assert route.model.name != "claude-sonnet" and route.reason == "learned"
    order = router.routes["docs"]
    assert order.index("gpt-4o") < order.index("claude-sonnet")   # proven better and cheaper
    assert router.route("architecture").reason == "table"
    assert set(router.routes["architecture"]) >= {"claude-opus", "claude-haiku", "gpt-4o-mini"}   # all compete


def test_a_store_a_newer_version_wrote_still_takes_this_ones_rows(tmp_path, monkeypatch):
    """Rows are written by column name: a store with columns this version does not know (a newer
    osqr-nb opened it) still records, and its readers still read."""
    import sqlite3

    path = tmp_path / "newer.sqlite"
    PKV(path).outcomes()                                            # made by this version
    with sqlite3.connect(path) as db:
        for table in ("decisions", "outcomes"):
            db.execute(f"ALTER TABLE {table} ADD COLUMN added_later TEXT")
    store = PKV(path)
    store.record_outcome("code", "claude-sonnet", True, 0.1, 3.0)
    store.record_history(synthetic_history(n=5, seed=1), {})
    assert len(store.outcomes()) == 1 and len(store.history()) == 5


def test_a_personal_store_that_cannot_be_written_never_fails_the_run(repo, tmp_path, monkeypatch):
    import sqlite3

    from osqr_nb.models.base import Reply, ToolCall
    from osqr_nb.plan.task import Plan, Task

    broken = tmp_path / "broken.sqlite"
    with sqlite3.connect(broken) as db:
        db.execute("CREATE TABLE outcomes (only_one_column TEXT NOT NULL)")
    monkeypatch.setenv("OSQR_PKV", str(broken))

    class Writer:                               # not a demo model: its outcomes are worth keeping
        name = "writer"

        async def complete(self, system, messages, tools):
            if len(messages) == 1:
                return Reply(tool_calls=[ToolCall("w", "write_file", {"path": "out.txt", "content": "x"})])
            return Reply(tool_calls=[ToolCall("f", "finish", {"summary": "done"})])

    async def main():
        run = osqr_nb.start(plan=Plan([Task("t1", "Write", "code")]), repo=repo, tier=4, model=Writer())
        await run
        return run

    run = run_async(main())
    assert run.status == "complete", run.state.error
    skipped = run.events().query("type == 'learning_skipped'")
    assert len(skipped) == 1 and "outcomes" in skipped.iloc[0]["data"]["error"]
