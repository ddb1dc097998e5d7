"""Whole runs on real git repositories in temporary directories (no kernel)."""

import asyncio
import signal
import subprocess
import sys
import textwrap

import pytest

import osqr_nb
from osqr_nb import Plan, Task
from osqr_nb.engine.state import RunState
from osqr_nb.models.base import Reply, ToolCall
from osqr_nb.store.events import open_log
from osqr_nb.workspace.git import RepoError

from conftest import SEED_REQUEST, git, run_async, seed_run


class ListModel:
    """A test stand-in for a remote model: plays a list of tool calls per task id."""

    name = "test model"

    def __init__(self, scripts):
        self.scripts = scripts

    async def complete(self, system, messages, tools):
        task_id = next(line[4:] for line in messages[0]["content"].splitlines() if line.startswith("id: "))
        step = sum(1 for m in messages if m["role"] == "assistant")
        name, args = self.scripts[task_id][step]
        return Reply(tool_calls=[ToolCall(f"c{step}", name, args)], stop_reason="tool_use")


def finish(summary="done"):
    return ("finish", {"summary": summary})


def test_seed_request_runs_end_to_end_on_real_git(repo):
    head_before = git(repo, "rev-parse", "HEAD")
    run = run_async(seed_run(repo))
    assert run.status == "complete", run.state.error
    branch = f"osqr/{run.id}/integration"
    files = set(git(repo, "ls-tree", "-r", "--name-only", branch).split())
    assert {"db/schema.sql", "auth/sessions.py", "auth/__init__.py", "docs/API.md", "app.py"} <= files
    assert "sessions" in git(repo, "show", f"{branch}:docs/API.md")
    # each task has its own branch; the docs task started from a state holding the auth result
    for task in ("db-schema", "auth-module", "api-docs"):
        git(repo, "rev-parse", "--verify", f"osqr/{run.id}/{task}")
    git(repo, "merge-base", "--is-ancestor", f"osqr/{run.id}/auth-module", f"osqr/{run.id}/api-docs")
    # finished tasks' worktrees are removed once merged; their branches stay
    assert run.id not in git(repo, "worktree", "list")
    # the user's branch and working tree are untouched
    assert git(repo, "rev-parse", "HEAD") == head_before
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git(repo, "status", "--porcelain") == ""
    # mediated messages: schema -> auth -> docs, with what each produced
    assert [(m.from_task, m.to_task, m.type) for m in run.messages] == [
        ("db-schema", "auth-module", "partial"),            # shared while the schema agent worked
        ("db-schema", "auth-module", "task_output"), ("auth-module", "api-docs", "task_output")]
    assert run.messages[1].payload["files_created"] == ["db/schema.sql"]
    assert run.messages[1].payload["decisions"] == ["UUID for user IDs, separate sessions table"]
    history = osqr_nb.history(repo)
    assert list(history.columns) == ["run_id", "task_id", "task_kind", "category", "confidence",
                                     "proposed", "chosen", "decided_by", "created_at", "resolved_at"]
    auth = history[history.task_id == "auth-module"].iloc[0]
    assert (auth.confidence, auth.proposed, auth.chosen, auth.decided_by) == (0.6, "JWT", "DB Sessions", "code")
    assert history[history.task_id == "db-schema"].iloc[0].decided_by == "auto"


def test_the_answer_changes_what_the_agent_builds(repo):
    run = run_async(seed_run(repo, answer="JWT"))
    files = git(repo, "ls-tree", "-r", "--name-only", f"osqr/{run.id}/integration").split()
    assert "auth/tokens.py" in files and "auth/sessions.py" not in files


def test_state_is_a_fold_over_the_logged_events(repo):
    run = run_async(seed_run(repo))
    folded = RunState.fold(run.id, open_log(repo).read(run.id))
    assert folded.status == run.state.status == "complete"
    assert {t: s.status for t, s in folded.tasks.items()} == {t: s.status for t, s in run.tasks.items()}
    assert folded.messages == run.state.messages
    assert folded.decisions == run.state.decisions
    assert folded.integration == run.state.integration
    events = run.events()
    assert events.seq.is_monotonic_increasing and events.type.iloc[0] == "run_started"
    assert events.type.iloc[-1] == "run_finished"


def test_bad_repositories_get_clear_errors(tmp_path):
    with pytest.raises(RepoError, match="not a git repository"):
        osqr_nb.start("do it", repo=tmp_path)
    (tmp_path / "empty").mkdir()
    git(tmp_path / "empty", "init", "-q")
    with pytest.raises(RepoError, match="no commit yet"):
        osqr_nb.start("do it", repo=tmp_path / "empty")
    with pytest.raises(RepoError, match="no such directory"):
        osqr_nb.start("do it", repo=tmp_path / "missing")


