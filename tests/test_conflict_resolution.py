"""Real conflicts on real repositories, through each resolver."""

import osqr_nb
from osqr_nb import Plan, Task
from osqr_nb.models.base import Reply, ToolCall
from osqr_nb.ui.checkpoint import card_for

from conftest import git, run_async
from test_run_git import ListModel, finish

BASE = "def total(items):\n    return sum(items)\n\n\ndef helper():\n    return 1\n"


def repo_with(repo, text=BASE):
    (repo / "calc.py").write_text(text)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "calc")
    return repo


def edit(old, new):
    return ("edit_file", {"path": "calc.py", "old": old, "new": new})


def both_change_total():
    return {"a": [edit("    return sum(items)\n", "    return sum(items) or 0\n"), finish()],
            "b": [edit("    return sum(items)\n", "    return float(sum(items))\n"), finish()]}


PLAN = Plan([Task("a", "Totals A"), Task("b", "Totals B")])


class MergingModel(ListModel):
    """Plays the tasks' scripts, and answers merge requests: first a bad proposal, then a good one."""

    def __init__(self, scripts, merged, confidence=0.95):
        super().__init__(scripts)
        self.merged, self.confidence, self.merge_calls = merged, confidence, 0

    async def complete(self, system, messages, tools):
        if tools and tools[0].name == "propose_merge":
            self.merge_calls += 1
            text = "<<<<<<< oops\n" if self.merge_calls == 1 else self.merged
            return Reply(tool_calls=[ToolCall(f"m{self.merge_calls}", "propose_merge", {
                "merged": text, "explanation": "kept the float and the fallback", "confidence": self.confidence})],
                stop_reason="tool_use")
        return await super().complete(system, messages, tools)


def test_the_person_picks_a_side_on_the_conflict_card_and_the_drop_is_recorded(repo):
    repo_with(repo)

    async def main():
        run = osqr_nb.start(plan=PLAN, repo=repo, tier=2, model=ListModel(both_change_total()))
        card = await run.next_checkpoint(timeout=30)
        assert card.kind == "conflict" and card.question.startswith("Conflict in calc.py lines")
        assert card.options == ["Use Totals A", "Use Totals B", "Ask test model to merge", "Let me think"]
        assert "semantic merge" in " ".join(card.details["errors"])      # it tried, and said why not
        widget = card_for(card)
        assert "MERGE CONFLICT" in widget.children[0].value and "<<<<<<<" in widget.text.value
        widget.buttons[1].click()                                         # Use Totals B
        await run
        return run

    run = run_async(main())
    assert run.status == "complete"
    assert "float(sum(items))" in git(repo, "show", f"osqr/{run.id}/integration:calc.py")
    resolved = run.events().query("type == 'conflict_resolved'").data.iloc[0]
    assert resolved["dropped"] == ["a"] and resolved["decided_by"] == "human"
    assert "or 0" in git(repo, "show", f"osqr/{run.id}/a:calc.py")       # the dropped side's branch stays


def test_a_manual_merge_must_pass_the_checks_before_it_is_taken(repo):
    repo_with(repo)

    async def main():
        run = osqr_nb.start(plan=PLAN, repo=repo, tier=2, model=ListModel(both_change_total()))
        card = await run.next_checkpoint(timeout=30)
        widget = card_for(card)
        widget.send.click()                                              # still has markers
        assert card.pending and "conflict markers" in widget.status.value
        widget.text.value = "def total(items:\n"                         # does not parse
        widget.send.click()
        assert card.pending and "not valid Python" in widget.status.value
        widget.text.value = BASE.replace("return sum(items)", "return float(sum(items)) or 0.0")
        widget.send.click()
        assert not card.pending
        await run
        return run

    run = run_async(main())
    assert "float(sum(items)) or 0.0" in git(repo, "show", f"osqr/{run.id}/integration:calc.py")
    assert run.events().query("type == 'conflict_resolved'").data.iloc[0]["resolver"] == "person: manual merge"


