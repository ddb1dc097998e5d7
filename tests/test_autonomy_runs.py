"""The tiers in whole runs on real git: who is asked what, and what each answer does."""

import asyncio

import pytest

import osqr_nb
import osqr_nb.ui
from osqr_nb import Plan, Task
from osqr_nb.autonomy.checkpoints import CheckpointClosed
from osqr_nb.config import settings
from osqr_nb.models.scripted import ScriptedModel
from osqr_nb.ui.checkpoint import card_for

from conftest import SEED_REQUEST, git, run_async
from test_run_git import ListModel, finish


@pytest.fixture(autouse=True)
def default_settings():
    config = settings()
    saved = (config.critical_paths, config.checkpoint_timeout)
    yield
    config.critical_paths, config.checkpoint_timeout = saved


async def answer_all(run, answer="Approve"):
    """Answer every checkpoint as it comes; return them in order."""
    seen = []
    while not run.done:
        try:
            checkpoint = await run.next_checkpoint(timeout=30)
        except RuntimeError:
            break
        seen.append(checkpoint)
        checkpoint.resolve(answer if answer in checkpoint.options else checkpoint.choices[0])
    await run
    return seen


def test_tier_1_asks_before_every_file_change_with_its_diff(repo):
    async def main():
        run = osqr_nb.start("add a health check", repo=repo, tier=1)
        return run, await answer_all(run)

    run, asked = run_async(main())
    assert run.status == "complete"
    (write,) = asked
    assert write.kind == "write" and write.question == "Create osqr-demo/health-check.md?"
    assert write.options == ["Approve", "Reject", "Approve the rest of this task", "Let me think"]
    assert write.details["diff"].startswith("--- /dev/null\n+++ b/osqr-demo/health-check.md")
    assert "tier 1" in write.reason


def test_approve_the_rest_of_this_task_stops_asking_and_reject_keeps_the_file_out(repo):
    writes = [("write_file", {"path": f"f{i}.txt", "content": str(i)}) for i in range(3)]
    plan = Plan([Task("a", "A"), Task("b", "B")])

    async def main():
        run = osqr_nb.start(plan=plan, repo=repo, tier=1,
                            model=ListModel({"a": writes + [finish()], "b": writes + [finish()]}))
        asked = []
        while len(asked) < 4:
            checkpoint = await run.next_checkpoint(timeout=30)
            asked.append(checkpoint)
            checkpoint.resolve("Approve the rest of this task" if checkpoint.task_id == "a" else "Reject")
        await run
        return run, asked

    run, asked = run_async(main())
    assert sorted(c.task_id for c in asked) == ["a", "b", "b", "b"]   # a: once, then the rest approved
    files = git(repo, "ls-tree", "-r", "--name-only", f"osqr/{run.id}/integration").split()
    assert {"f0.txt", "f1.txt", "f2.txt"} <= set(files)                  # all of a's
    assert not git(repo, "diff", "--name-only", "HEAD", f"osqr/{run.id}/b").strip()   # none of b's
    rejected = [e for e in run.events().itertuples() if e.type == "tool_call" and e.task_id == "b"]
    assert all("rejected" in e.data["error"] for e in rejected)


@pytest.mark.parametrize("tier", [3, 4])
def test_tiers_3_and_4_ask_nothing_on_a_clean_run(repo, tier):
    async def main():
        run = osqr_nb.start(SEED_REQUEST, repo=repo, tier=tier)
        await asyncio.wait_for(asyncio.shield(run._done), 30)
        return run

    run = run_async(main())
    assert run.status == "complete"
    assert "checkpoint_opened" not in set(run.events().type)
    decided = osqr_nb.history(repo).set_index("task_id").decided_by
    assert decided["auth-module"] == "log" if tier == 3 else "auto"
    view = osqr_nb.ui.view(run)
    assert "Decisions taken alone, for review" in view.decisions.value
    assert "JWT or database sessions" in view.decisions.value


def test_tier_2_asks_before_a_critical_path_even_when_sure(repo):
    settings().critical_paths = ["**/auth/**"]

    async def main():
        run = osqr_nb.start(SEED_REQUEST, repo=repo, tier=2)
        return run, await answer_all(run, "DB Sessions")

    run, asked = run_async(main())
    kinds = [(c.kind, c.question) for c in asked]
    assert kinds[0][0] == "decision"
    assert ("write", "Create auth/sessions.py?") in kinds and ("write", "Create auth/__init__.py?") in kinds
    assert all("critical path" in c.reason for c in asked if c.kind == "write")


