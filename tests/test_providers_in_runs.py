"""Runs that reach models through the real SDKs (against the loopback wire server):
routing, cost, budgets, a provider that stays down, and keys that never leak."""

import asyncio
import json

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

import osqr_nb
import osqr_nb.ui
from osqr_nb.config import settings
from osqr_nb.models.catalog import CATALOG
from osqr_nb.routing import Router, models_table
from osqr_nb.wire import WireServer

from conftest import SEED_REQUEST, run_async, seed_run

KEY = "test-key-not-secret-8d1f2e"


@pytest.fixture
def wire():
    with WireServer(retry_after=0.01) as server:
        yield server


@pytest.fixture
def anthropic_via_wire(wire):
    """Every task routed to Claude Sonnet, through the anthropic SDK, at the wire server."""
    config = settings()
    saved = (config.providers, config.routes, config.budget)
    config.providers = {"anthropic": {"api_key": KEY, "base_url": wire.base_url, "max_retries": 0}}
    config.routes = {kind: ["claude-sonnet"] for kind in Router().routes}
    yield wire
    config.providers, config.routes, config.budget = saved


def test_routes_follow_the_seed_table_and_fall_back_to_configured_providers():
    offline = Router(env={})
    assert {r.reason for r in map(offline.route, offline.routes)} == {"offline"}
    assert offline.route("code").model.display == "scripted (offline demo)"
    claude_only = Router(env={"ANTHROPIC_API_KEY": KEY})
    assert (claude_only.route("architecture").model.name, claude_only.route("architecture").reason) == \
        ("claude-opus", "table")
    assert (claude_only.route("code").model.name, claude_only.route("code").reason) == ("claude-sonnet", "fallback")
    assert claude_only.route("tests").model.name == "claude-sonnet"       # codex unreachable: fallback
    both = Router(env={"ANTHROPIC_API_KEY": KEY, "OPENAI_API_KEY": KEY})
    assert both.route("code").model.model_id == CATALOG["codex"].model_id
    assert both.route("code").model.api == "responses"                    # Codex: Responses API only
    assert both.route("quick_fix").model.name == "gpt-4o-mini"
    assert Router(forced="claude-opus", env={}).route("docs").reason == "forced"
    local = Router(providers={"compatible": {"base_url": "http://127.0.0.1:1", "models": ["llama3"]}}, env={})
    assert local.route("docs").model.name == "llama3" and local.route("docs").model.api == "chat"
    table = claude_only.table()
    assert set(table.key) <= {"present", "missing", "not needed"} and KEY not in table.to_string()


def test_bad_routes_and_model_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'nonsense-model'; known models: .*claude-opus"):
        Router(routes={"docs": ["nonsense-model"]})
    with pytest.raises(ValueError, match="unknown task kind 'poetry'"):
        Router(routes={"poetry": ["claude-opus"]})
    frame = models_table(Router(env={}))
    assert frame.set_index("model").loc["codex", "usd per 1M output"] > 0


def test_a_run_through_the_anthropic_sdk_costs_what_genai_prices_says(repo, anthropic_via_wire):
    run = run_async(seed_run(repo))
    assert run.status == "complete"
    assert {t.model for t in run.tasks.values()} == {CATALOG["claude-sonnet"].model_id}
    replies = run.events().query("type == 'model_reply'").data.tolist()
    assert replies and all(r["model"] == "claude-sonnet" for r in replies)
    for reply in replies:
        expected = calc_price(PriceUsage(input_tokens=reply["input_tokens"], output_tokens=reply["output_tokens"],
                                         cache_read_tokens=reply["cache_read_tokens"] or None,
                                         cache_write_tokens=reply["cache_write_tokens"] or None),
                              CATALOG["claude-sonnet"].model_id, provider_id="anthropic").total_price
        assert reply["cost_usd"] == pytest.approx(float(expected))
    planning = [c["cost_usd"] for c in run.events().query("type == 'model_call'").data]   # the planner's call
    assert run.state.total_cost == pytest.approx(sum(r["cost_usd"] for r in replies) + sum(planning))
    assert run.state.total_cost > 0
    report = run.cost_report()
    assert list(report.task) == ["db-schema", "auth-module", "api-docs"]
    assert report.cost_usd.sum() == pytest.approx(run.state.total_cost - sum(planning))
    summary = report.attrs["summary"]
    assert summary["sequential_seconds"] > 0 and summary["speed_up"] > 0
    routed = run.events().query("type == 'task_routed'").data.tolist()
    assert {r["reason"] for r in routed} == {"table"}
    assert all(run.streamed.get(t, 0) > 0 for t in run.tasks)      # tokens streamed in, shown as progress
    assert all(r["body"].get("stream") for r in anthropic_via_wire.requests[-3:])


def test_the_key_never_shows_in_events_widgets_or_errors(repo, anthropic_via_wire):
    anthropic_via_wire.faults.extend(["401", "401"])    # the planner's call, then an agent's; echoes the key

    async def main():
        run = osqr_nb.start("add a health check", repo=repo, tier=3)
        view = osqr_nb.ui.view(run)
        checkpoint = await run.next_checkpoint(timeout=30)
        assert "401" in checkpoint.question or "refused" in checkpoint.question
        checkpoint.resolve("Retry")
        await run
        view.refresh()
        return run, view, checkpoint

    run, view, checkpoint = run_async(main())
    assert run.status == "complete"
    everything = json.dumps(run.events().data.tolist()) + json.dumps(osqr_nb.history(repo).astype(str).values.tolist())
    widgets_text = json.dumps([w.get_state() for w in _all_widgets(view)], default=str)
    assert KEY not in everything and KEY not in widgets_text and KEY not in repr(checkpoint)
    assert "[redacted key]" in everything or "refused" in everything


