"""Tier 1 prevention in whole runs: predicted collisions decided before agents start."""

import asyncio

import osqr_nb
from osqr_nb import Plan, Task

from conftest import git, run_async
from test_run_git import ListModel, finish


VALIDATE = "def validate_token(t):\n    return bool(t)\n"
FORMAT = "def format_response(r):\n    return str(r)\n"


def two_tasks_on_utils(repo, utils="def helper():\n    return 1\n", auth_at="    return 1\n",
                       helpers_at="    return 1\n"):
    """Auth and Helpers each add a function to utils.py, right after `auth_at` / `helpers_at`."""
    (repo / "utils.py").write_text(utils)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "utils")
    plan = Plan([Task("auth", "Auth Module", "code", "Add validate_token() to utils.py"),
                 Task("helpers", "API Helpers", "code", "Add format_response() to utils.py")])
    model = ListModel({
        "auth": [("edit_file", {"path": "utils.py", "old": auth_at, "new": auth_at + "\n\n" + VALIDATE}),
                 finish()],
        "helpers": [("edit_file", {"path": "utils.py", "old": helpers_at, "new": helpers_at + "\n\n" + FORMAT}),
                    finish()]})
    return plan, model


def test_tier_2_shows_the_collision_card_and_serialize_orders_the_tasks(repo):
    plan, model = two_tasks_on_utils(repo)

    async def main():
        run = osqr_nb.start(plan=plan, repo=repo, tier=2, model=model)
        card = await run.next_checkpoint(timeout=30)
        assert card.kind == "collision"
        assert card.question == "Warning: Auth Module and API Helpers may both modify utils.py"
        assert card.options[:3] == ["Serialize: Auth Module first", "Serialize: API Helpers first",
                                    "Split the file"]
        assert "Proceed in parallel, review merge" in card.options
        assert not run.tasks["auth"].started_at                # nothing starts before the answer
        card.resolve("Serialize: Auth Module first")
        await run
        return run

    run = run_async(main())
    assert run.status == "complete"                            # serialized: no conflict at the merge
    assert ("auth", "helpers") in run.plan.graph.edges
    events = run.events()
    order = list(zip(events.type, events.task_id))
    assert order.index(("task_finished", "auth")) < order.index(("task_started", "helpers"))
    merged = git(repo, "show", f"osqr/{run.id}/integration:utils.py")
    assert "validate_token" in merged and "format_response" in merged
    resolved = events.query("type == 'collision_resolved'").data.iloc[0]
    assert resolved["action"] == "serialize" and resolved["decided_by"] == "code"


def test_tier_4_lets_the_policy_choose_and_says_why_and_the_report_scores_the_prediction(repo):
    plan, model = two_tasks_on_utils(repo)

    async def main():
        run = osqr_nb.start(plan=plan, repo=repo, tier=4, model=model)
        await run
        return run

    run = run_async(main())
    resolved = run.events().query("type == 'collision_resolved'").data.iloc[0]
    assert resolved["decided_by"] == "auto" and resolved["action"] == "parallel"
    assert "over the 25% limit" in resolved["reason"]
    # both edited the same lines, as predicted; the semantic merge keeps both new functions
    assert run.status == "complete"
    resolved = run.events().query("type == 'conflict_resolved'").data.iloc[0]
    assert (resolved["file"], resolved["resolver"], resolved["decided_by"]) == ("utils.py", "semantic", "auto")
    merged = git(repo, "show", f"osqr/{run.id}/integration:utils.py")
    assert "def validate_token" in merged and "def format_response" in merged
    report = run.collision_report()
    assert report.attrs["precision"] == 1.0 and report.attrs["recall"] == 1.0
    assert report[["task_a", "task_b", "file"]].values.tolist() == [["auth", "helpers", "utils.py"]]
    assert run.state.collision_scores["precision"] == 1.0      # also recorded as an event


def test_split_gives_each_task_its_own_file_and_tells_both(repo):
    plan, model = two_tasks_on_utils(repo)

    async def main():
        run = osqr_nb.start(plan=plan, repo=repo, tier=2, model=model)
        (await run.next_checkpoint(timeout=30)).resolve("Split the file")
        while not run.state.preflight_done:
            await asyncio.sleep(0.01)
        run.cancel()
        await run
        return run

    run = run_async(main())
    assert "auth_utils.py" in run.plan["auth"].description and "api_utils.py" in run.plan["helpers"].description


def test_proceed_in_parallel_asks_for_a_review_of_the_clean_merge(repo):
    plan, model = two_tasks_on_utils(repo, "def helper():\n    return 1\n\n\n# more helpers below\n",
                                     auth_at="    return 1\n", helpers_at="# more helpers below\n")

    async def main():
        run = osqr_nb.start(plan=plan, repo=repo, tier=2, model=model)
        (await run.next_checkpoint(timeout=30)).resolve("Proceed in parallel, review merge")
        review = await run.next_checkpoint(timeout=30)
        assert review.question.startswith("Review the merge of utils.py")
        review.resolve("Accept the merge")
        await run
        return run

    run = run_async(main())
    assert run.status == "complete"
    merged = git(repo, "show", f"osqr/{run.id}/integration:utils.py")
    assert "validate_token" in merged and "format_response" in merged