def test_the_card_shows_pros_cons_affected_tasks_and_takes_free_text(repo):
    decision = ("report_decision", {
        "question": "Where do sessions live?", "category": "auth", "confidence": 0.4, "proposed": "Redis",
        "options": [{"label": "Redis", "pros": ["fast"], "cons": ["one more service"]}, "Postgres"]})
    model = ListModel({"auth": [decision, finish()], "docs": [finish()]})
    plan = Plan([Task("auth", "Auth Module"), Task("docs", "API Docs", "docs", depends_on=["auth"])])

    async def main():
        run = osqr_nb.start(plan=plan, repo=repo, model=model)
        checkpoint = await run.next_checkpoint(timeout=30)
        card = card_for(checkpoint)
        text = card.children[0].value
        assert "AGENT CHECKPOINT: Auth Module" in text and "+ fast" in text and "− one more service" in text
        assert "Affects: API Docs" in text and "Asked because confidence 0.40 is below 0.70" in text
        card.send.click()                                        # empty answer: refused, nothing changes
        assert checkpoint.pending and "empty" in card.status.value
        card.text.value = "Signed cookies, no server state"
        card.send.click()
        assert card_for(checkpoint) is card and all(b.disabled for b in card.buttons)
        await run
        return run

    run = run_async(main())
    (row,) = osqr_nb.history(repo).itertuples()
    assert (row.chosen, row.decided_by, row.proposed) == ("Signed cookies, no server state", "human", "Redis")
    decision_event = run.events().query("type == 'decision'").data.iloc[0]
    assert decision_event["custom"] is True and decision_event["latency"] >= 0


def test_checkpoints_of_a_cancelled_run_refuse_answers(repo):
    async def main():
        run = osqr_nb.start(SEED_REQUEST, repo=repo)
        checkpoint = await run.next_checkpoint(timeout=30)
        run.cancel()
        await run
        return run, checkpoint

    run, checkpoint = run_async(main())
    assert run.status == "cancelled" and not run.checkpoints
    with pytest.raises(CheckpointClosed, match="the task was cancelled"):
        checkpoint.resolve("JWT")
    assert "Closed" in card_for(checkpoint).status.value
    assert run.events().query("type == 'decision' and task_id == 'auth-module'").empty


def test_an_unanswered_decision_takes_the_proposal_after_the_timeout(repo):
    settings().checkpoint_timeout = 0.2

    async def main():
        run = osqr_nb.start(SEED_REQUEST, repo=repo)
        await asyncio.wait_for(asyncio.shield(run._done), 30)
        return run

    run = run_async(main())
    auth = osqr_nb.history(repo).set_index("task_id").loc["auth-module"]
    assert (auth.chosen, auth.decided_by) == ("JWT", "auto")
    event = run.events().query("type == 'decision' and task_id == 'auth-module'").data.iloc[0]
    assert event["timed_out"] is True and event["latency"] >= 0.2


def test_three_failed_tool_calls_in_a_row_ask_and_stop_ends_the_task(repo):
    bad = ("read_file", {"path": "missing.txt"})
    model = ListModel({"a": [bad] * 3 + [finish()]})

    async def main():
        run = osqr_nb.start(plan=Plan([Task("a", "A")]), repo=repo, tier=3, model=model)
        checkpoint = await run.next_checkpoint(timeout=30)
        assert checkpoint.kind == "errors" and len(checkpoint.details["errors"]) == 3
        checkpoint.resolve("Stop this task")
        await run
        return run

    run = run_async(main())
    assert run.tasks["a"].status == "failed" and "3 failed tool calls" in run.tasks["a"].error


def test_the_model_script_sees_the_answer_it_was_given(repo):
    async def main():
        run = osqr_nb.start(SEED_REQUEST, repo=repo, model=ScriptedModel())
        checkpoint = await run.next_checkpoint(timeout=30)
        checkpoint.answer_text("DB sessions please, stored in Postgres")
        await run
        return run

    run = run_async(main())
    files = git(repo, "ls-tree", "-r", "--name-only", f"osqr/{run.id}/integration").split()
    assert "auth/sessions.py" in files
