"""Nothing lost, nothing silently wrong: crashes, half-done git, a locked or damaged log.

The crash sweep (benchmarks/crash_sweep.py) kills a six-task run right after an
event and resumes it; a sample of its points runs here, the whole sweep as the
benchmark. The rest are regression tests for each way a run was seen to break.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import osqr_nb
from osqr_nb.models.base import Reply, ToolCall
from osqr_nb.plan.task import Plan, Task
from osqr_nb.store.events import Event, EventLog, LogError, open_log
from osqr_nb.workspace import git as gitlib

from conftest import git, load_benchmark, make_repo, run_async

sweep = load_benchmark("crash_sweep")


class Play:
    """Plays a list of tool calls per task id; the last (finish) repeats if the agent must go on."""

    name = "play model"

    def __init__(self, scripts):
        self.scripts = scripts
        self.seen: dict[str, list[list[dict]]] = {}

    async def complete(self, system, messages, tools):
        task_id = next(line[4:] for line in messages[0]["content"].splitlines() if line.startswith("id: "))
        self.seen.setdefault(task_id, []).append([dict(m) for m in messages])
        step = sum(1 for m in messages if m["role"] == "assistant")
        script = self.scripts[task_id]
        name, args = script[min(step, len(script) - 1)]
        await asyncio.sleep(0)
        return Reply(tool_calls=[ToolCall(f"c{step}", name, args)], stop_reason="tool_use")


def finish(summary="done"):
    return ("finish", {"summary": summary})


def run_plan(repo, plan, scripts, tier=4, **options):
    model = Play(scripts)

    async def main():
        run = osqr_nb.start(plan=plan, repo=repo, tier=tier, model=model, **options)
        await run
        return run
    return run_async(main(), timeout=120), model


# ----- the crash sweep, sampled ------------------------------------------------------------------

@pytest.mark.parametrize("point, second", [(4, 0), (12, 0), (22, 0), (24, 0), (28, 0), (45, 0), (47, 0),
                                           (58, 0), (68, 0), (72, 0), (9, 3), (40, 6)])
def test_a_crash_right_after_an_event_then_resume_loses_and_repeats_nothing(tmp_path, point, second):
    outcome = sweep.try_point(tmp_path, point, second)
    assert outcome.held, outcome.problems


# ----- 1. a partial dependency and its input change the same file ------------------------------

BASE = "def base():\n    return 0\n"


def partial_plan():
    return Plan([Task("a", "Task A", "code", "alpha"),
                 Task("b", "Task B", "code", "beta", depends_on=["a"], partial=["a"])])


def user_state(repo):
    return {"head": git(repo, "rev-parse", "HEAD"), "branch": git(repo, "branch", "--show-current"),
            "status": git(repo, "status", "--porcelain"), "stash": git(repo, "stash", "list")}


@pytest.fixture
def shared_repo(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "shared.py").write_text(BASE)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "shared")
    (repo / "README.md").write_text("# stashed\n")
    git(repo, "stash", "-q")
    (repo / "app.py").write_text("# my uncommitted edit\n")
    return repo


def branch_files(repo, branch):
    names = [n for n in git(repo, "ls-tree", "-r", "-z", "--name-only", branch).split("\0") if n]
    return {n: git(repo, "show", f"{branch}:{n}") for n in names}


def every_commit_free_of_markers(repo, branch):
    for sha in git(repo, "rev-list", branch).split():
        for name, text in branch_files(repo, sha).items():
            assert "<<<<<<<" not in text and ">>>>>>>" not in text, (sha, name)


def test_a_partial_input_that_changed_the_same_function_never_leaves_markers_or_touches_the_stash(shared_repo):
    before = user_state(shared_repo)
    scripts = {"a": [("edit_file", {"path": "shared.py", "old": "return 0", "new": "return 'from a'"}),
                     ("share", {"context": "base() will return 'from a'"}),
                     ("share", {"context": "still working"}), finish("a")],
               "b": [("edit_file", {"path": "shared.py", "old": "return 0", "new": "return 'from b'"}),
                     finish("b")]}
    run, model = run_plan(shared_repo, partial_plan(), scripts)
    assert run.status == "complete"
    assert user_state(shared_repo) == before                      # no stash entry of ours, no edit lost
    every_commit_free_of_markers(shared_repo, f"osqr/{run.id}/b")
    every_commit_free_of_markers(shared_repo, f"osqr/{run.id}/integration")
    events = run.events()
    left = events[events.type == "input_conflict_left_to_agent"]
    assert left.data.tolist()[0]["file"] == "shared.py"
    # the agent was told, with the input's version, and finished only after that
    told = [m["content"] for m in model.seen["b"][-1] if m["role"] == "tool"]
    assert any("Your input Task A (a) also changed shared.py" in t and "return 'from a'" in t for t in told)
    # its own side was kept; git's history records the input as merged (integration is clean)
    assert "return 'from b'" in branch_files(shared_repo, f"osqr/{run.id}/b")["shared.py"]
    assert run.integration["conflicts"] == []


def test_a_partial_input_that_added_another_function_merges_both_sides(shared_repo):
    scripts = {"a": [("edit_file", {"path": "shared.py", "old": BASE, "new": BASE + "\n\ndef alpha():\n    return 1\n"}),
                     ("share", {"context": "alpha()"}), ("share", {"context": "more"}), finish("a")],
               "b": [("edit_file", {"path": "shared.py", "old": BASE, "new": BASE + "\n\ndef beta():\n    return 2\n"}),
                     finish("b")]}
    run, _ = run_plan(shared_repo, partial_plan(), scripts)
    assert run.status == "complete"
    merged = branch_files(shared_repo, f"osqr/{run.id}/integration")["shared.py"]
    assert "def alpha" in merged and "def beta" in merged
    resolved = run.events().query("type == 'conflict_resolved'").data.tolist()
    assert [r["resolver"] for r in resolved] == ["semantic"]
    # the dependent's own files are its own: the input's changes are not counted as B's
    assert run.tasks["b"].files_modified == ["shared.py"] and run.tasks["b"].files_created == []


def test_a_branch_that_brings_conflict_markers_is_never_merged_silently(repo):
    marked = "x = 1\n<<<<<<< HEAD\ny = 2\n=======\ny = 3\n>>>>>>> other\n"
    plan = Plan([Task("a", "Task A", "code", "writes markers")])
    run, _ = run_plan(repo, plan, {"a": [("write_file", {"path": "m.py", "content": marked}), finish()]})
    assert run.status == "conflicts"
    (conflict,) = run.integration["conflicts"]
    assert conflict["file"] == "m.py" and "conflict markers" in conflict["reason"]


# ----- 2. messages: one transaction with their task's finish, re-delivered once after a crash ---

def test_task_finished_and_its_messages_are_one_transaction(repo, monkeypatch):
    plan = Plan([Task("a", "A", "code"), Task("b", "B", "code", depends_on=["a"]),
                 Task("c", "C", "docs", depends_on=["a"])])
    batches = []
    real = EventLog.append_all

    def spy(self, events):
        batches.append([e.type for e in events])
        return real(self, events)
    monkeypatch.setattr(EventLog, "append_all", spy)
    scripts = {t: [("write_file", {"path": f"{t}.txt", "content": t}), finish(t)] for t in "abc"}
    run, _ = run_plan(repo, plan, scripts)
    assert run.status == "complete"
    assert ["task_finished", "message", "message"] in batches


def test_resume_delivers_messages_a_crash_cut_off_in_an_older_log_exactly_once(tmp_path):
    repo = sweep.make_user_repo(tmp_path / "repo")
    code, out, _ = sweep.child(repo, crash_after=30)      # a and its messages are in the log
    assert code == sweep.CRASHED
    run_id = out[0]
    db = sqlite3.connect(repo / ".osqr" / "osqr.db")     # as an older version left it: finish without messages
    with db:
        db.execute("DELETE FROM events WHERE run_id = ? AND type = 'message' AND data LIKE '%task_output%' "
                   "AND data LIKE '%\"from_task\": \"a\"%'", (run_id,))
    db.close()
    before = sweep.user_view(repo)
    code, out, err = sweep.child(repo, 0, run_id)
    assert code == 0, err
    assert sweep.problems_of(repo, run_id, before) == []
    redelivered = [e for e in sweep.events_of(repo, run_id) if e["data"].get("redelivered")]
    assert sorted(e["data"]["to_task"] for e in redelivered) == ["b", "c", "e"]


# ----- 3. half-done git after a kill ---------------------------------------------------------------

def crashed_mid_task(tmp_path):
    """A run killed while b works: b's worktree holds uncommitted work, and no merge has begun."""
    repo = sweep.make_user_repo(tmp_path / "repo")
    code, out, _ = sweep.child(repo, crash_after=23)
    assert code == sweep.CRASHED
    worktree = repo / ".osqr" / "worktrees" / out[0] / "b"
    assert git(worktree, "status", "--porcelain") and not (gitlib.git_dir(worktree) / "MERGE_HEAD").exists()
    return repo, out[0], worktree