def test_the_merge_agent_proposal_is_checked_then_accepted_by_policy_at_tier_3(repo):
    repo_with(repo)
    merged = BASE.replace("return sum(items)", "return float(sum(items)) or 0.0")
    model = MergingModel(both_change_total(), merged)

    async def main():
        run = osqr_nb.start(plan=PLAN, repo=repo, tier=3, model=model)
        await run
        return run

    run = run_async(main())
    assert run.status == "complete" and model.merge_calls == 2          # the marked proposal was refused
    assert git(repo, "show", f"osqr/{run.id}/integration:calc.py") == merged
    resolved = run.events().query("type == 'conflict_resolved'").data.iloc[0]
    assert resolved["resolver"].startswith("merge agent") and resolved["decided_by"] == "auto"


def test_at_tier_2_a_merge_agent_proposal_waits_for_approval(repo):
    repo_with(repo)
    merged = BASE.replace("return sum(items)", "return float(sum(items)) or 0.0")

    async def main():
        run = osqr_nb.start(plan=PLAN, repo=repo, tier=2, model=MergingModel(both_change_total(), merged))
        card = await run.next_checkpoint(timeout=30)
        assert card.options[:2] == ["Accept merge", "Reject"] and "+    return float" in card.details["diff"]
        card.resolve("Accept merge")
        await run
        return run

    run = run_async(main())
    assert git(repo, "show", f"osqr/{run.id}/integration:calc.py") == merged


def test_a_clean_text_merge_that_loses_a_name_is_not_called_clean(repo):
    repo_with(repo)
    scripts = {
        "a": [edit("def helper():\n    return 1\n", "def _helper():\n    return 1\n"), finish()],
        "b": [edit("def total(items):\n", "def double(x):\n    return helper() * 2 * x\n\n\ndef total(items):\n"),
              finish()]}

    async def main():
        run = osqr_nb.start(plan=PLAN, repo=repo, tier=4, model=ListModel(scripts))
        await run
        return run

    run = run_async(main())
    assert run.status == "conflicts"                                     # git alone would have merged it
    (conflict,) = run.integration["conflicts"]
    assert "git merged it cleanly, but" in conflict["reason"] and "helper" in conflict["reason"]


CHECK = "import pathlib, sys; sys.exit(1 if pathlib.Path('broken.txt').exists() else 0)"


def test_a_failing_check_names_the_merge_after_which_it_first_failed(repo):
    (repo / "check.py").write_text(CHECK + "\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "check")
    plan = Plan([Task("good", "Good Change"), Task("bad", "Bad Change")])
    model = ListModel({"good": [("write_file", {"path": "ok.txt", "content": "fine"}), finish()],
                       "bad": [("write_file", {"path": "broken.txt", "content": "oops"}), finish()]})

    async def main():
        run = osqr_nb.start(plan=plan, repo=repo, tier=2, model=model, check="python check.py")
        card = await run.next_checkpoint(timeout=60)
        assert card.question == "`python check.py` fails after merging Bad Change."
        assert card.task_id == "bad" and "Mark the run failed" in card.options
        card.resolve("Mark the run failed")
        await run
        return run

    run = run_async(main())
    assert run.status == "failed" and "fails after merging Bad Change" in run.state.error
    checks = run.events().query("type == 'check_ran'").data.tolist()
    assert checks[0]["exit_code"] == 1 and checks[0]["sandbox"] in ("bwrap", "none")
    assert "broken.txt" in git(repo, "ls-tree", "-r", "--name-only", f"osqr/{run.id}/integration")  # kept


def test_the_person_can_ask_the_merge_model_from_the_card(repo):
    repo_with(repo)
    merged = BASE.replace("return sum(items)", "return float(sum(items)) or 0.0")
    model = MergingModel(both_change_total(), merged)

    async def main():
        run = osqr_nb.start(plan=PLAN, repo=repo, tier=2, model=model)
        (await run.next_checkpoint(timeout=30)).resolve("Reject")             # the automatic proposal
        card = await run.next_checkpoint(timeout=30)
        assert "merge agent: proposal rejected" in card.details["errors"]
        card.resolve("Ask test model to merge")
        await run
        return run

    run = run_async(main())
    assert model.merge_calls == 3 and git(repo, "show", f"osqr/{run.id}/integration:calc.py") == merged
    resolved = run.events().query("type == 'conflict_resolved'").data.iloc[0]
    assert resolved["resolver"] == "merge agent (test model), asked by the person"
