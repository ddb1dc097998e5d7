"""The widgets, in-process: what the person sees and what a click does."""

import asyncio

import pytest

import osqr_nb
from osqr_nb.ui import view as view_of
from osqr_nb.ui.dag import render_dag
from osqr_nb.plan.decompose import OfflinePlanner

from conftest import SEED_REQUEST, run_async


def test_dag_shows_each_task_with_status_symbol_and_model(repo):
    async def main():
        run = osqr_nb.start(SEED_REQUEST, repo=repo)
        view = view_of(run)
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
        view = view_of(run)
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
    import re
    x = {task: int(left) for task, left in re.findall(r'data-task="([^"]+)".*?<rect x="(\d+)"', svg)}
    assert x["db-schema"] < x["auth-module"] < x["api-docs"]


def test_view_outputs_lists_what_each_finished_task_produced(repo):
    from conftest import seed_run

    run = run_async(seed_run(repo))
    view = view_of(run)
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
        view = view_of(run)
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
        view = view_of(run)
        while not run.state.finished:
            await asyncio.sleep(0)
        view.refresh()                                 # in the gap: complete, not yet done
        assert not run.done and not view.pause_button.disabled
        await run
        await view._refresher
        return view

    view = run_async(main())
    assert view.pause_button.disabled and view.add_button.disabled


def test_engine_imports_no_ui_and_a_run_displays_through_the_formatter(repo):
    """The engine publishes state; the UI registers how a Run is shown (as ipywidgets does)."""
    import subprocess
    import sys
    code = ("import sys, osqr_nb.engine.run, osqr_nb.api\n"
            "print(sorted(m for m in sys.modules if m.startswith('osqr_nb.ui')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert not hasattr(osqr_nb.Run, "view") and not hasattr(osqr_nb.Run, "_ipython_display_")

    from IPython.core.interactiveshell import InteractiveShell
    from osqr_nb.ui import register_display
    from osqr_nb.ui.dashboard import RunView
    shell = InteractiveShell.instance()
    register_display(shell)
    shown = []
    import IPython.display
    original = IPython.display.display
    IPython.display.display = lambda obj, **kw: shown.append(obj)
    try:
        run = run_async(_finished_run(repo))
        assert shell.display_formatter.ipython_display_formatter(run) is True
    finally:
        IPython.display.display = original
    assert isinstance(shown[0], RunView) and shown[0].run is run


async def _finished_run(repo):
    run = osqr_nb.start("add a health check", repo=repo, tier=4)
    await run
    return run


def test_dashboard_rows_progress_legend_and_counts(repo):
    """The seed's dashboard: a row per task with symbol, title (full on hover), model, an honest
    progress bar with its percentage (share of the turn budget; 100% only when finished), cost;
    the legend; Active / Waiting / Complete / Needs input."""
    from osqr_nb.ui.snapshot import TURN_BUDGET, describe_run

    async def main():
        run = osqr_nb.start(SEED_REQUEST, repo=repo)
        view = view_of(run)
        checkpoint = await run.next_checkpoint(timeout=20)
        await asyncio.sleep(0.3)
        seen = describe_run(run), view.rows.value, view.legend.value, view.counts.value
        checkpoint.resolve("DB Sessions", by="human")
        await run
        return seen, view

    (snap, rows, legend, counts), view = run_async(main())
    tasks = {t["id"]: t for t in snap["tasks"]}
    assert tasks["db-schema"]["progress_text"] == "100%" and tasks["db-schema"]["symbol"] == "✓"
    auth = tasks["auth-module"]
    assert auth["symbol"] == "⚠" and 0 < auth["progress"] < 1
    assert auth["progress_text"] == f"{int(auth['turns'] / TURN_BUDGET * 100)}%"
    assert tasks["api-docs"]["progress_text"] == "0%" and tasks["api-docs"]["symbol"] == "○"
    assert rows.count("<li") == 3 and "title='Auth Module'" in rows and "scripted (offline demo)" in rows
    assert "turns used (the agent" in rows and "turn budget)" in rows and "100%" in rows
    assert "● running" in legend and "⏸ paused" in legend
    assert "Active 0 · Waiting 1 · Complete 1 · Needs input 1" in counts
    assert [b.description for b in view.children[4].children[1:]] == ["Add Task", "Pause All", "View Outputs"]
    view.refresh()
    assert view.rows.value.count(">100%</span>") == 3                  # 100% only once finished


def test_a_paused_run_shows_paused_not_active(repo):
    from osqr_nb.models.scripted import ScriptedModel
    from osqr_nb.ui.snapshot import describe_run

    async def main():
        run = osqr_nb.start(SEED_REQUEST, repo=repo, tier=4, model=ScriptedModel(delay=0.2))
        view = view_of(run)
        while run.state.counts()["running"] == 0:
            await asyncio.sleep(0.02)
        run.pause()
        view.refresh()
        snap = describe_run(run)
        run.resume()
        await run
        return view, snap

    view, snap = run_async(main())
    assert snap["paused"] and snap["counts"]["running"] == 0 and snap["counts"]["paused"] >= 1
    assert "Active 0" in snap["count_text"] and "Paused" in snap["count_text"]
    running = [t for t in snap["tasks"] if t["status"] == "running"]
    assert running and all(t["symbol"] == "⏸" and t["shown"] == "paused" for t in running)


def test_answered_card_folds_to_one_line_and_colours_are_theme_classes(repo):
    import re
    from pathlib import Path

    from osqr_nb.ui import theme
    from osqr_nb.ui.checkpoint import card_for

    async def main():
        run = osqr_nb.start(SEED_REQUEST, repo=repo)
        checkpoint = await run.next_checkpoint(timeout=20)
        card = card_for(checkpoint)
        assert card.body[0].layout.display is None and "osqr-answered" not in card._dom_classes
        card.buttons[1].click()
        await run
        return card, view_of(run)

    card, view = run_async(main())
    assert all(row.layout.display == "none" for row in card.body) and "osqr-answered" in card._dom_classes
    assert card.status.layout.display is None
    assert "AGENT CHECKPOINT: Auth Module" in card.status.value and "DB Sessions" in card.status.value
    assert all("primary" not in b.button_style for b in card.buttons)
    # No hex colour outside a var() fallback; every class that carries a fallback is in the stylesheet.
    ui = Path(osqr_nb.__file__).parent / "ui"
    for source in ui.glob("*.py"):
        text = source.read_text()
        assert not re.search(r"(?<![,(])#[0-9a-fA-F]{6}\b(?!\))", text.replace("theme.py", "")), source
    css = (Path(osqr_nb.__file__).parent.parent / "labextension" / "style" / "base.css").read_text()
    for name in theme.FALLBACK:
        assert f".{name}" in css, name
    assert "#" not in re.sub(r"/\*.*?\*/", "", css, flags=re.S).replace("#", "", 0) or \
        not re.search(r"#[0-9a-fA-F]{3,6}\b", re.sub(r"/\*.*?\*/", "", css, flags=re.S))
    assert "var(--jp-" in view.dag.value