def killed_mid_merge(repo, worktree):
    """What start_merge leaves when a kill comes as git merges: the work in progress committed,
    the starting commit written down, then git's merge of a branch that changed the same lines."""
    side = repo.parent / "side"
    git(repo, "worktree", "add", "-q", "-b", "side", str(side), "HEAD")
    (side / "shared.py").write_text(sweep.BASE_SHARED + "\n\ndef gamma():\n    return 'g'\n")
    git(side, "commit", "-q", "-am", "side")
    (worktree / "shared.py").write_text(sweep.BASE_SHARED + "\n\ndef beta():\n    return 'b'\n")  # b's edit,
    git(worktree, "update-index", "--no-skip-worktree", "shared.py")   # as its tools bring a file out first
    git(worktree, "add", "-A")
    git(worktree, "commit", "-q", "-m", "work in progress")
    (gitlib.git_dir(worktree) / gitlib.MERGING).write_text(git(worktree, "rev-parse", "HEAD"))


def finish_and_check(repo, run_id):
    before = sweep.user_view(repo)
    code, _, err = sweep.child(repo, 0, run_id)
    assert code == 0, err
    assert sweep.problems_of(repo, run_id, before) == []


def test_resume_removes_a_stale_index_lock_left_by_a_kill_during_git_add(tmp_path):
    repo, run_id, worktree = crashed_mid_task(tmp_path)
    lock = gitlib.git_dir(worktree) / "index.lock"
    lock.write_text("")
    finish_and_check(repo, run_id)


