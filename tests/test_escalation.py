"""A learned cascade in a real run: a cheap model tries first, a task whose attempt fails goes on
to the cascade's last model from the same commit, both attempts paid for and learned from.

Both models are reached through the real SDKs (OpenAI's Responses API for gpt-4o-mini,
Anthropic's Messages API for claude-sonnet), each at a loopback wire server that plays a
script per task, in a real git repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import osqr_nb
from osqr_nb.config import OSQR, settings
from osqr_nb.learning import PKV
from osqr_nb.learning.wiring import learned_routes
from osqr_nb.models.base import Reply, ToolCall
from osqr_nb.plan.task import Plan, Task
from osqr_nb.wire import WireServer

from conftest import git, make_repo, run_async

KEY = "test-key-not-secret-escalation"
HERE = Path(__file__).resolve().parent


class Script:
    """Plays a list of replies per task id (a reply: (tool, arguments), or text with no tool)."""

    name = "script"

    def __init__(self, scripts: dict[str, list]) -> None:
        self.scripts = scripts
        self.calls: list[str] = []

    async def complete(self, system, messages, tools):
        task_id = next(line[4:] for m in messages if isinstance(m.get("content"), str)
                       for line in m["content"].splitlines() if line.startswith("id: "))
        self.calls.append(task_id)
        step = sum(1 for m in messages if m["role"] == "assistant")
        script = self.scripts[task_id]
        move = script[min(step, len(script) - 1)]
        await asyncio.sleep(0)
        if isinstance(move, str):
            return Reply(text=move, stop_reason="end_turn")
        return Reply(tool_calls=[ToolCall(f"c{step}", move[0], move[1])], stop_reason="tool_use")


GIVES_UP = {"guide": [("write_file", {"path": "cheap.txt", "content": "the cheap model's half guide\n"}),
                      "I am not sure how to go on."]}
DOES_IT = {"guide": [("write_file", {"path": "guide.md", "content": "# Guide\n\nwritten by the main model\n"}),
                     ("finish", {"summary": "the main model wrote the guide"})],
           "use": [("write_file", {"path": "use.py", "content": "GUIDE = 'guide.md'\n"}),
                   ("finish", {"summary": "used the guide"})]}


def plan() -> Plan:
    return Plan([Task("guide", "Write the guide", "docs", "write guide.md"),
                 Task("use", "Use the guide", "code", "point use.py at the guide", depends_on=["guide"])])


def cascade_on(cheap: WireServer, main: WireServer) -> None:
    """Docs go to gpt-4o-mini, escalated to claude-sonnet on failure; code to claude-sonnet.
    The table is explicit; the cascade is laid on the router as learned routes lay it."""
    config = settings()
    config.providers = {"openai": {"api_key": KEY, "base_url": cheap.openai_base_url, "max_retries": 0},
                        "anthropic": {"api_key": KEY, "base_url": main.base_url, "max_retries": 0}}
    config.routes = {"docs": ["gpt-4o-mini", "claude-sonnet"], "code": ["claude-sonnet"]}
    plain = OSQR.router

    def router(self, forced=None):
        made = plain(self, forced)
        made.escalations, made.learned = {"docs": "claude-sonnet"}, {"docs"}
        return made
    OSQR.router = router


@contextlib.contextmanager
def cascade_servers(cheap_script: dict):
    """The cheap model playing `cheap_script`, the main one DOES_IT, laid on the router as a cascade."""
    config = settings()
    saved = (config.providers, config.routes, OSQR.router)
    try:
        with WireServer(Script(cheap_script)) as cheap, WireServer(Script(DOES_IT)) as main:
            cascade_on(cheap, main)
            yield cheap, main
    finally:
        config.providers, config.routes, OSQR.router = saved


@pytest.fixture
def servers():
    with cascade_servers(GIVES_UP) as both:
        yield both


def run_plan(repo: Path, **options) -> "osqr_nb.Run":
    """The two-task plan run to its end at tier 4."""
    async def go():
        run = osqr_nb.start(plan=plan(), repo=repo, tier=4, **options)
        await run
        return run
    return run_async(go())


def files_on(repo: Path, ref: str) -> set[str]:
    return {n for n in git(repo, "ls-tree", "-r", "-z", "--name-only", ref).split("\0") if n}


def reply_costs(run, task_id: str) -> dict[int, float]:
    replies = run.events().query("type == 'model_reply' and task_id == @task_id").data
    costs: dict[int, float] = {}
    for data in replies:
        costs[data["attempt"]] = costs.get(data["attempt"], 0.0) + data["cost_usd"]
    return costs


def test_a_failed_cheap_attempt_goes_on_to_the_main_model_from_the_same_commit(repo, servers):
    cheap, main = servers

    run = run_plan(repo)
    assert run.status == "complete", run.state.error
    events = run.events()
    escalated = events.query("type == 'task_escalated'")
    assert len(escalated) == 1 and escalated.iloc[0].task_id == "guide"
    data = escalated.iloc[0].data
    assert (data["from_model"], data["to_model"]) == ("gpt-4o-mini", "claude-sonnet")
    assert "stopped calling tools" in data["reason"]
    routed = events.query("type == 'task_routed' and task_id == 'guide'").data.tolist()
    assert [(r["model"], r.get("escalate_to"), r["reason"]) for r in routed] == \
        [("gpt-4o-mini", "claude-sonnet", "learned"), ("claude-sonnet", None, "escalated")]
    # the same start commit, a fresh workspace: nothing of the failed attempt in the result
    ready = events.query("type == 'workspace_ready' and task_id == 'guide'").data.tolist()
    assert len(ready) == 2 and ready[0]["head"] == ready[1]["head"] == run.state.base
    integration = f"osqr/{run.id}/integration"
    assert "guide.md" in files_on(repo, integration) and "use.py" in files_on(repo, integration)
    assert "cheap.txt" not in files_on(repo, integration) | files_on(repo, f"osqr/{run.id}/guide")
    assert git(repo, "rev-list", "--count", f"{run.state.base}..osqr/{run.id}/guide").strip() == "1"
    assert not (run.worktree("guide") / "cheap.txt").exists()
    # both attempts are paid for: the task's and the run's cost count the failed one too
    costs = reply_costs(run, "guide")
    assert set(costs) == {1, 2} and costs[1] > 0 and costs[2] > 0
    assert data["cost_usd"] == pytest.approx(costs[1])
    task = run.tasks["guide"]
    assert task.cost_usd == pytest.approx(costs[1] + costs[2])
    assert (task.route, task.escalated_from) == ("claude-sonnet", "gpt-4o-mini")
    report = run.cost_report().set_index("task")
    assert report.loc["guide", "cost_usd"] == pytest.approx(costs[1] + costs[2])
    assert report.loc["guide", "route"] == "gpt-4o-mini → claude-sonnet"
    from osqr_nb.ui.snapshot import describe_run
    shown = {t["id"]: t for t in describe_run(run)["tasks"]}                 # dashboard and sidebar
    assert shown["guide"]["model_text"].startswith("gpt-4o-mini → ") and shown["guide"]["escalated_from"]
    assert "→" not in shown["use"]["model_text"]
    assert run.state.total_cost >= costs[1] + costs[2]
    # the dependent got the main model's output, and the cheap model was asked about nothing else
    message = next(m for m in run.messages if m.to_task == "use")
    assert message.payload["summary"] == "the main model wrote the guide"
    assert set(cheap.model.calls) == {"guide"} and "guide" in main.model.calls
    # what the route learner gets: the cheap model's failure, the main model's escalated success
    rows = PKV().outcomes().query("task_kind == 'docs'")
    assert rows[["model", "success", "escalated_from", "escalate_to"]].values.tolist() == [
        ["gpt-4o-mini", False, None, "claude-sonnet"], ["claude-sonnet", True, "gpt-4o-mini", None]]
    assert rows.cost_usd.tolist() == pytest.approx([costs[1], costs[2]])
    code = PKV().outcomes().query("task_kind == 'code'")                 # no cascade for code
    assert code[["model", "success", "escalated_from", "escalate_to"]].values.tolist() == [
        ["claude-sonnet", True, None, None]]


CHILD = """
import asyncio, os, sys
sys.path.insert(0, {here!r})
from osqr_nb.config import settings
from osqr_nb.store.events import EventLog
import test_escalation as te
from osqr_nb.wire import WireServer

