"""The cost report: agent time apart from waiting for a person, every model call priced and
counted (the planner's and the merge agent's too), cost per model and per kind, and a
human-equivalent that says where its hours come from."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import osqr_nb
from osqr_nb.engine.report import DEFAULT_ESTIMATE, PLAN_HOURS, cost_report, describe, model_call_fields
from osqr_nb.engine.state import RunState
from osqr_nb.models.base import Reply, ToolCall, Usage
from osqr_nb.plan.task import Plan, Task
from osqr_nb.store.events import Event
from osqr_nb.store.frames import costs_frame, for_people
from osqr_nb.workspace.merge import Conflict
from osqr_nb.workspace.merge_agent import propose_merge

from conftest import run_async

T0 = 1_800_000_000.0


def ev(kind: str, at: float, task: str | None = None, **data: Any) -> Event:
    return Event("r1", kind, task, data, ts=T0 + at)


def run_events(plan: Plan) -> list[Event]:
    """a and b in parallel, c after both; a waits 10 s for a person while b finishes, then works on."""
    return [
        ev("run_started", 0, request="x", plan=plan.to_dict(), repo="/r", base="abc", tier=2),
        ev("model_call", 0.5, purpose="plan", model="claude-opus", input_tokens=900, output_tokens=300,
           cost_usd=0.02),
        ev("task_started", 1, "a"), ev("task_started", 1, "b"),
        ev("model_reply", 1.5, "a", model="codex", input_tokens=100, output_tokens=50, cost_usd=0.01),
        ev("checkpoint_opened", 2, "a", id="cp1", question="JWT?", options=["JWT", "DB"], created_at=T0 + 2),
        ev("model_reply", 3, "b", model="claude-sonnet", input_tokens=100, output_tokens=50, cost_usd=0.03),
        ev("task_finished", 5, "b"),
        ev("decision", 12, "a", checkpoint_id="cp1", chosen="JWT", created_at=T0 + 2, resolved_at=T0 + 12,
           decided_by="human"),
        ev("task_finished", 15, "a"), ev("task_started", 15, "c"),
        ev("model_reply", 16, "c", model="claude-sonnet", input_tokens=10, output_tokens=5, cost_usd=None),
        ev("task_finished", 17, "c"),
        ev("model_call", 17.5, "c", purpose="merge", model="claude-opus", input_tokens=50, output_tokens=20,
           cost_usd=0.005),
        ev("run_finished", 18, status="complete")]


def plan(hours: float | None = None) -> Plan:
    return Plan([Task("a", "Auth", "code", estimate_hours=hours), Task("b", "Docs", "docs", estimate_hours=hours),
                 Task("c", "Tests", "tests", depends_on=["a", "b"], estimate_hours=hours)])


def test_waiting_for_a_person_is_not_agent_time_and_the_speed_up_compares_agent_time():
    events = run_events(plan())
    report = cost_report(RunState.fold("r1", events), 75.0, events)
    assert report.set_index("task").loc["a", ["seconds", "waiting_seconds", "agent_seconds"]].tolist() == [14, 10, 4]
    s = report.attrs["summary"]
    # 18 s of wall time; from 5 s to 12 s no agent worked: every one waited on the person
    assert (s["wall_seconds"], s["blocked_on_person_seconds"], s["agent_wall_seconds"]) == (18, 7, 11)
    assert s["waiting_for_person_seconds"] == 10 and s["sequential_seconds"] == 10
    assert s["speed_up"] == pytest.approx(10 / 11)
    text = describe(report)
    assert "Agents worked 11.0 s (plus 7.0 s when every agent waited for you) against 10.0 s" in text


def test_every_call_is_counted_per_model_and_per_kind_and_unknown_prices_say_so():
    events = run_events(plan())
    report = cost_report(RunState.fold("r1", events), 75.0, events)
    s = report.attrs["summary"]
    assert s["cost_usd"] == pytest.approx(0.065) and s["agent_cost_usd"] == pytest.approx(0.04)
    assert not s["cost_complete"]
    by_model = report.attrs["by_model"].set_index("model")
    assert by_model.loc["claude-opus", "cost_usd"] == pytest.approx(0.025)
    assert by_model.loc["claude-opus", "calls"] == 2 and not by_model.loc["claude-sonnet", "cost_complete"]
    by_kind = report.attrs["by_kind"].set_index("kind")
    assert set(by_kind.index) == {"code", "docs", "tests", "plan", "merge"}
    assert by_kind.loc["plan", "cost_usd"] == pytest.approx(0.02)
    costs = costs_frame(events)
    assert costs.purpose.tolist() == ["plan", "agent", "agent", "agent", "merge"]


def test_the_human_equivalent_uses_the_plans_hours_else_an_estimate_it_names():
    events = run_events(plan())
    s = cost_report(RunState.fold("r1", events), 75.0, events).attrs["summary"]
    assert s["human_hours_source"] == DEFAULT_ESTIMATE and s["human_hours_estimate"] == 3 + 1 + 1.5
    assert s["human_cost_estimate_usd"] == pytest.approx(5.5 * 75) and s["developers"] == 2
    assert "an estimate: default estimate by kind, not the planner's" in describe(
        cost_report(RunState.fold("r1", events), 75.0, events))
    events = run_events(plan(hours=2))
    report = cost_report(RunState.fold("r1", events), 75.0, events)
    assert report.attrs["summary"]["human_hours_source"] == PLAN_HOURS
    assert report.human_cost_estimate_usd.tolist() == [150, 150, 150]
    assert "Human equivalent (the planner's hours, at $75/h): 6.0 h" in describe(report)


def test_for_people_shows_seconds_and_four_decimals():
    events = run_events(plan())
    frame = for_people(costs_frame(events))
    assert frame.time.iloc[0].microsecond == 0 and frame.cost_usd.iloc[-1] == 0.005
    report = for_people(cost_report(RunState.fold("r1", events), 75.0, events))
    assert "summary" in report.attrs


class PlanningModel:
    """Submits a plan with a cycle, then a good one: two priced calls."""

    name = "claude-opus-5-5"
    model_id = "claude-opus-5-5"
    provider = "anthropic"

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, system: str, messages: list[dict[str, Any]], tools: list) -> Reply:
        self.calls += 1
        tasks = [{"id": "a", "title": "A", "kind": "code", "description": "a", "depends_on": []},
                 {"id": "b", "title": "B", "kind": "docs", "description": "b", "depends_on": ["a"]}]
        if self.calls == 1:
            tasks[0]["depends_on"] = ["b"]
        return Reply(tool_calls=[ToolCall(f"c{self.calls}", "submit_plan", {"tasks": tasks})],
                     stop_reason="tool_use", usage=Usage(1000, 200))


def test_the_planners_calls_are_events_with_usage_and_price_repairs_included(repo):
    from osqr_nb.config import settings
    from osqr_nb.engine.run import Run
    from osqr_nb.plan.decompose import ModelPlanner
    from osqr_nb.store.events import open_log
    from osqr_nb.workspace import git

    async def main():
        config = settings()
        info = git.inspect_repo(repo)
        run = Run.planning("Build A and document it", ModelPlanner(PlanningModel()), info, open_log(info.root),
                           config.router(None), policy=config.policy(4), max_parallel=2)
        run.start()
        await run
        return run

    run = run_async(main())
    assert run.status == "complete"
    costs = osqr_nb.costs(repo)
    planning = costs[costs.purpose == "plan"]
    assert len(planning) == 2 and planning.input_tokens.tolist() == [1000, 1000]
    assert set(planning.model) == {"claude-opus"} and planning.task_id.isna().all()
    assert (costs.purpose == "agent").sum() == len(run.events().query("type == 'model_reply'"))


def test_the_merge_agents_replies_are_each_reported_retries_included():
    class Merger:
        model_id = "claude-opus-5-5"
        name = "claude-opus-5-5"
        calls = 0

        async def complete(self, system, messages, tools):
            Merger.calls += 1
            if Merger.calls == 1:
                return Reply(text="thinking", usage=Usage(300, 10))
            return Reply(tool_calls=[ToolCall("m", "propose_merge", {"merged": "x = 2\n", "explanation": "both",
                                                                      "confidence": 0.9})],
                         usage=Usage(400, 20))

    heard: list[dict] = []
    conflict = Conflict("a.txt", [(1, 1)], "t2", ["t1"], base="x = 0\n", ours="x = 1\n", theirs="x = 2\n")
    def hear(reply, seconds):
        heard.append(model_call_fields("merge", Merger(), reply, seconds))
    proposal, _ = asyncio.run(propose_merge(Merger(), conflict, on_reply=hear))
    assert proposal is not None and [h["input_tokens"] for h in heard] == [300, 400]
    assert {h["purpose"] for h in heard} == {"merge"} and {h["model"] for h in heard} == {"claude-opus"}


def test_the_uncommitted_warning_is_shown_once_by_the_magic(repo):
    from IPython.testing.globalipapp import get_ipython
    import warnings
    (repo / "app.py").write_text("# an edit\n")
    ip = get_ipython()
    ip.run_line_magic("load_ext", "osqr_nb")

    async def main():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ip.run_cell_magic("osqr", f"--repo {repo} --tier 4", "Add a thing")
        run = osqr_nb.api.last_run()
        await run
        return caught, run

    caught, run = run_async(main())
    assert any("uncommitted" in w for w in run.warnings)              # shown in the cell, once
    assert not [w for w in caught if issubclass(w.category, osqr_nb.api.OsqrWarning)]


def test_the_runs_own_calls_count_toward_its_budget():
    from osqr_nb.store.events import Event
    state = RunState.fold("r", [Event("r", "model_call", None, {"purpose": "plan", "cost_usd": 0.25}),
                                Event("r", "model_call", "a", {"purpose": "merge", "cost_usd": None})])
    assert state.total_cost == pytest.approx(0.25) and state.cost_unknown