def test_bad_arguments_are_refused_before_anything_is_logged(repo):
    with pytest.raises(ValueError, match="tier must be 1-4"):
        osqr_nb.start("x", repo=repo, tier=9)
    with pytest.raises(ValueError, match="max_parallel"):
        osqr_nb.start("x", repo=repo, max_parallel=0)
    with pytest.raises(osqr_nb.PlanError, match="empty"):
        osqr_nb.start("  ", repo=repo)
    with pytest.raises(RuntimeError, match="running asyncio event loop"):
        osqr_nb.start("add a thing", repo=repo)
    assert osqr_nb.events(repo).empty


def test_uncommitted_changes_are_warned_about_and_left_alone(repo):
    (repo / "app.py").write_text("def main():\n    return 'local edit'\n")

    async def main():
        with pytest.warns(osqr_nb.api.OsqrWarning, match="uncommitted change"):
            run = osqr_nb.start("add a health check", repo=repo, tier=4)
        await run
        return run

    run = run_async(main())
    assert run.status == "complete"
    assert (repo / "app.py").read_text() == "def main():\n    return 'local edit'\n"
    assert "return 'hello'" in git(repo, "show", f"osqr/{run.id}/integration:app.py")


def test_parallel_tasks_that_collide_give_a_clear_conflict_and_keep_both_branches(repo):
    plan = Plan([Task("left", "Left"), Task("right", "Right")])
    model = ListModel({
        "left": [("write_file", {"path": "app.py", "content": "def main():\n    return 'left'\n"}), finish()],
        "right": [("write_file", {"path": "app.py", "content": "def main():\n    return 'right'\n"}), finish()],
    })

    async def main():
        run = osqr_nb.start(plan=plan, repo=repo, model=model, tier=4)   # tier 4: nobody to ask
        await run
        return run

    run = run_async(main())
    assert run.status == "conflicts"
    (conflict,) = run.integration["conflicts"]
    assert conflict["file"] == "app.py" and conflict["task"] == "right" and conflict["other_tasks"] == ["left"]
    assert conflict["lines"] and "app.py" in run.integration["report"][0]
    assert run.integration["merged"] == ["left"]
    assert "right" in git(repo, "show", f"osqr/{run.id}/right:app.py")
    assert git(repo, "status", "--porcelain") == ""


def test_a_tool_path_outside_the_worktree_is_a_tool_error_and_the_run_goes_on(repo, tmp_path):
    escape = tmp_path / "escaped.txt"
    model = ListModel({"solo": [("write_file", {"path": str(escape), "content": "x"}),
                                ("write_file", {"path": "../../../../escaped.txt", "content": "x"}),
                                ("write_file", {"path": "ok.txt", "content": "fine"}), finish()]})

    async def main():
        run = osqr_nb.start(plan=Plan([Task("solo", "Solo")]), repo=repo, model=model)
        await run
        return run

    run = run_async(main())
    assert run.status == "complete"
    assert not escape.exists()
    errors = [e for e in run.events().itertuples() if e.type == "tool_call" and not e.data["ok"]]
    assert len(errors) == 2 and "outside the worktree" in errors[0].data["error"]
    assert git(repo, "show", f"osqr/{run.id}/integration:ok.txt") == "fine"


def test_a_failed_task_skips_its_dependents_and_says_why(repo):
    model = ListModel({"a": [("explode", {})] * 3 + [finish()] * 40, "b": [finish()], "c": [finish()]})

    class Exploding(ListModel):
        async def complete(self, system, messages, tools):
            if "id: a" in messages[0]["content"]:
                raise ConnectionError("provider down")
            return await super().complete(system, messages, tools)

    plan = Plan([Task("a", "A"), Task("b", "B", depends_on=["a"]), Task("c", "C")])

    async def main():
        run = osqr_nb.start(plan=plan, repo=repo, model=Exploding(model.scripts))
        await run
        return run

    run = run_async(main())
    assert run.status == "failed"
    assert run.tasks["a"].status == "failed" and "provider down" in run.tasks["a"].error
    assert run.tasks["b"].status == "skipped" and run.tasks["c"].status == "complete"
    assert "a, b" in run.state.error or "b, a" in run.state.error


def test_two_runs_at_once_on_one_repository(repo):
    async def main():
        first = osqr_nb.start("add a health check", repo=repo, tier=4)
        second = osqr_nb.start("add a metrics endpoint", repo=repo, tier=4)
        await asyncio.gather(first, second)
        return first, second

    first, second = run_async(main())
    assert first.id != second.id
    assert first.status == second.status == "complete"
    branches = git(repo, "branch", "--list", "osqr/*")
    assert f"osqr/{first.id}/integration" in branches and f"osqr/{second.id}/integration" in branches


def test_pause_holds_agents_and_cancel_keeps_the_worktrees(repo):
    from osqr_nb.models.scripted import ScriptedModel

    async def main():
        run = osqr_nb.start("add a health check, add a metrics endpoint", repo=repo, tier=4,
                            model=ScriptedModel(delay=0.05))
        await asyncio.sleep(0.02)
        run.pause()
        assert run.status == "paused"
        replies = run.state.events_seen
        await asyncio.sleep(0.4)
        # at most the replies already in flight arrive while paused
        assert run.state.events_seen - replies <= 8
        assert not run.done
        run.resume()
        await asyncio.sleep(0.05)
        run.cancel()
        await run
        return run

    run = run_async(main())
    assert run.status == "cancelled"
    assert all(t.status in ("cancelled", "complete") for t in run.tasks.values())
    worktrees = git(repo, "worktree", "list")
    assert f".osqr/worktrees/{run.id}/" in worktrees