settings().scripted_delay = 0.0
append_all = EventLog.append_all

def crashing(self, events):
    written = append_all(self, events)
    if any({crash} for e in events):
        os._exit(3)                      # the kernel dies right after such an event is logged
    return written

EventLog.append_all = crashing

async def main():
    import osqr_nb
    with WireServer(te.Script(te.{cheap})) as cheap, WireServer(te.Script(te.DOES_IT)) as main:
        te.cascade_on(cheap, main)
        run = osqr_nb.start(plan=te.plan(), repo={repo!r}, tier=4{options})
        print(run.id, flush=True)
        await asyncio.wait_for(asyncio.shield(run._done), 60)

asyncio.run(main())
"""


def killed_then_resumed(repo: Path, crash: str, cheap: str, options: str = "") -> "osqr_nb.Run":
    """The plan run in a child process killed right after an event matching `crash` is logged
    (the cheap model playing the script named `cheap`), then resumed here to its end."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    child = CHILD.format(here=str(HERE), repo=str(repo), crash=crash, cheap=cheap, options=options)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 3, done.stderr[-2000:]
    run_id = done.stdout.split()[0]

    async def resume():
        run = osqr_nb.resume(run_id, repo=repo, force=True)
        await run
        return run
    return run_async(resume())


def test_a_run_killed_right_after_an_escalation_resumes_on_the_main_model_from_scratch(tmp_path, servers):
    cheap, main = servers
    repo = make_repo(tmp_path / "repo")
    run = killed_then_resumed(repo, crash='e.type == "task_escalated"', cheap="GIVES_UP")
    assert run.status == "complete", run.state.error
    events = run.events()
    assert len(events.query("type == 'task_escalated'")) == 1
    after = events[events.seq > events.query("type == 'run_reopened'").seq.iloc[0]]
    routed = after.query("type == 'task_routed' and task_id == 'guide'").data.tolist()
    assert [(r["model"], r["reason"]) for r in routed] == [("claude-sonnet", "escalated")]
    assert "guide" not in cheap.model.calls                    # the cheap model is not asked again
    started = after.query("type == 'task_started' and task_id == 'guide'").data.tolist()
    assert len(started) == 1
    # the failed attempt's worktree (cheap.txt in it) was left by the kill: the resumed attempt
    # started again from the same commit, and none of it reached the result
    ready = events.query("type == 'workspace_ready' and task_id == 'guide'").data.tolist()
    assert [r["head"] for r in ready] == [run.state.base, run.state.base]
    integration = f"osqr/{run.id}/integration"
    assert "guide.md" in files_on(repo, integration) and "cheap.txt" not in files_on(repo, integration)
    task = run.tasks["guide"]
    assert (task.route, task.escalated_from) == ("claude-sonnet", "gpt-4o-mini")
    assert task.cost_usd == pytest.approx(sum(reply_costs(run, "guide").values()))
    rows = PKV().outcomes().query("task_kind == 'docs'")
    assert rows[["model", "success", "escalated_from"]].values.tolist() == [
        ["gpt-4o-mini", False, None], ["claude-sonnet", True, "gpt-4o-mini"]]