def test_resume_rolls_back_a_merge_killed_with_files_staged_and_no_merge_head(tmp_path):
    repo, run_id, worktree = crashed_mid_task(tmp_path)
    killed_mid_merge(repo, worktree)
    git(worktree, "read-tree", "-m", "-u", "HEAD", "side")          # staged, no MERGE_HEAD
    assert not (gitlib.git_dir(worktree) / "MERGE_HEAD").exists()
    assert git(worktree, "diff", "--cached", "--name-only")
    finish_and_check(repo, run_id)
    assert "gamma" not in git(repo, "show", f"osqr/{run_id}/integration:shared.py")


def test_resume_rolls_back_a_merge_killed_with_markers_in_the_worktree(tmp_path):
    repo, run_id, worktree = crashed_mid_task(tmp_path)
    killed_mid_merge(repo, worktree)
    subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.com", "merge", "--no-edit", "side"],
                   cwd=worktree, capture_output=True)
    assert "<<<<<<<" in (worktree / "shared.py").read_text()
    finish_and_check(repo, run_id)


def test_a_worktree_whose_checkout_a_kill_cut_short_is_made_again(tmp_path):
    repo = sweep.make_user_repo(tmp_path / "repo")
    code, out, _ = sweep.child(repo, crash_after=3)       # preflight done, no task has started
    run_id = out[0]
    worktree = repo / ".osqr" / "worktrees" / run_id / "a"
    git(repo, "worktree", "add", "-q", "-b", f"osqr/{run_id}/a", str(worktree), "HEAD")
    (worktree / "shared.py").unlink()                      # a file the cut checkout never wrote
    finish_and_check(repo, run_id)


# ----- 4. an agent's nested repository ------------------------------------------------------------

def test_a_nested_repository_made_by_an_agent_is_left_out_of_the_commit_and_said(repo, tmp_path):
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "t", str(worktree), "HEAD")
    (worktree / "sub").mkdir()
    git(worktree / "sub", "init", "-q")                    # no commit in it: `git add -A` alone fails
    (worktree / "sub" / "x.py").write_text("x = 1\n")
    (worktree / "mine.py").write_text("y = 2\n")
    assert gitlib.nested_repositories(worktree) == ["sub"]
    commit = run_async(gitlib.commit_all(worktree, "m", leave_out=["sub"]))
    assert commit and git(worktree, "show", "--name-only", "--format=", commit).split() == ["mine.py"]


# ----- 5. the log: locked, damaged, in the way ----------------------------------------------------

