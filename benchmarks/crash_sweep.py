"""Crash consistency, tested as SQLite tests it: a crash right after each event in turn.

A six-task run (a partial dependency whose two sides change the same file, two
joins) is started in a child process that dies with `os._exit` right after its
N-th event is committed; then it is resumed (sometimes crashing once more during
the resume) until it ends. After each, the run must be complete, every dependency
edge must have delivered its task's output exactly once (before the dependent
started, for a full dependency), no event may be duplicated, no file of the
integration branch may hold a conflict marker, and the user's HEAD, branch,
files, uncommitted edits and stash list must be untouched.

    python benchmarks/crash_sweep.py              # every crash point (about 7 minutes)
    python benchmarks/crash_sweep.py --every 10   # every tenth
    python benchmarks/crash_sweep.py --second 5   # and a second crash 5 events into each resume

Prints tried/held per crash point and in all. The tests run a sample of points.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BASE_SHARED = "def base():\n    return 0\n"
CRASHED = 97

# Each task's tool calls; the last one (finish) repeats if the agent is asked to go on.
SCRIPTS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "a": [("write_file", {"path": "shared.py", "content": BASE_SHARED + "\n\ndef alpha():\n    return 'a'\n"}),
          ("share", {"context": "alpha() will be in shared.py", "files": ["shared.py"]}),
          ("finish", {"summary": "alpha in shared.py", "decisions": ["alpha returns 'a'"],
                      "context": "call shared.alpha()"})],
    "b": [("write_file", {"path": "b.py", "content": "from shared import alpha\n\nB = alpha()\n"}),
          ("read_file", {"path": "shared.py"}),
          ("edit_file", {"path": "shared.py", "old": BASE_SHARED,        # not again after a restart
                         "new": BASE_SHARED + "\n\ndef beta():\n    return 'b'\n", "unless": "def beta"}),
          ("finish", {"summary": "b.py and beta", "context": "B uses alpha"})],
    "c": [("write_file", {"path": "docs/a.md", "content": "# alpha\n\nReturns 'a'.\n"}),
          ("finish", {"summary": "documented alpha"})],
    "d": [("write_file", {"path": "d.py", "content": "from b import B\n\nD = B * 2\n"}),
          ("finish", {"summary": "d.py"})],
    "e": [("write_file", {"path": "tests/test_a.py", "content": "from shared import alpha\n\n\n"
                          "def test_alpha():\n    assert alpha() == 'a'\n"}),
          ("finish", {"summary": "tested alpha"})],
    "f": [("write_file", {"path": "review.md", "content": "Reviewed d and e.\n"}),
          ("finish", {"summary": "reviewed"})],
}
EDGES = [("a", "b", True), ("a", "c", False), ("a", "e", False), ("b", "d", False), ("c", "d", False),
         ("d", "f", False), ("e", "f", False)]
FILES = {"shared.py", "b.py", "docs/a.md", "d.py", "tests/test_a.py", "review.md"}


def plan():
    from osqr_nb.plan.task import Plan, Task
    kinds = {"a": "code", "b": "code", "c": "docs", "d": "code", "e": "tests", "f": "review"}
    tasks = []
    for task_id, kind in kinds.items():
        inputs = [a for a, b, _ in EDGES if b == task_id]
        partial = [a for a, b, p in EDGES if b == task_id and p]
        tasks.append(Task(task_id, f"Task {task_id.upper()}", kind, f"Do {task_id}", depends_on=inputs,
                          partial=partial))
    return Plan(tasks)


class PlayModel:
    """Plays each task's script by the number of replies so far: a restarted agent replays it."""

    name = "play model"

    async def complete(self, system, messages, tools):
        from osqr_nb.models.base import Reply, ToolCall
        task_id = next(line[4:] for line in messages[0]["content"].splitlines() if line.startswith("id: "))
        step = sum(1 for m in messages if m["role"] == "assistant")
        script = SCRIPTS[task_id]
        name, args = script[min(step, len(script) - 1)]
        args = dict(args)
        unless = args.pop("unless", None)
        if unless and unless in str(messages[-1].get("content")):     # as a model reading the file would
            name, args = "list_files", {}
        return Reply(tool_calls=[ToolCall(f"c{step}", name, args)], stop_reason="tool_use")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=Person", "-c", "user.email=person@example.com", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_user_repo(path: Path) -> Path:
    """A person's repository with a stash entry, an uncommitted edit and an untracked file."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "shared.py").write_text(BASE_SHARED)
    (path / "README.md").write_text("# demo\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "initial")
    (path / "README.md").write_text("# demo\nstashed edit\n")
    git(path, "stash", "-q")
    (path / "README.md").write_text("# demo\nmy uncommitted edit\n")
    (path / "notes.txt").write_text("untracked notes\n")
    return path


def user_view(repo: Path) -> dict[str, Any]:
    """What the person sees of their repository (osqr's own folder aside)."""
    return {"head": git(repo, "rev-parse", "HEAD"), "branch": git(repo, "branch", "--show-current"),
            "status": git(repo, "status", "--porcelain"), "stash": git(repo, "stash", "list"),
            "files": {p.name: p.read_text() for p in repo.iterdir() if p.is_file()}}


CHILD = """
import asyncio, os, sys
sys.path.insert(0, {here!r})
import crash_sweep as cs
from osqr_nb.config import settings
from osqr_nb.store.events import EventLog

settings().scripted_delay = 0.0
crash_after, seen = {crash_after}, 0
append_all = EventLog.append_all

def crashing(self, events):
    global seen
    written = append_all(self, events)
    seen += len(events)
    if crash_after and seen >= crash_after:
        os._exit({crashed})
    return written

EventLog.append_all = crashing

async def main():
    import osqr_nb
    if {run_id!r}:
        run = osqr_nb.resume({run_id!r}, repo={repo!r}, model=cs.PlayModel())
    else:
        run = osqr_nb.start(plan=cs.plan(), repo={repo!r}, tier=4, model=cs.PlayModel())
    print(run.id, flush=True)
    await asyncio.wait_for(asyncio.shield(run._done), 120)
    print(run.status, flush=True)

asyncio.run(main())
"""


def child(repo: Path, crash_after: int = 0, run_id: str = "") -> tuple[int, list[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["OSQR_PKV"] = str(repo.parent / "pkv.sqlite")
    script = CHILD.format(here=str(HERE), crash_after=crash_after, crashed=CRASHED, run_id=run_id,
                          repo=str(repo))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env)
    return done.returncode, done.stdout.split(), done.stderr


def recovered(repo: Path) -> None:
    """Open the log as osqr-nb does, which commits what the killed child had only journalled."""
    from osqr_nb.store.events import EventLog
    EventLog(repo / ".osqr" / "osqr.db").close()


def events_of(repo: Path, run_id: str) -> list[dict[str, Any]]:
    recovered(repo)
    db = sqlite3.connect(repo / ".osqr" / "osqr.db")
    try:
        rows = db.execute("SELECT seq, type, task_id, data FROM events WHERE run_id = ? ORDER BY seq",
                          (run_id,)).fetchall()
    finally:
        db.close()
    return [{"seq": s, "type": t, "task_id": task, "data": json.loads(d)} for s, t, task, d in rows]


def run_ids_of(repo: Path) -> list[str]:
    """The runs in the repository's log (a crash may come before the child could say its id)."""
    if not (repo / ".osqr" / "osqr.db").exists():
        return []
    recovered(repo)
    db = sqlite3.connect(repo / ".osqr" / "osqr.db")
    try:
        return [r[0] for r in db.execute("SELECT DISTINCT run_id FROM events")]
    finally:
        db.close()


def problems_of(repo: Path, run_id: str, before: dict[str, Any]) -> list[str]:
    """Every broken promise of the crash-consistency contract, in words."""
    events = events_of(repo, run_id)
    problems = []
    finished = [e for e in events if e["type"] == "run_finished"]
    if [e["data"]["status"] for e in finished] != ["complete"]:
        problems.append(f"run_finished: {[e['data'] for e in finished]}")
    for task_id in SCRIPTS:
        count = sum(1 for e in events if e["type"] == "task_finished" and e["task_id"] == task_id)
        if count != 1:
            problems.append(f"{task_id} finished {count} times")
    for source, target, partial in EDGES:
        outputs = [e for e in events if e["type"] == "message" and e["data"]["from_task"] == source
                   and e["data"]["to_task"] == target and e["data"]["type"] == "task_output"]
        if len(outputs) != 1:
            problems.append(f"{source}->{target}: {len(outputs)} task_output messages")
            continue
        started = [e["seq"] for e in events if e["type"] == "task_started" and e["task_id"] == target]
        done = [e["seq"] for e in events if e["type"] == "task_finished" and e["task_id"] == target]
        if not partial and started and outputs[0]["seq"] > started[-1]:
            problems.append(f"{target} started before {source}'s output reached it")
        if done and outputs[0]["seq"] > done[0]:
            problems.append(f"{target} finished before {source}'s output reached it")
    shares = [json.dumps(e["data"], sort_keys=True) for e in events
              if e["type"] == "message" and e["data"]["type"] == "partial"]
    if len(shares) != len(set(shares)):
        problems.append(f"a partial message was delivered {len(shares) - len(set(shares)) + 1} times")
    if finished:
        branch = f"osqr/{run_id}/integration"
        names = set(git(repo, "ls-tree", "-r", "-z", "--name-only", branch).split("\0")) - {""}
        if not FILES <= names:
            problems.append(f"integration lacks {sorted(FILES - names)}")
        for name in names:
            text = git(repo, "show", f"{branch}:{name}")
            if "<<<<<<<" in text or ">>>>>>>" in text:
                problems.append(f"conflict markers in {name}")
        shared = git(repo, "show", f"{branch}:shared.py")
        if "def alpha" not in shared or "def beta" not in shared:
            problems.append("shared.py lost a side's function")
    if user_view(repo) != before:
        problems.append("the user's repository changed")
    return problems


@dataclass
class Outcome:
    crash_after: int
    second: int
    held: bool
    problems: list[str] = field(default_factory=list)
    resumes: int = 0
    seconds: float = 0.0


def try_point(workdir: Path, crash_after: int, second: int = 0) -> Outcome:
    """Crash after event `crash_after` (and `second` events into the first resume), resume, check."""
    started = time.perf_counter()
    repo = make_user_repo(workdir / f"repo-{crash_after}-{second}")
    before = user_view(repo)
    code, out, err = child(repo, crash_after)
    outcome = Outcome(crash_after, second, False)
    run_ids = run_ids_of(repo)
    if len(run_ids) != 1:
        outcome.problems.append(f"the run did not start (exit {code}): {err[-800:]}")
        return outcome
    run_id = run_ids[0]
    crashes = [second] if second else []
    while code == CRASHED and outcome.resumes < 6:
        outcome.resumes += 1
        code, out, err = child(repo, crashes.pop(0) if crashes else 0, run_id)
        if code not in (0, CRASHED):
            if "already finished" in err:
                code = 0
                break
            outcome.problems.append(f"resume {outcome.resumes} failed (exit {code}): {err[-800:]}")
            break
    if code == 0:
        outcome.problems += problems_of(repo, run_id, before)
    elif not outcome.problems:
        outcome.problems.append(f"still crashing after {outcome.resumes} resumes")
    outcome.held = not outcome.problems
    outcome.seconds = time.perf_counter() - started
    return outcome


def count_events(workdir: Path) -> int:
    repo = make_user_repo(workdir / "repo-clean")
    code, out, err = child(repo)
    if code != 0 or out[-1:] != ["complete"]:
        raise RuntimeError(f"the run without a crash did not complete (exit {code}): {err[-2000:]}")
    return len(events_of(repo, out[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1, help="try every N-th crash point")
    parser.add_argument("--second", type=int, default=0, help="also crash this many events into the resume")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="osqr-crash-") as tmp:
        workdir = Path(tmp)
        total = count_events(workdir)
        print(f"a clean run logs {total} events; crashing after each {options.every}-th", flush=True)
        held = tried = 0
        for point in range(1, total + 1, options.every):
            outcome = try_point(workdir, point, options.second)
            tried += 1
            held += outcome.held
            mark = "held" if outcome.held else "BROKE: " + "; ".join(outcome.problems)
            print(f"crash after event {point:3d} (+{options.second} in resume), {outcome.resumes} resume(s), "
                  f"{outcome.seconds:.1f} s: {mark}", flush=True)
            shutil.rmtree(workdir / f"repo-{point}-{options.second}", ignore_errors=True)
        print(f"tried {tried}, held {held}")


if __name__ == "__main__":
    main()