KILLED_RUN = textwrap.dedent("""
    import asyncio, os, signal, sys
    import osqr_nb
    from osqr_nb.config import settings
    settings().scripted_delay = 0.0

    async def main():
        run = osqr_nb.start({request!r}, repo={repo!r})
        await run.next_checkpoint()
        print(run.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)   # the kernel dies while the agent waits

    asyncio.run(main())
""")


def test_resume_after_the_process_died_finishes_the_run_without_redoing_work(repo):
    script = KILLED_RUN.format(request=SEED_REQUEST, repo=str(repo))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    run_id = done.stdout.strip()
    before = osqr_nb.events(repo)

    async def main():
        run = osqr_nb.resume(run_id, repo=repo)
        (checkpoint,) = run.checkpoints                     # re-shown from the log
        assert checkpoint.task_id == "auth-module"
        checkpoint.resolve("DB Sessions")
        await run
        return run

    run = run_async(main())
    assert run.status == "complete"
    after = osqr_nb.events(repo)
    # nothing lost: the old events are all still there, unchanged
    assert after.seq.iloc[:len(before)].tolist() == before.seq.tolist()
    started = after[after.type == "task_started"].task_id.tolist()
    assert started.count("db-schema") == 1                  # finished work is not redone
    assert len(after[after.type == "checkpoint_opened"]) == 1
    files = git(repo, "ls-tree", "-r", "--name-only", f"osqr/{run_id}/integration").split()
    assert {"db/schema.sql", "auth/sessions.py", "docs/API.md"} <= set(files)
    with pytest.raises(ValueError, match="already finished"):
        osqr_nb.resume(run_id, repo=repo)


def test_every_model_call_and_tool_result_is_logged_and_the_transcript_rebuilds(repo):
    run = run_async(seed_run(repo))
    transcript = run.transcript("db-schema")
    assert list(transcript.role) == ["user"] + ["assistant", "tool"] * 4 + ["assistant"]
    assert transcript.content.iloc[0].startswith("# Task: DB Schema")
    assert transcript.tool_calls.iloc[-1][0]["name"] == "finish"
    replies = run.events().query("type == 'model_reply'").data.tolist()
    assert all(r["latency"] >= 0 and r["reply"] for r in replies)
    write = run.events().query("type == 'tool_call' and task_id == 'db-schema'").data.tolist()[1]
    assert "CREATE TABLE users" in run.log.get_blob(write["args"])
    with pytest.raises(KeyError, match="no task 'ghost'"):
        run.transcript("ghost")


def test_a_partial_dependent_starts_early_gets_updates_and_adapts_when_its_input_finishes(repo):
    from osqr_nb.models.scripted import ScriptedModel

    plan = Plan([Task("db-schema", "DB Schema", "refactor", "Design the database schema"),
                 Task("client", "API Client", "code", "Write the API client", depends_on=["db-schema"],
                      partial=["db-schema"]),
                 Task("docs", "API Docs", "docs", depends_on=["client"])])

    async def main():
        run = osqr_nb.start(plan=plan, repo=repo, tier=4, model=ScriptedModel(delay=0.02))
        await run
        return run

    run = run_async(main())
    assert run.status == "complete"
    events = run.events()
    order = list(zip(events.type, events.task_id))
    assert order.index(("task_started", "client")) < order.index(("task_finished", "db-schema"))
    kinds = [(m.from_task, m.to_task, m.type) for m in run.messages]
    assert ("db-schema", "client", "partial") in kinds and ("db-schema", "client", "task_output") in kinds
    transcript = run.transcript("client")
    texts = "\n".join(str(c) for c in transcript.content)
    assert "Update from DB Schema (db-schema, partial" in texts or "partial" in texts
    assert "not finished: new input arrived" in texts
    note = git(repo, "show", f"osqr/{run.id}/integration:osqr-demo/client.md")
    assert note.count("Revised after the final input arrived") == 1 and "sessions" in note
    # the client's branch holds the schema it started without
    assert "db/schema.sql" in git(repo, "ls-tree", "-r", "--name-only", f"osqr/{run.id}/client")
    from osqr_nb.ui.dag import render_dag
    assert render_dag(plan).count("osqr-partial") == 1


def test_costs_frame_has_one_row_per_model_call(repo):
    run = run_async(seed_run(repo))
    costs = osqr_nb.costs(repo)
    assert list(costs.columns) == ["run_id", "task_id", "time", "model", "input_tokens", "output_tokens",
                                   "cache_read_tokens", "cache_write_tokens", "cost_usd", "latency", "purpose"]
    assert len(costs) == len(run.events().query("type == 'model_reply'"))
    assert set(costs.model) == {"scripted"} and costs.cost_usd.sum() == 0