def test_a_person_stopping_the_cheap_attempt_is_not_escalated(repo, servers):
    """Only the agent's own failure escalates: a stop by the person, the policy or a budget stays a stop."""
    cheap, _ = servers
    config = settings()
    saved = config.task_budget
    config.task_budget = 1e-9                   # the first reply spends the task's cap

    async def go():
        run = osqr_nb.start(plan=plan(), repo=repo, tier=4)
        checkpoint = await run.next_checkpoint(timeout=20)
        assert checkpoint.task_id == "guide" and "cap" in checkpoint.question
        checkpoint.resolve(checkpoint.proposed)                     # Stop this task
        await run
        return run
    try:
        run = run_async(go())
    finally:
        config.task_budget = saved
    assert run.events().query("type == 'task_escalated'").empty
    assert run.tasks["guide"].status == "failed" and run.tasks["guide"].escalated_from is None


def test_learned_outcomes_make_a_cascade_that_the_router_follows(monkeypatch):
    """From the personal store to the route a task takes: the cheap model first, escalation named."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-not-secret-1")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-secret-2")
    pkv = PKV()
    rows = []
    for model, wins, losses, cost in (("claude-sonnet", 90, 10, 0.09), ("gpt-4o-mini", 80, 20, 0.004),
                                      ("claude-haiku", 20, 80, 0.02), ("gpt-4o", 20, 80, 0.08),
                                      ("claude-opus", 20, 80, 0.2), ("codex", 20, 80, 0.1)):
        rows += [dict(task_kind="docs", model=model, success=True, cost_usd=cost)] * wins
        rows += [dict(task_kind="docs", model=model, success=False, cost_usd=cost)] * losses
    pkv.record_outcomes(rows)
    routes, learned, escalations = learned_routes({"docs": ["claude-sonnet", "gpt-4o"]}, pkv,
                                                  reachable=["claude-sonnet", "gpt-4o-mini", "claude-haiku",
                                                             "gpt-4o", "claude-opus", "codex", "scripted"])
    assert routes["docs"][:2] == ["gpt-4o-mini", "claude-sonnet"] and "scripted" not in routes["docs"]
    assert learned == {"docs"} and escalations == {"docs": "claude-sonnet"}
    route = settings().router().route("docs")
    assert (route.model.name, route.reason, route.escalate_to) == ("gpt-4o-mini", "learned", "claude-sonnet")


def test_an_older_personal_store_gains_the_escalation_column(tmp_path):
    import sqlite3
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE outcomes (task_kind TEXT NOT NULL, model TEXT NOT NULL, success INTEGER NOT NULL, "
               "cost_usd REAL, seconds REAL, at REAL NOT NULL)")
    db.execute("INSERT INTO outcomes VALUES ('docs', 'claude-sonnet', 1, 0.1, 5.0, 1.0)")
    db.commit()
    db.close()
    pkv = PKV(path)
    pkv.record_outcome("docs", "claude-sonnet", True, 0.1, 5.0, escalated_from="gpt-4o-mini")
    frame = pkv.outcomes()
    assert frame[["model", "escalated_from", "escalate_to"]].values.tolist() == [
        ["claude-sonnet", None, None], ["claude-sonnet", "gpt-4o-mini", None]]
    routes = pkv.aggregates()["routes"]                      # what is shared: first attempts only
    assert [(r["model"], r["n"]) for r in routes] == [("claude-sonnet", 1)]


# -- the run's check on a cheap attempt's work ---------------------------------------------------------

BREAKS = {"guide": [("write_file", {"path": "broken.txt", "content": "the cheap model broke it\n"}),
                    ("finish", {"summary": "the cheap model says it is done"})]}
CHECK = "python3 -c \"import os, sys; sys.exit(os.path.exists('broken.txt'))\""


@pytest.fixture
def breaking():
    with cascade_servers(BREAKS) as both:
        yield both


def test_a_cheap_attempt_that_finishes_but_breaks_the_check_goes_on_to_the_main_model(repo, breaking):
    cheap, main = breaking

    run = run_plan(repo, check=CHECK)
    assert run.status == "complete", run.state.error
    events = run.events()
    checked = events.query("type == 'task_checked'")
    assert [(t, d["at"], d["ok"]) for t, d in zip(checked.task_id, checked.data)] == \
        [("guide", "start", True), ("guide", "finish", False)], "only the cheap attempt is checked, twice"
    (escalated,) = events.query("type == 'task_escalated'").data
    assert (escalated["from_model"], escalated["to_model"]) == ("gpt-4o-mini", "claude-sonnet")
    assert "passed where the task started and fails after its work" in escalated["reason"]
    integration = f"osqr/{run.id}/integration"
    assert "guide.md" in files_on(repo, integration) and "broken.txt" not in files_on(repo, integration)
    assert "broken.txt" not in files_on(repo, f"osqr/{run.id}/guide")
    # the dependent never saw the cheap model's claim: it got the main model's output
    (message,) = [m for m in run.messages if m.to_task == "use"]
    assert message.payload["summary"] == "the main model wrote the guide"
    rows = PKV().outcomes().query("task_kind == 'docs'")
    assert rows[["model", "success"]].values.tolist() == [["gpt-4o-mini", False], ["claude-sonnet", True]]


def test_a_check_that_fails_where_the_task_starts_decides_nothing(repo, breaking):
    (repo / "broken.txt").write_text("broken before any task\n")
    git(repo, "add", "broken.txt")
    git(repo, "commit", "-q", "-m", "already broken")

    run = run_plan(repo, check=CHECK)
    events = run.events()
    assert events.query("type == 'task_escalated'").empty
    checked = events.query("type == 'task_checked'").data.tolist()
    assert [(d["at"], d["ok"]) for d in checked] == [("start", False)], "no second check: nothing to compare"
    assert run.tasks["guide"].route == "gpt-4o-mini"
    assert run.status == "failed" and "fails" in (run.state.error or "")        # the run's own check says so



def test_a_cheap_attempt_resumed_after_a_kill_is_still_checked(tmp_path, breaking):
    """The start's answer comes back from the log: the resumed attempt's broken work escalates."""
    repo = make_repo(tmp_path / "repo")
    run = killed_then_resumed(repo, crash='e.type == "tool_call" and e.task_id == "guide"', cheap="BREAKS",
                              options=", check=te.CHECK")            # killed mid-attempt, the start checked
    events = run.events()
    checked = [(d["at"], d["ok"]) for d in events.query("type == 'task_checked'").data]
    assert checked == [("start", True), ("finish", False)], "the start was checked once, before the kill"
    (escalated,) = events.query("type == 'task_escalated'").data
    assert "passed where the task started" in escalated["reason"]
    assert run.status == "complete", run.state.error
    assert "broken.txt" not in files_on(repo, f"osqr/{run.id}/integration")


def test_a_check_that_cannot_run_decides_nothing(repo, breaking, monkeypatch, tmp_path_factory):
    """No sandbox, and unsandboxed commands not allowed: the check is logged as not run, the cheap
    attempt's work is taken as the run would take it without a check, and the run says why it failed."""
    from conftest import path_without
    monkeypatch.setenv("PATH", path_without("bwrap", tmp_path_factory.mktemp("bin")))
    monkeypatch.setattr(settings(), "unsandboxed_commands", False)
    run = run_plan(repo, check=CHECK)
    events = run.events()
    checked = events.query("type == 'task_checked'").data.tolist()
    assert [d["at"] for d in checked] == ["start"] and "bubblewrap" in checked[0]["error"]
    assert events.query("type == 'task_escalated'").empty
    assert run.tasks["guide"].route == "gpt-4o-mini"
    assert run.status == "failed" and "could not run" in (run.state.error or "")
