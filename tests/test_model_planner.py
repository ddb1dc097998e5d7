"""The model planner through the real anthropic SDK, against the loopback wire server.

A scripted planning model submits bad plans (a cycle, an unknown kind, a
dangling dependency) and then a good one; the planner sends each problem back
and accepts the repair. Models that never get it right, or never call the
tool, end in a clear PlanError.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest

from osqr_nb import PlanError, TaskKind
from osqr_nb.models.anthropic import AnthropicModel
from osqr_nb.models.base import Reply, ToolCall, ToolSpec
from osqr_nb.plan.decompose import PLAN_SCHEMA, ModelPlanError, ModelPlanner
from osqr_nb.plan.explicit import parse_plan
from osqr_nb.plan.repo_summary import summarize_repo
from osqr_nb.wire import WireServer

from conftest import SEED_REQUEST, git

_ids = itertools.count(1)


def task(id: str, title: str, kind: str = "code", depends_on: list[str] | None = None, **more: Any) -> dict:
    return {"id": id, "title": title, "kind": kind, "description": f"{title}.",
            "depends_on": depends_on or [], **more}


GOOD = [task("db", "DB Schema", "refactor", writes=["db/schema.sql"], estimate_hours=2),
        task("auth", "Auth Module", "code", ["db"], writes=["auth/*.py"], reads=["db/schema.sql"],
             acceptance=["passwords are hashed"], estimate_hours=4),
        task("docs", "API Docs", "docs", ["auth", "db"], partial=["auth"], writes=["docs/API.md"])]
CYCLE = [task("db", "DB Schema", "refactor", ["docs"]), task("auth", "Auth Module", "code", ["db"]),
         task("docs", "API Docs", "docs", ["auth"])]
UNKNOWN_KIND = [task("db", "DB Schema", "refactor"), task("auth", "Auth Module", "poetry", ["db"])]
DANGLING = [task("db", "DB Schema", "refactor"), task("auth", "Auth Module", "code", ["ghost"])]


class PlanningModel:
    """Plays a fixed list of replies: a list of tasks becomes a submit_plan call, a str is plain text."""

    name = "scripted planner"

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.seen: list[list[dict[str, Any]]] = []   # the conversation of each call, as the server passed it
        self.tools: list[list[ToolSpec]] = []

    async def complete(self, system: str, messages: list[dict[str, Any]], tools: list[ToolSpec]) -> Reply:
        self.seen.append(messages)
        self.tools.append(tools)
        step = sum(1 for m in messages if m["role"] == "assistant")
        answer = self.script[min(step, len(self.script) - 1)]
        if isinstance(answer, str):
            return Reply(text=answer)
        return Reply(tool_calls=[ToolCall(f"call_{next(_ids)}", "submit_plan", {"tasks": answer})],
                     stop_reason="tool_use")


@pytest.fixture(scope="module")
def server():
    with WireServer(retry_after=0.01) as wire:
        yield wire


def plan_through_sdk(server: WireServer, script: list[Any], repo: Any = None, **options: Any):
    """Run a ModelPlanner on AnthropicModel -> SDK -> wire server -> PlanningModel."""
    scripted = PlanningModel(script)
    server.model = scripted

    async def go():
        model = AnthropicModel("claude-wire-test", api_key="test-key", base_url=server.base_url, timeout=5)
        planner = ModelPlanner(model, **options)
        try:
            return await planner.plan(SEED_REQUEST, repo), planner
        finally:
            await model.aclose()
    return (*asyncio.run(asyncio.wait_for(go(), 30)), scripted)


def test_bad_plans_are_sent_back_and_the_repair_is_accepted(server, repo):
    plan, planner, scripted = plan_through_sdk(server, [CYCLE, UNKNOWN_KIND, DANGLING, GOOD], repo,
                                               max_repairs=3)
    assert [t.id for t in plan.tasks] == ["db", "auth", "docs"]
    assert plan["auth"].acceptance == ["passwords are hashed"] and plan["auth"].estimate_hours == 4
    assert plan.graph.edges["auth", "docs"]["partial"] is True
    assert plan["docs"].kind is TaskKind.DOCS and plan.planner == "model planner (claude-wire-test)"
    # each refusal reached the model as the tool result, naming what was wrong
    results = [m["content"] for m in scripted.seen[-1] if m["role"] == "tool"]
    assert "cycle: " in results[0] and "db -> " in results[0]
    assert "unknown kind 'poetry'" in results[1]
    assert "depends on 'ghost', which is not in the plan" in results[2]
    assert [len(p) > 0 for p in planner.attempts] == [True, True, True, False]


def test_the_prompt_has_the_request_the_repository_and_one_tool(server, repo):
    git(repo, "commit", "-q", "--allow-empty", "-m", "add the login page")
    _, _, scripted = plan_through_sdk(server, [GOOD], repo)
    first = scripted.seen[0][0]["content"]
    assert SEED_REQUEST in first and "app.py" in first and "# demo app" in first
    assert "add the login page" in first      # git log --oneline
    tools = scripted.tools[0]
    assert [t.name for t in tools] == ["submit_plan"]
    schema = tools[0].parameters["properties"]["tasks"]["items"]
    assert schema["properties"]["kind"]["enum"] == [k.value for k in TaskKind]
    assert set(schema["properties"]) >= {"id", "title", "kind", "description", "depends_on", "partial",
                                         "writes", "reads", "acceptance", "estimate_hours"}
    assert json.loads(json.dumps(PLAN_SCHEMA)) == PLAN_SCHEMA


def test_a_model_that_never_gets_it_right_ends_in_a_clear_error_with_its_last_plan(server):
    with pytest.raises(ModelPlanError) as caught:
        plan_through_sdk(server, [CYCLE, UNKNOWN_KIND, DANGLING], max_repairs=2)
    error = caught.value
    message = str(error)
    assert isinstance(error, PlanError) and error.replies == 3
    assert "no valid plan in 3 replies (2 repairs allowed)" in message
    assert "depends on 'ghost'" in message and error.problems == [
        "task 'auth' depends on 'ghost', which is not in the plan (tasks: db, auth)"]
    assert "- [auth] Auth Module (code) after ghost: Auth Module." in message   # the last plan, compact
    assert error.last_plan == DANGLING


def test_the_last_plan_in_the_error_is_an_explicit_plan_the_person_can_fix(server):
    with pytest.raises(ModelPlanError) as caught:
        plan_through_sdk(server, [UNKNOWN_KIND], max_repairs=0)
    shown = str(caught.value).split("in a %%osqr cell:\n", 1)[1]
    fixed = parse_plan(shown.replace("(poetry)", "(code)"))
    assert [t.id for t in fixed.tasks] == ["db", "auth"]


def test_a_model_that_never_calls_the_tool_is_told_and_then_refused(server):
    with pytest.raises(ModelPlanError, match="never called submit_plan in 2 replies") as caught:
        plan_through_sdk(server, ["Here is my plan: first the schema, then auth."], max_repairs=1)
    assert "first the schema" in str(caught.value) and caught.value.last_plan is None
    # after the first text reply, the planner asked for the tool
    scripted = server.model
    assert "calling the submit_plan tool" in scripted.seen[1][-1]["content"]


def test_a_text_reply_then_a_tool_call_is_fine(server):
    plan, planner, _ = plan_through_sdk(server, ["Let me think.", GOOD])
    assert len(plan) == 3 and planner.attempts == [["no submit_plan call"], []]


def test_empty_request_is_refused_before_asking_the_model():
    planner = ModelPlanner(PlanningModel([GOOD]))
    with pytest.raises(PlanError, match="request is empty"):
        asyncio.run(planner.plan("  "))


def test_repository_summary_is_capped_and_works_without_git(tmp_path, repo):
    for i in range(30):
        (repo / f"mod{i:02}.py").write_text("x = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "many modules")
    text = summarize_repo(repo, max_files=10)
    assert "Files (32)" in text and "22 more files" in text and "many modules" in text
    assert len(summarize_repo(repo, max_chars=200)) <= 200
    plain = tmp_path / "plain"
    (plain / "pkg").mkdir(parents=True)
    (plain / "pkg" / "a.py").write_text("")
    assert "pkg/a.py" in summarize_repo(plain) and "(none)" in summarize_repo(plain)
    assert "no repository" in summarize_repo(None)