def _all_widgets(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _all_widgets(child)


def test_a_provider_that_stays_down_asks_retry_or_switch_and_never_fails_silently(repo, anthropic_via_wire):
    anthropic_via_wire.faults.extend(["500", "500"])    # the planner falls back offline, the agent asks

    async def main():
        run = osqr_nb.start("add a health check", repo=repo, tier=4)
        checkpoint = await run.next_checkpoint(timeout=30)
        assert run.status == "needs_input" and checkpoint.options[0] == "Retry"
        assert "Stop this task" in checkpoint.options and "failing (HTTP 500)" in checkpoint.question
        checkpoint.resolve("Retry")
        await run
        return run

    run = run_async(main())
    assert run.status == "complete"
    failed = run.events().query("type == 'provider_failed'").data.iloc[0]
    assert failed["status_code"] == 500 and failed["kind"] == "ProviderDown"


def test_a_spent_budget_pauses_the_run_on_a_card_and_raising_it_carries_on(repo, anthropic_via_wire):
    async def main():
        run = osqr_nb.start(SEED_REQUEST, repo=repo, tier=4, budget=0.001)
        checkpoint = await run.next_checkpoint(timeout=30)
        assert checkpoint.category == "budget" and run.state.paused
        assert checkpoint.options[0].startswith("Raise budget to $") and "Stop here" in checkpoint.options
        raised_to = float(checkpoint.options[0].rsplit("$", 1)[1])
        checkpoint.resolve(checkpoint.options[0])
        while not run.done:                               # keep raising until the work is done
            try:
                more = await run.next_checkpoint(timeout=30)
            except RuntimeError:
                break
            more.resolve(more.options[0])
        await run
        return run, raised_to

    run, raised_to = run_async(main())
    assert run.status == "complete" and raised_to >= 0.002
    types = list(run.events().type)
    assert "budget_warning" in types and types.index("budget_warning") < types.index("budget_raised")
    raised = types.index("budget_raised")
    assert types[raised + 1] == "run_resumed"              # raising it carries the run on at once


def test_stop_here_at_the_budget_cancels_with_nothing_lost(repo, anthropic_via_wire):
    async def main():
        run = osqr_nb.start(SEED_REQUEST, repo=repo, tier=4, budget=0.001)
        (await run.next_checkpoint(timeout=30)).resolve("Stop here")
        await run
        return run

    run = run_async(main())
    assert run.status == "cancelled"
    assert "budget_stop" in set(run.events().type)


@pytest.mark.parametrize("budget", [-1, "five", True])
def test_a_budget_that_is_not_a_positive_number_is_refused(repo, budget):
    with pytest.raises(ValueError, match="budget must be a positive number"):
        osqr_nb.start("x", repo=repo, budget=budget)


def test_the_offline_demo_can_run_through_the_real_sdk(repo):
    config = settings()
    config.offline = "wire"
    try:
        run = run_async(seed_run(repo, "JWT"))
    finally:
        config.offline = "direct"
    assert run.status == "complete"
    assert {t.model for t in run.tasks.values()} == {"scripted (offline demo)"}
    assert run.state.total_cost == 0 and not run.state.cost_unknown
    assert all(r["input_tokens"] > 0 for r in run.events().query("type == 'model_reply'").data)


def test_forcing_a_model_without_its_key_says_which_variable_to_set(repo):
    async def main():
        osqr_nb.start("add a thing", repo=repo, model="claude-opus")
    with pytest.raises(ValueError, match="needs ANTHROPIC_API_KEY"):
        run_async(main())
    assert osqr_nb.events(repo).empty


class PlanningScript:
    """Behind the wire server: plans when asked through submit_plan, else plays the scripted demo."""

    name = "planning script"

    def __init__(self):
        from osqr_nb.models.scripted import ScriptedModel
        self.demo, self.plans = ScriptedModel(), 0

    async def complete(self, system, messages, tools):
        from osqr_nb.models.base import Reply, ToolCall
        if tools and tools[0].name == "submit_plan":
            self.plans += 1
            tasks = [{"id": "schema", "title": "DB Schema", "kind": "architecture", "description": "Design the schema",
                      "depends_on": [], "writes": ["db/schema.sql"], "estimate_hours": 2},
                     {"id": "auth", "title": "Auth Module", "kind": "code", "description": "Build auth",
                      "depends_on": ["schema"] if self.plans > 1 else ["ghost"], "estimate_hours": 4}]
            return Reply(tool_calls=[ToolCall(f"p{self.plans}", "submit_plan", {"tasks": tasks})],
                         stop_reason="tool_use")
        return await self.demo.complete(system, messages, tools)


def test_with_a_model_configured_the_architecture_model_writes_the_plan_in_the_background(repo):
    with WireServer(PlanningScript(), retry_after=0.01) as wire:
        config = settings()
        saved = config.providers
        config.providers = {"anthropic": {"api_key": KEY, "base_url": wire.base_url, "max_retries": 0}}
        try:
            async def main():
                run = osqr_nb.start("Build the auth module on a new schema", repo=repo, tier=4)
                assert run.status == "planning" and run.plan is None        # the cell returned at once
                assert "Planning" in osqr_nb.ui.view(run).dag.value
                await run
                return run
            run = run_async(main())
        finally:
            config.providers = saved
    assert run.status == "complete"
    assert [t.id for t in run.plan.tasks] == ["schema", "auth"]
    ready = run.events().query("type == 'plan_ready'").data.iloc[0]
    assert ready["planner"].startswith("model planner") and len(ready["attempts"]) == 2   # repaired once
    assert run.cost_report().human_hours_estimate.tolist() == [2, 4]