def test_a_run_goes_on_while_another_process_holds_the_log_locked_and_nothing_is_lost(repo):
    log = open_log(repo)
    locked, release = threading.Event(), threading.Event()

    def hold():
        db = sqlite3.connect(log.path, timeout=5)
        db.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(60)
        db.execute("COMMIT")
        db.close()

    holder = threading.Thread(target=hold)
    holder.start()
    locked.wait(5)
    try:
        plan = Plan([Task("a", "A", "code"), Task("b", "B", "docs", depends_on=["a"])])
        scripts = {t: [("write_file", {"path": f"{t}.txt", "content": t}), finish(t)] for t in "ab"}
        run, _ = run_plan(repo, plan, scripts)
        assert run.status == "complete"
        parked = list(log.read(run.id))                   # still readable: the parked events come last
        assert parked[-1].type == "run_finished" and parked[-1].seq is None
    finally:
        release.set()
        holder.join()
    assert log.flush(30)
    stored = list(log.read(run.id))
    assert [e.type for e in stored] == [e.type for e in parked] and all(e.seq for e in stored)
    assert all(j.stat().st_size == 0 for j in log.path.parent.glob("osqr.db.pending-*"))   # all committed


def test_events_journalled_by_a_process_that_died_while_the_log_was_locked_are_recovered(tmp_path):
    path = tmp_path / ".osqr" / "osqr.db"
    EventLog(path).close()
    journal = path.with_name("osqr.db.pending-999999999")     # no such process
    rows = [{"run_id": "r1", "type": "run_started", "task_id": None, "ts": 1.0, "data": {"n": 1}},
            {"run_id": "r1", "type": "task_started", "task_id": "a", "ts": 2.0, "data": {"n": 2}}]
    journal.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"run_id": "r1", "ty')   # cut short
    log = EventLog(path)
    assert [(e.type, e.data) for e in log.read("r1")] == [("run_started", {"n": 1}), ("task_started", {"n": 2})]
    assert not journal.exists()
    EventLog(path)                                             # replayed once only
    assert len(list(EventLog(path).read("r1"))) == 2


def test_a_body_lands_in_the_transaction_of_the_event_that_names_it(tmp_path):
    """A body costs no commit of its own: it is journalled and committed with the next event,
    all or none, and readable in between; a body whose event a crash cut off is never stored."""
    import sqlite3

    path = tmp_path / ".osqr" / "osqr.db"
    log = EventLog(path)
    digest = log.put_blob("a long reply " * 100)
    assert log.get_blob(digest) == "a long reply " * 100
    other = sqlite3.connect(path)
    assert other.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 0
    log.append(Event("r", "model_reply", "a", {"reply": digest}))
    journal = next(path.parent.glob("osqr.db.pending-*")).read_text().splitlines()
    if journal:                                       # not committed yet: one group, the body first
        assert [json.loads(line)["type"] for line in journal[:2]] == ["_blob", "model_reply"]
        assert journal[2:] == ["#end"]
    assert log.flush(30)
    assert other.execute("SELECT body FROM blobs").fetchone()[0] == "a long reply " * 100
    assert [e.type for e in EventLog(path).read("r")] == ["model_reply"]
    lost = log.put_blob("never named")                # then the process dies
    assert lost not in {r[0] for r in other.execute("SELECT hash FROM blobs")}


def test_a_kill_before_the_writer_commits_loses_nothing(tmp_path):
    """The events a process journalled and never committed (killed right after the append
    returned) are committed by the next opening, once, with their bodies."""
    path = tmp_path / ".osqr" / "osqr.db"
    code = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parents[1])!r})
from osqr_nb.store.events import Event, EventLog
log = EventLog({str(path)!r})
log._commit_pending = lambda db: False            # the writer never gets to commit
for i in range(3):
    body = log.put_blob("body %d" % i * 50)
    log.append_all([Event("r", "model_reply", "a", {{"reply": body, "i": i}}), Event("r", "tool_call", "a", {{"i": i}})])
