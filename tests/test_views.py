"""The widgets, in-process: what the person sees and what a click does."""

import asyncio

import pytest

import osqr_nb
from osqr_nb.ui.dag import render_dag
from osqr_nb.plan.decompose import OfflinePlanner

from conftest import SEED_REQUEST, run_async


def test_dag_shows_each_task_with_status_symbol_and_model(repo):
    async def main():
        run = osqr_nb.start(SEED_REQUEST, repo=repo)
        view = run.view()
        checkpoint = await run.next_checkpoint(timeout=20)
        await asyncio.sleep(0.3)                       # one refresh period
        assert 'data-task="auth-module" data-status="needs_input"' in view.dag.value
        assert "⚠" in view.dag.value and "scripted (offline demo)" in view.dag.value
        assert "Complete 1" in view.counts.value and "Needs input 1" in view.counts.value
        (card,) = view.cards.children
        assert [b.description for b in card.buttons] == ["JWT", "DB Sessions", "Let me think"]
        assert "AGENT CHECKPOINT: Auth Module" in card.children[0].value
        card.buttons[2].click()                        # Let me think: parked, still pending
        assert checkpoint.pending and "Parked" in card.status.value
        card.buttons[1].click()                        # what the browser's click runs
        assert checkpoint.answer == "DB Sessions" and checkpoint.decided_by == "human"
        assert all(b.disabled for b in card.buttons) and "decided by human" in card.status.value
        await run
        await asyncio.sleep(0.3)
        return run, view

    run, view = run_async(main())
    assert view.dag.value.count('data-status="complete"') == 3
    assert "Complete 3" in view.counts.value and view.pause_button.disabled
    assert f"osqr/{run.id}/integration" in view.header.value
    history = osqr_nb.history(repo)
    assert history.set_index("task_id").loc["auth-module", "decided_by"] == "human"


def test_pause_all_button_pauses_and_resumes(repo):
    async def main():
        run = osqr_nb.start("add a health check", repo=repo, tier=4)
        view = run.view()
        view.pause_button.click()
        assert run.status == "paused" and view.pause_button.description == "Resume All"
        view.pause_button.click()
        assert run.status != "paused" and view.pause_button.description == "Pause All"
        await run
        return run

    assert run_async(main()).status == "complete"
    types = list(osqr_nb.events(repo).type)
    assert types.index("run_paused") < types.index("run_resumed")


def test_plan_graph_is_drawn_left_to_right_with_arrows():
    svg = render_dag(OfflinePlanner().plan(SEED_REQUEST))
    assert svg.count("<line") == 2 and svg.count("<rect") == 3
    assert svg.index("DB Schema") < svg.index("Auth Module") < svg.index("API Docs")


def test_view_outputs_lists_what_each_finished_task_produced(repo):
    from conftest import seed_run

    run = run_async(seed_run(repo))
    view = run.view()
    assert view.outputs.value == ""
    view.outputs_button.click()
    html = view.outputs.value
    assert "db/schema.sql" in html and "Wrote db/schema.sql" in html and f"osqr/{run.id}/auth-module" in html
    assert view.outputs_button.description == "Hide Outputs"
    view.outputs_button.click()
    assert view.outputs.value == ""


def test_add_task_joins_the_running_run_after_the_tasks_it_names(repo):
    from osqr_nb import Task
    from osqr_nb.models.scripted import ScriptedModel

    async def main():
        run = osqr_nb.start(SEED_REQUEST, repo=repo, tier=4, model=ScriptedModel(delay=0.05))
        view = run.view()
        await asyncio.sleep(0.05)
        view.add_button.click()
        adder = view.adder
        assert adder.layout.display is None and ("API Docs", "api-docs") in adder.after.options
        adder.title.value, adder.kind.value = "Changelog", "quick_fix"
        adder.after.value = ("db-schema",)
        adder.add.click()
        assert "added" in adder.status.value
        with pytest.raises(osqr_nb.PlanError, match="cycle|not in the plan|unique"):
            run.add_task(Task("changelog", "Again"))
        await run
        with pytest.raises(ValueError, match="start a new run"):
            run.add_task(Task("late", "Too late"))
        return run

    run = run_async(main())
    assert run.status == "complete" and run.tasks["changelog"].status == "complete"
    events = run.events()
    order = list(zip(events.type, events.task_id))
    assert order.index(("task_finished", "db-schema")) < order.index(("task_started", "changelog"))
    assert "changelog" in {d.get("task", {}).get("id") for d in events.query("type == 'task_added'").data}
    from osqr_nb.engine.state import RunState
    folded = RunState.fold(run.id, run.log.read(run.id))                   # a resumed run sees it too
    assert folded.plan["changelog"].depends_on == ["db-schema"] and folded.tasks["changelog"].status == "complete"


def test_a_view_refreshed_between_the_last_event_and_done_still_ends_done(repo):
    """The run writes run_finished before its future resolves; a redraw in that gap must not
    leave the final redraw skipped (Pause All enabled on a finished run)."""
    async def main():
        run = osqr_nb.start(SEED_REQUEST, repo=repo, tier=4)
        view = run.view()
        while not run.state.finished:
            await asyncio.sleep(0)
        view.refresh()                                 # in the gap: complete, not yet done
        assert not run.done and not view.pause_button.disabled
        await run
        await view._refresher
        return view

    view = run_async(main())
    assert view.pause_button.disabled and view.add_button.disabled