os._exit(9)
"""
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    log = EventLog(path)
    events = list(log.read("r"))
    assert [(e.type, e.data["i"]) for e in events] == [(t, i) for i in range(3) for t in ("model_reply", "tool_call")]
    assert all(e.seq for e in events) and log.get_blob(events[4].data["reply"]) == "body 2" * 50
    assert len(list(EventLog(path).read("r"))) == 6                # recovered once only


def test_a_body_stored_while_another_process_holds_the_log_waits_with_its_event(tmp_path):
    import sqlite3

    path = tmp_path / ".osqr" / "osqr.db"
    log = EventLog(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    digest = log.put_blob("body")
    log.append(Event("r", "model_reply", "a", {"reply": digest}))
    assert log.get_blob(digest) == "body" and [e.type for e in log.read("r")] == ["model_reply"]
    holder.execute("COMMIT")
    assert log.flush(30)
    assert EventLog(path).get_blob(digest) == "body"


def test_a_malformed_row_is_reported_and_the_rest_of_the_log_still_loads(repo):
    plan = Plan([Task("a", "A", "code")])
    run, _ = run_plan(repo, plan, {"a": [("write_file", {"path": "a.txt", "content": "a"}), finish()]})
    db = sqlite3.connect(repo / ".osqr" / "osqr.db")
    with db:
        db.execute("INSERT INTO events (run_id, type, task_id, ts, data) VALUES (?, 'decision', 'a', 0, 'not json{')",
                   (run.id,))
        db.execute("INSERT INTO events (run_id, type, task_id, ts, data) VALUES (?, 'task_finished', 'a', 0, '[1]')",
                   (run.id,))
    db.close()
    with pytest.warns(RuntimeWarning, match="cannot be read"):
        fresh = EventLog(repo / ".osqr" / "osqr.db")
        events = list(fresh.read(run.id))
    assert events[-1].type == "run_finished" and len(fresh.malformed) == 2
    with pytest.warns(RuntimeWarning):
        assert isinstance(osqr_nb.history(repo), object)


def test_a_run_whose_events_lack_fields_still_folds(repo):
    from osqr_nb.engine.state import RunState
    events = [Event("r", "run_started", None, {"request": "x", "repo": ".", "base": "b", "tier": 2}),
              Event("r", "run_finished", None, {})]
    state = RunState.fold("r", events)
    assert state.problems and "run_finished" in state.problems[0]


def test_osqr_being_a_file_is_a_clear_error(repo):
    (repo / ".osqr").write_text("not a folder")
    with pytest.raises(LogError, match=r"\.osqr is a file.*move the file away"):
        EventLog(repo / ".osqr" / "osqr.db")

    async def main():
        osqr_nb.start(plan=Plan([Task("a", "A", "code")]), repo=repo)
    with pytest.raises(ValueError, match="is a file"):
        run_async(main())


# ----- 6, 7. names with any byte, and the repository's own hooks -------------------------------

def test_file_names_are_reported_as_they_are_not_c_quoted(repo):
    plan = Plan([Task("a", "A", "code"), Task("b", "B", "docs", depends_on=["a"])])
    scripts = {"a": [("write_file", {"path": "déjà vu.py", "content": "x = 1\n"}),
                     ("write_file", {"path": "tab\there.txt", "content": "t\n"}), finish()],
               "b": [finish()]}
    run, _ = run_plan(repo, plan, scripts)
    assert run.tasks["a"].files_created == ["déjà vu.py", "tab\there.txt"]
    (message,) = [m for m in run.messages if m.to_task == "b"]
    assert message.payload["files_created"] == ["déjà vu.py", "tab\there.txt"]


def test_the_repositorys_hooks_never_run_for_the_orchestrators_git(repo, tmp_path):
    ran = tmp_path / "hook-ran"
    for hook in ("post-checkout", "post-commit", "pre-commit", "post-merge", "reference-transaction"):
        path = repo / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {ran}\nexit 1\n")
        path.chmod(0o755)
    plan = Plan([Task("a", "A", "code"), Task("b", "B", "docs", depends_on=["a"])])
    scripts = {t: [("write_file", {"path": f"{t}.txt", "content": t}), finish(t)] for t in "ab"}
    run, _ = run_plan(repo, plan, scripts)
    assert run.status == "complete"
    assert not ran.exists()


# ----- 8. many joins: inputs merged one at a time -------------------------------------------------

def test_a_layered_plan_whose_tasks_join_many_inputs_completes(repo):
    layers, width = 5, 6
    tasks, scripts = [], {}
    for layer in range(layers):
        for i in range(width):
            task_id = f"t{layer}-{i}"
            inputs = [f"t{layer - 1}-{(i + k) % width}" for k in range(3)] if layer else []
            tasks.append(Task(task_id, task_id, "code", depends_on=inputs))
            scripts[task_id] = [("write_file", {"path": f"out/{task_id}.txt", "content": task_id}), finish()]
    run, _ = run_plan(repo, Plan(tasks), scripts, max_parallel=4)
    assert run.status == "complete", run.state.error
    files = branch_files(repo, f"osqr/{run.id}/integration")
    assert {f"out/{t.id}.txt" for t in tasks} <= set(files)
    last = branch_files(repo, f"osqr/{run.id}/t4-0")          # a task holds all it depends on
    assert "out/t0-0.txt" in last and "out/t3-2.txt" in last


# ----- a merge and its record: a person's answer at integration survives a crash -----------------

def test_a_conflict_the_person_settled_before_a_crash_is_not_asked_again_on_resume(repo):
    from test_conflict_resolution import PLAN, both_change_total, repo_with
    from test_run_git import ListModel
    repo_with(repo)

    async def first():
        run = osqr_nb.start(plan=PLAN, repo=repo, tier=2, model=ListModel(both_change_total()))
        card = await run.next_checkpoint(timeout=30)
        card.resolve("Use Totals B")
        await run
        return run
    run = run_async(first())
    assert run.log.flush(30)          # every event in SQLite (the journal's writer commits behind the run)
    db = sqlite3.connect(repo / ".osqr" / "osqr.db")    # a crash right after the answer's record
    with db:
        (cut,) = db.execute("SELECT seq FROM events WHERE run_id = ? AND type = 'conflict_resolved'",
                            (run.id,)).fetchone()
        db.execute("DELETE FROM events WHERE run_id = ? AND seq > ?", (run.id, cut))
    db.close()

    async def again():
        resumed = osqr_nb.resume(run.id, repo=repo, model=ListModel(both_change_total()), force=True)
        await resumed
        return resumed
    resumed = run_async(again())
    assert resumed.status == "complete" and resumed.checkpoints == []
    assert len(resumed.events().query("type == 'checkpoint_opened'")) == 1
    assert "float(sum(items))" in git(repo, "show", f"osqr/{run.id}/integration:calc.py")


def test_what_a_model_sent_is_always_loggable(tmp_path):
    log = EventLog(tmp_path / ".osqr" / "osqr.db")
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    log.append_all([Event("r", "tool_call", "a", {"args": {"path": "a\ud800b"}}),
                    Event("r", "tool_call", "a", {"args": nested})])
    assert log.flush(30)                       # what the database holds, read back
    first, second = list(log.read("r"))
    assert first.data["args"]["path"] == "a\ud800b"
    assert "nested too deeply" in second.data["unloggable"]


def test_the_orchestrators_git_never_hands_a_key_to_what_a_worktree_makes_it_run(repo, tmp_path, monkeypatch):
    """An unsandboxed agent could define a clean filter; osqr's own `git add` would run it."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-planted-key-123456")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "planted-token-abcdef")
    leak = tmp_path / "leak.txt"
    git(repo, "config", "filter.spy.clean", f"sh -c 'env >> {leak}; cat'")
    (repo / ".gitattributes").write_text("*.txt filter=spy\n")
    git(repo, "add", ".gitattributes")
    git(repo, "commit", "-q", "-m", "attributes")
    leak.unlink(missing_ok=True)
    plan = Plan([Task("a", "A", "code")])
    run, _ = run_plan(repo, plan, {"a": [("write_file", {"path": "a.txt", "content": "a"}), finish()]})
    assert run.status == "complete"
    seen = leak.read_text()                       # the filter did run, for the orchestrator's commit
    assert "PATH=" in seen and "sk-test-planted" not in seen and "planted-token" not in seen


def test_a_group_a_kill_cut_short_in_the_journal_is_left_out_whole(tmp_path):
    """task_finished and its messages are one group: a journal write the kill cut short
    (after task_finished's line) brings back neither."""
    from osqr_nb.store.events import GROUP_END, _line, to_json

    path = tmp_path / ".osqr" / "osqr.db"
    EventLog(path).close()
    whole = [Event("r", "task_started", "a", {}, 1.0)]
    cut = [Event("r", "task_finished", "a", {}, 2.0), Event("r", "message", "a", {"to": "b"}, 2.0)]
    text = "".join(_line(e, to_json(e.data)) for e in whole) + GROUP_END
    text += _line(cut[0], to_json(cut[0].data)) + _line(cut[1], to_json(cut[1].data))[:10]
    path.with_name("osqr.db.pending-999999999-0").write_text(text)
    assert [e.type for e in EventLog(path).read("r")] == ["task_started"]
